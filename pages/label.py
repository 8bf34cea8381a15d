"""Label: a filtered gallery with bulk labelling, one-at-a-time labelling, similar inputs and suggestions."""

from __future__ import annotations

import streamlit as st

from core.access import Action
from core.errors import ConceptlabError
from core.prediction import search_similar
from core.storage.projects import open_project
from core.views.gallery import GalleryFilter, count_labels, describe_input_name, find_rival_labels, label_inputs, list_gallery
from core.views.labelling import GRID_ACTIONS, apply_answers, read_answers, read_input_ids, read_selection
from core.views.suggestions import suggest_labels
from pages.common import UPLOAD, flash, md, plural, refusal, render_cards, require_project, sentence, show_error, start_page
from pages.picker import describe_card, one_at_a_time, picture_grid

start_page()
project = require_project()
st.title("Label")
st.caption("Say which inputs show each concept (positive) and which do not (negative). A few of each is enough to start.")

PAGE_SIZE = 24
EVERYTHING, UNLABELLED, POSITIVES, NEGATIVES, PREDICTED = "Everything", "Unlabelled", "Examples of…", "Negatives of…", "Predicted as…"
KINDS = {"All kinds": None, "Images": "image", "Videos": "video", "Texts": "text"}
ORDERS = {"Newest first": "newest", "Oldest first": "oldest", "Least certain first": "least certain"}
counts = count_labels(project)
concepts = list(counts)
has_model = project.store.get_meta("active_version") is not None
# What this page remembers for this project (a deleted and re-made project of the same name starts afresh):
# which inputs were skipped or answered one at a time, and the "find similar" panel. The gallery's
# selection lives in the browser (pages/picker.py), so a click costs no page run.
scope = f"{project.name}@{project.store.get_meta('created_at')}"
work = st.session_state.setdefault("label_work", {}).setdefault(scope, {"skipped": set(), "similar_to": None})


# -- callbacks (they run before the page, so they may reset selection checkboxes) -------


def _label(name: str, ids: list[int], concept: str | None, value: int | None) -> bool:
    if not concept:
        flash("Choose or type a concept first.", "warning")
        return False
    try:
        n = label_inputs(open_project(name), ids, concept, value)
    except ConceptlabError as e:
        flash(md(sentence(e)), "error")
        return False
    what = {1: f"as **{md(concept)}**", -1: f"as not **{md(concept)}**"}.get(value)
    flash(f"Labelled {plural(n, 'input')} {what}." if what else f"Removed the **{md(concept)}** label from {plural(n, 'input')}.")
    return True


def _label_similar(name: str, work: dict, group: list[int], concept: str | None, confirmed: bool) -> None:
    """'All N are X' on similar inputs: asks first when some of them are labelled as another concept."""
    work["confirm_similar"] = None
    if concept and not confirmed:
        rivals = find_rival_labels(open_project(name), group, concept)
        if rivals:
            work["confirm_similar"] = {"concept": concept, "group": list(group), "rivals": rivals}
            return
    _label(name, group, concept, 1)


def _toggle_left_out(work: dict, input_id: int) -> None:
    work.setdefault("left_out", set()).symmetric_difference_update({input_id})
    work["confirm_similar"] = None


def _open_similar(work: dict, input_id: int) -> None:
    work.update(similar_to=input_id, left_out=set(), confirm_similar=None)


def _close_similar(work: dict) -> None:
    work.update(similar_to=None, left_out=set(), confirm_similar=None)


def _concept_action(name: str, action: str) -> None:
    state, store = st.session_state, open_project(name).store
    state.concepts_open = True  # the panel stays open for the next action, whatever this one did
    try:
        if action == "create":
            store.create_concept(state.get("new_concept") or "")
            flash(f"Concept **{md(state.new_concept.strip())}** added.")
            state.new_concept = ""
        elif action == "rename":
            store.rename_concept(state.get("rename_concept") or "", state.get("rename_concept_to") or "")
            flash(f"Concept renamed to **{md(state.rename_concept_to.strip())}**.")
            state.rename_concept_to = ""
        elif action == "delete":
            if not state.get("delete_concept_sure"):
                flash("Tick the box to confirm the deletion first.", "warning")
                return
            store.delete_concept(state.get("delete_concept") or "")
            flash(f"Concept **{md(state.delete_concept)}** and its labels deleted.", "info")
            state.delete_concept_sure = False
    except ConceptlabError as e:
        flash(md(sentence(e)), "error")


