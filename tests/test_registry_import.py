"""Imports of base data: CSV / XLSX / GeoJSON, all or nothing with every error listed, history on
re-import, cascades, scope, the CLI."""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid

import openpyxl
import pytest
from sqlalchemy import func, select

from cityops.errors import InvalidInput
from cityops.registry import service
from cityops.registry.codes import make_credit_code, make_id_number
from cityops.registry.models import Building, Facility, Household, Organisation, Person, Place
from cityops.security.principal import SYSTEM, Principal

UTC = dt.UTC


def tag() -> str:
    return uuid.uuid4().hex[:8].upper()


def xlsx(rows: list[list[object]]) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    for r in rows:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def csv_bytes(rows: list[list[object]], encoding: str = "utf-8") -> bytes:
    import csv

    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return buf.getvalue().encode(encoding)


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def grid_point(session, street: str = "310117001"):
    """A unit grid of ``street`` and a point inside it."""
    from cityops.geo.models import Area

    a = session.scalars(select(Area).where(Area.level == "grid", Area.code.startswith(street),
                                           Area.valid_to.is_(None)).order_by(Area.code)).first()
    p = a.geom.representative_point()
    return a.code, round(p.x, 7), round(p.y, 7)


_seq = iter(range(100, 999))


def new_id(born=dt.date(1990, 3, 7), area="310117") -> str:
    return make_id_number(area, born, next(_seq))


def problems(exc: InvalidInput) -> list[tuple[object, object]]:
    return [(p.extra.get("row", p.extra.get("feature")), p.extra.get("field")) for p in exc.problems]


# ------------------------------------------------------------------ acceptance: row 7


def test_xlsx_of_persons_with_a_bad_check_digit_on_row_7_is_rejected_naming_row_7(session):
    grid, _x, _y = grid_point(session)
    header = ["姓名", "身份证号", "手机号", "网格编码", "户籍"]
    rows = [header]
    for i in range(9):  # spreadsheet rows 2..10
        rows.append([f"测试{i}", new_id(dt.date(1980 + i, 1, 2)), f"1390000{i:04d}", grid, "是"])
    bad = rows[6][1]  # the record on spreadsheet row 7 (header row 1, first data row 2)
    rows[6][1] = bad[:17] + ("0" if bad[17] != "0" else "1")
    before = count(session, Person)
    with pytest.raises(InvalidInput) as ei:
        service.import_file(session, SYSTEM, "persons", "人口.xlsx", xlsx(rows))
    assert problems(ei.value) == [(7, "id_number")]
    msg = ei.value.problems[0].msg
    assert "第7行" in msg and "row 7" in msg and "表头为第1行" in msg and "校验码" in msg
    session.rollback()
    assert count(session, Person) == before
    # with the digit fixed the same file goes in whole
    rows[6][1] = bad
    report = service.import_file(session, SYSTEM, "persons", "人口.xlsx", xlsx(rows))
    assert (report["created"], report["updated"], report["unchanged"]) == (9, 0, 0)
    assert count(session, Person) == before + 9


def test_blank_rows_keep_the_spreadsheet_numbering(session):
    grid, _x, _y = grid_point(session)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["姓名", "身份证号", "网格编码"])
    ws.append(["甲", new_id(), grid])          # row 2
    ws.cell(row=5, column=1, value="乙")      # rows 3-4 blank, row 5 lacks its ID number
    ws.cell(row=5, column=3, value=grid)
    buf = io.BytesIO()
    wb.save(buf)
    with pytest.raises(InvalidInput) as ei:
        service.import_file(session, SYSTEM, "persons", "p.xlsx", buf.getvalue())
    assert problems(ei.value) == [(5, "id_number")]


