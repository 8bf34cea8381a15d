"""Tests for core.exchange.onnx_export: the heads written out in torch, and whole ONNX files under onnxruntime,
give conceptlab's own probabilities (within 1e-3) on real photos."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from PIL import Image

from core.embedding import clear_embedder_cache
from core.exchange.onnx_export import HeadsGraph, export_onnx
from core.ingestion import ingest
from core.inputs import ReadConfig, read_inputs, read_texts
from core.learning import HeadConfig, load_model, train
from core.learning.heads import ENSEMBLE, LINEAR, NEAREST, PROTOTYPE, TIP_ADAPTER
from core.learning.selection import SelectionConfig
from core.prediction import predict
from core.storage.projects import create_project
from tests.photos import COLOURS, photo_variants, save_photo_folders, solid_image


def _colour_project(tmp_path, exclusive: bool):
    for concept, colour in COLOURS.items():
        folder = tmp_path / "in" / concept
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(6):
            solid_image(colour, seed=i + 10 * len(concept)).save(folder / f"{i}.png")
    project = create_project("colours-x" if exclusive else "colours", "tiny", exclusive)
    ingest(project, read_inputs([tmp_path / "in"], ReadConfig(labels_from_folders=True)))
    return project


@pytest.mark.parametrize(
    "exclusive, kind",
    [
        (False, LINEAR),
        (False, PROTOTYPE),
        (False, NEAREST),
        (False, TIP_ADAPTER),
        (True, LINEAR),
        (True, PROTOTYPE),
        (True, NEAREST),
        (True, TIP_ADAPTER),
        (True, ENSEMBLE),
    ],
)
def test_each_head_kind_in_torch_scores_as_conceptlab_does(tmp_path, exclusive, kind):
    project = _colour_project(tmp_path, exclusive)
    # An ensemble is never a candidate of its own (cross-validation builds it from linear and nearest-neighbour
    # scores): give linear heads the ensemble's kind and weights instead.
    train(project, HeadConfig(), selection=SelectionConfig(kinds=(LINEAR if kind == ENSEMBLE else kind,)))
    heads = load_model(project).spaces["tiny-image"]
    if kind == ENSEMBLE:
        heads = dataclasses.replace(heads, kinds=[ENSEMBLE] * 3, tip=np.tile(np.array([0.7, 1.3], np.float32), (3, 1)))
    assert set(heads.kinds) == {kind}
    rng = np.random.default_rng(0)
    embedder = project.embedder()
    photos = [solid_image(colour, seed=500 + i) for i, colour in enumerate(COLOURS.values())]
    noise = rng.normal(size=(8, embedder.image_dim)).astype(np.float32)
    queries = np.concatenate([embedder.embed_images(photos), noise / np.linalg.norm(noise, axis=1, keepdims=True)])
    graph = HeadsGraph(heads).eval()
    with torch.no_grad():
        ours = graph(torch.from_numpy(queries)).numpy()
    expected = heads.score(queries)[:, graph.scored]
    assert ours.shape == expected.shape == (len(queries), 3)
    assert float(np.abs(ours - expected).max()) <= 1e-4


def _preprocess(photo: Image.Image, steps: dict) -> np.ndarray:
    """The metadata's preprocessing, as another program would write it (PIL and numpy only)."""
    photo = photo.convert("RGB")
    scale = steps["resize_short_side"] / min(photo.size)
    short = steps["resize_short_side"]
    photo = photo.resize((max(int(photo.width * scale), short), max(int(photo.height * scale), short)), Image.BICUBIC)
    crop = steps["center_crop"]
    left, top = round((photo.width - crop) / 2), round((photo.height - crop) / 2)
    pixels = np.asarray(photo.crop((left, top, left + crop, top + crop)), dtype=np.float32) / 255
    return ((pixels - steps["mean"]) / steps["std"]).transpose(2, 0, 1)[None].astype(np.float32)


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["lite", "clip:ViT-B-32:random"])
def test_the_onnx_file_gives_conceptlabs_probabilities_on_real_photos(tmp_path, monkeypatch, spec):
    monkeypatch.setenv("CONCEPTLAB_PRECISION", "fp32")  # the file holds the fp32 model: compare like with like
    clear_embedder_cache()
    photos = {"cat": "chelsea", "coffee": "coffee", "astronaut": "astronaut"}
    save_photo_folders(tmp_path / "train", photos, count=5)
    project = create_project("photos", spec)
    ingest(project, read_inputs([tmp_path / "train"], ReadConfig(labels_from_folders=True)))
    zero_shot = spec.startswith("clip")
    if zero_shot:
        project.store.create_concept("rocket")  # no examples: a zero-shot head, from its name alone
    result = train(project)
    assert ("zero-shot" in {p.head for p in result.concepts}) == zero_shot
    path = export_onnx(project, tmp_path / "photos.onnx")
    metadata = {entry.key: entry.value for entry in onnx.load(str(path)).metadata_props}
    names = json.loads(metadata["conceptlab.image_concepts"])
    assert sorted(names) == sorted([*photos, *(["rocket"] if zero_shot else [])])
    assert metadata["conceptlab.embedder"] == project.embedder_spec

    queries = tmp_path / "queries"
    queries.mkdir()
    for name, photo in photos.items():
        for i, image in enumerate(photo_variants(photo, 2, seed=900)):
            image.save(queries / f"{name}-{i}.png")
    files = sorted(queries.iterdir())
    expected = [{c.concept: c.score for c in p.concepts} for p in predict(project, read_inputs(files))]
    # Preprocessed as the metadata says, by code that knows nothing of conceptlab.
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    steps = json.loads(metadata["conceptlab.preprocessing"])
    batch = np.concatenate([_preprocess(Image.open(f), steps) for f in files])
    probabilities = session.run(["image_probabilities"], {"image": batch, **_text_inputs(session, metadata, path, ["a"])})[0]
    reference = np.array([[row[name] for name in names] for row in expected])
    assert reference.shape == probabilities.shape == (len(files), len(names))
    assert float(np.abs(probabilities - reference).max()) <= 1e-3
    if spec == "lite":  # real weights: the file also gets the photos right (random CLIP weights mean nothing)
        assert [names[i] for i in probabilities.argmax(axis=1)] == [f.name.split("-")[0] for f in files]
    clear_embedder_cache()