def _set(key: str, value) -> None:
    work[key] = value


# -- concepts ---------------------------------------------------------------------------

# A fixed label: Streamlit redraws an expander whose label changes (a count in it) as a new, closed one.
with st.expander("Concepts", expanded=not concepts or st.session_state.get("concepts_open", False), icon=":material/category:"):
    if concepts:
        st.caption(plural(len(concepts), "concept"))
        st.markdown(" ".join(f":blue-badge[{md(c)} · {p} yes · {n} no]" for c, (p, n) in counts.items()))
    else:
        st.info("No concepts yet: add one here, or type a new one when you label.", icon=":material/lightbulb:")
    add_col, rename_col, delete_col = st.columns(3)
    with add_col.form("add_concept", border=False):
        st.text_input("New concept", key="new_concept", placeholder="e.g. cat")
        st.form_submit_button("Add concept", icon=":material/add:", on_click=_concept_action, args=(project.name, "create"))
    if concepts and not refusal(project, Action.EDIT_CONCEPT):  # renaming and deleting concepts are an owner's
        with rename_col.form("rename_concept_form", border=False):
            st.selectbox("Rename", concepts, key="rename_concept")
            st.text_input("to", key="rename_concept_to")
            st.form_submit_button("Rename", on_click=_concept_action, args=(project.name, "rename"))
        with delete_col.form("delete_concept_form", border=False):
            st.selectbox("Delete", concepts, key="delete_concept")
            st.checkbox("Yes, delete it and its labels", key="delete_concept_sure")
            st.form_submit_button("Delete", icon=":material/delete:", on_click=_concept_action, args=(project.name, "delete"))

if not project.store.count_inputs():
    st.info("Nothing to label yet: add files on the Upload page.", icon=":material/inbox:")
    st.page_link(UPLOAD, label="Go to Upload", icon=":material/upload:")
    st.stop()

mode = st.segmented_control(
    "Mode", ["Gallery", "One at a time", "Suggestions"], default="Gallery", key="label_mode", label_visibility="collapsed"
)
mode = mode or "Gallery"

# -- find similar ------------------------------------------------------------------------

similar_to = work["similar_to"]
if similar_to is not None and project.store.get_input(similar_to) is not None:
    source = project.store.get_input(similar_to)
    with st.container(border=True):
        st.subheader(f"Most like {md(describe_input_name(source.name))}")
        try:
            hits = search_similar(project, similar_to, k=12)
        except ConceptlabError as e:
            show_error(e)
            hits = []
        left_out = work.setdefault("left_out", set())
        everyone = [similar_to] + [h.record.id for h in hits]
        group = [i for i in everyone if i not in left_out]
        concept = st.selectbox(
            "Concept", concepts, index=None, accept_new_options=True, placeholder="Choose or type a concept", key="similar_concept"
        )
        confirm = work.get("confirm_similar")
        if confirm and (confirm["concept"], confirm["group"]) != (concept, group):
            confirm = work["confirm_similar"] = None  # asked about another choice: ask again if need be
        if confirm:
            others = sorted(confirm["rivals"].items())
            named = ", ".join(f"{len(ids)} {md(c)}" for c, ids in others)
            relabelled = {i for _, ids in others for i in ids}
            st.warning(
                f"{plural(len(relabelled), 'of these is', 'of these are')} already labelled as another concept ({named}). "
                + (f"In this project an input is one concept: labelling it {md(concept)} removes that label." if project.exclusive else ""),
                icon=":material/warning:",
            )
            rest = [i for i in group if i not in relabelled]
            y, o, n = st.columns(3)
            y.button(
                f"Label all {len(group)} as {md(concept)}",
                on_click=_label_similar,
                args=(project.name, work, group, concept, True),
                width="stretch",
            )
            o.button(
                f"Only the {len(rest)} others",
                disabled=not rest,
                on_click=_label_similar,
                args=(project.name, work, rest, concept, True),
                width="stretch",
            )
            n.button("Cancel", on_click=_set, args=("confirm_similar", None), width="stretch")
        a, b, c = st.columns([2, 2, 1])
        a.button(
            f"All {len(group)} are {md(concept)}" if concept else f"All {len(group)} are…",
            type="primary",
            disabled=not concept or not group,
            on_click=_label_similar,
            args=(project.name, work, group, concept, False),
            width="stretch",
        )
        b.button(
            f"None are {md(concept)}" if concept else "None are…",
            disabled=not concept or not group,
            on_click=_label,
            args=(project.name, group, concept, -1),
            width="stretch",
        )
        c.button("Close", icon=":material/close:", on_click=_close_similar, args=(work,), width="stretch")

        def include_footer(record) -> None:
            out = record.id in left_out
            st.button(
                "Put back" if out else "Leave out",
                key=f"leave_out_{record.id}",
                icon=":material/undo:" if out else ":material/remove_circle_outline:",
                on_click=_toggle_left_out,
                args=(work, record.id),
                width="stretch",
            )

        render_cards(
            project,
            [source] + [h.record for h in hits],
            footer=include_footer,
            notes={h.record.id: f"{h.similarity:.0%} similar" + (" · left out" if h.record.id in left_out else "") for h in hits}
            | {similar_to: "the one you picked" + (" · left out" if similar_to in left_out else "")},
        )

