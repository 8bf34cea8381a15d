"""The public API in core/__init__.py: a script that only does ``import core`` runs the whole loop."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

import core

from .photos import solid_image

RED, BLUE = (220, 30, 30), (30, 30, 220)


def _save_folders(root, per_colour: int, seed: int = 0):
    """``root/red/*.png`` and ``root/blue/*.png``: noisy solid colours, the folder names as concepts."""
    for name, colour in (("red", RED), ("blue", BLUE)):
        (root / name).mkdir(parents=True)
        for i in range(per_colour):
            solid_image(colour, seed=seed + i).save(root / name / f"{name}{i}.png")
    return root


@pytest.mark.parametrize("name", core.__all__)
def test_every_public_name_is_documented(name):
    thing = getattr(core, name)
    assert inspect.getdoc(thing), f"core.{name} has no docstring"


def test_no_public_name_hides_a_module_of_core():
    # ``core.ingest`` as a function would make ``import core.ingest as m`` hand back the function.
    modules = {p.stem for p in Path(core.__file__).parent.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    assert sorted(set(core.__all__) & modules) == []


def test_public_functions_are_named_with_a_verb():
    verbs = {"create", "delete", "describe", "evaluate", "export", "import", "ingest", "label", "list", "load", "open"}
    verbs |= {"predict", "read", "rename", "search", "set", "train"}
    functions = [n for n in core.__all__ if inspect.isfunction(getattr(core, n))]
    assert functions and all(n.split("_")[0] in verbs for n in functions), functions


def test_a_script_teaches_two_concepts_and_shares_the_model(tmp_path):
    folders = _save_folders(tmp_path / "train", per_colour=6)
    project = core.create_project("colours", embedder="tiny")
    report = core.ingest(project, core.read_inputs([folders], core.ReadConfig(labels_from_folders=True)))
    assert (len(report.added), report.failed) == (12, [])

    result = core.train(project)
    assert result.version == 1

    held_out = _save_folders(tmp_path / "held-out", per_colour=3, seed=100)
    (prediction,) = core.predict(project, core.read_inputs([held_out / "red" / "red0.png"]))
    best = max(prediction.concepts, key=lambda c: c.score)
    assert best.concept == "red"

    measured = core.evaluate_inputs(project, core.read_inputs([held_out], core.ReadConfig(labels_from_folders=True)))
    assert measured.inputs == 6

    similar = core.search_similar(project, next(iter(core.read_inputs([held_out / "blue" / "blue0.png"]))), k=3)
    assert [project.store.labels_of(s.record.id) for s in similar] == [{"blue": 1}] * 3, [s.record.name for s in similar]

    path = core.export_model_to(project, tmp_path / "colours.conceptlab")
    other = core.create_project("copy", embedder="tiny")
    imported = core.import_model(other, path)
    assert sorted(imported.concepts) == ["blue", "red"]
    assert [p.name for p in core.list_projects()] == ["colours", "copy"]


def test_label_inputs_labels_stored_inputs_and_bad_names_raise_the_public_error():
    project = core.create_project("one", embedder="tiny")
    cat, dog, hat = core.ingest(project, core.read_texts(["a cat on a mat", "a dog in the fog", "a cat in a hat"])).added
    assert core.label_inputs(project, [cat, hat], "cat", 1) == 2
    assert core.label_inputs(project, [dog], "cat", -1) == 1
    assert [project.store.labels_of(i) for i in (cat, dog, hat)] == [{"cat": 1}, {"cat": -1}, {"cat": 1}]
    with pytest.raises(core.ConceptlabError):
        core.open_project("no such project")
