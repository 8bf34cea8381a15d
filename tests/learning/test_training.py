"""Training on a real project: head choice per concept, versions, exclusive mode, determinism."""

from __future__ import annotations

import json
from contextlib import nullcontext as does_not_raise

import numpy as np
import pytest
from PIL import Image

from core.errors import ModelVersionError, TrainingError
from core.ingestion import ingest
from core.inputs import RawInput, read_inputs
from core.learning import load_model, plan_training, set_active_version, train
from core.learning.heads import DEFAULT_THRESHOLD, LINEAR, NO_HEAD, PROTOTYPE, TIP_ADAPTER, ZERO_SHOT, HeadConfig
from core.learning.models import thresholds_for
from core.learning.selection import NOT_EVALUATED, SelectionConfig
from core.prediction import predict
from core.storage.projects import create_project

from ..photos import COLOURS, solid_image


def _save_colours(root, counts: dict[str, int], seed: int = 0):
    for concept, n in counts.items():
        folder = root / concept
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            solid_image(COLOURS[concept], seed=seed + i).save(folder / f"{concept}{i}.png")
    return root


def _colour_project(tmp_path, counts, exclusive=False, name="colours"):
    project = create_project(name, "tiny", exclusive=exclusive)
    ingest(project, read_inputs([_save_colours(tmp_path / "in", counts)], _folders()))
    return project


def _folders():
    from core.inputs import ReadConfig

    return ReadConfig(labels_from_folders=True)


def _predict_colour(project, colour: str, seed: int = 1000, tmp_path=None):
    path = tmp_path / f"query-{colour}.png"
    solid_image(COLOURS[colour], seed=seed).save(path)
    (result,) = list(predict(project, read_inputs([path])))
    return result


@pytest.mark.parametrize(
    "counts, expected",
    [
        ({"red": 6, "green": 6, "blue": 6}, {"red": LINEAR, "green": LINEAR, "blue": LINEAR}),
        ({"red": 2, "green": 6, "blue": 6}, {"red": PROTOTYPE, "green": LINEAR, "blue": LINEAR}),
        ({"red": 1}, {"red": PROTOTYPE}),
    ],
)
def test_each_concept_gets_the_head_its_data_allows(tmp_path, counts, expected):
    project = _colour_project(tmp_path, counts)
    result = train(project)
    heads = {p.concept: p.head for p in result.concepts if p.space == "tiny-image"}
    assert heads == expected
    for colour in counts:
        prediction = _predict_colour(project, colour, tmp_path=tmp_path)
        assert prediction.concepts[0].concept == colour, prediction
        assert prediction.concepts[0].head == expected[colour]


def test_plan_counts_implicit_negatives_and_hints(tmp_path):
    project = _colour_project(tmp_path, {"red": 2, "green": 6})
    project.store.create_concept("purple")
    plans = {p.concept: p for p in plan_training(project) if p.space == "tiny-image"}
    assert (plans["red"].positives, plans["red"].negatives) == (2, 6)
    assert plans["red"].head == PROTOTYPE and "3 more" in plans["red"].hint
    assert plans["purple"].head == NO_HEAD and plans["purple"].positives == 0
    assert plans["green"].head == LINEAR


def test_exclusive_scores_are_a_distribution(tmp_path):
    project = _colour_project(tmp_path, {"red": 6, "green": 6, "blue": 6}, exclusive=True)
    result = train(project)
    assert {p.head for p in result.concepts if p.space == "tiny-image"} == {LINEAR}
    prediction = _predict_colour(project, "green", tmp_path=tmp_path)
    assert prediction.concepts[0].concept == "green"
    assert sum(c.score for c in prediction.concepts) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("setup, message", [("nothing", "no concepts"), ("concept only", "no labelled examples")])
def test_training_without_data_says_what_to_do(setup, message):
    project = create_project("empty", "tiny")
    if setup == "concept only":
        project.store.create_concept("cat")
    with pytest.raises(TrainingError, match=message):
        train(project)
    assert project.store.list_versions() == []


