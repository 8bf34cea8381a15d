"""CSV and TSV tables: one text input per row, with the text (and optionally a label) taken from named
columns of the header row. Rows are read one at a time, and no line is ever read into memory whole.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator
from typing import IO

from core.errors import InputError
from core.inputs.raw import ZIP_ERRORS, RawInput, ReadConfig, clean_concept, detect_encoding, make_text_input

logger = logging.getLogger(__name__)

# The csv module reads a whole physical line before looking at it (and caps one field at 131,072
# characters): a table with no line breaks would otherwise be read into memory in one piece.
MAX_LINE_CHARS = 1024**2


class _BoundedLines:
    """The lines of a text stream, none longer than ``limit`` characters: a longer one is skipped.

    ``cut`` turns true when a line was skipped, so the caller can report the row it belonged to.
    """

    def __init__(self, stream: io.TextIOBase, limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self.cut = False

    def __iter__(self) -> _BoundedLines:
        return self

    def __next__(self) -> str:
        line = self._stream.readline(self._limit + 1)
        if not line:
            raise StopIteration
        if len(line) > self._limit and not line.endswith(("\n", "\r")):
            self.cut = True
            while (rest := self._stream.readline(self._limit)) and not rest.endswith(("\n", "\r")):
                pass
            return "\n"
        return line


def read_table(name: str, stream: IO[bytes], suffix: str, concept: str | None, config: ReadConfig) -> Iterator[RawInput | InputError]:
    """Yield one text input (or one error) per row of the table in ``stream``; the header row names the columns."""
    columns: tuple[int, int] | None = None
    rows = 0
    label = "UTF-8"
    try:
        peek = getattr(stream, "peek", None)
        encoding, label = detect_encoding(peek(4)[:4] if peek else b"")
        lines = _BoundedLines(io.TextIOWrapper(stream, encoding=encoding, newline=""), MAX_LINE_CHARS)
        reader = csv.reader(lines, delimiter="\t" if suffix == ".tsv" else ",")
        # Rows are numbered as a spreadsheet shows them: the header is row 1.
        for row_number, row in enumerate(_rows(reader, lines), start=1):
            if columns is None:
                found = _find_columns(row, config)
                if isinstance(found, str):
                    yield InputError(name, found)
                    return
                columns = found
                continue
            if not isinstance(row, csv.Error) and not any(cell.strip() for cell in row):
                continue  # blank lines (often trailing) are not rows anyone meant
            row_name = f"{name}:row {row_number}"
            if rows == config.max_table_rows:
                yield InputError(
                    row_name,
                    f"more than {config.max_table_rows:,} rows (the limit per table): this row and the rest were not read; split the table",
                )
                return
            rows += 1
            if isinstance(row, csv.Error):
                yield InputError(row_name, f"malformed row ({row})")
            else:
                text_index, label_index = columns
                text = row[text_index] if text_index < len(row) else ""
                row_concept = concept
                if label_index >= 0:
                    row_concept = clean_concept(row[label_index] if label_index < len(row) else "")
                yield make_text_input(row_name, text, row_concept, config.max_text_chars)
    except UnicodeError as e:
        # Decoding runs ahead in chunks, so the failing row cannot be named reliably.
        logger.debug("%s is not %s: %s", name, label, e)
        yield InputError(name, f"not {label} text")
        return
    except (OSError, *ZIP_ERRORS) as e:
        logger.debug("cannot read %s: %s", name, e)
        yield InputError(name, "damaged file (stopped reading here)")
        return
    if columns is None:
        yield InputError(name, "empty file")
    elif rows == 0:
        yield InputError(name, "no rows under the header row")


def read_table_columns(data: bytes, suffix: str) -> list[str]:
    """The column names in a table's header row (to offer them to pick), or [] when it has none readable."""
    try:
        encoding, _ = detect_encoding(data[:4])
        lines = _BoundedLines(io.TextIOWrapper(io.BytesIO(data), encoding=encoding, newline=""), MAX_LINE_CHARS)
        header = next(csv.reader(lines, delimiter="\t" if suffix == ".tsv" else ","), [])
    except (UnicodeError, csv.Error):
        return []
    return [cell.strip() for cell in header if cell.strip()] if not lines.cut else []


def _rows(reader: Iterator[list[str]], lines: _BoundedLines) -> Iterator[list[str] | csv.Error]:
    """Yield each row, or the ``csv.Error`` of a malformed one (the reader resumes on the next line)."""
    while True:
        try:
            row: list[str] | csv.Error = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            row = e
        if lines.cut:
            lines.cut = False
            row = csv.Error(f"a line longer than {MAX_LINE_CHARS:,} characters")
        yield row


def _find_columns(row: list[str] | csv.Error, config: ReadConfig) -> tuple[int, int] | str:
    """Return (text column index, label column index or -1), or the reason the header row does not fit."""
    if isinstance(row, csv.Error):
        return f"malformed header row ({row})"
    header = [cell.strip() for cell in row]
    if not any(header):
        return "no header row (the first line is empty)"
    columns = _describe_columns(header)
    if config.text_column is not None:
        text_index = _column_index(header, config.text_column)
        wanted = config.text_column
    else:
        text_index = _column_index(header, "text")
        if text_index < 0 and len(header) == 1:
            text_index = 0
        wanted = "text"
    if text_index < 0:
        return f"column '{wanted}' not found (columns: {columns})"
    label_index = -1
    if config.label_column is not None:
        label_index = _column_index(header, config.label_column)
        if label_index < 0:
            return f"column '{config.label_column}' not found (columns: {columns})"
    return text_index, label_index


def _describe_columns(header: list[str], most: int = 12, longest: int = 40) -> str:
    """The header for a message: a hostile one may have a hundred thousand columns, or megabyte-long names."""
    shown = [cell if len(cell) <= longest else cell[: longest - 1] + "…" for cell in header[:most]]
    more = f", … ({len(header) - most:,} more)" if len(header) > most else ""
    return ", ".join(shown) + more


def _column_index(header: list[str], wanted: str) -> int:
    """Exact match first, then a case-insensitive one if it is unambiguous; -1 when absent."""
    wanted = wanted.strip()
    if wanted in header:
        return header.index(wanted)
    folded = [i for i, column in enumerate(header) if column.casefold() == wanted.casefold()]
    return folded[0] if len(folded) == 1 else -1
