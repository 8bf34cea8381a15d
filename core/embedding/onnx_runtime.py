"""An embedder's image tower under onnxruntime: exported from torch once, cached, then run without torch.

Importing torch alone takes longer (about 1.2 s on this machine) than importing onnxruntime, reading
the exported file and embedding a photo together (about 0.2 s), and onnxruntime runs EfficientNet-Lite0
2-3 times faster on these CPUs. So the first time a machine needs the tower, torch builds it, exports it
to ONNX and checks the export against itself on the probe images; the file goes to the cache folder
(``core.paths.get_cache_dir``) under a name that changes with everything it was made from (weights file,
torch and library versions, the graph's own version), and every later process loads that file.

Anything that goes wrong (no onnxruntime, an unwritable cache, an export that does not agree, a damaged
cached file that cannot be made again) falls back to torch with a log line: slower, never wrong.
``CONCEPTLAB_RUNTIME=torch`` asks for torch outright.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from core.errors import EmbedderError
from core.paths import get_cache_dir

logger = logging.getLogger(__name__)

RUNTIME_ENV = "CONCEPTLAB_RUNTIME"
RUNTIMES = ("onnx", "torch")
ONNX_OPSET = 17
# An export is kept only if it agrees with the torch module it came from to float rounding.
MIN_AGREEMENT = 0.9999


@dataclass(frozen=True)
class TowerExport:
    """What ``load_onnx_tower`` needs to find, or make, one model's ONNX file.

    ``fingerprint`` names everything the exported graph depends on (JSON-serialisable); the file name
    carries its hash, so a new weights file or library version makes a new export instead of reusing
    a stale one. ``build_graph`` returns the torch module (batch -> unit vectors); ``probe_batch`` the
    preprocessed probe images the export is checked on.
    """

    name: str
    fingerprint: dict
    build_graph: Callable[[], object]
    probe_batch: Callable[[], np.ndarray]


class OnnxTower:
    """A loaded ONNX image tower: (n, 3, h, w) float32 batch -> (n, d) float32 unit vectors."""

    def __init__(self, path: Path, session) -> None:
        self.path = path
        self._session = session
        self._input = session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input: np.ascontiguousarray(batch, dtype=np.float32)})[0]


def choose_runtime() -> str:
    """``onnx`` (the default) or ``torch``, from ``$CONCEPTLAB_RUNTIME``.

    Raises:
        EmbedderError: the variable names another runtime.
    """
    runtime = os.environ.get(RUNTIME_ENV, "onnx").strip().lower() or "onnx"
    if runtime not in RUNTIMES:
        raise EmbedderError(f"{RUNTIME_ENV}={runtime!r} is not a runtime: use one of {', '.join(RUNTIMES)}")
    return runtime


def describe_version(package: str) -> str:
    """An installed package's version, or ``none`` (for fingerprints: asks nothing of the package itself)."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "none"


def find_tower_file(export: TowerExport) -> Path:
    """Where the cache keeps this export: ``<cache>/onnx/<name>-<hash of the fingerprint>.onnx``."""
    described = json.dumps({"opset": ONNX_OPSET, **export.fingerprint}, sort_keys=True)
    digest = hashlib.sha256(described.encode("utf-8")).hexdigest()[:16]
    return get_cache_dir() / "onnx" / f"{export.name}-{digest}.onnx"


def load_onnx_tower(export: TowerExport) -> OnnxTower | None:
    """The tower under onnxruntime, from the cache or exported now; ``None`` where torch must run it.

    Raises:
        EmbedderError: ``$CONCEPTLAB_RUNTIME`` names no runtime.
    """
    if choose_runtime() == "torch":
        return None
    try:
        import onnxruntime
    except ImportError:
        logger.info("onnxruntime is not installed: %s runs in torch", export.name)
        return None
    path = find_tower_file(export)
    if path.is_file():
        try:
            return OnnxTower(path, _open_session(onnxruntime, path))
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own untyped errors on a damaged file
            logger.warning("cached %s is unreadable (%s): exporting it again", path, e)
    try:
        return _export_tower(onnxruntime, export, path)
    except Exception as e:  # noqa: BLE001 - export, write or check failed: torch still gives the right vectors
        logger.warning("could not export %s to ONNX (%s): it runs in torch", export.name, e)
        return None


def _open_session(onnxruntime, path: Path):
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: its graph-optimisation notes are not the person's to act on
    # Its threads sleep between runs instead of spinning: a server decodes photos on the same cores meanwhile.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _export_tower(onnxruntime, export: TowerExport, path: Path) -> OnnxTower:
    import torch

    graph = export.build_graph()
    probe = export.probe_batch()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written beside its final name and renamed into place: a process reading the cache meanwhile,
    # or one killed half-way, never meets half a file.
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on shapes: about the export, not the person's input
            torch.onnx.export(
                graph,
                (torch.from_numpy(probe[:1]),),
                str(partial),
                input_names=["image"],
                output_names=["vectors"],
                dynamic_axes={"image": {0: "n"}, "vectors": {0: "n"}},
                opset_version=ONNX_OPSET,
                dynamo=False,
            )
        tower = OnnxTower(path, _open_session(onnxruntime, partial))
        with torch.inference_mode():
            expected = graph(torch.from_numpy(probe)).numpy()
        agreement = float(np.sum(tower(probe) * expected, axis=1).min())
        if agreement < MIN_AGREEMENT:
            raise EmbedderError(f"the export agrees with torch only to cosine {agreement:.6f} (< {MIN_AGREEMENT})")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    logger.info("%s exported to %s (agreement with torch %.7f)", export.name, path, agreement)
    return tower