def test_versions_are_deterministic_and_selectable(tmp_path):
    project = _colour_project(tmp_path, {"red": 6, "green": 6})
    progress = []
    first = train(project, progress=lambda f, m: progress.append((f, m)))
    second = train(project)
    assert second.version == first.version + 1 and progress[-1][0] == 1.0
    a, b = load_model(project, first.version), load_model(project, second.version)
    np.testing.assert_array_equal(a.spaces["tiny-image"].weights, b.spaces["tiny-image"].weights)
    set_active_version(project, first.version)
    assert load_model(project).version == first.version
    with pytest.raises(ModelVersionError, match="no model version 99"):
        set_active_version(project, 99)


def test_model_files_hold_no_pickle(tmp_path):
    project = _colour_project(tmp_path, {"red": 3, "green": 3})
    train(project)
    (path,) = (project.root / "versions").glob("*.npz")
    with np.load(path, allow_pickle=False) as data:
        assert all(data[k].dtype != object for k in data.files)


def test_missing_version_file_is_a_clear_error(tmp_path):
    project = _colour_project(tmp_path, {"red": 3})
    train(project)
    for path in (project.root / "versions").glob("*.npz"):
        path.unlink()
    with pytest.raises(ModelVersionError, match="cannot be read"):
        load_model(project)


def test_renamed_and_deleted_concepts_after_training(tmp_path):
    project = _colour_project(tmp_path, {"red": 3, "green": 3, "blue": 3})
    train(project)
    project.store.rename_concept("red", "crimson")
    project.store.delete_concept("blue")
    prediction = _predict_colour(project, "red", tmp_path=tmp_path)
    names = [c.concept for c in prediction.concepts]
    assert names[0] == "crimson" and "blue" not in names


def test_text_and_image_spaces_train_separately(tmp_path):
    project = _colour_project(tmp_path, {"red": 2})
    texts = [RawInput(f"t{i}", "text", t.encode(), str(i) * 64, ".txt", "red", t) for i, t in enumerate(["red roses", "red wine"])]
    ingest(project, texts)
    spaces = {(p.space, p.head) for p in train(project).concepts}
    assert spaces == {("tiny-image", PROTOTYPE), ("tiny-text", PROTOTYPE)}


@pytest.mark.slow
def test_clip_random_end_to_end_with_zero_shot(tmp_path):
    project = create_project("clip", "clip:ViT-B-32:random")
    ingest(project, read_inputs([_save_colours(tmp_path / "in", {"red": 2, "green": 2})], _folders()))
    project.store.create_concept("a dog")
    result = train(project)
    heads = {p.concept: p.head for p in result.concepts}
    assert heads == {"red": TIP_ADAPTER, "green": TIP_ADAPTER, "a dog": ZERO_SHOT}
    model = load_model(project)
    assert model.spaces["clip"].zero_shot.shape == (3, 512)
    prediction = _predict_colour(project, "red", tmp_path=tmp_path)
    assert {c.concept for c in prediction.concepts} == {"red", "green", "a dog"}
    assert all(0.0 <= c.score <= 1.0 for c in prediction.concepts)


def test_a_version_file_from_before_calibration_still_loads_and_scores(tmp_path):
    project = _colour_project(tmp_path, {"red": 3, "green": 3})
    train(project)
    (path,) = (project.root / "versions").glob("*.npz")
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    manifest = json.loads(bytes(arrays.pop("manifest")).decode())
    manifest["format"] = 1
    old_fields = ("concept_ids", "weights", "bias", "memory", "memory_ids", "memory_labels", "reference", "zero_shot")
    old_fields += ("zero_shot_background", "zero_shot_weight")
    old = {k: v for k, v in arrays.items() if k.split("/")[-1] in old_fields}
    with open(path, "wb") as f:
        np.savez(f, manifest=np.frombuffer(json.dumps(manifest).encode(), np.uint8), **old)
    heads = load_model(project).spaces["tiny-image"]
    assert (heads.thresholds == 0.5).all() and heads.unknown_cutoff == float("-inf") and heads.center.size == 0
    prediction = _predict_colour(project, "green", tmp_path=tmp_path)
    assert prediction.concepts[0].concept == "green" and not prediction.unknown


