"""Tests for core.embedding.weights: local lookup, the missing-weights message, and downloads that fail fast. No network."""

from __future__ import annotations

import threading
import time
from contextlib import nullcontext as does_not_raise
from pathlib import Path

import pytest

from core.embedding import load_embedder, weights
from core.embedding.weights import clip_weights_available, download_clip_weights, resolve_clip_weights
from core.errors import EmbedderError, WeightsMissingError
from core.paths import get_models_dir

HUB_REPO = "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K"


def _one_sentence(message: str) -> bool:
    return message.endswith(".") and "\n" not in message and ". " not in message


def _put_in_hub_cache(filename: str, content: bytes = b"weights") -> Path:
    """Lay a file out as huggingface_hub (and so open_clip's download) would."""
    repo = get_models_dir() / HUB_REPO
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (snapshot / filename).write_bytes(content)
    return snapshot / filename


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    path = tmp_path / "model.pt"
    path.write_bytes(b"not loaded by these tests")
    return path


@pytest.mark.parametrize(
    ("spec", "available"),
    [
        ("clip", False),
        ("clip:ViT-B-32:laion2b_s34b_b79k", False),
        ("clip:ViT-B-16:openai", False),
        ("clip:ViT-B-32:random", True),
        ("checkpoint", True),
    ],
)
def test_clip_weights_available(spec, available, checkpoint):
    spec = f"clip:ViT-B-32:{checkpoint}" if spec == "checkpoint" else spec
    assert clip_weights_available(spec) is available


@pytest.mark.parametrize("filename", ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"])
def test_weights_found_in_local_hub_cache(filename):
    path = _put_in_hub_cache(filename)
    assert clip_weights_available("clip")
    assert resolve_clip_weights("clip") == str(path)
    assert download_clip_weights("clip") == path  # already here: no download


@pytest.mark.parametrize(
    ("spec", "expected", "exception"),
    [
        ("clip:ViT-B-32:random", None, does_not_raise()),
        ("checkpoint", "checkpoint", does_not_raise()),
        ("clip", None, pytest.raises(WeightsMissingError, match="conceptlab models download clip`")),
        (
            "clip:ViT-B-16:openai",
            None,
            pytest.raises(WeightsMissingError, match="models download clip:ViT-B-16:openai` .* clip:ViT-B-16:/path"),
        ),
        ("clip:ViT-B-32:/no/such.pt", None, pytest.raises(EmbedderError, match="no/such.pt")),
        ("lite", None, pytest.raises(EmbedderError, match="not a CLIP embedder")),
    ],
)
def test_resolve_clip_weights(spec, expected, exception, checkpoint):
    spec = f"clip:ViT-B-32:{checkpoint}" if spec == "checkpoint" else spec
    with exception:
        assert resolve_clip_weights(spec) == (str(checkpoint) if expected == "checkpoint" else expected)


def test_loading_clip_without_weights_names_the_remedy():
    started = time.monotonic()
    with pytest.raises(WeightsMissingError) as info:
        load_embedder("clip")
    message = str(info.value)
    assert time.monotonic() - started < 30
    assert message.startswith("CLIP weights ViT-B-32/laion2b_s34b_b79k are not on this machine")
    assert "conceptlab models download clip" in message
    assert "--embedder clip:ViT-B-32:/path/to/checkpoint" in message and "'lite'" in message
    assert _one_sentence(message)


def test_download_fails_fast_offline():
    started = time.monotonic()
    with pytest.raises(WeightsMissingError) as info:
        download_clip_weights("clip", timeout_s=5)
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert message.startswith("Could not download CLIP weights ViT-B-32/laion2b_s34b_b79k: no network connection")
    assert _one_sentence(message)


def test_download_through_open_clip_fails_fast_when_the_hub_is_unreachable(monkeypatch):
    """open_clip's real download path, with huggingface_hub refusing all traffic (HF_HUB_OFFLINE)."""
    from huggingface_hub import constants

    if not constants.HF_HUB_OFFLINE:
        pytest.skip("huggingface_hub was imported before HF_HUB_OFFLINE was set: this would go online")
    monkeypatch.setattr(weights, "_is_offline", lambda: False)
    started = time.monotonic()
    with pytest.raises(WeightsMissingError, match="no network connection") as info:
        download_clip_weights("clip", timeout_s=20)
    assert time.monotonic() - started < 10
    assert _one_sentence(str(info.value))


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (ConnectionError("[Errno -3] Temporary failure in name resolution"), "no network connection (ConnectionError)"),
        (TimeoutError("read timed out"), "the connection timed out (TimeoutError)"),
        (RuntimeError("disk full\nmore detail."), "RuntimeError (disk full)"),
    ],
)
def test_download_failure_becomes_one_sentence(failure, reason, monkeypatch):
    def fail(cfg, cache_dir):
        raise failure

    monkeypatch.setattr(weights, "_is_offline", lambda: False)
    monkeypatch.setattr(weights, "_fetch", fail)
    with pytest.raises(WeightsMissingError) as info:
        download_clip_weights("clip", timeout_s=5)
    assert f"ViT-B-32/laion2b_s34b_b79k: {reason};" in str(info.value)
    assert info.value.__cause__ is failure
    assert _one_sentence(str(info.value))


