"""Speed and memory, each figure measured side by side with its reference in one run.

``make bench`` runs it (``python -m bench.speed`` alone; ``--quick`` for a smoke run with
small sizes). Each figure lives in its own module here; inputs are made from skimage's
photos and moviepy, cached under ``bench/.data/speed``. It prints one table: figure, conceptlab, reference, ratio, goal.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from pathlib import Path

from . import cold_start, ingest, load, prediction, process, search, serving, tables, training, video
from .common import DATA, Row, make_photos, make_video


def _print_table(rows: list[Row]) -> None:
    header = Row("figure", "conceptlab", "reference", "ratio", "goal", "met")
    widths = [max(len(getattr(r, f)) for r in [header, *rows]) for f in Row.__dataclass_fields__]
    for i, row in enumerate([header, *rows]):
        print("  ".join(getattr(row, f).ljust(w) for f, w in zip(Row.__dataclass_fields__, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def _machine() -> str:
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "?"
    )
    import torch

    threads = torch.get_num_threads()
    return f"{model}, {os.cpu_count()} cores, torch {torch.__version__} ({threads} threads), Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run, not the figures")
    parser.add_argument(
        "--only", nargs="*", help="run only these sections: ingest lite video train predict search memory app cold serving table"
    )
    parser.add_argument("--memory-images", type=int, default=10_000, help="how many images the peak-memory run ingests")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sections = set(
        args.only or ["ingest", "lite", "video", "train", "predict", "search", "memory", "app", "cold", "serving", "table", "load"]
    )
    quick = args.quick
    seconds = 10 if quick else 60
    photos = make_photos(32 if quick else 512, DATA / ("photos-quick" if quick else "photos"))
    rows: list[Row] = []
    steps = [
        ("ingest", lambda: ingest.bench_image_ingest(photos, rows)),
        ("lite", lambda: ingest.bench_lite_ingest(photos, rows)),
        ("video", lambda: video.bench_video(make_video(DATA / f"clip-{seconds}s.mp4", seconds=seconds), rows)),
        ("train", lambda: training.bench_training(rows, (1_000,) if quick else (1_000, 10_000, 100_000))),
        ("predict", lambda: prediction.bench_prediction(photos, rows, calls=10 if quick else 50)),
        ("search", lambda: search.bench_search(rows, (10_000,) if quick else (10_000, 100_000, 1_000_000))),
        ("memory", lambda: process.bench_memory(rows, 300 if quick else args.memory_images, "lite")),
        ("app", lambda: process.bench_first_page(rows)),
        ("cold", lambda: cold_start.bench_cold_start(rows)),
        ("serving", lambda: serving.bench_serving(rows, requests=40 if quick else 400)),
        ("table", lambda: tables.bench_tables(rows)),
        ("load", lambda: load.bench_load(rows)),
    ]
    for name, step in steps:
        if name in sections:
            start = time.perf_counter()
            step()
            print(f"[{name} done in {time.perf_counter() - start:.0f} s]", file=sys.stderr, flush=True)
    print(f"\nconceptlab speed and memory on {_machine()}; load average {os.getloadavg()[1]:.1f} over the last 5 min\n")
    _print_table(rows)
    print(f"\npeak RSS of this benchmark process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
