"""CLIP weights: find them in the local cache, or fetch them when a person explicitly asks.

Named weights (``clip:ViT-B-32:laion2b_s34b_b79k``) live in ``get_models_dir()``, laid out as
open_clip's own download leaves them: a Hugging Face hub cache (``models--org--repo/...``), or
the bare file for the few tags that only have a URL. Loading never downloads; only
``download_clip_weights`` goes to the network.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import urllib.error
from collections.abc import Callable
from pathlib import Path

from core.embedding.base import DEFAULT_CLIP_ARCH, DEFAULT_CLIP_TAG, ClipSpec
from core.embedding.specs import parse_clip_spec
from core.errors import EmbedderError, WeightsMissingError
from core.paths import get_models_dir

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int | None], None]

# Mirrors open_clip.constants: an hf_hub entry 'org/repo/' means this default file, and
# open_clip prefers a .safetensors twin when the repo has one (pretrained._get_safe_alternatives).
_HF_WEIGHTS_NAME = "open_clip_pytorch_model.bin"
_HF_SAFE_WEIGHTS_NAME = "open_clip_model.safetensors"
_POLL_S = 0.25
_TRUE = {"1", "ON", "YES", "TRUE"}


def clip_weights_available(spec: str = "clip") -> bool:
    """Tell whether a CLIP spec can be loaded without any download.

    Args:
        spec: a clip spec (``clip``, ``clip:ARCH:TAG``, ``clip:ARCH:random``, ``clip:ARCH:/path``).

    Returns:
        True for random weights, for an existing checkpoint file, and for a tag whose weights
        are in the local cache; never touches the network.

    Raises:
        EmbedderError: the spec is invalid.
    """
    clip = parse_clip_spec(spec)
    if clip.is_random:
        return True
    if clip.is_file:
        return os.path.isfile(clip.weights)
    return _find_cached(clip) is not None


def resolve_clip_weights(spec: str = "clip") -> str | None:
    """Return the local weights file to pass as ``pretrained=`` (None for random weights).

    Raises:
        WeightsMissingError: named weights are not in the local cache (one sentence with the remedy).
        EmbedderError: the spec is invalid (including a checkpoint path that does not exist).
    """
    clip = parse_clip_spec(spec)
    if clip.is_random:
        return None
    if clip.is_file:
        return clip.weights
    path = _find_cached(clip)
    if path is None:
        raise WeightsMissingError(_missing_message(clip))
    return path


def download_clip_weights(
    spec: str = "clip",
    progress: ProgressCallback | None = None,
    timeout_s: float = 900.0,
) -> Path:
    """Fetch named CLIP weights into ``get_models_dir()`` with open_clip's own download code.

    This is the only function that goes to the network, and only when called. The download
    runs in a daemon worker thread; a download that times out keeps running in the background
    until the process ends, and a later call resumes its partial file.

    Args:
        spec: a clip spec with a pretrained tag (``clip`` is the default one).
        progress: called about four times a second with ``(bytes_done, None)`` while files grow,
            then once with ``(size, size)`` when done.
        timeout_s: give up after this many seconds.

    Returns:
        The local weights file (at once if it is already cached, or for a checkpoint spec).

    Raises:
        WeightsMissingError: offline, no network, timeout or any other failure, in one sentence.
        EmbedderError: the spec is invalid or uses random weights (nothing to download).
    """
    clip = parse_clip_spec(spec)
    if clip.is_random:
        raise EmbedderError(f"embedder '{clip.spec}' uses random weights: there is nothing to download")
    if clip.is_file:
        return Path(clip.weights)
    cached = _find_cached(clip)
    if cached is not None:
        _report_done(progress, cached)
        return Path(cached)
    if _is_offline():
        raise WeightsMissingError(
            _download_failed(clip, "no network connection (offline mode: HF_HUB_OFFLINE is set)"), "this machine works offline"
        )

    import open_clip  # deferred: pulls in torch

    cfg = open_clip.get_pretrained_cfg(clip.arch, clip.weights)
    models_dir = get_models_dir()
    models_dir.mkdir(parents=True, exist_ok=True)
    outcome: dict[str, object] = {}

    def work() -> None:
        try:
            outcome["path"] = _fetch(cfg, str(models_dir))
        except BaseException as e:  # handed to the caller's thread below
            outcome["error"] = e

    logger.info("downloading CLIP weights %s into %s", clip.label, models_dir)
    baseline = _folder_bytes(models_dir)
    deadline = time.monotonic() + timeout_s
    worker = threading.Thread(target=work, name=f"clip-download-{clip.label}", daemon=True)
    worker.start()
    while True:
        worker.join(timeout=max(0.0, min(_POLL_S, deadline - time.monotonic())))
        if progress is not None:
            progress(max(0, _folder_bytes(models_dir) - baseline), None)
        if not worker.is_alive():
            break
        if time.monotonic() >= deadline:
            raise WeightsMissingError(_download_failed(clip, f"it did not finish within {timeout_s:g} s"), "it took too long")
    error = outcome.get("error")
    if isinstance(error, BaseException):
        raise WeightsMissingError(_download_failed(clip, _explain(error)), _explain(error)) from error
    path = outcome.get("path")
    if not isinstance(path, str) or not os.path.isfile(path):
        raise WeightsMissingError(_download_failed(clip, "the download produced no file"), "the download produced no file")
    _report_done(progress, path)
    logger.info("CLIP weights %s saved at %s", clip.label, path)
    return Path(path)


def _fetch(cfg: dict, cache_dir: str) -> str:
    """Download with open_clip itself, so the file lands exactly where a lookup will find it."""
    from open_clip.pretrained import download_pretrained

    return download_pretrained(cfg, cache_dir=cache_dir)


# open_clip's pretrained config of the default model, so that checking for its weights (the
# app's first page does) needs no import of open_clip and torch; a test holds it equal to open_clip's.
DEFAULT_PRETRAINED_CFG = {"hf_hub": "laion/CLIP-ViT-B-32-laion2B-s34B-b79K/"}


def _pretrained_cfg(clip: ClipSpec) -> dict:
    if (clip.arch, clip.weights) == (DEFAULT_CLIP_ARCH, DEFAULT_CLIP_TAG):
        return DEFAULT_PRETRAINED_CFG
    import open_clip  # deferred: pulls in torch

    return open_clip.get_pretrained_cfg(clip.arch, clip.weights)


def _find_cached(clip: ClipSpec) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    cfg = _pretrained_cfg(clip)
    if cfg.get("file"):
        return cfg["file"] if os.path.isfile(cfg["file"]) else None
    models_dir = get_models_dir()
    hub = cfg.get("hf_hub", "")
    if hub:
        repo_id, filename = os.path.split(hub)
        for name in _hub_filenames(filename or _HF_WEIGHTS_NAME):
            found = try_to_load_from_cache(repo_id, name, cache_dir=models_dir)
            if isinstance(found, str) and os.path.isfile(found):
                return found
    url = cfg.get("url", "")
    if url:
        candidate = models_dir / os.path.basename(url)
        if candidate.is_file():
            return str(candidate)
    return None


def _hub_filenames(filename: str) -> list[str]:
    names = []
    if filename == _HF_WEIGHTS_NAME:
        names.append(_HF_SAFE_WEIGHTS_NAME)
    elif filename.endswith((".bin", ".pth")):
        names.append(filename[:-4] + ".safetensors")
    return [*names, filename]


def _is_offline() -> bool:
    from huggingface_hub import constants

    return constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in _TRUE


def _folder_bytes(folder: Path) -> int:
    # Regular files only: the hub cache links snapshots to blobs, which would count twice.
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue  # renamed or removed while we walk
            if not os.path.islink(os.path.join(root, name)):
                total += st.st_size
    return total


def _report_done(progress: ProgressCallback | None, path: str) -> None:
    if progress is not None:
        size = os.path.getsize(path)
        progress(size, size)


def _explain(error: BaseException) -> str:
    """Turn a download failure (and what it wraps) into a few plain words."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    names = [type(e).__name__ for e in chain]
    if "OfflineModeIsEnabled" in names:
        return "no network connection (offline mode: HF_HUB_OFFLINE is set)"
    for e in chain:
        name = type(e).__name__
        if isinstance(e, (ConnectionError, socket.gaierror, urllib.error.URLError)) or "Connect" in name:
            return f"no network connection ({name})"
        if isinstance(e, TimeoutError) or "Timeout" in name:
            return f"the connection timed out ({name})"
    if "LocalEntryNotFoundError" in names:
        return "no network connection (the Hugging Face Hub could not be reached)"
    if any(n in names for n in ("RepositoryNotFoundError", "EntryNotFoundError", "GatedRepoError")):
        return "the weights are not available on the Hugging Face Hub"
    first_line = (str(error).strip().splitlines() or [""])[0][:200].rstrip(".")
    return f"{type(error).__name__}" + (f" ({first_line})" if first_line else "")


def _command_spec(clip: ClipSpec) -> str:
    return "clip" if (clip.arch, clip.weights) == (DEFAULT_CLIP_ARCH, DEFAULT_CLIP_TAG) else clip.spec


def _missing_message(clip: ClipSpec) -> str:
    return (
        f"CLIP weights {clip.label} are not on this machine: run `conceptlab models download "
        f"{_command_spec(clip)}` (needs internet), or use a local checkpoint with --embedder "
        f"clip:{clip.arch}:/path/to/checkpoint, or the offline 'lite' embedder."
    )


def _download_failed(clip: ClipSpec, reason: str) -> str:
    return (
        f"Could not download CLIP weights {clip.label}: {reason}; retry with internet access, use a local "
        f"checkpoint with --embedder clip:{clip.arch}:/path/to/checkpoint, or use the offline 'lite' embedder."
    )
