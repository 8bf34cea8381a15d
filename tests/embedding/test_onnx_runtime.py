"""The lite image tower under onnxruntime: exported once into the cache, checked, reused, and torch wherever that fails."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import numpy as np
import pytest

import core.embedding.onnx_runtime as onnx_runtime
from core.embedding.lite import LiteEmbedder
from core.errors import EmbedderError

from ..photos import load_photo, photo_variants

pytestmark = pytest.mark.slow


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache folder of this test's own."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("CONCEPTLAB_CACHE", str(folder))
    return folder


@pytest.fixture(scope="module")
def photos_and_reference():
    """Real photos and their lite embeddings computed in torch: what every runtime must give."""
    photos = [load_photo("astronaut"), load_photo("chelsea"), *photo_variants("coffee", 3)]
    os.environ["CONCEPTLAB_RUNTIME"] = "torch"
    try:
        torch_lite = LiteEmbedder()
        reference = torch_lite.embed_images(photos)
    finally:
        del os.environ["CONCEPTLAB_RUNTIME"]
    assert torch_lite.runtime == "torch"
    return photos, reference


def _exports(cache) -> list[str]:
    return sorted(p.name for p in (cache / "onnx").iterdir()) if (cache / "onnx").exists() else []


def _damage_the_cached_file(cache, monkeypatch):
    LiteEmbedder().load_image_runner()  # the real export, then half of it lost
    (path,) = (cache / "onnx").iterdir()
    path.write_bytes(path.read_bytes()[:1000])


def _make_the_cache_a_file(cache, monkeypatch):
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text("not a folder")


def _make_exports_disagree(cache, monkeypatch):
    monkeypatch.setattr(onnx_runtime, "MIN_AGREEMENT", 1.01)  # no export can agree better than exactly


def _uninstall_onnxruntime(cache, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError


@pytest.mark.parametrize(
    "runtime, arrange, expected_runtime, exports, warning",
    [
        (None, None, "onnx", 1, None),  # the default: exported into the cache, then run by onnxruntime
        ("onnx", None, "onnx", 1, None),
        ("torch", None, "torch", 0, None),  # asked for torch: no export made
        (None, _damage_the_cached_file, "onnx", 1, "unreadable"),  # a damaged file is made again
        (None, _make_the_cache_a_file, "torch", 0, "could not export"),  # nowhere to write: torch, same vectors
        (None, _make_exports_disagree, "torch", 0, "agrees with torch only"),  # a bad export is never kept
        (None, _uninstall_onnxruntime, "torch", 0, None),
    ],
    ids=["default", "onnx", "torch", "damaged-cache", "unwritable-cache", "export-disagrees", "no-onnxruntime"],
)
def test_the_image_tower_runs_where_it_can_and_always_gives_the_torch_vectors(
    cache, monkeypatch, caplog, photos_and_reference, runtime, arrange, expected_runtime, exports, warning
):
    photos, reference = photos_and_reference
    if runtime is not None:
        monkeypatch.setenv("CONCEPTLAB_RUNTIME", runtime)
    if arrange is not None:
        arrange(cache, monkeypatch)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="core.embedding.onnx_runtime"):
        lite = LiteEmbedder()
        vectors = lite.embed_images(photos)
    assert lite.runtime == expected_runtime and lite.loaded_models == ("image",)
    assert vectors.dtype == np.float32 and vectors.shape == reference.shape
    assert np.sum(vectors * reference, axis=1).min() >= 0.9999
    if cache.is_dir():
        assert len(_exports(cache)) == exports and not any(name.endswith(".partial") for name in _exports(cache))
    assert (warning is None) == (not caplog.records), caplog.text
    if warning is not None:
        assert warning in caplog.text


def test_an_unknown_runtime_is_refused(cache, monkeypatch):
    monkeypatch.setenv("CONCEPTLAB_RUNTIME", "tensorflow")
    with pytest.raises(EmbedderError, match="CONCEPTLAB_RUNTIME='tensorflow' is not a runtime: use one of onnx, torch"):
        LiteEmbedder().embed_images([load_photo("chelsea")])


@pytest.mark.parametrize(
    "change, same_file",
    [
        ({}, True),
        ({"graph": 2}, False),  # a new version of the graph code
        ({"torch": "9.9.9"}, False),  # another torch
        ({"weights": ["/elsewhere/efficientnet-lite0.pth", 1, 2]}, False),  # another weights file
    ],
)
def test_the_cached_file_changes_with_what_it_was_made_from(cache, change, same_file):
    from core.embedding.lite import _describe_image_graph

    def export(fingerprint):
        return onnx_runtime.TowerExport("lite-image", fingerprint, build_graph=None, probe_batch=None)

    original = _describe_image_graph()
    assert (onnx_runtime.find_tower_file(export(original)) == onnx_runtime.find_tower_file(export({**original, **change}))) == same_file
    assert onnx_runtime.find_tower_file(export(original)).parent == cache / "onnx"


def test_a_fresh_process_embeds_photos_from_the_cache_without_torch(cache, photos_and_reference, tmp_path):
    photos, reference = photos_and_reference
    LiteEmbedder().load_image_runner()  # this process exports once
    photos[0].save(tmp_path / "astronaut.png")
    script = (
        "import sys, numpy as np\n"
        "from PIL import Image\n"
        "from core.embedding.lite import LiteEmbedder\n"
        "lite = LiteEmbedder()\n"
        "np.save(sys.argv[2], lite.embed_images([Image.open(sys.argv[1])]))\n"
        "print(lite.runtime, 'torch' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "astronaut.png"), str(tmp_path / "vector.npy")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CONCEPTLAB_CACHE": str(cache)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["onnx", "False"]
    assert float(np.load(tmp_path / "vector.npy")[0] @ reference[0]) >= 0.9999