# -- filters -----------------------------------------------------------------------------


def choose_filter(default_show: str = EVERYTHING, default_order: str = "Newest first") -> GalleryFilter:
    shows = [EVERYTHING, UNLABELLED] + ([POSITIVES, NEGATIVES] if concepts else []) + ([PREDICTED] if has_model and concepts else [])
    needs_concept = st.session_state.get(f"show_{mode}", default_show) in (POSITIVES, NEGATIVES, PREDICTED)
    if needs_concept:
        show_col, concept_col, kind_col, order_col = st.columns(4)
    else:
        show_col, kind_col, order_col, _ = st.columns(4)
    show = show_col.selectbox("Show", shows, index=shows.index(default_show), key=f"show_{mode}")
    concept = concept_col.selectbox("Concept", concepts, key=f"show_concept_{mode}") if needs_concept else None
    kind = KINDS[kind_col.selectbox("Kind", list(KINDS), key=f"kind_{mode}")]
    orders = list(ORDERS) if has_model else list(ORDERS)[:2]
    order = ORDERS[
        order_col.selectbox("Order", orders, index=orders.index(default_order) if default_order in orders else 0, key=f"order_{mode}")
    ]
    return GalleryFilter(
        kind=kind,
        labels="unlabelled" if show == UNLABELLED else "all",
        positive_for=concept if show == POSITIVES else None,
        negative_for=concept if show == NEGATIVES else None,
        predicted=concept if show == PREDICTED else None,
        order=order,
    )


def model_note(item) -> str | None:
    """What the model says of a card, as plain text (the widgets set it as text, not Markdown)."""
    return f"Model says {item.predicted} ({item.score:.0%})" if item.predicted is not None else None


# -- gallery -----------------------------------------------------------------------------


def _grid_action(name: str, work: dict, key: str) -> None:
    """The picture grid's action (a callback: it runs before the page, so the cards show the new labels)."""
    try:
        kind, ids = read_selection(st.session_state[key].action)
    except ConceptlabError as e:
        flash(md(sentence(e)), "error")
        return
    if kind == "similar":
        _open_similar(work, ids[0]) if ids else None
    elif not ids:
        flash("Select some inputs first: click their pictures.", "warning")
    elif _label(name, ids, st.session_state.get("label_concept"), GRID_ACTIONS[kind]):
        work["cleared"] = work.get("cleared", 0) + 1


def _answers(name: str, work: dict, key: str) -> None:
    """The one-at-a-time view's answers since the last run, stored in order."""
    progress = st.session_state[key].progress or {}
    project = open_project(name)
    try:
        answers = read_answers(progress.get("answers", []), list(count_labels(project)), work.get("stored_seq", 0), project.exclusive)
        applied = apply_answers(project, answers)
        work["skipped"] = set(read_input_ids(progress.get("skipped", []), "the one-at-a-time view"))
    except ConceptlabError as e:
        flash(md(sentence(e)), "error")
        return
    work["stored_seq"] = max(work.get("stored_seq", 0), applied.last_seq)
    work.setdefault("answered", set()).update(a.input_id for a in answers)


