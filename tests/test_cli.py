"""The command line end to end: real photos, the offline `lite` embedder, JSON out."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from core.cli import run

from .photos import photo_variants, save_photo_folders

CONCEPTS = {"cat": "chelsea", "coffee": "coffee", "astronaut": "astronaut"}


def _json(capsys, argv) -> tuple[int, object]:
    code = run(["--json", *argv])
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    save_photo_folders(root / "train", CONCEPTS, count=5)
    queries = root / "queries"
    queries.mkdir()
    for concept, photo in CONCEPTS.items():
        photo_variants(photo, 1, seed=1234)[0].save(queries / f"{concept}.jpg")
    (queries / "broken.jpg").write_bytes(b"not an image")
    return root


def test_create_ingest_train_predict_search_on_real_photos(photos, capsys):
    assert _json(capsys, ["project", "create", "demo", "--embedder", "lite"])[1]["embedder"] == "lite"
    code, report = _json(capsys, ["ingest", "demo", str(photos / "train"), "--labels-from-folders"])
    assert code == 0 and len(report["added"]) == 15 and report["failed"] == []
    code, again = _json(capsys, ["ingest", "demo", str(photos / "train")])
    assert again["added"] == [] and len(again["already_stored"]) == 15

    code, plans = _json(capsys, ["concepts", "demo"])
    assert {(p["concept"], p["positives"], p["head"]) for p in plans if p["space"] == "lite-image"} == {
        ("cat", 5, "linear"),
        ("coffee", 5, "linear"),
        ("astronaut", 5, "linear"),
    }
    code, trained = _json(capsys, ["train", "demo"])
    assert code == 0 and trained["version"] == 1 and trained["seconds"] < 60

    code = run(["predict", "demo", *sorted(str(p) for p in (photos / "queries").iterdir())])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_name = {os.path.basename(line["input"]): line for line in lines}
    assert code == 0 and set(by_name) == {"astronaut.jpg", "broken.jpg", "cat.jpg", "coffee.jpg"}
    assert "error" in by_name["broken.jpg"]
    for concept in CONCEPTS:
        line = by_name[f"{concept}.jpg"]
        assert line["concepts"][0]["concept"] == concept and line["head"] == "linear"
        assert line["concepts"][0]["score"] > 0.5

    code, hits = _json(capsys, ["search", "demo", str(photos / "queries" / "coffee.jpg"), "-k", "3"])
    assert [os.path.dirname(h["name"]).endswith("coffee") for h in hits] == [True] * 3


def test_texts_csv_label_and_predict_text(tmp_path, capsys):
    table = tmp_path / "chat.csv"
    table.write_text(
        "text,topic\n"
        "I love football and the world cup,sports\nThe tennis final was thrilling,sports\nOur team won the basketball game,sports\n"
        "Bake the bread for forty minutes,cooking\nAdd salt and stir the soup,cooking\nChop the onions finely,cooking\n"
    )
    run(["project", "create", "words", "--embedder", "lite"])
    capsys.readouterr()
    code, report = _json(capsys, ["ingest", "words", str(table), "--label-column", "topic"])
    assert len(report["added"]) == 6 and report["labelled"] == 6
    code, inputs = _json(capsys, ["inputs", "words"])
    first = inputs[0]["id"]
    assert _json(capsys, ["label", "words", str(first), "sports", "--negative"])[1]["value"] == -1
    run(["label", "words", str(first), "sports"])
    capsys.readouterr()
    run(["train", "words"])
    capsys.readouterr()
    run(["predict", "words", "--text", "the striker scored a goal", "--text", "simmer the sauce with garlic"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["concepts"][0]["concept"] for line in lines] == ["sports", "cooking"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "nope"], "no project named 'nope'"),
        (["project", "create", "../evil"], "not a valid project name"),
        (["project", "create", "x", "--embedder", "foo"], "unknown embedder"),
        (["label", "known", "999", "cat"], "no input '999'"),
        (["predict", "known", "--text", "hi"], "no trained model"),
        (["ingest", "known"], "nothing to ingest"),
    ],
)
def test_errors_are_one_line_with_exit_status_1(argv, message, capsys):
    run(["project", "create", "known", "--embedder", "tiny"])
    capsys.readouterr()
    assert run(argv) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("error: ")


def test_module_entry_point_and_clip_weights_message(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.getcwd()}
    done = subprocess.run([sys.executable, "-m", "core", "project", "create", "c"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "python -m core models download clip" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    listed = subprocess.run(
        [sys.executable, "-m", "core", "--json", "project", "list"], env=env, capture_output=True, text=True, timeout=300
    )
    assert listed.returncode == 0 and json.loads(listed.stdout) == []


@pytest.mark.parametrize(
    "flags, method",
    [([], "5-fold cross-validation"), (["--no-evaluate"], "not cross-validated")],
)
def test_train_cross_validates_unless_told_not_to(photos, capsys, flags, method):
    assert _json(capsys, ["project", "create", "quick", "--embedder", "tiny"])[0] == 0
    assert _json(capsys, ["ingest", "quick", str(photos / "train"), "--labels-from-folders"])[0] == 0
    code, trained = _json(capsys, ["train", "quick", *flags])
    image = next(e for e in trained["evaluations"] if e["space"] == "tiny-image")
    assert code == 0 and image["method"] == method
    assert {p["head"] for p in trained["concepts"] if p["space"] == "tiny-image"} == {"linear"}
    assert all(c["scores"] == {} for c in trained["choices"]) == bool(flags)
