"""The configurable data of emergency command, validated when loaded: incident categories and
subtypes with their responsible departments, reporting deadlines and flat-reporting recipients,
the CAP profile, the mobilisation ladder. All of it lives in ``cityops/emergency/data`` (versioned
JSON) and is read once per process."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cityops.errors import InvalidInput, Problem

DATA = Path(__file__).resolve().parent / "data"

LEVELS = ("I", "II", "III", "IV")  # I is the highest (特别重大 / Ⅰ级响应)
LEVEL_LABELS = {"I": ("Ⅰ级", "level I"), "II": ("Ⅱ级", "level II"), "III": ("Ⅲ级", "level III"),
                "IV": ("Ⅳ级", "level IV")}
SEVERITY_LABELS = {"I": ("特别重大", "especially major"), "II": ("重大", "major"), "III": ("较大", "relatively major"),
                   "IV": ("一般", "general")}
WARNING_LEVELS = ("red", "orange", "yellow", "blue")
Level = Literal["I", "II", "III", "IV"]


def level_rank(level: str) -> int:
    """1 for I (highest) … 4 for IV; unknown levels sort last."""
    return LEVELS.index(level) + 1 if level in LEVELS else 99


def pydantic_problems(exc: ValidationError, base: list[str | int]) -> list[Problem]:
    """Pydantic's errors as the shared Problem shape (every field named)."""
    out = []
    for e in exc.errors():
        loc = [*base, *[p for p in e.get("loc", ()) if isinstance(p, str | int)]]
        out.append(Problem(f"{e.get('msg', 'invalid')} 无效", loc, str(e.get("type", "value_error"))))
    return out


def _strict() -> ConfigDict:
    return ConfigDict(extra="forbid")


# ---------------------------------------------------------------- categories


class Subtype(BaseModel):
    model_config = _strict()
    code: str = Field(pattern=r"^[a-z_]{2,40}$")
    zh: str
    en: str
    departments: list[str] = Field(min_length=1)
    cap_category: Literal["Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport",
                          "Infra", "CBRNE", "Other"] = "Other"
    local: bool = False


class Category(BaseModel):
    model_config = _strict()
    code: Literal["natural", "accident", "public_health", "social_security"]
    zh: str
    en: str
    graded: bool = True
    note: str | None = None
    subtypes: list[Subtype] = Field(min_length=1)


class CategoryDoc(BaseModel):
    model_config = _strict()
    format: str
    version: str
    source: str | None = None
    categories: list[Category]

    @model_validator(mode="after")
    def _unique(self) -> CategoryDoc:
        codes = [c.code for c in self.categories]
        if sorted(codes) != sorted({"natural", "accident", "public_health", "social_security"}):
            raise ValueError("the four categories of the law, each once (自然灾害, 事故灾难, 公共卫生事件, 社会安全事件)")
        subs = [s.code for c in self.categories for s in c.subtypes]
        if len(subs) != len(set(subs)):
            raise ValueError("subtype codes must be unique across categories")
        return self


@dataclass(frozen=True)
class Kind:
    """A resolved (category, subtype)."""

    category: Category
    subtype: Subtype


def _load(name: str, model: type[BaseModel]) -> Any:
    doc = json.loads((DATA / name).read_text(encoding="utf-8"))
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise InvalidInput(pydantic_problems(exc, [name])) from exc


@lru_cache(maxsize=1)
def categories() -> CategoryDoc:
    return _load("categories.json", CategoryDoc)  # type: ignore[no-any-return]


def resolve_kind(category: str, subtype: str | None, loc: list[str | int] | None = None) -> Kind:
    """(category, subtype) from a category code plus subtype, or from a subtype code alone."""
    base = loc or ["body"]
    doc = categories()
    by_sub = {s.code: (c, s) for c in doc.categories for s in c.subtypes}
    if subtype is None and category in by_sub:
        c, s = by_sub[category]
        return Kind(c, s)
    cat = next((c for c in doc.categories if c.code == category), None)
    if cat is None:
        raise InvalidInput([Problem(f"未知事件类别 unknown category {category!r}; categories: "
                                    f"{', '.join(c.code for c in doc.categories)}", [*base, "category"], "unknown")])
    sub = next((s for s in cat.subtypes if s.code == subtype), None)
    if sub is None:
        raise InvalidInput([Problem(f"「{cat.zh}」下未知的子类 unknown subtype {subtype!r}; subtypes: "
                                    f"{', '.join(s.code for s in cat.subtypes)}", [*base, "subtype"], "unknown")])
    return Kind(cat, sub)


def kind_label(category: str, subtype: str, lang: str = "zh") -> tuple[str, str]:
    try:
        k = resolve_kind(category, subtype)
    except InvalidInput:
        return category, subtype
    return (k.category.en, k.subtype.en) if lang == "en" else (k.category.zh, k.subtype.zh)


# ---------------------------------------------------------------- reporting


class Recipient(BaseModel):
    model_config = _strict()
    code: str
    zh: str
    en: str
    kind: Literal["command", "department", "street"]
    level: str
    role: str | None = None
    source: Literal["category"] | None = Field(None, alias="from")
    street_centre: bool = False


