"""Train: what each concept will get, a train button, how well each concept does (and its mistakes), sharing, versions."""

from __future__ import annotations

import time
from dataclasses import asdict

import altair as alt
import pandas as pd
import streamlit as st

from core.embedding import splits_into_faces
from core.errors import ConceptlabError
from core.evaluate import list_mistakes
from core.exchange import import_model
from core.inputs.uploads import format_duration
from core.learning import (
    get_threshold_origins,
    get_threshold_overrides,
    plan_training,
    reset_threshold,
    set_active_version,
    set_threshold,
    train,
)
from core.learning.heads import NO_HEAD
from core.views.reports import (
    build_confusion_chart,
    build_quality_rows,
    build_verification_rows,
    describe_overall,
    describe_plan,
    describe_plan_examples,
    describe_rate,
    name_head,
    read_evaluations,
)
from pages.common import (
    LABEL,
    TRY,
    flash,
    get_embedder,
    md,
    model_file_maker,
    model_file_name,
    plural,
    render_mistakes,
    report_rows,
    require_project,
    sentence,
    show_error,
    space_name,
    start_page,
)
from pages.demo_links import render_demo_links

MISTAKES_SHOWN = 8  # of each kind, then "Show more": hundreds of mistakes must not flood the page

start_page()
project = require_project()
st.title("Train")
st.caption("Training takes seconds: the pretrained model stays frozen, and each concept learns a small head from your labels.")


def share_model(version: int | None) -> None:
    """Download a version as a model file (built only when clicked), and import one as a new version."""
    with st.expander("Share this model" if version else "Import a model file", expanded=version is None):
        if version is not None:
            st.caption(
                f"Download version {version} as one file, to keep it or to use it in another conceptlab project with "
                "the same model and label mode. The file holds no photos, videos or texts, only what was learned from them."
            )
            # A callable is run on its own thread when clicked: a big model does not slow every rerun.
            st.download_button(
                "Download the model file",
                data=model_file_maker(project.name, version),
                file_name=model_file_name(project.name, version),
                mime="application/zip",
                on_click="ignore",
                icon=":material/download:",
                key=f"export_{version}",
            )
            render_demo_links(project, version)
        else:
            st.caption("Someone shared a model file made with the same model and label mode? Import it to use it here.")
        with st.form("import_model", clear_on_submit=True, border=False):
            upload = st.file_uploader("Import a model file", type=["zip"], key="import_file")
            submitted = st.form_submit_button("Import", icon=":material/upload:")
        if submitted and upload is not None:
            try:
                imported = import_model(project, upload.getvalue(), name=upload.name)
            except ConceptlabError as e:
                show_error(e)
            else:
                created = f" New concepts: {', '.join(md(n) for n in imported.created)}." if imported.created else ""
                flash(f"The model file is now version {imported.version}, in use.{created}")
                st.session_state.pop("report_pick", None)
                st.rerun()
        elif submitted:
            st.warning("Choose a model file first.", icon=":material/warning:")


if not project.store.list_concepts():
    st.info("No concepts yet: add one on the Label page.", icon=":material/lightbulb:")
    st.page_link(LABEL, label="Go to Label", icon=":material/sell:")
    share_model(None)
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
        "Examples": [describe_plan_examples(p) for p in plans],
        "Head": [describe_plan(p) for p in plans],
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
    "Examples are counted as on the Label page: **yes** and **no**; inputs labelled as other concepts also teach a concept what it is not. "
    "Heads: **zero-shot** works from the concept's name alone (CLIP only); **nearest neighbour** compares with your closest examples; "
    "**prototype** with the average of your examples; **linear** learns a boundary between yes and no; **example cache** blends "
    "your examples into another head. Where several are tried, each is tested on examples it was not trained on, and the best is kept."
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
        st.session_state.pop("report_pick", None)  # show the new version's report
        st.rerun()

versions = project.store.list_versions(report_keys=("concepts",))  # the whole report only for the version shown
if not versions:
    share_model(None)
    st.stop()
active = int(project.store.get_meta("active_version") or versions[-1][0])

# -- one version's report: quality, confusion, thresholds, mistakes ------------------------------

