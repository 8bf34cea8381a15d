"""Upload: files (images, videos, texts, zips, CSV/TSV) or pasted texts, optionally labelled as a batch."""

from __future__ import annotations

import streamlit as st

from core.access import Action
from core.embedding import has_text_space
from core.ingestion import ingest, note_missing_folder_labels
from core.inputs import ARCHIVE_SUFFIXES, IMAGE_SUFFIXES, TABLE_SUFFIXES, TEXT_SUFFIXES, VIDEO_SUFFIXES, ReadConfig, read_texts
from core.inputs.raw import suffix_of
from core.inputs.tables import read_table_columns
from core.inputs.uploads import count_upload_items, read_uploads
from core.views.samples import add_sample_data, build_sample_inputs
from pages.common import (
    LABEL,
    TRAIN,
    ingest_with_progress,
    md,
    plural,
    refusal,
    render_ingest_report,
    render_stopped_upload,
    require_project,
    start_page,
)

start_page()
project = require_project()
render_stopped_upload(project)
st.title("Upload")
st.caption("Add images, videos and texts. The same file twice is stored once.")
if why := refusal(project, Action.UPLOAD):  # a viewer: no uploader to try (the engine would refuse it anyway)
    st.info(md(why), icon=":material/visibility:")
    st.stop()

SUFFIXES = sorted(s.lstrip(".") for s in IMAGE_SUFFIXES | VIDEO_SUFFIXES | TEXT_SUFFIXES | TABLE_SUFFIXES | ARCHIVE_SUFFIXES)
NO_LABEL, POSITIVE, NEGATIVE, FOLDERS = "No label", "All show a concept", "None show a concept", "Folder names are concepts"
st.session_state.setdefault("upload_round", 0)


def batch_labels(key: str, allow_folders: bool) -> tuple[str | None, bool, bool] | None:
    """Widgets for labelling a whole batch: (concept, negative, labels from folders); None if incomplete."""
    choices = [NO_LABEL, POSITIVE, NEGATIVE] + ([FOLDERS] if allow_folders else [])
    how = st.radio(
        "Label this batch",
        choices,
        horizontal=True,
        key=f"{key}_how",
        help="Folder names: inside zip archives, each file's folder (cats/, dogs/) names its concept." if allow_folders else None,
    )
    if how in (POSITIVE, NEGATIVE):
        concepts = [name for _, name in project.store.list_concepts()]
        concept = st.selectbox(
            "Concept",
            concepts,
            index=None,
            accept_new_options=True,
            placeholder="Choose a concept or type a new one",
            key=f"{key}_concept",
        )
        if not concept:
            st.caption("Choose or type the concept first.")
            return None
        return concept, how == NEGATIVE, False
    return None, False, how == FOLDERS


def finish(report) -> None:
    if report is None:
        return
    st.session_state.last_upload = (project.name, report)
    if report.added or report.already_stored or not report.failed:
        st.session_state.upload_round += 1  # a fresh, empty uploader
    # Nothing went in (a wrong column, say): the files stay, to try again with another choice.
    st.rerun()


last = st.session_state.get("last_upload")
report = last[1] if last and last[0] == project.name else None
# The top of the page, in view wherever the Add button sits: an upload's progress (and the model's
# spinner, or an error) shows here, in place of the "empty" card, which an upload under way makes untrue.
top = st.empty()
adding = bool(st.session_state.get("add_files") or st.session_state.get("add_texts"))
if not project.store.count_inputs() and report is None and not adding:
    with top.container(border=True):
        st.markdown("#### :material/waving_hand: This project is empty")
        st.markdown(
            "Drop your own files below, or **try it with sample data**: a dozen drawn circles and squares "
            "and a dozen sentences about sports and cooking, already labelled."
        )
        samples = st.button("Try with sample data", type="primary", icon=":material/auto_awesome:")
    if samples:
        finish(ingest_with_progress(project, len(build_sample_inputs()), lambda progress: add_sample_data(project, progress), top))