def test_every_error_is_listed_and_nothing_is_written(session):
    grid, x, y = grid_point(session)
    t = tag()
    rows = [["建筑编码", "地址", "经度", "纬度", "层数", "房屋类型"],
            [f"T{t}-1", "上海市松江区岳阳街道人民路1号", x, y, 6, "住宅"],   # row 2: fine
            [f"T{t}-2", "", x, y, "六", "住宅"],                              # row 3: address, floors
            [f"T{t}-3", "上海市松江区岳阳街道人民路3号", 116.4, 39.9, 3, "宫殿"],  # row 4: outside, kind
            [f"T{t}-1", "上海市松江区岳阳街道人民路1号", x, y, 6, "住宅"],   # row 5: duplicate key
            [f"T{t}-5", "上海市松江区岳阳街道人民路5号", x, "", 6, ""]]      # row 6: lat missing
    before = count(session, Building)
    with pytest.raises(InvalidInput) as ei:
        service.import_file(session, SYSTEM, "buildings", "b.csv", csv_bytes(rows))
    got = problems(ei.value)
    assert (3, "address") in got and (3, "floors") in got
    assert (4, "kind") in got
    assert (5, "code") in got
    assert (6, "lat") in got
    assert ei.value.extra["error_count"] == len(got)
    session.rollback()
    assert count(session, Building) == before


def test_outside_the_district_is_reported(session):
    t = tag()
    rows = [["code", "address", "lon", "lat"], [f"T{t}", "北京市东城区", 116.4, 39.9]]
    with pytest.raises(InvalidInput) as ei:
        service.import_file(session, SYSTEM, "buildings", "b.csv", csv_bytes(rows))
    assert problems(ei.value) == [(2, "lon")]
    assert "不在本区" in ei.value.problems[0].msg


def test_unknown_and_missing_columns_and_gbk_csv(session):
    grid, _x, _y = grid_point(session)
    rows = [["姓名", "身份证号", "联系电话", "网格编码", "婚姻状况"], ["张三", new_id(), "13900001111", grid, "已婚"]]
    with pytest.raises(InvalidInput) as ei:
        service.import_file(session, SYSTEM, "persons", "p.csv", csv_bytes(rows, "gb18030"))
    assert problems(ei.value) == [(1, None)]
    assert "婚姻状况" in ei.value.problems[0].msg
    session.rollback()
    rows = [["姓名", "手机号"], ["张三", "13900001111"]]
    with pytest.raises(InvalidInput) as ei:
        service.import_file(session, SYSTEM, "persons", "p.csv", csv_bytes(rows))
    assert problems(ei.value) == [(1, "id_number")]
    session.rollback()
    # GBK-encoded CSV (what Excel on Chinese Windows writes) with Chinese headers goes in
    idn = new_id()
    rows = [["姓名", "身份证号", "联系电话", "网格编码", "序号"], ["张三丰", idn, "139-0000-1111", grid, 1]]
    report = service.import_file(session, SYSTEM, "persons", "p.csv", csv_bytes(rows, "gb18030"))
    assert report["created"] == 1
    p = session.scalar(select(Person).where(Person.id_number == idn, Person.valid_to.is_(None)))
    assert (p.name, p.phone, p.gender, p.birth_date) == ("张三丰", "13900001111", "male" if int(idn[16]) % 2 else
                                                        "female", dt.date(1990, 3, 7))


def test_excel_number_cells_that_lost_digits_are_reported(session):
    grid, _x, _y = grid_point(session)
    idn = new_id()
    rows = [["姓名", "身份证号", "网格编码"], ["李四", float(idn[:17] + "1"), grid]]
    with pytest.raises(InvalidInput) as ei:
        service.import_file(session, SYSTEM, "persons", "p.xlsx", xlsx(rows))
    assert problems(ei.value) == [(2, "id_number")]
    assert "15" in ei.value.problems[0].msg and "文本" in ei.value.problems[0].msg


def test_gender_and_birth_date_columns_must_agree_with_the_id(session):
    grid, _x, _y = grid_point(session)
    idn = make_id_number("310117", dt.date(1985, 6, 1), 201)  # odd sequence: male
    rows = [["姓名", "身份证号", "性别", "出生日期", "网格编码"], ["王五", idn, "女", "1985-06-02", grid]]
    with pytest.raises(InvalidInput) as ei:
        service.import_file(session, SYSTEM, "persons", "p.csv", csv_bytes(rows))
    assert sorted(problems(ei.value)) == [(2, "birth_date"), (2, "gender")]