class CommandLevel(BaseModel):
    model_config = _strict()
    zh: str
    en: str
    severities: list[Level]
    target_s: float = Field(gt=0)


class DeadlineRule(BaseModel):
    model_config = _strict()
    code: str = Field(pattern=r"^[a-z_]{2,40}$")
    zh: str
    en: str
    kind: Literal["initial", "follow_up", "final"]
    channel: Literal["phone", "written"]
    level: str
    minutes: float = Field(gt=0)
    severities: list[Level]
    status: str | None = None


class Escalation(BaseModel):
    model_config = _strict()
    roles: list[str] = Field(min_length=1)
    severity: Literal["info", "warning", "urgent", "critical"] = "urgent"


class Merge(BaseModel):
    model_config = _strict()
    window_hours: float = Field(gt=0)
    same_subtype: bool = True


class ReportingDoc(BaseModel):
    model_config = _strict()
    format: str
    version: str
    note: str | None = None
    flat_recipients: list[Recipient]
    command_levels: dict[str, CommandLevel]
    department_target_s: float = Field(gt=0)
    deadlines: list[DeadlineRule]
    escalation: Escalation
    merge: Merge

    @model_validator(mode="after")
    def _levels(self) -> ReportingDoc:
        for d in self.deadlines:
            if d.level not in self.command_levels:
                raise ValueError(f"deadline {d.code}: level {d.level!r} is not one of the command levels")
        if "district" not in self.command_levels:
            raise ValueError("the district command level must be configured")
        return self


@lru_cache(maxsize=1)
def reporting() -> ReportingDoc:
    return _load("reporting.json", ReportingDoc)  # type: ignore[no-any-return]


def required_command_levels(severity: str) -> list[str]:
    """The command levels that must know an incident of this severity (district first)."""
    return [code for code, lv in reporting().command_levels.items() if severity in lv.severities]


# ---------------------------------------------------------------- CAP profile


class CapLevel(BaseModel):
    model_config = _strict()
    zh: str
    en: str
    grade: str
    severity: Literal["Extreme", "Severe", "Moderate", "Minor", "Unknown"]
    urgency: Literal["Immediate", "Expected", "Future", "Past", "Unknown"]


class Geocode(BaseModel):
    model_config = _strict()
    valueName: str  # noqa: N815 - CAP's element name
    value: str


class CapProfile(BaseModel):
    model_config = _strict()
    format: str
    version: str
    note: str | None = None
    sender: str = Field(pattern=r"^[^\s,<&]+$")
    sender_name: str
    sender_name_en: str
    identifier_prefix: str = Field(pattern=r"^[^\s,<&]+$")
    web: str
    contact: str
    district_geocode: Geocode
    street_geocode_name: str
    levels: dict[Literal["red", "orange", "yellow", "blue"], CapLevel]
    exercise_note: str


@lru_cache(maxsize=1)
def cap_profile() -> CapProfile:
    return _load("cap.json", CapProfile)  # type: ignore[no-any-return]


# ---------------------------------------------------------------- mobilisation ladder


class Call(BaseModel):
    model_config = _strict()
    pool: str
    org_code: str = Field(min_length=1, max_length=40)
    org_name: str
    department_code: str | None = None
    duty: str
    area: Literal["incident", "street", "district"] = "incident"


class LadderLevel(BaseModel):
    model_config = _strict()
    inherits: Level | None = None
    approval: str
    approval_en: str
    resource_pools: list[str]
    calls: list[Call]


class Pool(BaseModel):
    model_config = _strict()
    zh: str
    en: str
    order: int


class LadderDoc(BaseModel):
    model_config = _strict()
    format: str
    version: str
    note: str | None = None
    pools: dict[str, Pool]
    levels: dict[Level, LadderLevel]

    @model_validator(mode="after")
    def _check(self) -> LadderDoc:
        for lv, spec in self.levels.items():
            for c in spec.calls:
                if c.pool not in self.pools:
                    raise ValueError(f"level {lv}: unknown pool {c.pool!r}")
            seen, cur = {lv}, spec.inherits
            while cur is not None:
                if cur in seen or cur not in self.levels:
                    raise ValueError(f"level {lv}: inheritance loops or names a missing level ({cur})")
                seen.add(cur)
                cur = self.levels[cur].inherits
        return self


@lru_cache(maxsize=1)
def ladder() -> LadderDoc:
    return _load("mobilisation.json", LadderDoc)  # type: ignore[no-any-return]


def ladder_calls(level: str) -> list[Call]:
    """What a response level calls up: its own calls and those of the levels it inherits; a later
    (higher) level's entry for the same (pool, organisation) replaces the lower one's."""
    doc = ladder()
    chain: list[LadderLevel] = []
    cur: str | None = level
    while cur is not None and cur in doc.levels:
        spec = doc.levels[cur]
        chain.append(spec)
        cur = spec.inherits
    out: dict[tuple[str, str], Call] = {}
    for spec in reversed(chain):
        for c in spec.calls:
            out[(c.pool, c.org_code)] = c
    return sorted(out.values(), key=lambda c: (doc.pools[c.pool].order, c.org_code))