st.divider()
if len(versions) > 1:
    numbers = [v[0] for v in versions][::-1]
    shown = st.selectbox(
        "Report of",
        numbers,
        format_func=lambda v: f"Version {v}" + (" (in use)" if v == active else ""),
        key="report_pick",
        help="The newest version by default.",
    )
else:
    shown = versions[-1][0]
version, created, _, seconds, report = project.store.get_version(shown) or versions[-1]
st.subheader(f"Version {version}")
a, b, c = st.columns(3)
a.metric("Trained in", f"{seconds:.2f} s")
b.metric("Concepts learned", len({p.get("concept") for p in report.get("concepts", []) if p.get("head") != NO_HEAD}))
c.metric("Labelled examples", sum(p.get("positives", 0) for p in report.get("concepts", [])))
if report.get("imported"):
    source = report["imported"].get("source") or {}
    st.caption(f"Imported from project {md(source.get('project', '?'))}, version {md(source.get('version', '?'))}.")

try:
    quality = build_quality_rows(report)
    evaluations = read_evaluations(report)
except ValueError as e:
    quality, evaluations = [], []
    st.warning(f"This version's report cannot be read ({md(e)}); its model still works.", icon=":material/warning:")
spaces = {e.space for e in evaluations} | {r.space for r in quality}


def where(space: str) -> str:
    return f" ({space_name(embedder, space)})" if len(spaces) > 1 else ""


if quality:
    st.markdown("**How well each concept does**")
    st.caption("Each labelled input was tried on a model trained without it: these are inputs it had not seen.")
    for evaluation in evaluations:
        if describe_overall(evaluation):
            st.markdown(md(describe_overall(evaluation)[:-1] + where(evaluation.space)) + ".")
    st.dataframe(
        {
            "Concept": [r.concept + where(r.space) for r in quality],
            "How it did": [r.summary for r in quality],
            "Head kept": [r.kept for r in quality],
        },
        hide_index=True,
        width="stretch",
        key="result_table",
    )
    if splits_into_faces(project.embedder_spec):
        # A face check's figures per person, at the threshold in use (training's, or the one saved below).
        names = dict(project.store.list_concepts())
        saved = {names[cid]: value for cid, value in get_threshold_overrides(project, version).items() if cid in names}
        try:
            checks = build_verification_rows(report, saved, version)
        except ValueError:
            checks = []
        if checks:
            st.markdown("**As a face check**")
            st.dataframe(
                {
                    "Person": [rates.concept + where(space) for space, rates in checks],
                    "Strangers let in (false accepts)": [describe_rate(r.false_accepts, r.impostors) for _, r in checks],
                    "Own faces turned away (false rejects)": [describe_rate(r.false_rejects, r.genuine) for _, r in checks],
                    "Threshold": [f"{r.threshold:.3f}" for _, r in checks],
                },
                hide_index=True,
                width="stretch",
                key="verification_table",
            )
            st.caption(
                "Each labelled face was checked by a model trained without it. **False accepts**: of the other people's faces, "
                "how many passed this person's threshold. **False rejects**: of this person's faces, how many did not (a face "
                "unlike every labelled one is *unknown* and passes no one). Raise a person's threshold below to let in fewer "
                "strangers and turn away more of their own faces."
            )
    with st.expander("Details"):
        overall = [e for e in evaluations if e.measured]
        for col, evaluation in zip(st.columns(max(len(overall), 1)), overall):
            if evaluation.exclusive and evaluation.accuracy is not None:
                col.metric(f"Accuracy{where(evaluation.space)}", f"{evaluation.accuracy:.0%}", help=evaluation.method)
            elif evaluation.macro_f1 is not None:
                mean = f"Mean F1 of the concepts; {evaluation.method}"
                col.metric(f"Macro F1{where(evaluation.space)}", f"{evaluation.macro_f1:.2f}", help=mean)
        st.caption(
            f"Measured by {', '.join(sorted({e.method for e in overall})) or 'cross-validation'}. "
            "**Precision**: of what it matched, how much was right. **Recall**: of your examples, how many it found. "
            "**F1** balances the two; **ROC AUC**: how well its scores rank yes above no, whatever the threshold."
        )
        table = {
            "Concept": [r.concept + where(r.space) for r in quality],
            "Head": [name_head(r.head) for r in quality],
            "Precision": [r.precision for r in quality],
            "Recall": [r.recall for r in quality],
            "F1": [r.f1 for r in quality],
            "ROC AUC": [r.roc_auc for r in quality],
            "Examples": [r.examples for r in quality],
            "Negatives": [r.negatives for r in quality],
            "Why this head": [r.chosen for r in quality],
        }
        score = {"format": "%.2f", "help": "From 0 to 1; empty where it cannot be measured"}
        config = {k: st.column_config.NumberColumn(k, **score) for k in ("Precision", "Recall", "F1", "ROC AUC")}
        st.dataframe(table, hide_index=True, width="stretch", column_config=config, key="quality_table")
        for evaluation in overall:
            if evaluation.note:
                st.caption(md(sentence(evaluation.note)))