@pytest.mark.parametrize(
    "fields, expected",
    [
        pytest.param({}, does_not_raise(), id="written before the cut-off said what it was measured on"),
        pytest.param(
            {"unknown_held_out": 10, "unknown_kept": 11}, pytest.raises(ModelVersionError, match="damaged"), id="more kept than held out"
        ),
    ],
)
def test_a_version_without_the_unknown_measure_still_loads_and_explains(tmp_path, fields, expected):
    project = _colour_project(tmp_path, {"red": 3, "green": 3})
    train(project)
    (path,) = (project.root / "versions").glob("*.npz")
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files if k.split("/")[-1] not in ("unknown_held_out", "unknown_kept")}
    arrays.update({f"tiny-image/{k}": np.asarray(v) for k, v in fields.items()})
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    with expected:
        heads = load_model(project).spaces["tiny-image"]
        assert np.isfinite(heads.unknown_cutoff) and heads.unknown_held_out == heads.unknown_kept == 0
        stripes = np.zeros((64, 64, 3), np.uint8)
        stripes[:, ::8] = 255
        Image.fromarray(stripes).save(tmp_path / "stripes.png")
        (prediction,) = list(predict(project, read_inputs([tmp_path / "stripes.png"])))
        old_wording = f"below the cut-off of {heads.unknown_cutoff:.2f} that training set)"
        assert prediction.unknown and prediction.unknown_reason.endswith(old_wording)


def test_training_result_carries_its_evaluation_and_choices(tmp_path):
    project = _colour_project(tmp_path, {"red": 6, "green": 6}, exclusive=True)
    result = train(project)
    evaluation = result.evaluation("tiny-image")
    assert evaluation.method == "5-fold cross-validation" and evaluation.accuracy == 1.0
    assert evaluation.labels == ["green", "red", "(none)"] and evaluation.confusion == [[6, 0, 0], [0, 6, 0]]
    assert {c.concept for c in result.choices} == {"red", "green"} and all(c.metric == "log-likelihood" for c in result.choices)
    assert result.evaluation("tiny-text") is None


def test_a_full_disk_while_saving_a_version_is_one_storage_error(tmp_path, monkeypatch):
    import errno

    import numpy

    from core.errors import StorageError

    project = _colour_project(tmp_path, {"red": 3, "green": 3})

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(numpy, "savez", disk_full)
    with pytest.raises(StorageError, match="disk is full"):
        train(project)
    assert project.store.list_versions() == [] and not list((project.root / "versions").glob("*"))


@pytest.mark.parametrize(
    "counts, exclusive, expected",
    [
        ({"red": 6, "green": 6, "blue": 6}, False, {"red": LINEAR, "green": LINEAR, "blue": LINEAR}),
        ({"red": 2, "green": 6, "blue": 6}, False, {"red": PROTOTYPE, "green": LINEAR, "blue": LINEAR}),
        ({"red": 6, "green": 6}, True, {"red": LINEAR, "green": LINEAR}),
        ({"red": 1}, False, {"red": PROTOTYPE}),
    ],
)
def test_training_without_cross_validation_still_gives_a_usable_model(tmp_path, counts, exclusive, expected):
    project = _colour_project(tmp_path, counts, exclusive=exclusive)
    result = train(project, HeadConfig(evaluate=False))
    assert {p.concept: p.head for p in result.concepts if p.space == "tiny-image"} == expected
    evaluation = result.evaluation("tiny-image")
    assert evaluation.method == NOT_EVALUATED and not evaluation.measured and evaluation.accuracy is None
    assert all(c.metric == "" and c.scores == {} for c in result.choices)
    heads = load_model(project).spaces["tiny-image"]
    np.testing.assert_array_equal(heads.thresholds, np.full(len(heads.kinds), DEFAULT_THRESHOLD, np.float32))
    np.testing.assert_array_equal(heads.calibration[:, 0], 1.0)
    report = project.store.list_versions()[-1][4]
    assert [m["method"] for m in report["metrics"]] == [NOT_EVALUATED] * len(report["metrics"])
    assert report["scores"] == {"tiny-image": {"ids": [], "labels": [], "probabilities": [], "names": []}} or all(
        not v["ids"] for v in report["scores"].values()
    )
    for colour in counts:
        prediction = _predict_colour(project, colour, tmp_path=tmp_path)
        assert prediction.concepts[0].concept == colour and prediction.concepts[0].head == expected[colour]


