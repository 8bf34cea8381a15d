"""Cold start: each command in a fresh process, as a person at a terminal meets it, against a bare ``import torch``.

Every figure is the median of 5 runs of the installed ``conceptlab`` command (wall clock, one process
per run), on a ``lite`` project of 8 labelled photos plus 150 unlabelled ones. The floor is the median
of 5 runs of ``python -c "import torch"`` in the same run; the image model's own load (after torch) is
measured in a fresh process too, so the predict goal is the floor plus it. predict runs twice: with the
default onnxruntime image tower (no torch import at all) and with ``CONCEPTLAB_RUNTIME=torch``.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from .common import DATA, Row, fresh_home, make_photos, median_wall, met

RUNS = 5
CONSOLE_SCRIPT = str(Path(sys.executable).parent / "conceptlab")
# The torch image model's load, after torch: what the predict goal allows on top of the floor.
_IMAGE_MODEL_LOAD = (
    "import time, torch\n"
    "from core.embedding.lite import LiteEmbedder\n"
    "start = time.perf_counter()\n"
    "LiteEmbedder().load_image_model()\n"
    "print(time.perf_counter() - start)\n"
)
# The same tower as predict loads it by default: onnxruntime and the cached export.
_ONNX_TOWER_LOAD = (
    "import time\n"
    "start = time.perf_counter()\n"
    "from core.embedding.lite import LiteEmbedder\n"
    "LiteEmbedder().load_image_runner()\n"
    "print(time.perf_counter() - start)\n"
)


def _conceptlab(*args: str) -> list[str]:
    return [CONSOLE_SCRIPT, *args]


def bench_cold_start(rows: list[Row]) -> None:
    """The quick commands under 1 s; train and re-ingest within 1.5x the floor; predict within the floor plus the image model."""
    if not os.path.exists(CONSOLE_SCRIPT):
        raise SystemExit(f"{CONSOLE_SCRIPT} is missing: make bench installs it (pip install -e .)")
    fresh_home()
    photos = make_photos(150, DATA / "photos-150", megapixels=(0.5, 1.5), seed=7)
    labelled = DATA / "photos-8"
    shutil.rmtree(labelled, ignore_errors=True)
    for i, path in enumerate(sorted(photos.glob("*.jpg"))[:8]):
        (labelled / ("even" if i % 2 == 0 else "odd")).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, labelled / ("even" if i % 2 == 0 else "odd") / path.name)
    for args in (("project", "create", "cold", "--embedder", "lite"), ("ingest", "cold", str(labelled), "--labels-from-folders")):
        subprocess.run(_conceptlab(*args), check=True, capture_output=True, timeout=600)
    subprocess.run(_conceptlab("ingest", "cold", str(photos)), check=True, capture_output=True, timeout=600)
    subprocess.run(_conceptlab("train", "cold"), check=True, capture_output=True, timeout=600)

    floor = median_wall([sys.executable, "-c", "import torch"])
    model_load, onnx_load = (
        statistics.median(
            float(subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout) for _ in range(RUNS)
        )
        for script in (_IMAGE_MODEL_LOAD, _ONNX_TOWER_LOAD)
    )
    rows.append(Row("cold start floor: python -c 'import torch'", f"{floor:.2f} s"))
    rows.append(Row("  lite image model load in torch, after torch", f"{model_load:.2f} s"))
    rows.append(Row("  lite image tower load, onnxruntime + cached export (no torch)", f"{onnx_load:.2f} s"))
    query = str(next(photos.glob("*.jpg")))
    quick = {
        "concepts": ("concepts", "cold"),
        "inputs": ("inputs", "cold"),
        "label": ("label", "cold", "9", "even", "--negative"),
        "threshold": ("threshold", "cold", "even", "0.6"),
        "project list": ("project", "list"),
    }
    for name, args in quick.items():
        took = median_wall(_conceptlab(*args))
        rows.append(Row(f"  {name}, cold", f"{took:.2f} s", f"{floor:.2f} s", f"{took / floor:.2f}x", "< 1 s", met(took < 1.0)))
    for name, args, goal in (
        ("train, 8 labelled photos", ("train", "cold"), 1.5),
        ("re-ingest of 150 known photos", ("ingest", "cold", str(photos)), 1.5),
    ):
        took = median_wall(_conceptlab(*args))
        rows.append(
            Row(f"  {name}, cold", f"{took:.2f} s", f"{floor:.2f} s", f"{took / floor:.2f}x", f"<= {goal}x", met(took <= goal * floor))
        )
    limit = floor + model_load
    for runtime in ("onnx", "torch"):
        os.environ["CONCEPTLAB_RUNTIME"] = runtime
        try:
            took = median_wall(_conceptlab("predict", "cold", query))
        finally:
            os.environ.pop("CONCEPTLAB_RUNTIME")
        rows.append(
            Row(
                f"  predict one photo, cold, CONCEPTLAB_RUNTIME={runtime}",
                f"{took:.2f} s",
                f"{limit:.2f} s",
                f"{took / limit:.2f}x",
                "<= floor + model, <= 4 s",
                met(took <= limit and took <= 4.0),
            )
        )
