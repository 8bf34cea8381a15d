"""Tests for core.names and the concept identity it decides: one rule, everywhere a concept is named."""

from __future__ import annotations

import re
import sqlite3
import time

import pytest

from core.errors import ConceptError
from core.ingestion import ingest
from core.inputs import ReadConfig, read_inputs
from core.names import make_name_key, normalize_name
from core.storage.projects import create_project, open_project
from tests.photos import solid_image

COMPOSED, DECOMPOSED = "caf\u00e9", "cafe\u0301"


@pytest.mark.parametrize(
    "a, b, same",
    [
        ("Éclair", "éclair", True),
        (COMPOSED, DECOMPOSED, True),
        ("STRASSE", "straße", True),
        ("  red   car ", "Red Car", True),
        ("ΣΊΣΥΦΟΣ", "σίσυφος", True),
        ("cat", "cats", False),
        ("e", "é", False),
        ("İstanbul", "istanbul", False),  # dotted capital I folds to "i̇", not to "i": two names, as Unicode says
    ],
)
def test_when_two_names_are_the_same_name(a, b, same):
    assert (make_name_key(a) == make_name_key(b)) is same


def test_a_name_is_stored_composed_with_single_blanks():
    assert normalize_name(f"  {DECOMPOSED}\t au  lait ") == f"{COMPOSED} au lait"


def test_folders_that_differ_only_in_case_are_one_concept_with_every_file_positive(tmp_path):
    for folder, colour in (("Éclair", (200, 150, 90)), ("éclair", (210, 160, 100)), (DECOMPOSED, (90, 60, 30))):
        (tmp_path / "in" / folder).mkdir(parents=True)
        for i in range(2):
            solid_image(colour, seed=i + len(folder)).save(tmp_path / "in" / folder / f"{i}.png")
    project = create_project("pastry", "tiny")
    report = ingest(project, read_inputs([tmp_path / "in"], ReadConfig(labels_from_folders=True)))
    assert len(report.added) == 6 and report.failed == []
    concepts = project.store.list_concepts()
    assert sorted(name for _, name in concepts) == sorted({"Éclair" if "Éclair" < "éclair" else "éclair", COMPOSED})
    examples = project.store.count_examples()
    assert sorted(counts["image"] for counts in examples.values()) == [(2, 0), (4, 0)]  # no concept is its own negative


@pytest.mark.parametrize(
    "action, error",
    [
        (lambda store: store.create_concept("ÉCLAIR"), "already exists"),
        (lambda store: store.create_concept(DECOMPOSED.upper()), "already exists"),
        (lambda store: store.rename_concept("tart", "Éclair"), "already exists"),
        (lambda store: store.rename_concept("Éclair", "ÉCLAIR"), None),  # only the spelling changes
        (lambda store: store.delete_concept("éCLAIR"), None),
    ],
)
def test_create_rename_and_delete_use_the_same_rule(action, error):
    project = create_project("pastry", "tiny")
    project.store.ensure_concepts(["Éclair", COMPOSED, "tart"])
    if error:
        with pytest.raises(ConceptError, match=error):
            action(project.store)
        assert len(project.store.list_concepts()) == 3
    else:
        action(project.store)
        assert len(project.store.list_concepts()) in (2, 3)
    assert project.store.concept_id("éclair") == project.store.concept_id("ÉCLAIR")
    assert project.store.concept_id(DECOMPOSED) == project.store.concept_id(COMPOSED) is not None


def test_a_project_stored_before_the_rule_has_its_same_name_concepts_merged_on_opening(tmp_path):
    project = create_project("old", "tiny")
    solid_image((10, 200, 30), seed=1).save(tmp_path / "a.png")
    solid_image((200, 10, 30), seed=2).save(tmp_path / "b.png")
    report = ingest(project, read_inputs([tmp_path / "a.png", tmp_path / "b.png"]))
    a, b = report.added
    # What an older conceptlab could write: two concepts the rule says are one, each with labels.
    with sqlite3.connect(project.root / "project.db") as conn:
        now = time.time()
        conn.execute("INSERT INTO concepts (id, name, created_at) VALUES (1, 'éclair', ?), (2, 'Éclair', ?)", (now, now))
        conn.executemany(
            "INSERT INTO annotations (input_id, concept_id, value, updated_at) VALUES (?, ?, ?, ?)",
            [(a, 1, 1, now), (a, 2, -1, now), (b, 2, 1, now)],
        )
    reopened = open_project("old")
    assert reopened.store.list_concepts() == [(1, "éclair")]
    assert sorted(reopened.store.load_annotations()) == [(a, 1, 1), (b, 1, 1)]  # a keeps the oldest concept's label
    assert reopened.store.merge_same_name_concepts() == 0


@pytest.mark.parametrize(
    "name, reason",
    [
        ("\x1b[31mred", "U+001B"),
        ("red\u200bcar", "U+200B (ZERO WIDTH SPACE)"),
        ("\u202eevil", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
        ("bell\x07", "U+0007"),
        ("private\ue000", "U+E000"),
        ("family \U0001f468\u200d\U0001f469\u200d\U0001f467", None),  # emoji joined by zero-width joiners
        ("été", None),
    ],
)
def test_names_with_invisible_or_control_characters_are_refused_with_the_reason(name, reason):
    from core.storage.concepts import validate_concept_name

    if reason is None:
        assert validate_concept_name(name) == normalize_name(name)
    else:
        with pytest.raises(ConceptError, match=re.escape(reason)) as caught:
            validate_concept_name(name)
        assert "\x1b" not in str(caught.value) and "\n" not in str(caught.value)