def test_download_gives_up_after_timeout(monkeypatch):
    release = threading.Event()
    monkeypatch.setattr(weights, "_is_offline", lambda: False)
    monkeypatch.setattr(weights, "_fetch", lambda cfg, cache_dir: release.wait(10))
    started = time.monotonic()
    try:
        with pytest.raises(WeightsMissingError, match=r"did not finish within 0\.3 s"):
            download_clip_weights("clip", timeout_s=0.3)
    finally:
        release.set()
    assert time.monotonic() - started < 3


def test_download_reports_progress_and_returns_the_file(monkeypatch):
    def fake_fetch(cfg, cache_dir):
        assert cfg["hf_hub"].startswith("laion/CLIP-ViT-B-32-laion2B-s34B-b79K")
        target = Path(cache_dir) / "partial.bin"
        with open(target, "wb") as out:
            for _ in range(4):
                out.write(b"x" * 1000)
                out.flush()
                time.sleep(0.3)
        return str(target)

    calls: list[tuple[int, int | None]] = []
    monkeypatch.setattr(weights, "_is_offline", lambda: False)
    monkeypatch.setattr(weights, "_fetch", fake_fetch)
    path = download_clip_weights("clip", progress=lambda done, total: calls.append((done, total)), timeout_s=10)
    assert path == get_models_dir() / "partial.bin"
    done = [d for d, _ in calls]
    assert done == sorted(done) and len(calls) >= 3
    assert any(0 < d < 4000 for d in done)  # seen while growing
    assert calls[-1] == (4000, 4000)


@pytest.mark.parametrize(
    ("spec", "exception"),
    [
        ("clip:ViT-B-32:random", pytest.raises(EmbedderError, match="nothing to download")),
        ("foo", pytest.raises(EmbedderError, match="unknown embedder 'foo'")),
        ("tiny", pytest.raises(EmbedderError, match="not a CLIP embedder")),
    ],
)
def test_download_rejects_specs_without_weights(spec, exception):
    with exception:
        download_clip_weights(spec, timeout_s=1)


def test_download_of_a_checkpoint_spec_returns_the_file(checkpoint):
    assert download_clip_weights(f"clip:ViT-B-32:{checkpoint}") == checkpoint


def test_default_weights_lookup_matches_open_clip_and_needs_no_torch():
    import subprocess
    import sys

    import open_clip

    from core.embedding.weights import DEFAULT_PRETRAINED_CFG

    assert open_clip.get_pretrained_cfg("ViT-B-32", "laion2b_s34b_b79k")["hf_hub"] == DEFAULT_PRETRAINED_CFG["hf_hub"]
    probe = (
        "import sys; from core.embedding.weights import clip_weights_available; "
        "clip_weights_available('clip'); print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
