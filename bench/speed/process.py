"""Figures 8 and 9, each in a fresh process: peak memory while ingesting, and the app's first page."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from .common import DATA, ROOT, Row, fresh_home, make_photos, met

_RSS_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from core.ingestion import ingest
    from core.inputs import read_inputs
    from core.storage.projects import create_project

    def peak_mb():
        # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child started from a
        # big parent would report the parent's peak.
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024

    project = create_project("rss", sys.argv[2])
    peaks = []
    def progress(report, message):
        if report.seen % 1024 < 32:
            peaks.append((report.seen, peak_mb()))
    start = time.perf_counter()
    report = ingest(project, read_inputs([sys.argv[1]]), progress=progress)
    took = time.perf_counter() - start
    print(len(report.added), f"{took:.1f}", f"{peak_mb():.0f}", " ".join(f"{n}:{m:.0f}" for n, m in peaks))
    """
)


def bench_memory(rows: list[Row], count: int, embedder: str) -> None:
    """Figure 8: peak RSS of a fresh process ingesting ``count`` images, and how it grows."""
    folder = make_photos(count, DATA / f"small-{count}", megapixels=(0.3, 0.5), seed=3)
    home = fresh_home()
    env = {**os.environ, "CONCEPTLAB_HOME": str(home), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(folder), embedder], env=env, capture_output=True, text=True, check=True)
    added, took, peak, *growth = done.stdout.split()
    rows.append(
        Row(
            f"peak RSS ingesting {count:,} images ({embedder})",
            f"{peak} MB",
            f"RSS by count: {' '.join(growth[-3:])}",
            "",
            "< 2500 MB",
            met(float(peak) < 2500),
        )
    )
    rows.append(Row(f"  ({added} images in {took} s)", ""))


_FIRST_PAGE_SCRIPT = textwrap.dedent(
    """
    import sys, time
    start = time.perf_counter()
    from streamlit.testing.v1 import AppTest
    app = AppTest.from_file("app.py", default_timeout=60).run()
    took = time.perf_counter() - start
    loaded = [m for m in ("torch", "open_clip", "sentence_transformers") if m in sys.modules]
    print(f"{took:.2f}", ",".join(loaded) or "none", len(app.exception))
    """
)


def bench_first_page(rows: list[Row]) -> None:
    """Figure 9: the app's first page in a fresh process, before any model loads."""
    if not (ROOT / "app.py").exists():
        rows.append(Row("app first page", "app.py not there yet"))
        return
    home = fresh_home()
    env = {**os.environ, "CONCEPTLAB_HOME": str(home), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", _FIRST_PAGE_SCRIPT], env=env, capture_output=True, text=True, cwd=ROOT, check=True)
    took, loaded, errors = done.stdout.split()
    rows.append(
        Row(
            f"app first page, fresh process (models imported: {loaded}, errors: {errors})",
            f"{float(took):.2f} s",
            "",
            "",
            "< 2 s",
            met(float(took) < 2),
        )
    )