# The confusion chart: which concept each labelled input was taken for (or, for independent
# concepts, how often each concept was found, wrongly matched, missed or rightly left out).
charts = [chart for chart in map(build_confusion_chart, evaluations) if chart is not None]
for chart in charts:
    st.markdown(f"**What the model mistook for what{md(where(chart.space))}**")
    cells = pd.DataFrame([asdict(cell) | {"shade": cell.shade} for cell in chart.cells])
    top = max(int(cells["count"].max()), 1)
    base = alt.Chart(cells).encode(
        x=alt.X("column:N", sort=chart.columns, title=chart.column_title, axis=alt.Axis(labelAngle=0, labelLimit=160)),
        y=alt.Y("row:N", sort=chart.rows, title=chart.row_title, axis=alt.Axis(labelLimit=200)),
    )
    tooltip = [alt.Tooltip("row:N", title=chart.row_title), alt.Tooltip("column:N", title=chart.column_title), "count:Q"]
    # Right answers in greens, mistakes in oranges (the darker, the more inputs); a mistake nobody made is grey.
    right, wrong = (
        base.transform_filter(alt.datum.shade == shade)
        .mark_rect()
        .encode(color=alt.Color("count:Q", scale=alt.Scale(scheme=scheme, domain=[0, top]), legend=None), tooltip=tooltip)
        for shade, scheme in (("right", "greens"), ("mistake", "oranges"))
    )
    empty = base.transform_filter(alt.datum.shade == "empty").mark_rect(color="#f0f2f6").encode(tooltip=tooltip)
    counts = base.mark_text(fontSize=15).encode(
        text="count:Q", color=alt.condition(alt.datum.count > top / 2, alt.value("white"), alt.value("black"))
    )
    st.altair_chart((right + wrong + empty + counts).resolve_scale(color="independent").properties(height=alt.Step(44)), width="stretch")
    st.caption(
        "Rows: what you labelled; columns: what the model predicted. Green cells are right; orange ones are mistakes."
        if chart.row_title == "labelled"
        else "Per concept, how many labelled inputs landed in each outcome at its threshold. Green is right; orange is a mistake."
    )

# -- thresholds and mistakes, one concept at a time -----------------------------------------------


