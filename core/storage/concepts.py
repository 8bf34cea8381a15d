"""Concepts and the labels people give inputs for them (1 positive, 0 negative)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable

from core.errors import ConceptError

MAX_CONCEPT_NAME = 100


def validate_concept_name(name: str) -> str:
    """Return the stripped concept name, or raise ConceptError saying what is wrong with it."""
    cleaned = " ".join(str(name).split())
    if not cleaned:
        raise ConceptError("a concept needs a name")
    if len(cleaned) > MAX_CONCEPT_NAME:
        raise ConceptError(f"concept name is longer than {MAX_CONCEPT_NAME} characters")
    return cleaned


class ConceptRows:
    """The concepts and labels of a ``Store`` (mixed into it; uses its connection)."""

    def list_concepts(self) -> list[tuple[int, str]]:
        return [(int(i), n) for i, n in self.query("SELECT id, name FROM concepts ORDER BY name COLLATE NOCASE")]

    def concept_id(self, name: str) -> int | None:
        rows = self.query("SELECT id FROM concepts WHERE name = ?", (validate_concept_name(name),))
        return int(rows[0][0]) if rows else None

    def ensure_concepts(self, names: Iterable[str]) -> dict[str, int]:
        """Return name -> id for each name, creating the concepts that do not exist yet."""
        cleaned = {validate_concept_name(n) for n in names}
        with self.transaction() as conn:
            for name in cleaned:
                conn.execute("INSERT OR IGNORE INTO concepts (name, created_at) VALUES (?, ?)", (name, time.time()))
            marks = ",".join("?" * len(cleaned))
            rows = conn.execute(f"SELECT name, id FROM concepts WHERE name IN ({marks})", list(cleaned)).fetchall() if cleaned else []
        by_lower = {n.lower(): i for n, i in rows}
        return {n: int(by_lower[n.lower()]) for n in cleaned}

    def create_concept(self, name: str) -> int:
        cleaned = validate_concept_name(name)
        try:
            with self.transaction() as conn:
                cur = conn.execute("INSERT INTO concepts (name, created_at) VALUES (?, ?)", (cleaned, time.time()))
        except sqlite3.IntegrityError as e:
            raise ConceptError(f"concept '{cleaned}' already exists") from e
        return int(cur.lastrowid)

    def rename_concept(self, old: str, new: str) -> None:
        cid = self._require_concept(old)
        cleaned = validate_concept_name(new)
        try:
            with self.transaction() as conn:
                conn.execute("UPDATE concepts SET name = ? WHERE id = ?", (cleaned, cid))
        except sqlite3.IntegrityError as e:
            raise ConceptError(f"concept '{cleaned}' already exists") from e

    def delete_concept(self, name: str) -> None:
        cid = self._require_concept(name)
        with self.transaction() as conn:
            conn.execute("DELETE FROM concepts WHERE id = ?", (cid,))

    def _require_concept(self, name: str) -> int:
        cid = self.concept_id(name)
        if cid is None:
            raise ConceptError(f"no concept named '{validate_concept_name(name)}'")
        return cid

    def set_labels(self, input_ids: Iterable[int], concept_id: int, value: int | None) -> None:
        """Label inputs +1 (positive) or -1 (negative) for a concept; None removes the label."""
        ids = list(input_ids)
        with self.transaction() as conn:
            if value is None:
                conn.executemany("DELETE FROM annotations WHERE input_id = ? AND concept_id = ?", [(i, concept_id) for i in ids])
            else:
                for i in ids:
                    self._annotate(conn, i, [(concept_id, value)], time.time())

    @staticmethod
    def _annotate(conn: sqlite3.Connection, input_id: int, pairs: list[tuple[int, int]], now: float) -> None:
        conn.executemany(
            "INSERT INTO annotations (input_id, concept_id, value, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (input_id, concept_id) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            [(input_id, cid, int(v), now) for cid, v in pairs],
        )

    def load_annotations(self) -> list[tuple[int, int, int]]:
        """All labels as (input_id, concept_id, value)."""
        return [tuple(map(int, r)) for r in self.query("SELECT input_id, concept_id, value FROM annotations")]

    def count_examples(self) -> dict[str, dict[str, tuple[int, int]]]:
        """Per concept, in ``list_concepts`` order: per input kind ("image", "video", "text"), (positives, negatives)."""
        counts: dict[str, dict[str, tuple[int, int]]] = {name: {} for _, name in self.list_concepts()}
        rows = self.query(
            "SELECT c.name, i.kind, SUM(a.value > 0), SUM(a.value < 0) FROM annotations a "
            "JOIN concepts c ON c.id = a.concept_id JOIN inputs i ON i.id = a.input_id GROUP BY c.id, i.kind ORDER BY c.id, i.kind"
        )
        for name, kind, positives, negatives in rows:
            counts.setdefault(name, {})[kind] = (int(positives), int(negatives))
        return counts

    def labels_of(self, input_id: int) -> dict[str, int]:
        rows = self.query(
            "SELECT c.name, a.value FROM annotations a JOIN concepts c ON c.id = a.concept_id WHERE a.input_id = ?", (input_id,)
        )
        return {name: int(v) for name, v in rows}

    # -- model versions ----------------------------------------------------------------
