"""Tests for core.inputs.tables: CSV/TSV rows as texts, columns by name, one error per bad row or table."""

from __future__ import annotations

import pytest

from core.inputs import (
    RawInput,
    ReadConfig,
    read_inputs,
)
from tests.media_fixtures import (
    describe_outcomes,
    write_file,
)

NOTES_CSV = 'id,text,label\n1,a cat,cats\n2,,dogs\n3,a dog,\n\n4,"quoted, with comma",cats \n'
NOTES_TSV = NOTES_CSV.replace(",", "\t").replace('"quoted\t with comma"', "quoted, with comma")
NOTES_ROWS = [
    ("row 2", "text", "cats"),
    ("row 3", None, "empty text"),
    ("row 4", "text", None),
    ("row 6", "text", "cats"),
]

COLUMNS = "(columns: id, text, label)"
LONG_ROW_CSV = "text\n" + "x" * 30 + "\nshort\n"
LONG_ROW_ROWS = [("row 2", None, "text too long (30 characters, limit 20)"), ("row 3", "text", None)]
TABLE_CASES = [
    # file name, content, config, expected (name suffix, kind, concept or reason) per item
    pytest.param("notes.csv", NOTES_CSV, ReadConfig(label_column="label"), NOTES_ROWS, id="csv"),
    pytest.param("notes.tsv", NOTES_TSV, ReadConfig(label_column="label"), NOTES_ROWS, id="tsv"),
    pytest.param("notes.csv", "\ufeffText\nhello\n", ReadConfig(), [("row 2", "text", None)], id="bom-and-case"),
    pytest.param(
        "notes.csv", "sentence\nhello\nworld\n", ReadConfig(), [("row 2", "text", None), ("row 3", "text", None)], id="one-column"
    ),
    pytest.param("notes.csv", NOTES_CSV, ReadConfig(text_column="body"), [("", None, f"column 'body' not found {COLUMNS}")], id="no-body"),
    pytest.param("notes.csv", "a,b\n1,2\n", ReadConfig(), [("", None, "column 'text' not found (columns: a, b)")], id="no-text"),
    pytest.param("notes.csv", NOTES_CSV, ReadConfig(label_column="tag"), [("", None, f"column 'tag' not found {COLUMNS}")], id="no-tag"),
    pytest.param("notes.csv", LONG_ROW_CSV, ReadConfig(max_text_chars=20), LONG_ROW_ROWS, id="too-long-row"),
    pytest.param("notes.csv", b"text\nfine\n" + "caf\xe9\n".encode("latin-1"), ReadConfig(), [("", None, "not UTF-8 text")], id="latin-1"),
    pytest.param("notes.csv", "\n\n", ReadConfig(), [("", None, "no header row (the first line is empty)")], id="no-header"),
    pytest.param("notes.csv", "text\n", ReadConfig(), [("", None, "no rows under the header row")], id="header-only"),
    pytest.param("notes.csv", "text\n\n \n", ReadConfig(), [("", None, "no rows under the header row")], id="header-and-blank-lines"),
    # The row limit: exactly the limit is fine (blank lines do not count); one more row stops the table with one line.
    pytest.param(
        "notes.csv", "text\na\n\nb\n\n", ReadConfig(max_table_rows=2), [("row 2", "text", None), ("row 4", "text", None)], id="at-limit"
    ),
    pytest.param(
        "notes.csv",
        "text\na\nb\nc\nd\n",
        ReadConfig(max_table_rows=2),
        [
            ("row 2", "text", None),
            ("row 3", "text", None),
            ("row 4", None, "more than 2 rows (the limit per table): this row and the rest were not read; split the table"),
        ],
        id="over-limit",
    ),
]


@pytest.mark.parametrize("filename, content, config, expected", TABLE_CASES)
def test_tables(tmp_path, filename, content, config, expected):
    path = write_file(tmp_path / filename, content)
    items = list(read_inputs([path], config))
    assert describe_outcomes(items) == [(f"{path}:{row}" if row else str(path), kind, what) for row, kind, what in expected]
    texts = [item.text for item in items if isinstance(item, RawInput)]
    if filename.endswith("sv") and config.label_column == "label":
        assert texts == ["a cat", "a dog", "quoted, with comma"]
        assert all(item.suffix == ".txt" and item.data == item.text.encode() for item in items if isinstance(item, RawInput))


def test_a_table_of_a_million_rows_stops_at_the_limit_without_reading_the_rest(tmp_path):
    path = tmp_path / "huge.csv"
    with open(path, "w") as f:
        f.write("text\n")
        f.writelines(f"row {i}\n" for i in range(1_000_000))
    items = read_inputs([path], ReadConfig(max_table_rows=1_000))
    assert sum(isinstance(next(items), RawInput) for _ in range(1_000)) == 1_000
    refusal = next(items)
    assert refusal.name == f"{path}:row 1002" and "more than 1,000 rows (the limit per table)" in refusal.reason
    assert next(items, None) is None


@pytest.mark.parametrize(
    "data, suffix, columns",
    [
        (b"id,text,label\n1,a,b\n", ".csv", ["id", "text", "label"]),
        (b"id\ttext\n1\ta\n", ".tsv", ["id", "text"]),
        ("\ufeffName, Body ,\n".encode(), ".csv", ["Name", "Body"]),  # BOM, blanks and an empty cell
        ("id,text\n".encode("utf-16"), ".csv", ["id", "text"]),
        (b"", ".csv", []),
        (b"\xff\xfe\xff", ".csv", []),  # not text
        (b"x" * (2 * 1024**2), ".csv", []),  # a 'header' of two million characters is no header
    ],
)
def test_read_table_columns(data, suffix, columns):
    from core.inputs.tables import read_table_columns

    assert read_table_columns(data, suffix) == columns