# ------------------------------------------------------------------ history


def test_reimporting_a_building_with_a_new_address_keeps_the_old_one_as_of_yesterday(session):
    grid, x, y = grid_point(session, "310117003")
    code = f"T{tag()}"
    now = dt.datetime.now(UTC)
    old = [["建筑编码", "地址", "经度", "纬度"], [code, "上海市松江区方松街道文诚路100弄1号", x, y]]
    r1 = service.import_file(session, SYSTEM, "buildings", "b1.csv", csv_bytes(old), now=now - dt.timedelta(days=3))
    assert r1["created"] == 1
    new = [["建筑编码", "地址", "经度", "纬度"], [code, "上海市松江区方松街道文诚路200弄1号", x, y]]
    r2 = service.import_file(session, SYSTEM, "buildings", "b2.csv", csv_bytes(new), now=now)
    assert (r2["created"], r2["updated"], r2["unchanged"]) == (0, 1, 0)

    yesterday = (now.astimezone(service.TZ) - dt.timedelta(days=1)).date()
    page = service.list_records(session, SYSTEM, "buildings", q=code, as_of=yesterday)
    assert [i["address"] for i in page["items"]] == ["上海市松江区方松街道文诚路100弄1号"]
    page = service.list_records(session, SYSTEM, "buildings", q=code)
    assert [i["address"] for i in page["items"]] == ["上海市松江区方松街道文诚路200弄1号"]
    ent = page["items"][0]["id"]
    assert service.get_record(session, SYSTEM, "buildings", ent, as_of=yesterday.isoformat())["address"].endswith(
        "100弄1号")
    # before the first import it did not exist
    with pytest.raises(Exception, match="没有编号"):
        service.get_record(session, SYSTEM, "buildings", ent, as_of=(now - dt.timedelta(days=5)).date())
    hist = service.history(session, SYSTEM, "buildings", ent)
    assert [h["address"][-6:] for h in hist] == ["100弄1号", "200弄1号"]
    assert hist[0]["valid_to"] == hist[1]["valid_from"]
    # the same file again: untouched
    versions = count(session, Building)
    r3 = service.import_file(session, SYSTEM, "buildings", "b2.csv", csv_bytes(new), now=now + dt.timedelta(hours=1))
    assert (r3["created"], r3["updated"], r3["unchanged"]) == (0, 0, 1)
    assert count(session, Building) == versions


def test_an_import_older_than_the_current_version_is_refused(session):
    grid, x, y = grid_point(session)
    code = f"T{tag()}"
    now = dt.datetime.now(UTC)
    service.import_file(session, SYSTEM, "buildings", "b.csv",
                        csv_bytes([["code", "address", "lon", "lat"], [code, "上海市松江区岳阳街道中山中路11号", x, y]]), now=now)
    with pytest.raises(InvalidInput, match="晚于本次导入"):
        service.import_file(session, SYSTEM, "buildings", "b.csv",
                            csv_bytes([["code", "address", "lon", "lat"], [code, "上海市松江区岳阳街道中山中路12号", x, y]]),
                            now=now - dt.timedelta(days=1))