@pytest.mark.parametrize(
    "kinds, evaluate, expected",
    [
        ((LINEAR,), True, {LINEAR}),
        ((LINEAR,), False, {LINEAR}),
        ((PROTOTYPE,), True, {PROTOTYPE}),
        ((PROTOTYPE,), False, {PROTOTYPE}),
        ((), False, {LINEAR, PROTOTYPE}),
    ],
)
def test_selection_kinds_force_the_head(tmp_path, kinds, evaluate, expected):
    project = _colour_project(tmp_path, {"red": 3, "green": 6, "blue": 6})
    result = train(project, HeadConfig(evaluate=evaluate), selection=SelectionConfig(kinds=kinds))
    assert {p.head for p in result.concepts if p.space == "tiny-image"} == expected


@pytest.mark.parametrize(
    "kinds, raises",
    [((LINEAR, PROTOTYPE), does_not_raise()), (("bogus",), pytest.raises(ValueError)), ((NO_HEAD,), pytest.raises(ValueError))],
)
def test_selection_kinds_must_be_head_kinds(kinds, raises):
    with raises:
        SelectionConfig(kinds=kinds)


@pytest.mark.parametrize(
    "steps, expected, origin",
    [
        # (what a person does between training runs, the threshold in force for red on version 3, where it came from)
        ([("set", 1, 0.61)], 0.61, 1),  # set on v1: v2 and v3 keep it
        ([("set", 1, 0.61), ("set", 2, 0.72)], 0.72, 2),  # changed on v2: the newer choice travels on
        ([("set", 1, 0.61), ("reset", 2)], None, None),  # reset on v2: v3 uses its own best-F1 threshold
        ([], None, None),  # never set: each version its own
    ],
)
def test_a_threshold_set_by_hand_is_kept_by_the_next_training_runs(colours, steps, expected, origin):
    from core.learning import get_threshold_origins, get_threshold_overrides, reset_threshold, set_threshold

    project, first = colours
    red = project.store.concept_id("red")
    for version in (2, 3):
        for step in [s for s in steps if s[1] == version - 1]:
            if step[0] == "set":
                set_threshold(project, step[1], "red", step[2])
            else:
                reset_threshold(project, step[1], "red")
        assert train(project).version == version
    in_force = get_threshold_overrides(project, 3).get(red)
    assert (None if in_force is None else round(in_force, 3)) == expected
    assert get_threshold_origins(project, 3).get(red) == origin
    trained = load_model(project, 3).spaces["tiny-image"]
    threshold = thresholds_for(project, load_model(project, 3), "tiny-image")[list(trained.concept_ids).index(red)]
    assert round(float(threshold), 3) == (
        expected if expected is not None else round(float(trained.thresholds[list(trained.concept_ids).index(red)]), 3)
    )


@pytest.mark.parametrize(
    "counts, exclusive, config, selection",
    [
        ({"red": 6, "green": 6}, False, HeadConfig(), SelectionConfig()),  # every kind competes for both
        ({"red": 6, "green": 6}, True, HeadConfig(), SelectionConfig()),  # exclusive: the ensemble too
        ({"red": 2, "green": 6}, False, HeadConfig(), SelectionConfig()),  # few examples: still compared
        ({"red": 1}, False, HeadConfig(), SelectionConfig()),  # nothing to compare on: the default, untried
        ({"red": 6, "green": 6}, False, HeadConfig(evaluate=False), SelectionConfig()),  # no cross-validation
        ({"red": 6, "green": 6}, False, HeadConfig(), SelectionConfig(kinds=(LINEAR, PROTOTYPE))),
    ],
)
def test_the_plan_names_the_heads_training_then_compares(tmp_path, counts, exclusive, config, selection):
    """What the Train page says training will try is what it tries, and what it keeps is one of those."""
    project = _colour_project(tmp_path, counts, exclusive=exclusive)
    plans = {p.concept: p for p in plan_training(project, config, selection) if p.space == "tiny-image"}
    result = train(project, config, selection=selection)
    for choice in result.choices:
        compared = {PROTOTYPE if k.startswith(PROTOTYPE) else k for k, v in choice.scores.items()}
        assert set(plans[choice.concept].tries) == compared, choice
        kept = next(p for p in result.concepts if p.concept == choice.concept and p.space == "tiny-image")
        assert kept.tries == plans[choice.concept].tries and (not kept.tries or kept.head in kept.tries)
    assert any(p.tries for p in plans.values()) == (len(counts) > 1 and config.evaluate)
