"""Large tables, as a person meets them: ``conceptlab ingest`` of a CSV in a fresh process (tiny embedder, so the
figure is the reading and storing, not a model), its rows per second, peak memory, and the files it leaves.

The table of 1,000,000 short rows is the one that used to run for over 15 minutes and write a file per row:
it now stops at the per-table limit (100,000 rows) with one line, having stored the rows before it.
"""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from .common import DATA, ROOT, Row, fresh_home, met

_INGEST_SCRIPT = textwrap.dedent(
    """
    import sys
    from core.cli import run
    status = run(["ingest", "table", sys.argv[1], "--label-column", "label", "--json"])
    peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    print("PEAK", status, peak // 1024, file=sys.stderr)
    """
)


def _write_table(path: Path, rows: int) -> Path:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        rng = random.Random(rows)
        words = ["cat", "dog", "bird", "fish", "tree", "car", "rain", "sun", "cup", "book"]
        with open(path, "w", encoding="utf-8") as f:
            f.write("text,label\n")
            f.writelines(f"{i} {' '.join(rng.choices(words, k=4))},{rng.choice('ab')}\n" for i in range(rows))
    return path


def bench_tables(rows: list[Row]) -> None:
    """Rows per second for a 100,000-row table (goal: thousands), and a 1,000,000-row one stopped at the limit."""
    for count in (100_000, 1_000_000):
        table = _write_table(DATA / f"table-{count}.csv", count)
        home = fresh_home()
        env = {**os.environ, "CONCEPTLAB_HOME": str(home), "PYTHONPATH": str(ROOT)}
        subprocess.run(
            [sys.executable, "-m", "core", "project", "create", "table", "--embedder", "tiny"], env=env, check=True, capture_output=True
        )
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", _INGEST_SCRIPT, str(table)], env=env, capture_output=True, text=True, timeout=3600)
        took = time.perf_counter() - start
        _, status, peak = next(line for line in done.stderr.splitlines() if line.startswith("PEAK")).split()
        with sqlite3.connect(home / "projects" / "table" / "project.db") as db:
            count_stored = db.execute("SELECT COUNT(*) FROM inputs").fetchone()[0]
        files = sum(len(names) for _, _, names in os.walk(home / "projects" / "table" / "blobs"))
        rate = count_stored / took
        rows.append(
            Row(
                f"ingest of a {count:,}-row CSV, fresh process (tiny)",
                f"{rate:,.0f} rows/s",
                f"{count_stored:,} stored in {took:.1f} s, exit {status}",
                "",
                ">= 2,000 rows/s",
                met(rate >= 2_000),
            )
        )
        rows.append(Row(f"  peak memory, files in blobs/ ({count:,} rows)", f"{peak} MB", f"{files} files", "", "0 files", met(files == 0)))