def test_households_and_persons_follow_their_building(session):
    _g1, x1, y1 = grid_point(session, "310117001")
    g2, x2, y2 = grid_point(session, "310117002")
    t = tag()
    now = dt.datetime.now(UTC) - dt.timedelta(days=2)
    service.import_file(session, SYSTEM, "buildings", "b.csv", csv_bytes(
        [["建筑编码", "地址", "经度", "纬度"], [f"B{t}", "上海市松江区岳阳街道中山中路1弄1号", x1, y1]]), now=now)
    rep = service.import_file(session, SYSTEM, "households", "h.xlsx", xlsx(
        [["户号", "建筑编码", "室号"], [f"H{t}", f"B{t}", "302"]]), now=now)
    assert rep["created"] == 1
    h = session.scalar(select(Household).where(Household.code == f"H{t}", Household.valid_to.is_(None)))
    assert h.address == "上海市松江区岳阳街道中山中路1弄1号302室" and h.street_code == "310117001"
    idn = new_id()
    service.import_file(session, SYSTEM, "persons", "p.csv", csv_bytes(
        [["身份证号", "姓名", "户号", "与户主关系"], [idn, "赵六", f"H{t}", "户主"]]), now=now)
    p = session.scalar(select(Person).where(Person.id_number == idn, Person.valid_to.is_(None)))
    assert p.address == h.address and p.grid_code == h.grid_code
    # the building is re-surveyed into another street with a new address
    rep = service.import_file(session, SYSTEM, "buildings", "b.csv", csv_bytes(
        [["建筑编码", "地址", "经度", "纬度"], [f"B{t}", "上海市松江区永丰街道玉树路9弄1号", x2, y2]]))
    assert rep["updated"] == 1 and rep["cascaded"] == {"households": 1, "persons": 1}
    h2 = session.scalar(select(Household).where(Household.code == f"H{t}", Household.valid_to.is_(None)))
    p2 = session.scalar(select(Person).where(Person.id_number == idn, Person.valid_to.is_(None)))
    assert h2.grid_code == g2 and h2.address == "上海市松江区永丰街道玉树路9弄1号302室"
    assert (p2.grid_code, p2.address, p2.entity_id) == (g2, h2.address, p.entity_id)
    # a missing building / household is an error
    with pytest.raises(InvalidInput) as ei:
        service.import_file(session, SYSTEM, "households", "h.csv", csv_bytes(
            [["户号", "建筑编码"], [f"H{t}X", "NO-SUCH-BUILDING"]]))
    assert problems(ei.value) == [(2, "building_code")]


def test_partial_file_updates_only_its_columns(session):
    grid, x, y = grid_point(session)
    code = "3101170301" + f"{int(uuid.uuid4().int % 900000) + 100000:06d}"  # GB/T 30428.2: 16 digits
    t0 = dt.datetime.now(UTC) - dt.timedelta(days=1)
    service.import_file(session, SYSTEM, "facilities", "f.csv", csv_bytes(
        [["部件编码", "编码标准", "部件名称", "经度", "纬度", "精度等级", "权属单位"],
         [code, "GB/T 30428.2-2013", "公共厕所", x, y, "B", "松江区环境卫生管理所"]]), now=t0)
    rep = service.import_file(session, SYSTEM, "facilities", "status.csv", csv_bytes(
        [["部件编码", "部件状态"], [code, "破损"]]))
    assert rep["updated"] == 1
    rows = session.execute(select(Facility).where(Facility.code == code).order_by(Facility.valid_from)).scalars().all()
    assert [r.status for r in rows] == ["intact", "damaged"]
    assert rows[1].owner_unit == "松江区环境卫生管理所" and rows[1].lon == x and rows[1].accuracy_class == "B"
    assert rows[1].entity_id == rows[0].entity_id and rows[0].valid_to == rows[1].valid_from


def test_facility_codes_are_checked_against_their_standard(session):
    _grid, x, y = grid_point(session)
    rows = [["部件编码", "编码标准", "部件名称", "经度", "纬度"],
            ["3101170101000001", "GB/T 47678.5-2026", "上水井盖", x, y],  # 16 digits under the 2026 standard
            ["31011701001999999", "GB/T 47678.5-2026", "上水井盖", x, y],  # fine
            ["3205080101000001", "GB/T 30428.2-2013", "上水井盖", x, y],   # another district
            ["3101170101999999", "GB/T 1234-2000", "上水井盖", x, y]]      # unknown standard
    with pytest.raises(InvalidInput) as ei:
        service.import_file(session, SYSTEM, "facilities", "f.csv", csv_bytes(rows))
    assert sorted(problems(ei.value)) == [(2, "code"), (4, "code"), (5, "standard_ref")]


