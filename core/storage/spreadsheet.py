"""CSV and TSV that spreadsheets open safely: a cell that would run as a formula is neutralised."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

# Spreadsheets run a cell starting with these as a formula (OWASP's list), also after leading blanks.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value: object) -> str:
    """A cell's text, with a leading ``'`` when a spreadsheet would otherwise run it as a formula.

    Numbers stay as they are (``-3`` is a number, not a formula); text starting with ``= + - @``, a
    tab or a carriage return, also after leading blanks, is prefixed.
    """
    if value is None:
        return ""
    if isinstance(value, bool | int | float | np.integer | np.floating):
        return str(value)
    text = str(value)
    if text.startswith(_FORMULA_STARTS) or text.lstrip(" \t\r\n").startswith(_FORMULA_STARTS[:4]):
        return "'" + text
    return text


def write_csv(rows: Iterable[Sequence[object] | Mapping[str, object]], header: Sequence[str] | None = None, delimiter: str = ",") -> bytes:
    """Rows as CSV bytes that spreadsheets open safely: UTF-8 with a BOM (so Excel reads accents), formulas neutralised.

    Args:
        rows: sequences of cells, or mappings from column name to cell.
        header: the column names; for mappings it defaults to the first row's keys (and picks
            those keys, in that order, from every row).
        delimiter: ``","`` for CSV, ``"\\t"`` for TSV.

    Returns:
        The file's bytes.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    columns = list(header) if header is not None else None
    wrote_header = False
    for row in rows:
        if isinstance(row, Mapping):
            if columns is None:
                columns = list(row)
            cells = [row.get(c) for c in columns]
        else:
            cells = list(row)
        if columns is not None and not wrote_header:
            writer.writerow([neutralise_cell(c) for c in columns])
            wrote_header = True
        writer.writerow([neutralise_cell(c) for c in cells])
    if columns is not None and not wrote_header:
        writer.writerow([neutralise_cell(c) for c in columns])
    return buffer.getvalue().encode("utf-8-sig")
