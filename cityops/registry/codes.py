"""Identifier checks of the base data: resident ID numbers (GB 11643), unified social credit
codes (GB 32100) and component codes (GB/T 30428.2-2013 / GB/T 47678.5-2026).

Check digits come from ``python-stdnum`` (``stdnum.cn.ric`` computes the ISO 7064 MOD 11-2
check digit of GB 11643, ``stdnum.cn.uscc`` the MOD 31 check character of GB 32100). Each
function returns the normalised value or raises ``CodeError`` with a bilingual reason.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import lru_cache

from stdnum.cn import ric, uscc


class CodeError(ValueError):
    """A code failed its check; ``str(exc)`` is the reason (zh + en)."""


# ------------------------------------------------------------------ GB 11643 resident ID numbers


@dataclass(frozen=True)
class IdInfo:
    number: str
    birth_date: dt.date
    gender: str  # male / female
    area_code: str


@lru_cache(maxsize=8192)
def _known_area(code6: str) -> bool:
    from stdnum import numdb

    info = {k: v for _part, props in numdb.get("cn/loc").info(code6) for k, v in props.items()}
    return "county" in info


def check_id_number(value: str, today: dt.date | None = None) -> IdInfo:
    """Validate an 18-character resident ID number: format, ISO 7064 MOD 11-2 check digit,
    a real birth date (1900..today), and an address code that is (or was) a county-level
    division code (GB/T 2260; any era, because numbers keep the code valid when issued)."""
    n = re.sub(r"\s+", "", value).upper()
    if len(n) == 15 and n.isdigit():
        raise CodeError("15位一代身份证号不再受理，请换算为18位 15-digit first-generation ID numbers are not "
                        "accepted: convert to the 18-digit number")
    if len(n) != 18:
        raise CodeError(f"身份证号应为18位，实为{len(n)}位 an ID number has 18 characters, got {len(n)}")
    if not n[:17].isdigit() or not (n[17].isdigit() or n[17] == "X"):
        raise CodeError("身份证号前17位须为数字，末位为数字或X an ID number is 17 digits followed by a digit or X")
    expect = ric.calc_check_digit(n)
    if n[17] != expect:
        raise CodeError(f"身份证号校验码错误（末位应为{expect}，实为{n[17]}；GB 11643 / ISO 7064 MOD 11-2） "
                        f"wrong check digit: expected {expect}, got {n[17]} (GB 11643, ISO 7064 MOD 11-2)")
    try:
        born = dt.date(int(n[6:10]), int(n[10:12]), int(n[12:14]))
    except ValueError:
        raise CodeError("身份证号中的出生日期不存在 the birth date in the ID number is not a real date") from None
    today = today or dt.date.today()
    if born.year < 1900 or born > today:
        raise CodeError(f"身份证号中的出生日期{born.isoformat()}不合理 the birth date {born.isoformat()} is out of range")
    if not _known_area(n[:6]):
        raise CodeError(f"身份证号地址码{n[:6]}不是有效的县级行政区划代码 address code {n[:6]} is not a county-level "
                        "division code (GB/T 2260)")
    return IdInfo(n, born, "male" if int(n[16]) % 2 == 1 else "female", n[:6])


def make_id_number(area6: str, born: dt.date, seq: int) -> str:
    """A checksum-valid ID number (demo data): area, birth date, 3-digit sequence (odd = male)."""
    body = f"{area6}{born:%Y%m%d}{seq % 1000:03d}"
    return body + ric.calc_check_digit(body + "0")


# ------------------------------------------------------------------ GB 32100 credit codes

# first character: registration authority; first two: kind of organisation
ORG_KINDS: dict[str, tuple[str, str]] = {
    "enterprise": ("企业", "enterprise"),
    "individual_business": ("个体工商户", "individual business"),
    "cooperative": ("农民专业合作社", "farmers' cooperative"),
    "government": ("机关", "government body"),
    "public_institution": ("事业单位", "public institution"),
    "social_organisation": ("社会组织", "social organisation"),
    "other": ("其他组织", "other organisation"),
}
_PREFIX_KIND = {"91": "enterprise", "92": "individual_business", "93": "cooperative", "11": "government",
                "12": "public_institution", "13": "social_organisation", "51": "social_organisation",
                "52": "social_organisation", "53": "social_organisation"}
USCC_ALPHABET = uscc._alphabet


def check_credit_code(value: str) -> tuple[str, str]:
    """Validate an 18-character unified social credit code; returns (code, org_kind)."""
    n = re.sub(r"[\s-]+", "", value).upper()
    if len(n) != 18:
        raise CodeError(f"统一社会信用代码应为18位，实为{len(n)}位 a credit code has 18 characters, got {len(n)}")
    bad = sorted({c for c in n if c not in USCC_ALPHABET})
    if bad:
        raise CodeError(f"统一社会信用代码含非法字符 {''.join(bad)}（不使用 I O S V Z） invalid characters "
                        f"{''.join(bad)} (I, O, S, V and Z are not used)")
    if not n[2:8].isdigit():
        raise CodeError("统一社会信用代码第3-8位应为行政区划代码 characters 3-8 must be a division code")
    expect = uscc.calc_check_digit(n)
    if n[17] != expect:
        raise CodeError(f"统一社会信用代码校验码错误（末位应为{expect}，实为{n[17]}；GB 32100） wrong check "
                        f"character: expected {expect}, got {n[17]} (GB 32100)")
    return n, _PREFIX_KIND.get(n[:2], "other")


def make_credit_code(prefix2: str, area6: str, org8: str) -> str:
    """A valid credit code (demo data): authority+kind, division, 8-character organisation body
    plus its GB 11714 check character, then the GB 32100 check character."""
    w = [3, 7, 9, 10, 5, 8, 4, 2]
    vals = [int(c) if c.isdigit() else ord(c) - 55 for c in org8]
    c9 = 11 - sum(a * b for a, b in zip(vals, w, strict=True)) % 11
    org9 = org8 + ("X" if c9 == 10 else "0" if c9 == 11 else str(c9))
    body = prefix2 + area6 + org9
    return body + uscc.calc_check_digit(body + "0")


# ------------------------------------------------------------------ component codes

# standard_ref -> (minor-code digits, zh title). The accepted spellings are in STANDARD_ALIASES.
STANDARDS: dict[str, tuple[int, str]] = {
    "GB/T 30428.2-2013": (2, "数字化城市管理信息系统 第2部分：管理部件和事件"),
    "CJ/T 214-2007": (2, "城市市政综合监管信息系统 管理部件和事件分类、编码及数据要求"),
    "GB/T 47678.5-2026": (3, "城市运行管理服务平台 第5部分：管理部件和事项"),
}


def _norm_std(s: str) -> str:
    return re.sub(r"[\s_]", "", s).upper().replace("／", "/").replace("—", "-").replace("－", "-")


STANDARD_ALIASES: dict[str, str] = {}
for _ref in STANDARDS:
    _num = _ref.split(" ", 1)[1]  # "30428.2-2013"
    for _alias in (_ref, _num, _num.split("-")[0], _ref.split("-")[0]):
        STANDARD_ALIASES[_norm_std(_alias)] = _ref

STATUSES: dict[str, tuple[str, str]] = {
    "intact": ("完好", "intact"), "damaged": ("破损", "damaged"), "missing": ("丢失", "missing"),
    "abandoned": ("废弃", "abandoned"), "removed": ("移除", "removed"),
}
ACCURACY_CLASSES: dict[str, tuple[float, str]] = {
    "A": (0.5, "≤ ±0.5 m：井盖、路灯等边界清晰的部件"),
    "B": (1.0, "≤ ±1.0 m：垃圾箱、报刊亭、户外广告等"),
    "C": (10.0, "≤ ±10 m：桥梁、停车场等范围类部件"),
}


def standard_ref(value: str) -> str:
    ref = STANDARD_ALIASES.get(_norm_std(value))
    if ref is None:
        raise CodeError(f"未知的编码标准 {value!r}，可用：{'、'.join(STANDARDS)} unknown standard {value!r}; "
                        f"known: {', '.join(STANDARDS)}")
    return ref


@dataclass(frozen=True)
class ComponentCode:
    code: str
    division: str
    major: str
    minor: str
    serial: str

    @property
    def type_code(self) -> str:
        return self.major + self.minor


def check_component_code(value: str, ref: str, districts: set[str] | None = None) -> ComponentCode:
    """Validate a component (部件) code against its standard: 6-digit division + 2-digit major +
    2 (GB/T 30428.2, CJ/T 214) or 3 (GB/T 47678.5) digit minor + 6-digit serial."""
    minor_len, _title = STANDARDS[ref]
    n = re.sub(r"\s+", "", value)
    want = 6 + 2 + minor_len + 6
    if not n.isdigit():
        raise CodeError("部件编码只能由数字组成 a component code has digits only")
    if len(n) != want:
        raise CodeError(f"按{ref}部件编码应为{want}位（6位区划+2位大类+{minor_len}位小类+6位流水号），实为{len(n)}位 "
                        f"under {ref} a component code has {want} digits (6 division + 2 major + {minor_len} minor "
                        f"+ 6 serial), got {len(n)}")
    div, major, minor, serial = n[:6], n[6:8], n[8:8 + minor_len], n[8 + minor_len:]
    if districts is not None and div not in districts:
        raise CodeError(f"部件编码的区划代码{div}不是本平台的区（{'、'.join(sorted(districts))}） division code {div} "
                        f"is not a district of this platform ({', '.join(sorted(districts))})")
    if major == "00" or int(minor) == 0:
        raise CodeError(f"部件大类/小类代码{major}/{minor}无效 major/minor code {major}/{minor} is not valid")
    if serial == "000000":
        raise CodeError("部件流水号不能为000000 serial 000000 is not valid")
    return ComponentCode(n, div, major, minor, serial)


def make_component_code(ref: str, division: str, major: str, minor: str, serial: int) -> str:
    minor_len = STANDARDS[ref][0]
    return f"{division}{major}{int(minor):0{minor_len}d}{serial:06d}"
