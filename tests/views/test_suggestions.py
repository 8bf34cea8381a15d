"""Tests for core.views.suggestions: only candidates that clear the concept's bar, never a rival's inputs."""

from __future__ import annotations

import pytest

from core.errors import ConceptError
from core.ingestion import ingest
from core.inputs import read_inputs
from core.learning import train
from core.storage.projects import create_project
from core.views.suggestions import suggest_labels

from ..photos import solid_image

RED, BLUE = (220, 30, 30), (30, 40, 220)
COLOURS = {"red": RED, "pink": (230, 70, 70), "blue": BLUE, "navy": (20, 30, 150)}


def _project(tmp_path, exclusive: bool, layout: dict[str, tuple[str | None, int]]):
    """Photos of solid colours; ``layout`` maps a colour to (the concept its photos are labelled, how many)."""
    project = create_project("s", "tiny", exclusive=exclusive)
    for colour, (concept, count) in layout.items():
        folder = tmp_path / colour
        folder.mkdir()
        for i in range(count):
            solid_image(COLOURS[colour], seed=10 * len(colour) + i).save(folder / f"{colour}{i}.png")
        ingest(project, read_inputs([folder]), concept=concept)
    return project


def _colours(suggestions) -> list[str]:
    return sorted({item.record.name.rsplit("/", 1)[-1].rstrip("0123456789.png") for item in suggestions.items})


@pytest.mark.parametrize(
    "exclusive, layout, trained, expected, note",
    [
        # Before a model: pink is as close to the red examples as they are to each other; blue is not.
        (False, {"red": ("red", 4), "pink": (None, 3), "blue": (None, 3)}, False, ["pink"], ""),
        # One example is nothing to compare with: no guesses, and it says what to do.
        (False, {"red": ("red", 1), "pink": (None, 3)}, False, [], "label at least 2 examples of red"),
        # Every photo labelled red or blue, one concept per input: the blue ones are never offered as red.
        (
            True,
            {"red": ("red", 4), "blue": ("blue", 4)},
            True,
            [],
            "no likely candidates: no unlabelled input scores above red's threshold",
        ),
        (True, {"red": ("red", 4), "blue": ("blue", 4)}, False, [], "no likely candidates: no unlabelled input is about as close"),
        # A model: only what it scores above red's threshold (pink), never the blue and navy photos it scores low.
        (True, {"red": ("red", 4), "blue": ("blue", 4), "pink": (None, 3), "navy": (None, 3)}, True, ["pink"], ""),
    ],
    ids=["examples", "one-example", "all-labelled-model", "all-labelled-examples", "model"],
)
def test_suggestions_only_offer_what_clears_the_bar(tmp_path, exclusive, layout, trained, expected, note):
    project = _project(tmp_path, exclusive, layout)
    if trained:
        train(project)
    suggestions = suggest_labels(project, "red", k=12)
    assert _colours(suggestions) == expected
    assert suggestions.note.startswith(note) if note else suggestions.note == ""
    assert all(item.score >= suggestions.bar for item in suggestions.items)
    assert [item.score for item in suggestions.items] == sorted((item.score for item in suggestions.items), reverse=True)
    assert suggestions.basis == ("model" if trained else "examples")


def test_an_unknown_concept_is_refused(tmp_path):
    with pytest.raises(ConceptError, match="no concept named 'nothing'"):
        suggest_labels(_project(tmp_path, False, {"red": ("red", 2)}), "nothing")
