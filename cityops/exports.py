"""CSV and XLSX exports that spreadsheets cannot corrupt or turn into attacks (pure; no database).

* **Codes stay text.** A spreadsheet reads ``310117001001001001`` as a number and keeps 15
  significant digits (9,434 of 9,435 building codes were corrupted), and drops leading zeros. In CSV
  every all-digit value of 11+ digits, or with a leading zero, is written as ``="…"`` — the
  formula a spreadsheet evaluates to that very text (Excel, LibreOffice, WPS); our own formula,
  only ever holding digits. In XLSX such cells are text cells (number format ``@``).
* **No formula injection** (OWASP "CSV Injection"): any other text starting with ``=``, ``+``,
  ``-``, ``@``, TAB or CR is prefixed with ``'`` so that it is shown, never evaluated.
* **CRLF** line ends everywhere (RFC 4180), UTF-8 with BOM for CSV.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterable, Sequence
from typing import Any

_CODE = re.compile(r"^(\d{11,}|0\d+)$")
_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
BOM = "\ufeff"


def is_code(v: Any) -> bool:
    """A value a spreadsheet would damage as a number: all digits, 11+ long or with a leading zero."""
    return isinstance(v, str) and _CODE.match(v) is not None


def csv_cell(v: Any) -> Any:
    """One CSV cell, safe for spreadsheets (see the module doc)."""
    if v is None:
        return ""
    if isinstance(v, bool | int | float):
        return v
    s = str(v)
    if _CODE.match(s):
        return f'="{s}"'
    if s.startswith(_TRIGGERS):
        return "'" + s
    return s


def text_cell(v: Any) -> Any:
    """A cell value for XLSX: formula triggers neutralised like CSV (codes are typed text there)."""
    if isinstance(v, str) and v.startswith(_TRIGGERS):
        return "'" + v
    return v


class SafeWriter:
    """``csv.writer`` with spreadsheet-safe cells and CRLF line ends."""

    def __init__(self, buf: Any) -> None:
        self._w = csv.writer(buf, lineterminator="\r\n")

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._w.writerow([csv_cell(v) for v in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for r in rows:
            self.writerow(r)


class SafeDictWriter:
    """``csv.DictWriter`` with spreadsheet-safe cells and CRLF line ends."""

    def __init__(self, buf: Any, fieldnames: Sequence[str], **kw: Any) -> None:
        self._w = csv.DictWriter(buf, fieldnames=fieldnames, lineterminator="\r\n", **kw)

    def writeheader(self) -> Any:
        return self._w.writeheader()

    def writerow(self, row: dict[str, Any]) -> Any:
        return self._w.writerow({k: csv_cell(v) for k, v in row.items()})


def xlsx(headers: Sequence[str], rows: Iterable[Sequence[Any]], sheet: str = "export") -> bytes:
    """An XLSX workbook with typed columns: numbers as numbers, dates as dates, codes and other text
    as text cells (number format ``@``); headers bold and frozen. Written in write-only mode."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(sheet[:31])
    ws.freeze_panes = "A2"
    bold = Font(bold=True)
    head = []
    for h in headers:
        c = WriteOnlyCell(ws, value=h)
        c.font = bold
        head.append(c)
    ws.append(head)
    for row in rows:
        out = []
        for v in row:
            if isinstance(v, dt.datetime) and v.tzinfo is not None:
                v = v.replace(tzinfo=None)
            c = WriteOnlyCell(ws, value=text_cell(v) if isinstance(v, str) else v)
            if isinstance(v, str):
                c.number_format = "@"
            out.append(c)
        ws.append(out)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

__all__ = ["BOM", "SafeDictWriter", "SafeWriter", "XLSX_TYPE", "csv_cell", "csv_unwrap", "is_code", "text_cell", "xlsx"]


_WRAPPED = re.compile(r'^="(\d+)"$')


def csv_unwrap(s: str) -> str:
    """The value behind a cell written by :func:`csv_cell` (``="0123"`` → ``0123``; an apostrophe
    before a formula trigger dropped), so that an export can be imported again."""
    m = _WRAPPED.match(s)
    if m:
        return m.group(1)
    if len(s) > 1 and s[0] == "'" and s[1] in "=+-@\t\r":
        return s[1:]
    return s
