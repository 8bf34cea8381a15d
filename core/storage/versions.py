"""Model versions: one row per trained model, pointing at its file under ``versions/``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable


class VersionRows:
    """The model versions of a ``Store`` (mixed into it; uses its connection)."""

    def add_version(self, file: str, seconds: float, report: dict, check: Callable[[int], None] | None = None) -> int:
        """Register a version file (already in ``versions/``) as the newest model version and make it active.

        Args:
            file: the file's name inside ``versions/``.
            seconds: how long training took.
            report: what training did, as JSON-able data.
            check: called with the new version number before it is committed, on this thread's
                connection (so the version is visible to it); if it raises, nothing is registered.

        Returns:
            The new version number.
        """
        with self.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO versions (created_at, file, seconds, report) VALUES (?, ?, ?, ?)",
                (time.time(), file, seconds, json.dumps(report)),
            )
            version = int(cur.lastrowid)
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('active_version', ?)", (str(version),))
            if check is not None:
                check(version)
        return version

    def list_versions(self, report_keys: tuple[str, ...] | None = None) -> list[tuple[int, float, str, float, dict]]:
        """Every version, oldest first: (number, created_at, file, seconds, report).

        ``report_keys`` keeps only those top-level keys of each report, picked out by SQLite:
        a report can hold thousands of cross-validated scores, and a page listing ten versions
        should not parse them all on every rerun.
        """
        if report_keys is None:
            return [_to_version(row) for row in self.query(f"SELECT {_VERSION_COLUMNS}, report FROM versions ORDER BY id")]
        picks = ", ".join(["?, json_extract(report, ?)"] * len(report_keys))
        report = f"json_object({picks})" if picks else "'{}'"
        params = tuple(x for key in report_keys for x in (key, f'$."{key}"'))
        rows = self.query(f"SELECT {_VERSION_COLUMNS}, {report} FROM versions ORDER BY id", params)
        # json_object keeps absent keys as nulls: leave them out, as a full report would.
        return [(*version[:4], {k: v for k, v in version[4].items() if v is not None}) for version in map(_to_version, rows)]

    def get_version(self, number: int) -> tuple[int, float, str, float, dict] | None:
        """One version with its whole report, or None."""
        rows = self.query(f"SELECT {_VERSION_COLUMNS}, report FROM versions WHERE id = ?", (int(number),))
        return _to_version(rows[0]) if rows else None


_VERSION_COLUMNS = "id, created_at, file, seconds"


def _to_version(row: tuple) -> tuple[int, float, str, float, dict]:
    number, created_at, file, seconds, report = row
    return int(number), created_at, file, seconds, json.loads(report)