def _text_inputs(session, metadata: dict, path, texts: list[str]) -> dict:
    """text_ids and text_mask for ``texts``, from the tokenizer file beside the model (when the graph takes texts)."""
    wanted = set(json.loads(metadata["conceptlab.inputs"]))
    if "text_ids" not in wanted:
        return {}
    tokenizer = json.loads(metadata["conceptlab.tokenizer"])
    file = path.with_name(tokenizer["file"])
    if file.name.endswith("tokenizer.json"):
        from tokenizers import Tokenizer

        encoder = Tokenizer.from_file(str(file))
        encoder.enable_truncation(tokenizer["max_length"])
        encoder.enable_padding(pad_id=0, pad_token="[PAD]")
        encoded = encoder.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], np.int64)
        return {"text_ids": ids, "text_mask": np.array([e.attention_mask for e in encoded], np.int64)}
    import open_clip

    return {"text_ids": open_clip.tokenizer.SimpleTokenizer(str(file))(texts).numpy().astype(np.int64)}


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["lite", "clip:ViT-B-32:random"])
def test_text_concepts_in_the_onnx_file_give_conceptlabs_probabilities(tmp_path, monkeypatch, spec):
    monkeypatch.setenv("CONCEPTLAB_PRECISION", "fp32")
    clear_embedder_cache()
    rows = [("the striker scored a late goal", "sport"), ("the final whistle went", "sport"), ("a fine tennis rally", "sport")]
    rows += [("simmer the sauce slowly", "food"), ("bake the bread until golden", "food"), ("a pinch of salt and pepper", "food")]
    table = tmp_path / "texts.csv"
    table.write_text("text,topic\n" + "\n".join(f"{t},{c}" for t, c in rows) + "\n")
    project = create_project("texts", spec)
    ingest(project, read_inputs([table], ReadConfig(label_column="topic")))
    train(project)
    path = export_onnx(project, tmp_path / "texts.onnx")
    metadata = {entry.key: entry.value for entry in onnx.load(str(path)).metadata_props}
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    queries = ["who won the match", "stir the soup", "Ünïcödé café — 東京", "x"]
    feeds = _text_inputs(session, metadata, path, queries)
    probabilities = session.run(["text_probabilities"], feeds)[0]
    names = json.loads(metadata["conceptlab.text_concepts"])
    expected = [{c.concept: c.score for c in p.concepts} for p in predict(project, read_texts(queries))]
    reference = np.array([[row[name] for name in names] for row in expected])
    assert sorted(names) == ["food", "sport"] and reference.shape == probabilities.shape
    assert float(np.abs(probabilities - reference).max()) <= 1e-3
    clear_embedder_cache()


def test_the_command_exports_onnx_and_refuses_what_cannot_be(tmp_path, colours):
    project, _ = colours
    done = subprocess.run(
        [sys.executable, "-m", "core", "export", project.name, str(tmp_path / "m.onnx"), "--format", "onnx"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    # tiny has no image model to put in a graph: one line, exit 1, nothing written.
    assert done.returncode == 1 and done.stderr.strip() == "error: embedder 'tiny' has no image model to export"
    assert not (tmp_path / "m.onnx").exists()