def test_geojson_import_of_places_and_organisations(session):
    grid, x, y = grid_point(session, "310117004")
    t = tag()
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [x, y]},
         "properties": {"场所编码": f"P{t}1", "场所类型": "学校", "名称": "测试小学", "规模": 900}},
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[x, y], [x + 1e-4, y], [x, y + 1e-4],
                                                                             [x + 1e-4, y + 1e-4], [x, y]]]},
         "properties": {"场所编码": f"P{t}2", "场所类型": "工地", "名称": "自交多边形工地"}},
        {"type": "Feature", "geometry": None,
         "properties": {"场所编码": f"P{t}3", "场所类型": "医院", "名称": "只有网格的医院"}},
        {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[x, y], [x + 1e-4, y]]},
         "properties": {"场所编码": f"P{t}4", "场所类型": "菜市场", "名称": "线"}},
    ]}
    with pytest.raises(InvalidInput) as ei:
        service.import_file(session, SYSTEM, "places", "p.geojson", json.dumps(fc, ensure_ascii=False).encode())
    assert sorted(problems(ei.value)) == [(2, "geometry"), (3, "geometry"), (4, "geometry")]
    assert all("要素" in p.msg and "feature" in p.msg for p in ei.value.problems)
    session.rollback()
    fc["features"] = [fc["features"][0], fc["features"][2]]
    fc["features"][1]["properties"]["网格编码"] = grid
    rep = service.import_file(session, SYSTEM, "places", "p.geojson", json.dumps(fc, ensure_ascii=False).encode())
    assert rep["created"] == 2
    got = {p.code: p for p in session.scalars(select(Place).where(Place.code.like(f"P{t}%")))}
    assert got[f"P{t}1"].grid_code == grid and got[f"P{t}1"].kind == "school" and got[f"P{t}1"].capacity == 900
    assert got[f"P{t}3"].geom is None and got[f"P{t}3"].grid_code == grid

    code = make_credit_code("91", "310117", f"{int(t, 16) % 10**8:08d}")
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [x, y]},
         "properties": {"统一社会信用代码": code, "企业名称": "上海测试科技有限公司", "行业": "I 信息技术"}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [x, y]},
         "properties": {"统一社会信用代码": code[:17] + ("0" if code[17] != "0" else "1"), "企业名称": "错码公司"}}]}
    with pytest.raises(InvalidInput) as ei:
        service.import_file(session, SYSTEM, "organisations", "o.geojson", json.dumps(fc).encode())
    assert problems(ei.value) == [(2, "credit_code")]
    session.rollback()
    fc["features"].pop()
    assert service.import_file(session, SYSTEM, "organisations", "o.geojson", json.dumps(fc).encode())["created"] == 1
    org = session.scalar(select(Organisation).where(Organisation.credit_code == code))
    assert org.org_kind == "enterprise" and org.street_code == "310117004"


def test_malformed_files_are_clear_errors(session):
    for name, data in [("a.xlsx", b"not a zip"), ("a.geojson", b"{nope"), ("a.geojson", b'{"type": "Point"}'),
                       ("a.xls", b"x"), ("a.pdf", b"x"), ("a.csv", b"")]:
        with pytest.raises(InvalidInput) as ei:
            service.import_file(session, SYSTEM, "buildings", name, data)
        assert ei.value.problems[0].loc[0] in ("file", "row")
    with pytest.raises(Exception, match="未知的基础数据类型"):
        service.import_file(session, SYSTEM, "spaceships", "a.csv", b"a\n1\n")