measured = [r for r in quality if r.measured]
if measured:
    st.markdown("**Tune a concept**")
    picked = st.selectbox(
        "Concept",
        range(len(measured)),
        format_func=lambda i: measured[i].concept + where(measured[i].space),
        key=f"tune_pick_{version}",
    )
    row = measured[picked]
    best = float(report.get("thresholds", {}).get(row.space, {}).get(row.concept, row.threshold))
    concept_id = project.store.concept_id(row.concept)
    in_force = get_threshold_overrides(project, version).get(concept_id, best) if concept_id is not None else best
    origin = get_threshold_origins(project, version).get(concept_id)
    slider_key = f"threshold_{version}_{row.space}_{row.concept}"

    def save_threshold(reset: bool = False) -> None:
        chosen = best if reset else st.session_state[slider_key]
        try:
            if reset:
                reset_threshold(project, version, row.concept)
            else:
                set_threshold(project, version, row.concept, chosen)
        except (ConceptlabError, ValueError) as e:
            flash(md(sentence(e)), "error")
            return
        st.session_state[slider_key] = round(chosen, 3)
        st.session_state.pop("try_result", None)  # the Try page must predict again with the new threshold
        kept = "" if reset else " Later training runs keep it until you reset it."
        flash(f"{md(row.concept)} now matches at {chosen:.3f} or above in version {version}.{kept}")

    if slider_key not in st.session_state:
        st.session_state[slider_key] = round(in_force, 3)
    threshold = st.slider(
        f"Threshold for {md(row.concept)}",
        0.0,
        1.0,
        step=0.001,
        format="%.3f",
        key=slider_key,
        help="An input matches this concept when its score is at or above the threshold. Higher: fewer, surer matches.",
    )
    try:
        limit = st.session_state.get(f"more_{slider_key}", MISTAKES_SHOWN)
        mistakes = list_mistakes(project, row.space, row.concept, threshold, version, limit)
    except ConceptlabError as e:
        st.caption(md(sentence(e)))
    else:
        at = mistakes.metrics
        if origin is None:
            whose = ""
        elif origin == version:
            whose = " (yours, set on this version)"
        else:
            whose = f" (yours, set on version {origin} and kept since: reset it to use this version's own)"
        st.caption(
            f"At this threshold: {plural(at.tp, 'example')} found, {at.fn} missed, "
            f"{plural(at.fp, 'input')} wrongly matched, {at.tn} rightly left out. "
            f"Training chose {best:.3f}; in use: {in_force:.3f}{whose}."
        )
        rates = mistakes.rates
        if splits_into_faces(project.embedder_spec) and rates is not None:
            st.caption(
                f"As a face check at this threshold: false accepts {describe_rate(rates.false_accepts, rates.impostors)} "
                f"of the other people's faces; false rejects {describe_rate(rates.false_rejects, rates.genuine)} "
                f"of {md(row.concept)}'s own."
            )
        with st.expander("Details"):
            p, r, f, n = st.columns(4)
            p.metric("Precision", "–" if at.precision is None else f"{at.precision:.0%}", help="Of what it matched, how much was right")
            r.metric("Recall", "–" if at.recall is None else f"{at.recall:.0%}", help="Of your examples, how many it found")
            f.metric("F1", "–" if at.f1 is None else f"{at.f1:.2f}", help="Precision and recall in one number")
            n.metric("Found", f"{at.tp} of {at.positives}")
            st.caption("Training chose the threshold with the best F1 on inputs each model had not seen.")
        save_col, reset_col = st.columns(2)
        save_col.button("Save threshold", on_click=save_threshold, disabled=abs(threshold - in_force) < 5e-4, width="stretch")
        reset_col.button("Reset to training's threshold", on_click=save_threshold, args=(True,), disabled=origin is None, width="stretch")
        if len(spaces) > 1:
            st.caption(f"A saved threshold applies to {md(row.concept)} on every kind of input.")
        render_mistakes(project, row.concept, mistakes, f"more_{slider_key}", MISTAKES_SHOWN)

st.page_link(TRY, label="Try it on something new", icon=":material/science:")

# -- the rest of the report, and sharing the model ---------------------------------------------------

# Fields shown above, or raw arrays for programs; anything newer is shown as plain tables.
SHOWN = {"concepts", "config", "selection", "metrics", "choices", "thresholds", "scores", "imported"}
for key, value in report.items():
    if key in SHOWN:
        continue
    title = md(key.replace("_", " ").capitalize())  # keys of an imported model file: anyone's text
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        st.metric(title, f"{value:.3g}" if isinstance(value, float) else value)
    elif rows := report_rows(value):
        with st.expander(title):
            st.dataframe(rows, hide_index=True, width="stretch")
if report.get("config"):
    with st.expander("Settings used"):
        settings = report["config"] | report.get("selection", {})
        plain = {k: v for k, v in settings.items() if isinstance(v, (str, int, float, bool))}  # lists are for programs
        st.dataframe(report_rows(plain), hide_index=True, width="stretch")

share_model(version)

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
