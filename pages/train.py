"""Train: what each concept will get, a train button with progress, the report, and the versions."""

from __future__ import annotations

import time

import streamlit as st

from core.errors import ConceptlabError
from core.heads import NO_HEAD
from core.training import plan_training, set_active_version, train
from core.uploads import format_duration
from pages.common import (
    LABEL,
    TRY,
    flash,
    get_embedder,
    head_name,
    md,
    plural,
    report_rows,
    require_project,
    show_error,
    space_name,
    start_page,
)

start_page()
project = require_project()
st.title("Train")
st.caption("Training takes seconds: the pretrained model stays frozen, and each concept learns a small head from your labels.")

if not project.store.list_concepts():
    st.info("No concepts yet: add one on the Label page.", icon=":material/lightbulb:")
    st.page_link(LABEL, label="Go to Label", icon=":material/sell:")
    st.stop()

try:
    embedder = get_embedder(project)
    plans = plan_training(project)
except ConceptlabError as e:
    show_error(e)
    st.stop()


def shown_plans(plans: list) -> list:
    """Per concept, the spaces it has examples in (negatives alone teach nothing); a concept with none shows one row."""
    rows = []
    for concept in dict.fromkeys(p.concept for p in plans):
        own = [p for p in plans if p.concept == concept]
        rows += [p for p in own if p.positives] or own[:1]
    return rows


def plan_table(plans: list) -> dict:
    return {
        "Concept": [p.concept for p in plans],
        "Learns from": [space_name(embedder, p.space) for p in plans],
        "Examples": [p.positives for p in plans],
        "Negatives": [p.negatives for p in plans],
        "Head": [head_name(p.head) for p in plans],
        "Tip": [p.hint[:1].upper() + p.hint[1:] if p.hint else "" for p in plans],
    }


st.subheader("What training will do")
rows = shown_plans(plans)
st.dataframe(plan_table(rows), hide_index=True, width="stretch")
untrained = [c for c in dict.fromkeys(p.concept for p in plans) if all(p.head == NO_HEAD for p in plans if p.concept == c)]
if untrained:
    st.warning(
        f"{', '.join(md(c) for c in untrained)} {'has' if len(untrained) == 1 else 'have'} no examples yet, so "
        f"{'it' if len(untrained) == 1 else 'they'} will not be learned: label a few on the Label page.",
        icon=":material/lightbulb:",
    )
st.caption(
    "Heads: **zero-shot** works from the concept's name alone (CLIP only); **nearest neighbour** compares with your few examples; "
    "**linear** learns a boundary once a concept has 5 examples and some negatives."
)

if st.button("Train", type="primary", icon=":material/model_training:", disabled=len(untrained) == len(set(p.concept for p in plans))):
    bar = st.progress(0.0, text="Starting…")
    try:
        result = train(project, progress=lambda fraction, message: bar.progress(min(max(fraction, 0.0), 1.0), text=message.capitalize()))
    except ConceptlabError as e:
        bar.empty()
        show_error(e)
    else:
        flash(f"Version {result.version} trained in {result.seconds:.2f} s and now in use. Try it on the Try page.")
        st.rerun()

versions = project.store.list_versions()
if not versions:
    st.stop()
active = int(project.store.get_meta("active_version") or versions[-1][0])

# -- the latest report -------------------------------------------------------------------------

version, created, _, seconds, report = versions[-1]
st.divider()
st.subheader(f"Version {version}")
a, b, c = st.columns(3)
a.metric("Trained in", f"{seconds:.2f} s")
b.metric("Concepts learned", sum(1 for p in report.get("concepts", []) if p.get("head") != NO_HEAD))
c.metric("Labelled examples", sum(p.get("positives", 0) for p in report.get("concepts", [])))
if report.get("concepts"):
    # Columns beyond the plan's own (quality figures, added as evaluation grows) are shown as they come.
    extra = sorted(
        {k for p in report["concepts"] for k in p} - {"concept", "concept_id", "space", "head", "positives", "negatives", "hint"}
    )
    table = {"Concept": [], "Head": [], "Examples": [], "Negatives": []} | {k.replace("_", " ").capitalize(): [] for k in extra}
    for p in report["concepts"]:
        if p.get("head") == NO_HEAD:
            continue
        table["Concept"].append(p.get("concept"))
        table["Head"].append(head_name(p.get("head")))
        table["Examples"].append(p.get("positives"))
        table["Negatives"].append(p.get("negatives"))
        for k in extra:
            table[k.replace("_", " ").capitalize()].append(p.get(k))
    st.dataframe(table, hide_index=True, width="stretch")
# Quality figures and whatever else the report holds, each as a table of plain cells.
for key, value in report.items():
    if key in ("concepts", "config"):
        continue
    title = key.replace("_", " ").capitalize()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        st.metric(title, f"{value:.3g}" if isinstance(value, float) else value)
    elif rows := report_rows(value):
        with st.expander(title, expanded=key in ("metrics", "quality", "evaluation")):
            st.dataframe(rows, hide_index=True, width="stretch")
if report.get("config"):
    with st.expander("Settings used"):
        st.dataframe(report_rows(report["config"]), hide_index=True, width="stretch")
st.page_link(TRY, label="Try it on something new", icon=":material/science:")

# -- versions ----------------------------------------------------------------------------------

st.divider()
st.subheader("Versions")
st.dataframe(
    {
        "Version": [v[0] for v in versions][::-1],
        "Trained": [time.strftime("%Y-%m-%d %H:%M", time.localtime(v[1])) for v in versions][::-1],
        "Took": [f"{v[3]:.2f} s" if v[3] < 60 else format_duration(v[3]) for v in versions][::-1],
        "Concepts": [len({p["concept"] for p in v[4].get("concepts", []) if p.get("head") != NO_HEAD}) for v in versions][::-1],
        "In use": ["yes" if v[0] == active else "" for v in versions][::-1],
    },
    hide_index=True,
    width="stretch",
)
if len(versions) > 1:
    ids = [v[0] for v in versions][::-1]
    pick_col, button_col = st.columns([3, 1], vertical_alignment="bottom")
    chosen = pick_col.selectbox("Version in use", ids, index=ids.index(active), format_func=lambda v: f"Version {v}", key="active_pick")
    if button_col.button("Use this version", disabled=chosen == active, width="stretch"):
        try:
            set_active_version(project, chosen)
        except ConceptlabError as e:
            show_error(e)
        else:
            flash(f"Version {chosen} is now in use.")
            st.rerun()
else:
    st.caption(f"{plural(len(versions), 'version')} so far: each training run adds one, and you can go back to any of them.")