def test_a_street_operator_imports_only_inside_the_street(session):
    g1, _x, _y = grid_point(session, "310117001")
    g2, _x2, _y2 = grid_point(session, "310117002")
    op = Principal(username="yy_op", permissions=frozenset({"registry.write", "person.read"}), area_code="310117001")
    a, b = new_id(), new_id()
    rows = [["身份证号", "姓名", "网格编码"], [a, "甲", g1], [b, "乙", g2]]
    with pytest.raises(InvalidInput) as ei:
        service.import_file(session, op, "persons", "p.csv", csv_bytes(rows))
    assert problems(ei.value) == [(3, None)]
    session.rollback()
    # the district moves b into street 002 first; the street-001 operator may not change it
    service.import_file(session, SYSTEM, "persons", "p.csv", csv_bytes([rows[0], rows[2]]))
    with pytest.raises(InvalidInput, match="其他辖区"):
        service.import_file(session, op, "persons", "p.csv", csv_bytes([rows[0], [b, "乙", g1]]))
    session.rollback()
    assert service.import_file(session, op, "persons", "p.csv", csv_bytes(rows[:2]))["created"] == 1


def test_import_is_audited(session):
    from cityops.security.models import AuditLog

    grid, x, y = grid_point(session)
    code = f"T{tag()}"
    service.import_file(session, SYSTEM, "buildings", "audited.csv",
                        csv_bytes([["code", "address", "lon", "lat"], [code, "上海市松江区岳阳街道中山中路13号", x, y]]))
    row = session.scalars(select(AuditLog).where(AuditLog.action == "import").order_by(AuditLog.seq.desc())).first()
    assert row.object_type == "building" and row.object_id == "audited.csv"
    assert json.loads(row.detail)["created"] == 1


def test_dry_run_writes_nothing(session):
    grid, x, y = grid_point(session)
    before = count(session, Building)
    rep = service.import_file(session, SYSTEM, "buildings", "b.csv",
                              csv_bytes([["code", "address", "lon", "lat"], [f"T{tag()}", "上海市松江区岳阳街道中山中路14号", x, y]]),
                              dry_run=True)
    assert rep["created"] == 1 and rep["dry_run"]
    assert count(session, Building) == before


def test_export_headers_are_import_headers(session):
    """The CSV export's Chinese headers are import headers (masked values aside)."""
    from cityops.registry.importers import header_map, normalise_header

    for kind in service.MODELS:
        hmap = header_map(kind)
        for field, label in service.export_columns(kind):
            assert normalise_header(label) in hmap or field in ("id", "valid_from", "member_count", "gender_label",
                                                                 "type_code", "org_kind_label"), (kind, label)


# ------------------------------------------------------------------ CLI


def test_cli_import_prints_every_error_with_its_row_and_exits_non_zero(db_url, tmp_path, session):
    from typer.testing import CliRunner

    from cityops import cli

    cli._register_domains()
    grid, _x, _y = grid_point(session)
    good, bad = new_id(), new_id()
    bad = bad[:17] + ("0" if bad[17] != "0" else "1")
    session.rollback()  # release SQLite's write lock before the CLI opens its own session
    f = tmp_path / "人口.csv"
    f.write_bytes(csv_bytes([["姓名", "身份证号", "网格编码"], ["甲", good, grid], ["乙", bad, grid],
                             ["丙", good, grid]]))
    res = CliRunner().invoke(cli.app, ["import", "persons", str(f)])
    assert res.exit_code == 1, (res.output, res.exception)
    out = res.output + (res.stderr if hasattr(res, "stderr") and res.stderr else "")
    assert "第3行" in out, (res.output, res.exception, res.exit_code)
    assert "row 3" in out and "第4行" in out and "未写入" in out
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Person).where(Person.id_number == good)) == 0
    session.rollback()
    f.write_bytes(csv_bytes([["姓名", "身份证号", "网格编码"], ["甲", good, grid]]))
    res = CliRunner().invoke(cli.app, ["import", "人口", str(f)])
    assert res.exit_code == 0, res.output
    assert "新增 created 1" in res.output
    res = CliRunner().invoke(cli.app, ["import", "persons", str(tmp_path / "missing.csv")])
    assert res.exit_code == 2