if mode == "Gallery":
    flt = choose_filter()
    # One page number per filter, so a new filter starts on its first page; the widget alone sets it.
    page_key = f"label_page_{abs(hash(flt))}"
    page_no = st.session_state.get(page_key, 1)
    result = list_gallery(project, flt, page=page_no - 1, page_size=PAGE_SIZE)
    concept_col, _ = st.columns([2, 3])
    concept = concept_col.selectbox(
        "Label the selected inputs",
        concepts,
        index=None,
        accept_new_options=True,
        placeholder="Choose a concept or type a new one",
        key="label_concept",
    )
    grid_key = f"grid_{scope}"
    picture_grid(
        grid_key,
        scope,
        [describe_card(project, item.record, model_note(item)) for item in result.items],
        concept,
        f"{plural(result.total, 'input')} match · page {result.page + 1} of {result.pages}",
        work.get("cleared", 0),
        lambda: _grid_action(project.name, work, grid_key),
    )
    if result.pages > 1:
        st.pagination(result.pages, key=page_key)

# -- one at a time -------------------------------------------------------------------------

elif mode == "One at a time":
    QUEUE = 5  # inputs sent ahead, so the next one shows the moment a person answers
    flt = choose_filter(UNLABELLED, "Least certain first")
    if work.get("one_filter") != flt:
        work.update(one_filter=flt, restart=work.get("restart", 0) + 1, answered=set())
    passed = work["skipped"] | work.setdefault("answered", set())
    result = list_gallery(project, flt, page=0, page_size=len(passed) + QUEUE)
    waiting = [item for item in result.items if item.record.id not in passed]
    if work["skipped"] and not waiting:
        st.button("Show the skipped ones again", on_click=lambda: work.update(skipped=set(), restart=work.get("restart", 0) + 1))
    one_key = f"one_{scope}"
    one_at_a_time(
        one_key,
        scope,
        [describe_card(project, item.record, model_note(item), size=512) for item in waiting[:QUEUE]],
        concepts,
        project.exclusive,
        result.total - sum(item.record.id in passed for item in result.items),
        work.get("stored_seq", 0),
        sorted(work["skipped"]),
        work.get("restart", 0),
        lambda: _answers(project.name, work, one_key),
    )

# -- suggestions ---------------------------------------------------------------------------

else:
    if not concepts:
        st.info(
            "No concepts yet: add one in Concepts above, label a few examples, and suggestions will follow.", icon=":material/lightbulb:"
        )
        st.stop()
    concept = st.selectbox("Suggest inputs that look like", concepts, key="suggest_concept")
    try:
        with st.spinner("Looking for likely examples…"):
            suggestions = suggest_labels(project, concept, k=12)
    except ConceptlabError as e:
        show_error(e)
        st.stop()
    if not suggestions.items:
        st.info(md(sentence(suggestions.note)), icon=":material/lightbulb:")
        st.stop()
    ids = [s.record.id for s in suggestions.items]
    if suggestions.basis == "model":
        why = f"Inputs not yet labelled that the model scores above {md(concept)}'s threshold ({suggestions.bar:.2f})"
    else:
        why = f"Inputs not yet labelled that are about as close to your {md(concept)} examples as those are to each other"
    st.caption(f"{why}. Check each one: a wrong label teaches the model wrong.")
    a, b, _ = st.columns([2, 2, 5])
    # Secondary, not primary: accepting all at once is for when every card has been looked at.
    a.button(f"All {len(ids)} are {md(concept)}", on_click=_label, args=(project.name, ids, concept, 1), width="stretch")
    b.button(f"None are {md(concept)}", on_click=_label, args=(project.name, ids, concept, -1), width="stretch")

    def suggestion_footer(record) -> None:
        yes, no = st.columns(2)
        yes.button(
            "Yes",
            key=f"accept_{record.id}",
            icon=":material/check:",
            on_click=_label,
            args=(project.name, [record.id], concept, 1),
            width="stretch",
        )
        no.button(
            "No",
            key=f"reject_{record.id}",
            icon=":material/close:",
            on_click=_label,
            args=(project.name, [record.id], concept, -1),
            width="stretch",
        )

    render_cards(
        project,
        [s.record for s in suggestions.items],
        footer=suggestion_footer,
        notes={s.record.id: f"score {s.score:.2f}" for s in suggestions.items},
    )
