"""Reading and checking base-data files: CSV, XLSX and GeoJSON.

A file is read into records (``read_table``), each column is mapped to a field by its header
(Chinese or English, see ``COLUMNS``), every cell is parsed and checked, and every problem is
collected with its position: the **spreadsheet row number** for CSV/XLSX (the header is row 1,
so the first data record is row 2 — the number a spreadsheet program shows at the left) or the
**feature number** for GeoJSON (counting from 1). Nothing is written here; the service writes
only when the whole file is clean (``cityops.registry.service.import_file``).

Column semantics: a column present in the file sets its field for every row (an empty cell
clears an optional field); a column absent from the file leaves the field of an existing
record as it is. Unknown columns are errors (a misspelt header must not drop data silently).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

from cityops.errors import InvalidInput, Problem
from cityops.exports import csv_unwrap
from cityops.registry.codes import (
    ACCURACY_CLASSES,
    STATUSES,
    CodeError,
    check_credit_code,
    check_id_number,
)

ROW_CONVENTION_ZH = "表格行号，表头为第1行，第一条数据为第2行"
ROW_CONVENTION_EN = "spreadsheet row; the header is row 1, the first data record is row 2"
FEATURE_CONVENTION_ZH = "要素序号从1起计"
FEATURE_CONVENTION_EN = "features counted from 1"

MAX_ERRORS_PER_FILE = 1_000_000  # every error is listed; this only guards memory


class FieldError(ValueError):
    """A cell could not be used; the message is the bilingual reason."""


# ------------------------------------------------------------------ errors


@dataclass
class ImportError_:
    pos: int | None  # row (CSV/XLSX) or feature number (GeoJSON); None for the whole file
    field: str | None
    column: str | None  # the header as written in the file
    reason: str
    unit: str = "row"  # row / feature / file

    def problem(self) -> Problem:
        loc: list[str | int]
        if self.unit == "file" or self.pos is None:
            where_zh, where_en, loc = "文件", "file", ["file"]
        elif self.unit == "feature":
            where_zh = f"第{self.pos}个要素（{FEATURE_CONVENTION_ZH}）"
            where_en = f"feature {self.pos} ({FEATURE_CONVENTION_EN})"
            loc = ["feature", self.pos]
        else:
            where_zh = f"第{self.pos}行（{ROW_CONVENTION_ZH}）"
            where_en = f"row {self.pos} ({ROW_CONVENTION_EN})"
            loc = ["row", self.pos]
        col = ""
        if self.field or self.column:
            label = self.column or self.field
            col = f" 字段「{label}」" + (f"({self.field})" if self.field and self.field != label else "")
            loc = [*loc, self.field or self.column or ""]
        msg = f"{where_zh}{col}：{self.reason} — {where_en}{', field ' + (self.field or '') if self.field else ''}"
        extra: dict[str, Any] = {"field": self.field, "column": self.column}
        if self.unit == "feature":
            extra["feature"] = self.pos
        elif self.unit == "row":
            extra["row"] = self.pos
        return Problem(msg, loc, "import_error", extra)


def raise_if(errors: list[ImportError_]) -> None:
    if errors:
        order = {"file": 0, "row": 1, "feature": 1}
        errors.sort(key=lambda e: (order[e.unit], e.pos or 0))
        raise InvalidInput([e.problem() for e in errors], error_count=len(errors))


# ------------------------------------------------------------------ reading files


@dataclass
class RawRecord:
    pos: int
    cells: dict[str, Any]  # header as written -> raw value
    geometry: BaseGeometry | None = None
    has_geometry: bool = False


@dataclass
class RawTable:
    fmt: str  # csv / xlsx / geojson
    unit: str  # row / feature
    headers: list[str]
    records: list[RawRecord]
    errors: list[ImportError_] = field(default_factory=list)


def detect_format(filename: str) -> str:
    name = filename.lower().strip()
    if name.endswith(".csv") or name.endswith(".txt"):
        return "csv"
    if name.endswith(".xlsx") or name.endswith(".xlsm"):
        return "xlsx"
    if name.endswith(".geojson") or name.endswith(".json"):
        return "geojson"
    if name.endswith(".xls"):
        raise InvalidInput([Problem("不支持旧版 .xls 文件，请另存为 .xlsx the old .xls format is not supported: save "
                                    "the file as .xlsx", ["file"], "format")])
    raise InvalidInput([Problem(f"无法识别的文件类型 {filename!r}：请使用 .csv、.xlsx 或 .geojson unknown file type "
                                f"{filename!r}: use .csv, .xlsx or .geojson", ["file"], "format")])


def _decode(data: bytes) -> str:
    for enc in ("utf-8-sig", "gb18030"):  # Excel for Chinese Windows saves CSV as GBK
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    raise InvalidInput([Problem("CSV 文件既不是 UTF-8 也不是 GBK/GB18030 编码 the CSV is neither UTF-8 nor GB18030",
                                ["file"], "encoding")])


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


def _header_errors(headers: list[str], unit: str) -> list[ImportError_]:
    errs: list[ImportError_] = []
    seen: dict[str, int] = {}
    for i, h in enumerate(headers, start=1):
        if _blank(h):
            continue
        key = normalise_header(h)
        if key in seen:
            errs.append(ImportError_(1 if unit == "row" else None, None, h,
                                     f"表头重复（第{seen[key]}列与第{i}列） duplicate column (columns {seen[key]} and {i})",
                                     unit if unit == "row" else "file"))
        seen[key] = i
    return errs


def read_csv(data: bytes) -> RawTable:
    text = _decode(data)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise InvalidInput([Problem(f"CSV 格式错误 malformed CSV: {exc}", ["file"], "format")]) from None
    if not rows or all(_blank(c) for c in rows[0]):
        raise InvalidInput([Problem("第1行应为表头 row 1 must hold the column headers", ["row", 1], "header")])
    headers = [h.strip() for h in rows[0]]
    table = RawTable("csv", "row", headers, [], _header_errors(headers, "row"))
    for n, row in enumerate(rows[1:], start=2):
        if all(_blank(c) for c in row):
            continue
        if len(row) > len(headers) and any(not _blank(c) for c in row[len(headers):]):
            table.errors.append(ImportError_(n, None, None, f"本行有{len(row)}列，多于表头的{len(headers)}列 the row has "
                                             f"{len(row)} cells, more than the {len(headers)} headers"))
        table.records.append(RawRecord(n, {h: (csv_unwrap(row[i]) if i < len(row) else None)
                                           for i, h in enumerate(headers) if h}))
    return table


def read_xlsx(data: bytes) -> RawTable:
    import zipfile

    import openpyxl

    from cityops.edge import check_zip

    check_zip(data, ["file"])  # a zip bomb is refused before openpyxl opens it
    try:
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, TypeError) as exc:
        raise InvalidInput([Problem(f"无法读取 XLSX 文件 the file is not a readable .xlsx workbook ({type(exc).__name__})",
                                    ["file"], "format")]) from None
    try:
        if not wb.worksheets:
            raise InvalidInput([Problem("工作簿没有工作表 the workbook has no sheet", ["file"], "format")])
        ws = wb.worksheets[0]
        if hasattr(ws, "reset_dimensions"):
            ws.reset_dimensions()  # do not trust the stored sheet size (some writers get it wrong)
        rows = ws.iter_rows(min_row=1, values_only=True)
        first = next(rows, None)
        if first is None or all(_blank(c) for c in first):
            raise InvalidInput([Problem("第一个工作表的第1行应为表头 row 1 of the first sheet must hold the column headers",
                                        ["row", 1], "header")])
        headers = ["" if h is None else str(h).strip() for h in first]
        table = RawTable("xlsx", "row", headers, [], _header_errors(headers, "row"))
        for n, row in enumerate(rows, start=2):
            if row is None or all(_blank(c) for c in row):
                continue
            if len(row) > len(headers) and any(not _blank(c) for c in row[len(headers):]):
                table.errors.append(ImportError_(n, None, None, "本行在表头之外还有数据 the row has cells beyond the "
                                                 "last header"))
            table.records.append(RawRecord(n, {h: (row[i] if i < len(row) else None)
                                               for i, h in enumerate(headers) if h}))
        return table
    finally:
        wb.close()


def read_geojson(data: bytes) -> RawTable:
    try:
        doc = json.loads(_decode(data))
    except json.JSONDecodeError as exc:
        raise InvalidInput([Problem(f"GeoJSON 不是有效的 JSON：第{exc.lineno}行第{exc.colno}列 {exc.msg} invalid JSON at "
                                    f"line {exc.lineno} column {exc.colno}: {exc.msg}", ["file"], "format")]) from None
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection" or not isinstance(doc.get("features"), list):
        raise InvalidInput([Problem("GeoJSON 须为 FeatureCollection the GeoJSON must be a FeatureCollection",
                                    ["file"], "format")])
    headers: list[str] = []
    seen: set[str] = set()
    table = RawTable("geojson", "feature", headers, [])
    for n, feat in enumerate(doc["features"], start=1):
        if not isinstance(feat, dict) or feat.get("type") != "Feature":
            table.errors.append(ImportError_(n, None, None, "不是 Feature 对象 not a Feature object", "feature"))
            continue
        props = feat.get("properties") or {}
        if not isinstance(props, dict):
            table.errors.append(ImportError_(n, None, "properties", "properties 须为对象 properties must be an object",
                                             "feature"))
            continue
        for k in props:
            if k not in seen:
                seen.add(k)
                headers.append(str(k))
        rec = RawRecord(n, {str(k): v for k, v in props.items()})
        geom = feat.get("geometry")
        if geom is not None:
            rec.has_geometry = True
            try:
                rec.geometry = shapely.geometry.shape(geom)
            except (ValueError, TypeError, AttributeError, KeyError, IndexError, shapely.errors.ShapelyError) as exc:
                table.errors.append(ImportError_(n, "geometry", "geometry",
                                                 f"几何无法解析 the geometry cannot be read ({exc})", "feature"))
        table.records.append(rec)
    return table


def read_table(filename: str, data: bytes) -> RawTable:
    fmt = detect_format(filename)
    if not data:
        raise InvalidInput([Problem("文件为空 the file is empty", ["file"], "empty")])
    return {"csv": read_csv, "xlsx": read_xlsx, "geojson": read_geojson}[fmt](data)


# ------------------------------------------------------------------ cell parsers


def _excel_number_guard(v: Any) -> None:
    if isinstance(v, float) and (not v.is_integer() or abs(v) >= 1e15):
        raise FieldError("单元格为数字格式，超过15位的数字已被 Excel 截断，请把该列设为文本后重新录入 the cell holds a "
                         "number and Excel keeps only 15 significant digits: format the column as text and re-enter it")


def as_text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return None
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
    if isinstance(v, (dt.datetime, dt.date)):
        return v.isoformat()
    if isinstance(v, (dict, list)):
        raise FieldError("应为文本，而不是对象或数组 expected text, not an object or array")
    s = str(v).strip()
    return s or None


def text(max_len: int) -> Callable[[Any], str | None]:
    def parse(v: Any) -> str | None:
        s = as_text(v)
        if s is not None and len(s) > max_len:
            raise FieldError(f"长度{len(s)}超过上限{max_len} longer than {max_len} characters ({len(s)})")
        return s

    return parse


def code_text(max_len: int, pattern: str = r"[0-9A-Za-z_\-./]+") -> Callable[[Any], str | None]:
    rx = re.compile(pattern)

    def parse(v: Any) -> str | None:
        _excel_number_guard(v)
        s = as_text(v)
        if s is None:
            return None
        if len(s) > max_len:
            raise FieldError(f"长度{len(s)}超过上限{max_len} longer than {max_len} characters ({len(s)})")
        if not rx.fullmatch(s):
            raise FieldError(f"编码只能包含字母、数字和 _-./ a code may contain letters, digits and _-./ only: {s!r}")
        return s

    return parse


def integer(lo: int, hi: int) -> Callable[[Any], int | None]:
    def parse(v: Any) -> int | None:
        if isinstance(v, bool):
            raise FieldError("应为整数 expected a whole number")
        if isinstance(v, int):
            n = v
        elif isinstance(v, float):
            if math.isnan(v):
                return None
            if not v.is_integer():
                raise FieldError(f"应为整数，实为{v} expected a whole number, got {v}")
            n = int(v)
        else:
            s = as_text(v)
            if s is None:
                return None
            s = s.replace(",", "")
            if not re.fullmatch(r"[+-]?\d+(\.0+)?", s):
                raise FieldError(f"应为整数，实为{s!r} expected a whole number, got {s!r}")
            n = int(float(s)) if "." in s else int(s)
        if not lo <= n <= hi:
            raise FieldError(f"应在{lo}到{hi}之间，实为{n} must be between {lo} and {hi}, got {n}")
        return n

    return parse


def number(lo: float, hi: float, zh: str, en: str) -> Callable[[Any], float | None]:
    def parse(v: Any) -> float | None:
        if isinstance(v, bool):
            raise FieldError(f"{zh}应为数字 {en} must be a number")
        if isinstance(v, (int, float)):
            x = float(v)
        else:
            s = as_text(v)
            if s is None:
                return None
            try:
                x = float(s)
            except ValueError:
                raise FieldError(f"{zh}应为数字，实为{s!r} {en} must be a number, got {s!r}") from None
        if math.isnan(x) or not lo <= x <= hi:
            raise FieldError(f"{zh}应在{lo:g}到{hi:g}之间，实为{x:g} {en} must be within {lo:g}..{hi:g}, got {x:g}")
        return x

    return parse


def date(v: Any) -> dt.date | None:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    s = as_text(v)
    if s is None:
        return None
    m = re.fullmatch(r"(\d{4})(\d{2})(\d{2})", s) or re.fullmatch(
        r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?(?:[ T]00:00(?::00)?)?", s)
    if not m:
        raise FieldError(f"日期格式应为 YYYY-MM-DD 或 YYYYMMDD，实为{s!r} a date is YYYY-MM-DD or YYYYMMDD, got {s!r}")
    try:
        return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        raise FieldError(f"日期不存在 {s!r} is not a real date") from None


def choice(options: Mapping[str, tuple[str, ...]], default: str | None = None) -> Callable[[Any], str | None]:
    """``options``: stored value -> accepted spellings (the zh label first)."""
    lookup: dict[str, str] = {}
    for k, spellings in options.items():
        lookup[k.lower()] = k
        for sp in spellings:
            lookup[sp.lower()] = k

    def parse(v: Any) -> str | None:
        s = as_text(v)
        if s is None:
            return default
        k = lookup.get(s.lower())
        if k is None:
            allowed = "、".join(f"{sp[0]}({k})" for k, sp in options.items())
            raise FieldError(f"取值{s!r}无效，可选：{allowed} {s!r} is not one of: {', '.join(options)}")
        return k

    return parse


_TRUE = {"是", "y", "yes", "true", "1", "t", "√", "有"}
_FALSE = {"否", "n", "no", "false", "0", "f", "×", "无"}


def boolean(extra_true: tuple[str, ...] = (), extra_false: tuple[str, ...] = ()) -> Callable[[Any], bool | None]:
    t = _TRUE | set(extra_true)
    f = _FALSE | set(extra_false)

    def parse(v: Any) -> bool | None:
        if isinstance(v, bool):
            return v
        s = as_text(v)
        if s is None:
            return None
        s = s.lower()
        if s in t:
            return True
        if s in f:
            return False
        raise FieldError(f"应为 是/否，实为{s!r} expected 是/否 (yes/no), got {s!r}")

    return parse


def _coded(check: Callable[[str], Any], max_len: int) -> Callable[[Any], Any]:
    def parse(v: Any) -> Any:
        _excel_number_guard(v)
        s = as_text(v)
        if s is None:
            return None
        if len(s) > max_len + 8:
            raise FieldError(f"长度{len(s)}过长 too long ({len(s)} characters)")
        try:
            return check(s)
        except CodeError as exc:
            raise FieldError(str(exc)) from None

    return parse


def phone(v: Any) -> str | None:
    _excel_number_guard(v)
    s = as_text(v)
    if s is None:
        return None
    d = re.sub(r"[\s\-()（）]", "", s)
    if d.startswith("+86"):
        d = d[3:]
    if re.fullmatch(r"1[3-9]\d{9}", d) or re.fullmatch(r"0\d{9,11}", d) or re.fullmatch(r"\d{8}", d):
        return d
    raise FieldError(f"电话号码格式不正确（手机11位，座机带区号） not a valid phone number (mobile: 11 digits; "
                     f"landline with area code): {s!r}")


def credit_code_only(v: Any) -> str | None:
    r = _coded(check_credit_code, 18)(v)
    return None if r is None else r[0]


# ------------------------------------------------------------------ columns per kind


@dataclass(frozen=True)
class Col:
    field: str
    label: str  # zh label
    aliases: tuple[str, ...]
    parse: Callable[[Any], Any]
    required: bool = False  # required for a new record
    stored: bool = True  # False: only checked against derived values / used for location


def normalise_header(h: str) -> str:
    s = str(h).strip().lower()
    s = s.replace("（", "(").replace("）", ")").replace("：", ":")
    s = re.sub(r"[\s*＊:]+", "", s)
    return s


LOCATION_COLS = [
    Col("lon", "经度", ("经度", "longitude", "lng", "long", "x坐标"), number(-180, 180, "经度", "longitude"), stored=False),
    Col("lat", "纬度", ("纬度", "latitude", "y坐标"), number(-90, 90, "纬度", "latitude"), stored=False),
    Col("crs", "坐标系", ("坐标系", "坐标系统", "srs"), text(40), stored=False),
    Col("grid_code", "网格编码", ("网格编码", "单元网格", "单元网格编码", "所在单元网格标识码", "szdywgbsm", "网格"),
        code_text(15, r"\d{15}"), stored=False),
    Col("community_code", "社区编码", ("社区编码", "居村编码", "所在社区(村)代码", "所在社区代码", "szsqdm"),
        code_text(12, r"\d{12}"), stored=False),
    Col("street_code", "街镇编码", ("街镇编码", "街道编码", "所在街道(镇、乡)代码", "所在街道代码", "szjddm"),
        code_text(9, r"\d{9}"), stored=False),
]
WKT_COL = Col("wkt", "几何", ("几何", "wkt", "geometry", "轮廓", "范围"), text(200_000), stored=False)

# always ignored: serial numbers and names that are derived from the codes
IGNORED = {normalise_header(h) for h in (
    "序号", "no", "no.", "#", "index", "编号序号", "objectid", "fid", "gid", "id",
    "所在街道名称", "szjdmc", "所在社区名称", "szsqmc", "街镇", "街道名称", "社区名称", "网格名称",
    "变更日期", "bgrq", "年龄", "age")}

BUILDING_KINDS = {
    "residential": ("住宅", "居住", "民房"), "commercial": ("商业", "商用", "商铺"), "office": ("办公", "写字楼"),
    "industrial": ("工业", "厂房", "仓储"), "public": ("公共", "公共建筑", "公建"), "mixed": ("综合", "商住", "商住混合"),
    "other": ("其他",),
}
HOUSEHOLD_KINDS = {"family": ("家庭户", "家庭"), "collective": ("集体户", "集体")}
PLACE_KINDS = {
    "school": ("学校", "中小学", "中学", "小学"), "kindergarten": ("幼儿园", "托幼机构", "托育"),
    "hospital": ("医院", "医疗机构", "社区卫生服务中心", "卫生院"), "market": ("农贸市场", "菜市场", "市场"),
    "mall": ("商场", "商业综合体", "购物中心"), "construction_site": ("建筑工地", "工地", "在建工地", "施工工地"),
    "elderly_care": ("养老机构", "养老院", "敬老院", "养老服务中心"), "transport_hub": ("交通枢纽", "车站", "地铁站"),
    "hazardous": ("危险化学品场所", "危化品", "危化企业"), "other": ("其他",),
}
GENDERS = {"male": ("男", "m"), "female": ("女", "f")}

COLUMNS: dict[str, list[Col]] = {
    "buildings": [
        Col("code", "建筑编码", ("建筑编码", "房屋编码", "楼栋编码", "编码", "building_code"), code_text(40), required=True),
        Col("name", "建筑名称", ("建筑名称", "楼栋名称", "名称", "楼名"), text(200)),
        Col("address", "地址", ("地址", "门牌地址", "房屋地址", "门牌"), text(300), required=True),
        Col("kind", "房屋类型", ("房屋类型", "类型", "用途", "建筑类型"), choice(BUILDING_KINDS, "residential")),
        Col("compound", "小区", ("小区", "小区名称", "所属小区", "园区"), text(100)),
        Col("floors", "层数", ("层数", "楼层数", "地上层数"), integer(1, 200)),
        *LOCATION_COLS, WKT_COL,
    ],
    "households": [
        Col("code", "户号", ("户号", "户编码", "household_code"), code_text(40), required=True),
        Col("building_code", "建筑编码", ("建筑编码", "房屋编码", "楼栋编码", "所在建筑"), code_text(40), required=True),
        Col("room", "室号", ("室号", "房号", "门牌室号"), text(40)),
        Col("address", "地址", ("地址", "住址", "户地址"), text(300)),
        Col("kind", "户别", ("户别", "户类型"), choice(HOUSEHOLD_KINDS, "family")),
        *[c for c in LOCATION_COLS if c.field in ("grid_code", "community_code", "street_code")],
    ],
    "persons": [
        Col("id_number", "身份证号", ("身份证号", "公民身份号码", "身份证号码", "身份证", "证件号码", "idnumber", "id_no"),
            _coded(lambda s: check_id_number(s), 18), required=True),
        Col("name", "姓名", ("姓名",), text(50), required=True),
        Col("phone", "手机号", ("手机号", "手机", "手机号码", "联系电话", "电话", "mobile"), phone),
        Col("household_code", "户号", ("户号", "户编码", "所属户"), code_text(40)),
        Col("relation", "与户主关系", ("与户主关系", "关系"), text(20)),
        Col("address", "居住地址", ("居住地址", "地址", "现住址", "住址"), text(300)),
        Col("registered", "户籍", ("户籍", "是否户籍", "户籍人口", "本区户籍"),
            boolean(("户籍", "本区户籍", "本市户籍"), ("非户籍", "外来", "流动"))),
        Col("resident", "常住", ("常住", "是否常住", "实有", "在住", "居住状态"),
            boolean(("在住", "常住", "居住"), ("外出", "不在住", "离开"))),
        Col("gender", "性别", ("性别", "sex"), choice(GENDERS), stored=False),
        Col("birth_date", "出生日期", ("出生日期", "生日", "birthday"), date, stored=False),
        *[c for c in LOCATION_COLS if c.field in ("grid_code", "community_code", "street_code")],
    ],
    "facilities": [
        Col("code", "部件编码", ("部件编码", "部件标识码", "管理部件标识码", "glbjbsm", "component_code"), code_text(17, r"\d+"),
            required=True),
        Col("standard_ref", "编码标准", ("编码标准", "标准", "standard"), text(40), required=True),
        Col("name", "部件名称", ("部件名称", "管理部件名称", "名称", "glbjmc"), text(100), required=True),
        Col("status", "部件状态", ("部件状态", "状态", "管理部件状态", "glbjzt"),
            choice({k: (v[0],) for k, v in STATUSES.items()}, "intact")),
        Col("accuracy_class", "精度等级", ("精度等级", "定位精度", "精度", "accuracy"),
            choice({k: (k.lower(), f"{k}级", f"{k}类") for k in ACCURACY_CLASSES}, "C")),
        Col("competent_dept", "主管部门", ("主管部门", "主管部门名称", "zgbmmc"), text(100)),
        Col("competent_code", "主管部门代码", ("主管部门代码", "zgbmdm"), credit_code_only),
        Col("owner_unit", "权属单位", ("权属单位", "权属单位名称", "qsdwmc"), text(100)),
        Col("owner_code", "权属单位代码", ("权属单位代码", "qsdwdm"), credit_code_only),
        Col("maintenance_unit", "养护单位", ("养护单位", "养护单位名称", "yhdwmc"), text(100)),
        Col("maintenance_code", "养护单位代码", ("养护单位代码", "yhdwdm"), credit_code_only),
        Col("initial_date", "初始日期", ("初始日期", "csrq"), date),
        Col("data_source", "数据来源", ("数据来源", "sjly"), text(30)),
        Col("note", "备注", ("备注", "bz"), text(1000)),
        *LOCATION_COLS,
    ],
    "organisations": [
        Col("credit_code", "统一社会信用代码", ("统一社会信用代码", "信用代码", "社会信用代码", "uscc"),
            _coded(check_credit_code, 18), required=True),
        Col("name", "名称", ("名称", "单位名称", "企业名称", "组织名称"), text(200), required=True),
        Col("address", "地址", ("地址", "注册地址", "经营地址", "住所"), text(300)),
        Col("industry", "行业", ("行业", "所属行业", "行业门类", "行业类别"), text(60)),
        Col("legal_rep", "法定代表人", ("法定代表人", "负责人", "法人"), text(50)),
        Col("phone", "联系电话", ("联系电话", "电话", "手机"), phone),
        Col("employees", "从业人数", ("从业人数", "员工人数", "职工人数"), integer(0, 1_000_000)),
        *LOCATION_COLS,
    ],
    "places": [
        Col("code", "场所编码", ("场所编码", "编码"), code_text(40), required=True),
        Col("kind", "场所类型", ("场所类型", "类型"), choice(PLACE_KINDS), required=True),
        Col("name", "名称", ("名称", "场所名称"), text(200), required=True),
        Col("address", "地址", ("地址",), text(300)),
        Col("capacity", "规模", ("规模", "容量", "人数"), integer(0, 10_000_000)),
        Col("responsible_unit", "责任单位", ("责任单位", "主管单位", "管理单位"), text(200)),
        Col("phone", "联系电话", ("联系电话", "电话"), phone),
        *LOCATION_COLS, WKT_COL,
    ],
}

# kinds whose records need a position (a point or a footprint); the others may give a grid code
POSITION_REQUIRED = {"buildings", "facilities"}
GRID_ONLY_KINDS = {"persons"}  # no coordinates, only a grid code (or the household's)
FOOTPRINT_KINDS = {"buildings", "places"}


def header_map(kind: str) -> dict[str, Col]:
    out: dict[str, Col] = {}
    for c in COLUMNS[kind]:
        for a in (c.field, c.label, *c.aliases):
            out.setdefault(normalise_header(a), c)
    return out


def columns_doc(kind: str) -> list[dict[str, Any]]:
    """The accepted columns of a kind (for docs and error hints)."""
    return [{"field": c.field, "label": c.label, "aliases": list(c.aliases), "required": c.required}
            for c in COLUMNS[kind]]


# ------------------------------------------------------------------ parsing a table


@dataclass
class Parsed:
    pos: int
    values: dict[str, Any]  # field -> parsed value (only for columns present)
    geometry: BaseGeometry | None = None
    columns: dict[str, str] = field(default_factory=dict)  # field -> header as written


def parse_table(kind: str, table: RawTable) -> tuple[list[Parsed], set[str], list[ImportError_]]:
    """Map headers, parse every cell. Returns the records, the set of fields present in the file,
    and every error found so far (header, cell and geometry errors)."""
    errors = list(table.errors)
    hmap = header_map(kind)
    unit = table.unit
    fields_of: dict[str, Col] = {}
    col_of_header: dict[str, Col] = {}
    for h in table.headers:
        if _blank(h):
            continue
        key = normalise_header(h)
        c = hmap.get(key)
        if c is None:
            if key in IGNORED:
                continue
            known = "、".join(f"{c.label}({c.field})" for c in COLUMNS[kind])
            errors.append(ImportError_(1 if unit == "row" else None, None, h,
                                       f"无法识别的列「{h}」；可用的列：{known} unknown column {h!r}",
                                       "row" if unit == "row" else "file"))
            continue
        if c.field in fields_of and unit == "row":
            errors.append(ImportError_(1, c.field, h, f"与另一列重复表示字段 {c.field} (same field as another column)"))
            continue
        fields_of[c.field] = c
        col_of_header[h] = c
    present = set(fields_of)
    records: list[Parsed] = []
    for rec in table.records:
        values: dict[str, Any] = {}
        cols: dict[str, str] = {}
        for h, raw in rec.cells.items():
            c = col_of_header.get(h)
            if c is None:
                continue
            cols[c.field] = h
            try:
                values[c.field] = c.parse(raw)
            except FieldError as exc:
                errors.append(ImportError_(rec.pos, c.field, h, str(exc), unit))
                values[c.field] = _INVALID
        # GeoJSON: properties missing from a feature count as empty cells
        for f in present:
            if f not in values:
                values[f] = None
                cols.setdefault(f, fields_of[f].label)
        records.append(Parsed(rec.pos, values, rec.geometry, cols))
        if rec.has_geometry and rec.geometry is None:
            records[-1].values["_geometry_invalid"] = True
        if len(errors) > MAX_ERRORS_PER_FILE:
            break
    return records, present, errors


class _Invalid:
    def __repr__(self) -> str:
        return "<invalid>"


_INVALID: Any = _Invalid()


def is_invalid(v: Any) -> bool:
    return v is _INVALID


# ------------------------------------------------------------------ positions


def geometry_of(kind: str, p: Parsed, errors: list[ImportError_], unit: str) -> BaseGeometry | None:
    """The record's WGS-84 geometry from GeoJSON, a WKT column or lon/lat columns (None: none given)."""
    v = p.values
    crs = v.get("crs")
    if crs and not is_invalid(crs):
        norm = re.sub(r"[\s\-:_]", "", str(crs)).upper()
        if norm not in ("WGS84", "EPSG4326", "CGCS2000", "EPSG4490", "4326", "4490"):
            errors.append(ImportError_(p.pos, "crs", p.columns.get("crs"),
                                       f"坐标系{crs!r}不受支持：请先转换为 WGS-84（GCJ-02/BD-09 有数百米偏移） coordinate "
                                       f"system {crs!r} is not supported: convert to WGS-84 first", unit))
            return None
    geom = p.geometry
    src_field = "geometry"
    wkt = v.get("wkt")
    if geom is None and wkt and not is_invalid(wkt):
        try:
            geom = shapely.from_wkt(wkt)
            src_field = "wkt"
        except shapely.errors.ShapelyError as exc:
            errors.append(ImportError_(p.pos, "wkt", p.columns.get("wkt"), f"WKT 无法解析 cannot read the WKT ({exc})",
                                       unit))
            return None
    lon, lat = v.get("lon"), v.get("lat")
    if geom is None:
        if is_invalid(lon) or is_invalid(lat):
            return None
        if lon is None and lat is None:
            return None
        if lon is None or lat is None:
            missing = "lon" if lon is None else "lat"
            errors.append(ImportError_(p.pos, missing, p.columns.get(missing),
                                       "经度和纬度须同时填写 longitude and latitude go together", unit))
            return None
        return shapely.Point(lon, lat)
    allowed = ("Point", "Polygon", "MultiPolygon") if kind in FOOTPRINT_KINDS else ("Point",)
    col = p.columns.get(src_field, src_field)
    if kind in GRID_ONLY_KINDS or kind == "households":
        errors.append(ImportError_(p.pos, src_field, col, "此类数据不带几何位置（由户/建筑确定） this kind has no "
                                   "geometry: its place comes from the household/building", unit))
        return None
    if geom.is_empty or geom.geom_type not in allowed:
        errors.append(ImportError_(p.pos, src_field, col, f"几何类型应为{'/'.join(allowed)}，实为{geom.geom_type} "
                                   f"geometry must be {'/'.join(allowed)}, got {geom.geom_type}", unit))
        return None
    minx, miny, maxx, maxy = geom.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        errors.append(ImportError_(p.pos, src_field, col, "坐标超出经纬度范围（须为 WGS-84 经度、纬度） coordinates are "
                                   "not WGS-84 longitude/latitude", unit))
        return None
    if not geom.is_valid:
        reason = shapely.is_valid_reason(geom)
        errors.append(ImportError_(p.pos, src_field, col, f"几何无效：{reason} invalid geometry: {reason}", unit))
        return None
    return shapely.set_precision(geom, 1e-7)
