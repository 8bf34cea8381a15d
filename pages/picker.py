"""The Label page's two browser widgets: a picture grid that selects on click, and one-at-a-time labelling.

Both are Streamlit custom components (``st.components.v2``) whose HTML is built in the browser from
the data sent here; a selection or an answer reaches the server only when it is an action, so a
click costs no page run. Their code is in ``pages/assets/``: ``cards.js`` (shared), ``grid.js``,
``one.js`` and ``cards.css``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from pathlib import Path

import streamlit as st

from core.inputs.uploads import format_duration
from core.storage import InputRecord
from core.storage.projects import Project
from core.views.gallery import describe_input_name, load_thumbnail, preview_text

ASSETS = Path(__file__).with_name("assets")


def _asset(*names: str) -> str:
    return "\n".join((ASSETS / name).read_text(encoding="utf-8") for name in names)


_CSS, _GRID_JS, _ONE_JS = _asset("cards.css"), _asset("cards.js", "grid.js"), _asset("cards.js", "one.js")


# Registered on each use, not once at import: a registration belongs to one Streamlit runtime (each
# AppTest has its own), and registering the same definition again is free and silent.
def _grid():
    return st.components.v2.component("conceptlab_picture_grid", css=_CSS, js=_GRID_JS)


def _one():
    return st.components.v2.component("conceptlab_one_at_a_time", css=_CSS, js=_ONE_JS)


def describe_card(project: Project, record: InputRecord, note: str | None = None, size: int = 256) -> dict:
    """One input as the widgets draw it: a JPEG thumbnail as a data URL (or a text's first lines), its name and labels."""
    item: dict = {"id": record.id, "name": describe_input_name(record.name), "note": note or ""}
    if record.kind == "text":
        item["text"] = preview_text(record, lines=8 if size > 256 else 5, width=600 if size > 256 else 240)
    elif (data := load_thumbnail(project, record, size)) is not None:
        item["image"] = "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")
    if record.kind == "video":
        duration = record.info.get("duration")
        item["caption"] = f"video · {format_duration(duration)}" if duration else "video"
    labels = project.store.labels_of(record.id)
    yes = [[c, "yes"] for c, v in sorted(labels.items()) if v > 0]
    item["badges"] = yes + [[f"not {c}", "no"] for c, v in sorted(labels.items()) if v < 0]
    return item


def picture_grid(
    key: str, scope: str, cards: Sequence[dict], concept: str | None, summary: str, cleared: int, on_action: Callable[[], None]
) -> None:
    """The selectable grid with its action bar.

    ``on_action`` runs (before the page) when an action arrives, in ``st.session_state[key].action``.
    """
    _grid()(
        key=key,
        data={
            "scope": scope,
            "items": list(cards),
            "concept": concept,
            "summary": summary,
            "cleared": cleared,
            "empty": "Nothing matches these filters.",
        },
        on_action_change=on_action,
    )


def one_at_a_time(
    key: str,
    scope: str,
    queue: Sequence[dict],
    concepts: Sequence[str],
    exclusive: bool,
    left: int,
    stored_seq: int,
    skipped: Sequence[int],
    restart: int,
    on_progress: Callable[[], None],
) -> None:
    """One input at a time with answer buttons and keys; ``on_progress`` runs when ``st.session_state[key].progress`` changes."""
    _one()(
        key=key,
        data={
            "scope": scope,
            "queue": list(queue),
            "concepts": list(concepts),
            "exclusive": exclusive,
            "left": left,
            "stored_seq": stored_seq,
            "skipped": list(skipped),
            "restart": restart,
            "done_text": "All done: nothing left to label with these filters.",
            "no_concepts": "No concepts yet: add one in Concepts above.",
        },
        on_progress_change=on_progress,
    )
