"""CSV/XLSX safe for spreadsheets (issue 16.5): a buildings CSV read the way a spreadsheet reads it
keeps every code; ``=1+1`` from a public report is neutralised; CRLF in every export; the XLSX
export has text codes and typed columns; an export can be imported again."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import select

from tests.cases_helpers import category, free_point


def spreadsheet_value(cell: str):
    """What a spreadsheet shows for a CSV cell (Excel / LibreOffice rules in brief): ``="x"`` is the
    text x; a leading apostrophe makes text; a number-looking cell becomes a float (15 significant
    digits, leading zeros gone); a cell starting with = + - @ is a formula (returned as such)."""
    if cell.startswith('="') and cell.endswith('"'):
        return cell[2:-1]
    if cell.startswith("'"):
        return cell[1:]
    if cell[:1] in ("=", "+", "-", "@") and not _number(cell):
        return ("FORMULA", cell)
    if _number(cell):
        return repr(float(f"{float(cell):.15g}"))
    return cell


def _number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


@pytest.fixture()
def headers(client, session):
    from tests.helpers import auth_headers, make_user

    user, pw = make_user(session, "export_cmd", ["district_commander"], area_code="310117")
    session.commit()
    return auth_headers(client, user, pw)


def test_cells():
    from cityops.exports import csv_cell, csv_unwrap

    assert csv_cell("=1+1") == "'=1+1" and csv_cell("+86 139") == "'+86 139" and csv_cell("@SUM(A1)") == "'@SUM(A1)"
    assert csv_cell("-2+3") == "'-2+3" and csv_cell("\t=x") == "'\t=x"
    assert csv_cell("310117001001001001") == '="310117001001001001"' and csv_cell("0123") == '="0123"'
    assert csv_cell(-5) == -5 and csv_cell(3.5) == 3.5 and csv_cell("12345") == "12345" and csv_cell(None) == ""
    for v in ("=1+1", "310117001001001001", "0123", "plain", "-x"):
        assert csv_unwrap(str(csv_cell(v))) == v


def test_buildings_csv_keeps_every_code(client, session, headers):
    from cityops.registry.models import Building

    codes = set(session.scalars(select(Building.code).where(Building.valid_to.is_(None))))
    session.rollback()
    assert codes and any(len(c) > 15 for c in codes)
    r = client.get("/api/v1/registry/buildings.csv", headers=headers)
    assert r.status_code == 200
    text = r.content.decode("utf-8-sig")
    assert "\r\n" in text and "\n" not in text.replace("\r\n", "")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    head = rows[0]
    col = next(i for i, h in enumerate(head) if "编码" in h or h.lower().endswith("code"))
    shown = {spreadsheet_value(row[col]) for row in rows[1:]}
    assert codes <= shown, sorted(codes - shown)[:5]
    # every all-digit cell of 11+ digits is protected, whatever the column
    for row in rows[1:]:
        for cell in row:
            assert not (cell.isdigit() and len(cell) > 10), cell


def test_formula_from_public_report_neutralised(client, session, headers):
    cat = category(session, "暴露垃圾")
    for i, text in enumerate(("=1+1", "=HYPERLINK(\"http://x\",\"y\")", "@SUM(1)", "+1+1")):
        lon, lat, _ = free_point(session, cat.id, skip=41 + 3 * i)
        session.rollback()
        r = client.post("/api/v1/public/reports", json={"category_code": cat.code, "lat": lat, "lon": lon,
                                                        "title": text, "address": text, "description": text})
        assert r.status_code in (200, 201), r.text
    r = client.get("/api/v1/cases.csv", headers=headers)
    assert r.status_code == 200
    text = r.content.decode("utf-8-sig")
    assert "\n" not in text.replace("\r\n", "")
    for row in csv.reader(io.StringIO(text, newline="")):
        for cell in row:
            v = spreadsheet_value(cell) if cell else cell
            assert not (isinstance(v, tuple) and v[0] == "FORMULA"), cell
    assert "'=1+1" in text


def test_every_csv_export_crlf(client, headers):
    urls = ["/api/v1/cases.csv", "/api/v1/registry/places.csv", "/api/v1/evaluation/department.csv"]
    layers = client.get("/api/v1/layers", headers=headers).json()["items"]
    if layers:
        urls.append(f"/api/v1/layers/{layers[0]['key']}/crosswalk.csv")
    for url in urls:
        r = client.get(url, headers=headers)
        if r.status_code == 404 and "crosswalk" in url:
            continue
        assert r.status_code == 200, (url, r.status_code, r.text[:200])
        text = r.content.decode("utf-8-sig")
        assert text.count("\r\n") >= 1 and "\n" not in text.replace("\r\n", ""), url


def test_xlsx_typed_columns(client, session, headers):
    import openpyxl

    from cityops.registry.models import Building

    codes = set(session.scalars(select(Building.code).where(Building.valid_to.is_(None))))
    session.rollback()
    r = client.get("/api/v1/registry/buildings.xlsx", headers=headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    wb = openpyxl.load_workbook(io.BytesIO(r.content), read_only=True)
    rows = list(wb.worksheets[0].iter_rows(values_only=True))
    head = rows[0]
    col = next(i for i, h in enumerate(head) if "编码" in str(h) or str(h).lower().endswith("code"))
    got = {row[col] for row in rows[1:]}
    assert all(isinstance(c, str) for c in got) and codes <= got
    numbers = [v for row in rows[1:] for v in row if isinstance(v, int | float) and not isinstance(v, bool)]
    assert numbers, "numeric columns are numbers"


def test_export_imports_again(client, headers):
    """A CSV export goes back in through the importer unchanged (dry run): the ="…" cells unwrap."""
    from cityops.registry.importers import read_csv

    r = client.get("/api/v1/registry/buildings.csv", headers=headers)
    table = read_csv(r.content)
    values = [v for rec in table.records for v in rec.cells.values() if isinstance(v, str)]
    assert values and not any(v.startswith('="') for v in values)
