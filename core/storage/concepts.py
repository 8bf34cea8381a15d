"""Concepts and the labels people give inputs for them (1 positive, 0 negative)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable

from core.access import Action, project_of_store, require_of_store
from core.access.audit import record
from core.errors import ConceptError, one_line
from core.names import describe_forbidden_character, make_name_key, normalize_name

MAX_CONCEPT_NAME = 100
_ALL_CONCEPTS = "SELECT id, name FROM concepts"


def validate_concept_name(name: str) -> str:
    """Return the concept name as stored (``names.normalize_name``), or raise ConceptError saying what is wrong with it."""
    cleaned = normalize_name(name)
    if not cleaned:
        raise ConceptError("a concept needs a name")
    if len(cleaned) > MAX_CONCEPT_NAME:
        raise ConceptError(f"concept name is longer than {MAX_CONCEPT_NAME} characters")
    reason = describe_forbidden_character(cleaned)
    if reason is not None:
        raise ConceptError(f"concept name '{one_line(cleaned)}' cannot be used: {reason}")
    return cleaned


class ConceptRows:
    """The concepts and labels of a ``Store`` (mixed into it; uses its connection)."""

    def list_concepts(self) -> list[tuple[int, str]]:
        return [(int(i), n) for i, n in self.query("SELECT id, name FROM concepts ORDER BY name COLLATE NOCASE")]

    def concept_id(self, name: str) -> int | None:
        """The id of the concept that ``name`` names (the same name by ``names.make_name_key``), or None."""
        return self._ids_by_key(self.query(_ALL_CONCEPTS)).get(make_name_key(validate_concept_name(name)))

    def ensure_concepts(self, names: Iterable[str]) -> dict[str, int]:
        """Return name -> id for each name, creating the concepts that do not exist yet.

        Names that are the same name (``Éclair`` and ``éclair``) get the same concept: the first one stored.
        """
        cleaned = {validate_concept_name(n) for n in names}
        with self.transaction() as conn:
            # Read and insert inside one write transaction: another process cannot add a same-name concept between.
            ids = self._ids_by_key(conn.execute(_ALL_CONCEPTS).fetchall())
            for name in sorted(cleaned):
                key = make_name_key(name)
                if key not in ids:
                    require_of_store(self, Action.CREATE_CONCEPT)  # naming a new concept creates it
                    cur = conn.execute("INSERT INTO concepts (name, created_at) VALUES (?, ?)", (name, time.time()))
                    ids[key] = int(cur.lastrowid)
        return {name: ids[make_name_key(name)] for name in cleaned}

    def create_concept(self, name: str) -> int:
        require_of_store(self, Action.CREATE_CONCEPT)
        cleaned = validate_concept_name(name)
        with self.transaction() as conn:
            ids = self._ids_by_key(conn.execute(_ALL_CONCEPTS).fetchall())
            if make_name_key(cleaned) in ids:
                raise ConceptError(f"concept '{cleaned}' already exists")
            cur = conn.execute("INSERT INTO concepts (name, created_at) VALUES (?, ?)", (cleaned, time.time()))
        return int(cur.lastrowid)

    def rename_concept(self, old: str, new: str) -> None:
        require_of_store(self, Action.EDIT_CONCEPT)
        cid = self._require_concept(old)
        cleaned = validate_concept_name(new)
        with self.transaction() as conn:
            taken = self._ids_by_key(conn.execute(_ALL_CONCEPTS).fetchall()).get(make_name_key(cleaned))
            if taken is not None and taken != cid:  # renaming "cat" to "Cat" is fine; to another concept's name is not
                raise ConceptError(f"concept '{cleaned}' already exists")
            conn.execute("UPDATE concepts SET name = ? WHERE id = ?", (cleaned, cid))

    def merge_same_name_concepts(self) -> int:
        """Merge concepts whose names are the same name (stored before the rule held); return how many went.

        The oldest keeps its name; the others' labels move to it (where an input has both, the oldest's
        label stays), and they are deleted, all in one transaction.
        """
        names = [name for _, name in self.query(_ALL_CONCEPTS)]
        if len({make_name_key(name) for name in names}) == len(names):
            return 0  # the usual case: nothing to merge, and no write lock taken to find that out
        with self.transaction() as conn:
            rows = conn.execute("SELECT id, name FROM concepts ORDER BY id").fetchall()
            kept: dict[str, int] = {}
            merged = 0
            for cid, name in rows:
                key = make_name_key(name)
                if key not in kept:
                    kept[key] = int(cid)
                    continue
                conn.execute("UPDATE OR IGNORE annotations SET concept_id = ? WHERE concept_id = ?", (kept[key], cid))
                conn.execute("DELETE FROM annotations WHERE concept_id = ?", (cid,))
                conn.execute("DELETE FROM concepts WHERE id = ?", (cid,))
                merged += 1
        return merged

    @staticmethod
    def _ids_by_key(rows: Iterable[tuple]) -> dict[str, int]:
        """key -> id, the oldest concept winning where (old) rows share a key."""
        ids: dict[str, int] = {}
        for cid, name in sorted(rows, key=lambda row: int(row[0])):
            ids.setdefault(make_name_key(name), int(cid))
        return ids

    def delete_concept(self, name: str) -> None:
        require_of_store(self, Action.EDIT_CONCEPT)
        cid = self._require_concept(name)
        labels = self.query("SELECT COUNT(*) FROM annotations WHERE concept_id = ?", (cid,))[0][0]
        record("delete concept", project_of_store(self), f"deleted concept '{name}' and its {labels} labels")
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

    def set_only_positive(self, input_ids: Iterable[int], concept_id: int) -> None:
        """Label inputs positive for one concept and remove their positive labels for every other, together.

        For projects of one concept per input: an input that becomes a bee is no longer an ant.
        """
        ids = list(input_ids)
        with self.transaction() as conn:
            conn.executemany("DELETE FROM annotations WHERE input_id = ? AND concept_id != ? AND value > 0", [(i, concept_id) for i in ids])
            for i in ids:
                self._annotate(conn, i, [(concept_id, 1)], time.time())

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

    def labels_of_inputs(self, input_ids: Iterable[int]) -> dict[int, dict[str, int]]:
        """``labels_of`` for many inputs in one query: input id -> {concept: +1 or -1} (empty for unlabelled ones)."""
        wanted = [int(i) for i in input_ids]
        labels: dict[int, dict[str, int]] = {i: {} for i in wanted}
        sql = "SELECT a.input_id, c.name, a.value FROM annotations a JOIN concepts c ON c.id = a.concept_id WHERE a.input_id IN ({marks})"
        for input_id, name, value in self.query_in(sql, wanted):
            labels[int(input_id)][name] = int(value)
        return labels

    # -- model versions ----------------------------------------------------------------