files_tab, paste_tab = st.tabs([":material/upload_file: Files", ":material/edit_note: Paste texts"])
with files_tab:
    uploads = st.file_uploader(
        "Drop files here",
        type=SUFFIXES,
        accept_multiple_files=True,
        key=f"uploads_{st.session_state.upload_round}",
        help="Images, videos (one frame per second is used), .txt files, CSV/TSV tables (a text per row) and zip archives of these.",
    )
    labels = batch_labels("files", allow_folders=True)
    tables = [f for f in uploads or [] if suffix_of(f.name) in TABLE_SUFFIXES]
    # The columns of the tables being added, to pick from (the first table's order; every table's names).
    columns = list(dict.fromkeys(c for f in tables for c in read_table_columns(f.getvalue(), suffix_of(f.name))))
    with st.expander("Tables (CSV/TSV)", expanded=bool(tables)):
        if columns:
            default = next((i for i, c in enumerate(columns) if c.casefold() == "text"), 0)
            text_column = st.selectbox("Text column", columns, index=default, key="text_column_pick")
            label_column = st.selectbox(
                "Label column (each row's concept)",
                [""] + [c for c in columns if c != text_column],
                key="label_column_pick",
                format_func=lambda c: c or "none",  # options are plain text, not Markdown
            )
        else:
            text_column = st.text_input("Text column", placeholder="text, or the only column", key="text_column")
            label_column = st.text_input("Label column (each row's concept)", placeholder="none", key="label_column")
    count = len(uploads or [])
    if st.button(
        f"Add {plural(count, 'file')}" if count else "Add files", type="primary", disabled=not count or labels is None, key="add_files"
    ):
        concept, negative, folders = labels
        config = ReadConfig(labels_from_folders=folders, text_column=text_column.strip() or None, label_column=label_column.strip() or None)
        # Generators, so a big video's bytes are copied out of the upload once at a time, not all at once.
        total = count_upload_items((f.name, f.getvalue()) for f in uploads)
        items = read_uploads(((f.name, f.getvalue()) for f in uploads), config)
        finish(
            ingest_with_progress(
                project,
                total,
                lambda progress: note_missing_folder_labels(ingest(project, items, concept, negative, progress=progress), folders),
                top,
            )
        )

with paste_tab:
    if not has_text_space(project.embedder_spec):
        st.info(
            f"This project's embedder ({project.embedder_spec}) finds faces in photos and videos: it has no text space, "
            "so texts cannot be added.",
            icon=":material/info:",
        )
    else:
        pasted = st.text_area("Texts, one per line", height=180, key=f"pasted_{st.session_state.upload_round}")
        lines = [line for line in (pasted or "").splitlines() if line.strip()]
        text_labels = batch_labels("texts", allow_folders=False)
        if st.button(
            f"Add {plural(len(lines), 'text')}" if lines else "Add texts",
            type="primary",
            disabled=not lines or text_labels is None,
            key="add_texts",
        ):
            concept, negative, _ = text_labels
            items = read_texts(lines)
            run = lambda progress: ingest(project, items, concept, negative, progress=progress)  # noqa: E731 - called by keyword
            finish(ingest_with_progress(project, len(lines), run, top))

if report is not None:
    st.divider()
    st.subheader("Last upload")
    render_ingest_report(project, report)
    if report.added or report.already_stored:
        left, right = st.columns(2)
        # Files already stored were labelled (or not) before: "label them" only fits new ones.
        left.page_link(LABEL, label="Next: label them" if report.added else "Go to Label", icon=":material/sell:")
        right.page_link(TRAIN, label="Or train right away", icon=":material/model_training:")
elif project.store.count_inputs():
    counts = project.store.count_inputs()
    st.caption("In this project: " + ", ".join(plural(n, md(kind)) for kind, n in sorted(counts.items())) + ".")
