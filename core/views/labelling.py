"""Answers given in the browser's labelling widgets, checked and stored.

The Label page's picture grid and its one-at-a-time view keep what a person does in the browser
and send it as plain JSON: a selection with an action, or a log of answers ("shows ant", "none of
these") numbered in order. Everything that arrives is checked here before it touches the store,
since it comes from a browser and not from this program.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from core.errors import WidgetMessageError
from core.storage.projects import Project
from core.views.gallery import label_inputs

log = logging.getLogger(__name__)

GRID_ACTIONS = {"yes": 1, "no": -1, "clear": None}
MAX_IDS = 10_000  # far more than a page or a session of answers; a bigger payload is not from our widget


@dataclass(frozen=True)
class Answer:
    """A person's whole answer about one input: the concepts it shows and those it does not."""

    seq: int
    input_id: int
    shows: tuple[str, ...]
    shows_not: tuple[str, ...]


@dataclass(frozen=True)
class AppliedAnswers:
    """What ``apply_answers`` stored: answers per input, and the highest sequence number now stored."""

    answered: int
    gone: int
    last_seq: int


def _as_id(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise WidgetMessageError(f"not an input id: {value!r}")
    return value


def read_input_ids(ids: object, sender: str) -> list[int]:
    """A list of input ids from one of the widgets (``sender`` names it in the error), sorted, each once."""
    if not isinstance(ids, list) or len(ids) > MAX_IDS:
        raise WidgetMessageError(f"{sender} sent no list of inputs")
    return sorted({_as_id(i) for i in ids})


def read_selection(payload: object) -> tuple[str, list[int]]:
    """(action, input ids) from the grid's ``action`` event: ``{"kind": "yes"|"no"|"clear"|"similar", "ids": [...]}``."""
    if not isinstance(payload, dict):
        raise WidgetMessageError(f"the picture grid sent {type(payload).__name__}, not an action")
    kind = payload.get("kind")
    if kind not in (*GRID_ACTIONS, "similar"):
        raise WidgetMessageError(f"the picture grid sent an unknown action {kind!r}")
    return kind, read_input_ids(payload.get("ids"), "the picture grid")


def read_answers(payload: object, concepts: Sequence[str], after_seq: int, exclusive: bool = False) -> list[Answer]:
    """The answers in the one-at-a-time view's log numbered above ``after_seq``, oldest first.

    ``exclusive``: the project has one concept per input, so an answer may say yes to one at most.
    The whole log is checked before anything is stored, so a bad entry stores nothing.

    The browser sends its whole unstored log each time, so an answer whose event was merged into
    a later one by the server still arrives; those already stored are left out by their number.
    """
    if not isinstance(payload, list) or len(payload) > MAX_IDS:
        raise WidgetMessageError("the one-at-a-time view sent no list of answers")
    known = set(concepts)
    answers = []
    for entry in payload:
        if not isinstance(entry, dict):
            raise WidgetMessageError(f"not an answer: {entry!r}")
        seq, input_id = _as_id(entry.get("seq")), _as_id(entry.get("id"))
        shows, shows_not = entry.get("shows"), entry.get("shows_not")
        if not isinstance(shows, list) or not isinstance(shows_not, list):
            raise WidgetMessageError(f"answer {seq} names no concepts")
        unknown = [c for c in shows + shows_not if c not in known]
        if unknown:
            raise WidgetMessageError(f"answer {seq} names {unknown[0]!r}, which is not a concept of this project")
        if set(shows) & set(shows_not):
            raise WidgetMessageError(f"answer {seq} says both yes and no for {sorted(set(shows) & set(shows_not))[0]!r}")
        if exclusive and len(shows) > 1:
            raise WidgetMessageError(f"answer {seq}: in this project an input is one concept, not {' and '.join(map(str, shows))}")
        if seq > after_seq:
            answers.append(Answer(seq, input_id, tuple(shows), tuple(shows_not)))
    return sorted(answers, key=lambda a: a.seq)


def apply_answers(project: Project, answers: Sequence[Answer]) -> AppliedAnswers:
    """Store each answer as the input's labels for the concepts it names, in order.

    A later answer about the same input replaces the earlier one (the person went back and
    changed it). Inputs deleted meanwhile are counted as gone, not an error.
    """
    answered = gone = 0
    last_seq = 0
    for answer in answers:
        last_seq = max(last_seq, answer.seq)
        if project.store.get_input(answer.input_id) is None:
            gone += 1
            continue
        for concept in answer.shows:
            label_inputs(project, [answer.input_id], concept, 1)
        for concept in answer.shows_not:
            label_inputs(project, [answer.input_id], concept, -1)
        answered += 1
    if gone:
        log.info("%d answered inputs were deleted before their answers arrived", gone)
    return AppliedAnswers(answered, gone, last_seq)
