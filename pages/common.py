"""What the four pages share: the current project, messages, progress bars and gallery cards.

Everything shown here that came from a person (file names, texts, concept and project names)
goes through ``md`` before it reaches Markdown, and nothing uses ``unsafe_allow_html``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from core.access import AccessDenied, Action, require
from core.embedding import Embedder, load_embedder
from core.errors import ConceptlabError, InputError
from core.evaluate import Mistakes
from core.exchange import export_model
from core.ingestion import IngestReport
from core.inputs.uploads import describe_progress, format_duration
from core.storage import InputRecord
from core.storage.projects import Project, open_project
from core.views.batches import (
    describe_nothing_new,
    dismiss_upload_record,
    end_upload_record,
    find_stopped_upload,
    start_upload_record,
    update_upload_record,
)
from core.views.gallery import describe_input_name, label_inputs, load_thumbnail, preview_text

UPLOAD, LABEL, TRAIN, TRY = "pages/upload.py", "pages/label.py", "pages/train.py", "pages/try.py"

_MARKDOWN_INLINE = re.compile(r"([\\`*_{}\[\]()<>#|~:$&!^=])")  # emphasis, links, images, code, HTML, icons, LaTeX
_MARKDOWN_LEADING = re.compile(r"^(\s*)([-+=]|\d+[.)])")  # lists and headings only count at the start
# Where a word joiner (U+2060, invisible) goes: after a ':' that something follows (emoji and icon
# shortcodes, "https://"), between "www" and its '.', and before '@' (e-mail addresses).
_SHORTCODES_AND_AUTOLINKS = re.compile(r"(?<=:)(?=\S)|(?i:(?<=www)(?=\.))|(?=@)")
WORD_JOINER = "\u2060"


def start_page() -> None:
    """Call first on every page.

    Streamlit 1.67 treats a ``pages/`` folder beside app.py as an old-style multipage app until
    the first ``st.navigation`` call of the process: a first visit straight to /label would run
    this page alone, without app.py's sidebar. Switch that mode off and run the whole app again.
    """
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


# -- words ------------------------------------------------------------------------------


def md(text: object) -> str:
    """Escape text a person typed or named (or a file brought in) so Markdown shows it as it is, never as markup.

    Every user-supplied string on a page goes through here: names in widget labels, captions, messages and
    headings. Backslashes stop links, images, emphasis, HTML, LaTeX and colour directives. They cannot stop
    autolinks (``www.x.com``, ``https://...``, ``a@b.com``) or emoji and icon shortcodes (``:smile:``):
    Streamlit's Markdown finds those in the text *after* escapes are undone. An invisible word joiner in each
    of them does, since those patterns must begin after a space or punctuation and run on letters.
    """
    joined = _SHORTCODES_AND_AUTOLINKS.sub(WORD_JOINER, str(text))
    escaped = _MARKDOWN_INLINE.sub(r"\\\1", joined).replace("\n", " ")
    return _MARKDOWN_LEADING.sub(lambda m: f"{m.group(1)}{m.group(2)[:-1]}\\{m.group(2)[-1]}", escaped)


def sentence(error: BaseException | str) -> str:
    """An engine error (or a reason it gave) as one sentence: capital first letter, full stop."""
    if isinstance(error, InputError):
        text = f"Could not use {error.name}: {error.reason}"
    else:
        text = str(error).strip() or "Something went wrong"
    if not isinstance(error, AccessDenied):  # that one starts with a user's name, kept as they spell it
        text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def refusal(project: Project, action: Action) -> str | None:
    """The sentence the engine would refuse ``action`` with for the person signed in, or None if they may."""
    try:
        require(project, action)
    except AccessDenied as e:
        return sentence(e)
    return None


def show_error(error: BaseException) -> None:
    st.error(md(sentence(error)), icon=":material/error:")


def flash(message: str, kind: str = "success") -> None:
    """Keep a message for the next run (after ``st.rerun`` or a callback), shown by ``show_flashes``."""
    st.session_state.setdefault("flashes", []).append((kind, message))


def show_flashes() -> None:
    icons = {"success": ":material/check_circle:", "info": ":material/info:", "warning": ":material/warning:", "error": ":material/error:"}
    for kind, message in st.session_state.pop("flashes", []):
        getattr(st, kind)(message, icon=icons.get(kind))


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def space_name(embedder: Embedder, space: str) -> str:
    """What lives in an embedding space, in words."""
    if embedder.zero_shot:
        return "images, videos and texts"
    if embedder.finds_faces:
        return "faces in images and videos"
    return "images and videos" if space == embedder.image_space else "texts"


# -- the current project ----------------------------------------------------------------


def current_project() -> Project | None:
    """The project picked in the sidebar, or None (app.py shows the welcome form then)."""
    name = st.session_state.get("project")
    if not name:
        return None
    try:
        return open_project(name)
    except ConceptlabError:
        return None


def require_project() -> Project:
    project = current_project()
    if project is None:
        st.info("Create or choose a project in the sidebar first.", icon=":material/arrow_back:")
        st.stop()
    return project


@st.cache_resource(show_spinner=False, max_entries=4)
def _cached_embedder(spec: str) -> Embedder:
    # core keeps its own per-process cache; this one makes the page layer own the lifetime
    # (and lets a session share the loaded model with every other tab).
    return load_embedder(spec)


def get_embedder(project: Project) -> Embedder:
    """The project's embedder, loaded once per process, with a spinner the first time."""
    with st.spinner(f"Loading the {project.embedder_spec.split(':')[0]} model (only the first time)…"):
        return _cached_embedder(project.embedder_spec)


# -- long work --------------------------------------------------------------------------


def ingest_with_progress(project: Project, total: int, run: Callable[..., IngestReport], place=None) -> IngestReport | None:
    """Run ``run(progress=...)`` (an ingest) under a progress bar with counts and time left.

    ``place`` (an ``st.empty()``): where the model's spinner, the bar and an error go, in place of what it held;
    by default, where this is called. Returns None after showing the error when the engine refuses the whole batch.
    """
    with place.container() if place is not None else st.container():
        return _ingest_with_progress(project, total, run)


def _ingest_with_progress(project: Project, total: int, run: Callable[..., IngestReport]) -> IngestReport | None:
    try:
        get_embedder(project)
    except ConceptlabError as e:
        show_error(e)
        return None
    bar = st.progress(0.0, text=f"Reading and embedding {plural(total, 'input')}…")
    started = time.monotonic()
    start_upload_record(project, total)
    finished = False

    def update(report: IngestReport, _message: str) -> None:
        update_upload_record(project, len(report.added) + len(report.already_stored), len(report.failed))
        fraction, text = describe_progress(report.seen, total, time.monotonic() - started)
        bar.progress(fraction, text=f"Embedding: {text}")

    try:
        report = run(progress=update)
        finished = True
        return report
    except ConceptlabError as e:
        finished = True  # refused, and said so here: nothing to tell on return
        show_error(e)
        return None
    finally:
        # A reload or a closed tab stops this run mid-batch: the record says so to whoever opens the project next.
        end_upload_record(project, finished)
        bar.empty()


def render_stopped_upload(project: Project) -> None:
    """Say, once, how far an upload that was cut short got."""
    record = find_stopped_upload(project)
    if record is None:
        return
    dismiss_upload_record(project)
    st.warning(
        f"The last upload stopped before the end (the page was reloaded or closed, or the server stopped): "
        f"{record.stored} of {plural(record.total, 'input')} were stored"
        + (f", {record.failed} could not be used" if record.failed else "")
        + ". Add the same files again to store the rest: those already stored are skipped.",
        icon=":material/history:",
    )


def render_ingest_report(project: Project, report: IngestReport) -> None:
    """Counts, the failures with their reasons, and a gallery of what was just added."""
    added, known, failed = len(report.added), len(report.already_stored), len(report.failed)
    a, b, c, d = st.columns(4)
    a.metric("Added", added)
    b.metric("Already there", known)
    c.metric("Could not use", failed)
    d.metric("Took", format_duration(report.seconds))
    if describe_nothing_new(report):
        st.info(describe_nothing_new(report), icon=":material/inventory_2:")
    elif report.labelled:
        st.caption(f"{plural(report.labelled, 'label')} recorded.")
    for note in report.notes:
        st.info(md(note[0].upper() + note[1:] + "."), icon=":material/info:")
    if failed:
        if added or known:
            st.warning(f"{plural(failed, 'file')} could not be used; the rest went in.", icon=":material/warning:")
        else:
            st.error(f"Nothing went in: {plural(failed, 'file')} could not be used (the reasons are below).", icon=":material/error:")
        st.dataframe(
            {"File": [e.name for e in report.failed], "Why": [e.reason for e in report.failed]},
            hide_index=True,
            width="stretch",
        )
    if added:
        st.subheader("Just added")
        records = [r for r in (project.store.get_input(i) for i in report.added[:24]) if r is not None]
        render_cards(project, records)
        if added > 24:
            st.caption(f"and {added - 24} more: see them all on the Label page.")


# -- cards ------------------------------------------------------------------------------


def label_badges(labels: dict[str, int]) -> str:
    """Green badges for positives, red for negatives ("not …")."""
    parts = [f":green-badge[{md(c)}]" for c, v in sorted(labels.items()) if v > 0]
    parts += [f":red-badge[not {md(c)}]" for c, v in sorted(labels.items()) if v < 0]
    return " ".join(parts)


def render_preview(project: Project, record: InputRecord, size: int = 256) -> None:
    """An input as people recognise it: a thumbnail, a poster frame and duration, or its first lines."""
    if record.kind == "text":
        with st.container(height=130, border=False):
            st.text(preview_text(record, lines=5, width=240))
        return
    data = load_thumbnail(project, record, size)
    if data is None:
        st.caption(":material/broken_image: no preview")
    else:
        st.image(data, width="stretch")
    if record.kind == "video":
        duration = record.info.get("duration")
        st.caption(f":material/movie: video · {format_duration(duration)}" if duration else ":material/movie: video")


def render_cards(
    project: Project,
    records: Sequence[InputRecord],
    columns: int = 4,
    footer: Callable[[InputRecord], None] | None = None,
    notes: dict[int, str] | None = None,
) -> None:
    """A grid of bordered cards: preview, name, labels, an optional note and footer widgets."""
    for start in range(0, len(records), columns):
        row = st.columns(columns)
        for col, record in zip(row, records[start : start + columns]):
            with col, st.container(border=True):
                render_preview(project, record)
                st.caption(md(describe_input_name(record.name)))
                labels = project.store.labels_of(record.id)
                if labels:
                    st.markdown(label_badges(labels))
                if notes and record.id in notes:
                    st.caption(notes[record.id])
                if footer is not None:
                    footer(record)


# -- mistakes to fix --------------------------------------------------------------------


def _relabel(project: Project, record: InputRecord, concept: str, value: int | None, instead: str | None = None) -> None:
    st.session_state.pop("relabel_offer", None)
    if project.store.concept_id(concept) is None:  # renamed or deleted since training: never recreate it
        flash(f"There is no concept {md(concept)} any more: label this input on the Label page.", "error")
        return
    try:
        label_inputs(project, [record.id], concept, value)
    except (ConceptlabError, ValueError) as e:
        flash(md(sentence(e)), "error")
        return
    now = {1: f"labelled {md(concept)}", -1: f"labelled not {md(concept)}", None: f"no longer labelled for {md(concept)}"}[value]
    if value is None and instead and project.store.concept_id(instead) is not None:
        # It leaves the list of mistakes once unlabelled: the next step, labelling it as what the model took it for, is offered above.
        said = f"{md(describe_input_name(record.name))} is now {now}."
        st.session_state.relabel_offer = {"project": project.name, "concept": concept, "input": record.id, "instead": instead, "said": said}
        return
    flash(f"{md(describe_input_name(record.name))} is now {now}. Train again to apply the fix.")


def _relabel_buttons(project: Project, concept: str, instead: dict[int, str]) -> Callable[[InputRecord], None]:
    """A mistake card's footer: fix its label for ``concept`` in place (``instead``: per input, what the model took it for)."""

    def footer(record: InputRecord) -> None:
        value = project.store.labels_of(record.id).get(concept)
        choices = ((f"Is {md(concept)}", 1, "check"), (f"Is not {md(concept)}", -1, "close"), ("Remove label", None, "backspace"))
        for label, new, icon in choices:
            st.button(
                label,
                key=f"fix_{new}_{record.id}",
                on_click=_relabel,
                args=(project, record, concept, new, instead.get(record.id) if new is None else None),
                disabled=value == new,
                icon=f":material/{icon}:",
                width="stretch",
            )

    return footer


def render_mistakes(project: Project, concept: str, mistakes: Mistakes, more_key: str, step: int) -> None:
    """A concept's cross-validation mistakes as cards with buttons that fix their labels in place.

    ``more_key`` holds how many of each kind to list; "Show more" raises it by ``step``.
    """
    st.markdown(f"**What the model got wrong for {md(concept)} at this threshold**")
    offer = st.session_state.get("relabel_offer") or {}
    if (offer.get("project"), offer.get("concept")) == (project.name, concept) and (record := project.store.get_input(offer["input"])):
        other = offer["instead"]
        with st.container(border=True):
            st.markdown(f"{offer['said']} The model took it for **{md(other)}**. Train again to apply the fix.")
            left, right = st.columns(2)
            left.button(
                f"Label it {md(other)} instead", key="relabel_instead", on_click=_relabel, args=(project, record, other, 1), type="primary"
            )
            right.button("Leave it unlabelled", key="relabel_leave", on_click=st.session_state.pop, args=("relabel_offer", None))
    if mistakes.note:
        st.caption(md(sentence(mistakes.note)))
        return
    if not mistakes.total_false_positives and not mistakes.total_false_negatives:
        st.caption("Nothing: every labelled input lands on the right side of this threshold.")
        return
    st.caption("A wrong label teaches the model wrong: fix it here. The next training run learns from the fix.")
    wrong = f"Wrongly matched: not labelled {md(concept)}, yet scored at or above the threshold"
    missed = f"Missed: labelled {md(concept)}, yet scored below the threshold"
    kinds = ((mistakes.false_positives, mistakes.total_false_positives), (mistakes.false_negatives, mistakes.total_false_negatives))
    for title, (listed, total) in zip((wrong, missed), kinds):
        if total:
            st.markdown(f"*{title}* ({total})")
            notes = {m.record.id: f"scored {m.score:.0%}" for m in listed}
            instead = {m.record.id: m.instead for m in listed if m.instead}
            notes |= {i: f"{notes[i]} · taken for {md(other)}" for i, other in instead.items()}
            render_cards(project, [m.record for m in listed], footer=_relabel_buttons(project, concept, instead), notes=notes)
            if not listed:
                st.caption("These inputs were deleted since training.")
    limit = st.session_state.get(more_key, step)
    # Only a full list hides more (a shorter one lost inputs deleted since training).
    hidden = sum(total - len(listed) for listed, total in kinds if len(listed) >= limit)
    if hidden > 0:
        more = {more_key: limit + step}
        st.button(f"Show more ({hidden} not shown)", key=f"{more_key}_button", on_click=st.session_state.update, args=(more,))


# -- model files ------------------------------------------------------------------------


def model_file_name(project_name: str, version: int) -> str:
    """A download's file name: the project's name reduced to safe characters, and the version."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", project_name).strip("-.") or "model"
    return f"{safe}-v{version}.conceptlab.zip"


def model_file_maker(project_name: str, version: int) -> Callable[[], bytes]:
    """What ``st.download_button`` calls when clicked: the model file's bytes, built then and only then.

    It runs on a thread of its own, so it opens the project itself.
    """

    def make() -> bytes:
        return export_model(open_project(project_name), version)

    return make


# -- training reports -------------------------------------------------------------------
# The report's fields grow as evaluation grows; they are shown generically, as tables of
# plain cells. Raw arrays (per-input scores, id lists) are left out: they are for programs.


def _is_cell(value: object) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _cells(record: dict, prefix: str = "") -> dict:
    """A dict's plain values, with one level of nested plain dicts spread into ``key subkey`` columns."""
    cells = {}
    for key, value in record.items():
        if _is_cell(value):
            cells[prefix + str(key)] = round(value, 3) if isinstance(value, float) else value
        elif isinstance(value, dict) and value and all(_is_cell(v) for v in value.values()) and not prefix:
            cells.update(_cells(value, f"{key} "))
    return cells


def report_rows(value: object, group: str = "") -> list[dict]:
    """One report field as table rows of plain cells (empty when it holds nothing a person reads).

    Lists of records become rows, and a record's own list of records (a space's concepts) becomes
    one row each, carrying the record's cells; a mapping of such things adds its key as a column.
    """
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        rows = []
        for record in value:
            own = ({"": group} if group else {}) | _cells(record)
            nested = [k for k, v in record.items() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
            children = [child for k in nested for child in report_rows(record[k])]
            rows += [own | child for child in children] if children else [own]
        return rows
    if isinstance(value, dict) and value and all(isinstance(v, (list, dict)) for v in value.values()):
        if all(isinstance(v, dict) and v and all(_is_cell(x) for x in v.values()) for v in value.values()):
            return [{"": key, "name": k, "value": _cells({"v": v})["v"]} for key, inner in value.items() for k, v in inner.items()]
        return [row for key, inner in value.items() for row in report_rows(inner, str(key))]
    if isinstance(value, dict) and value and all(_is_cell(v) for v in value.values()):
        return [_cells(value)]
    return []
