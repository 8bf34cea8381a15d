"""What the Label page's browser widgets send: checked before it touches the store, then stored in order."""

from __future__ import annotations

import pytest

from core.errors import WidgetMessageError
from core.ingestion import ingest
from core.inputs import read_texts
from core.storage.projects import create_project
from core.views.labelling import Answer, apply_answers, read_answers, read_selection

CONCEPTS = ["ant", "bee"]


@pytest.mark.parametrize(
    "payload, expected",
    [
        ({"kind": "yes", "ids": [3, 1, 3]}, ("yes", [1, 3])),  # sorted, each once
        ({"kind": "similar", "ids": [7]}, ("similar", [7])),
        ({"kind": "clear", "ids": []}, ("clear", [])),
        ({"kind": "delete", "ids": [1]}, "unknown action 'delete'"),
        ({"kind": "yes", "ids": "1,2"}, "no list of inputs"),
        ({"kind": "yes", "ids": [True]}, "not an input id: True"),
        ({"kind": "yes", "ids": [1.5]}, "not an input id: 1.5"),
        ({"kind": "yes", "ids": list(range(10_001))}, "no list of inputs"),
        ("yes", "sent str, not an action"),
        (None, "sent NoneType, not an action"),
    ],
)
def test_read_selection(payload, expected):
    if isinstance(expected, str):
        with pytest.raises(WidgetMessageError, match=expected):
            read_selection(payload)
    else:
        assert read_selection(payload) == expected


def _entry(seq, input_id=1, shows=(), shows_not=()):
    return {"seq": seq, "id": input_id, "shows": list(shows), "shows_not": list(shows_not)}


@pytest.mark.parametrize(
    "log, after, expected",
    [
        ([_entry(2, 5, ["bee"]), _entry(1, 4, ["ant"])], 0, [(1, 4), (2, 5)]),  # oldest first
        ([_entry(1, 4, ["ant"]), _entry(2, 5, ["bee"])], 1, [(2, 5)]),  # answer 1 is already stored
        ([], 0, []),
        ([_entry(1, 4, ["wasp"])], 0, "names 'wasp', which is not a concept"),
        ([_entry(1, 4, ["ant"], ["ant"])], 0, "both yes and no for 'ant'"),
        ([{"seq": 1, "id": 4}], 0, "answer 1 names no concepts"),
        ([_entry("1", 4)], 0, "not an input id: '1'"),
        (["ant"], 0, "not an answer"),
        ({"answers": []}, 0, "no list of answers"),
    ],
)
def test_read_answers(log, after, expected):
    if isinstance(expected, str):
        with pytest.raises(WidgetMessageError, match=expected):
            read_answers(log, CONCEPTS, after)
    else:
        assert [(a.seq, a.input_id) for a in read_answers(log, CONCEPTS, after)] == expected


@pytest.fixture(params=[False, True], ids=["any number", "one per input"])
def project(request):
    project = create_project("p", "tiny", exclusive=request.param)
    ingest(project, read_texts(["an ant on a leaf", "a bee on a flower", "a wasp"]))
    for concept in CONCEPTS:
        project.store.create_concept(concept)
    return project


def test_answers_are_stored_in_order_and_a_later_one_replaces_an_earlier(project):
    rival = [] if project.exclusive else ["bee"]
    applied = apply_answers(
        project,
        [
            Answer(1, 1, ("ant",), tuple(rival)),
            Answer(2, 2, (), ("ant", "bee")),
            Answer(3, 2, ("bee",), () if project.exclusive else ("ant",)),  # went back: 2 is a bee after all
            Answer(4, 99, ("ant",), ()),  # deleted meanwhile
        ],
    )
    assert applied.answered == 3 and applied.gone == 1 and applied.last_seq == 4
    assert project.store.labels_of(1) == ({"ant": 1} if project.exclusive else {"ant": 1, "bee": -1})
    assert project.store.labels_of(2) == {"ant": -1, "bee": 1}
    assert project.store.labels_of(3) == {}


@pytest.mark.parametrize("exclusive", [False, True])
def test_two_concepts_for_one_input_are_refused_where_an_input_is_one_concept(exclusive):
    log = [_entry(1, 4, ["ant"]), _entry(2, 5, ["ant", "bee"])]
    if exclusive:
        with pytest.raises(WidgetMessageError, match="answer 2: in this project an input is one concept, not ant and bee"):
            read_answers(log, CONCEPTS, 0, exclusive=True)
    else:
        assert [a.shows for a in read_answers(log, CONCEPTS, 0)] == [("ant",), ("ant", "bee")]
