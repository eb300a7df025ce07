"""The outbreak rule sets (versioned data, ``data/rules_default.json``): case classifications,
person categories with their quarantine / monitoring periods and test days, the zone levels with
their downgrade rules, supply kinds. Templates after public-health.md §4.1–4.3 (protocol version 9
and the November 2022 "20 measures"); validated at load, an unknown reference is refused by name."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cityops.errors import InvalidInput, NotFound, Problem

HERE = Path(__file__).resolve().parent
DEFAULT_FILE = HERE / "data" / "rules_default.json"


class Classification(BaseModel):
    model_config = ConfigDict(extra="forbid")
    zh: str
    en: str
    source: bool = Field(description="a case of this class makes its contacts 密接 and counts as a new case in a zone")


class ContactRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    zh: str
    enabled: bool = True
    quarantine: str = "home"
    quarantine_days: int = Field(ge=0, le=60)
    monitoring_days: int = Field(ge=0, le=60)
    test_days: list[int] = Field(default_factory=list)
    monitoring_test_days: list[int] = Field(default_factory=list)


class ZoneLevel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=r"^[a-z_]{2,20}$")
    zh: str
    en: str
    rank: int
    downgrade_after_days: int | None = Field(default=None, ge=1, le=90)
    after_downgrade_days: int | None = Field(default=None, ge=1, le=90)
    to: str | None = None
    slogan: str = ""
    supplies: bool = False
    case_upgrades_to: str | None = None


class SupplyKind(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=r"^[a-z_]{2,30}$")
    zh: str
    en: str
    per_household: float = Field(gt=0)
    unit: str
    department: str = Field(description='"street": the street centre of the zone (jz<street code>); else a department code')
    zones: list[str]
    # the case category the request is opened in (the default catalogue has no 保供 category yet:
    # 209099 其他街面秩序问题 until it has one)
    category_code: str = Field(default="209099", pattern=r"^\d{4,16}$")


class RuleSet(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=r"^[a-z0-9-]{2,40}$")
    disease: str = Field(pattern=r"^[a-z0-9_]{2,30}$")
    disease_zh: str
    name_zh: str
    name_en: str
    version: str
    valid_from: str
    classifications: dict[str, Classification]
    lookback_days: int = Field(ge=0, le=30, description="a source case is infectious from onset (or sampling) minus this")
    close: ContactRule
    secondary: ContactRule
    zones: list[ZoneLevel]
    supplies: list[SupplyKind] = Field(default_factory=list)
    vulnerable: dict[str, int] = Field(default_factory=lambda: {"elderly_age": 60})

    @model_validator(mode="after")
    def _refs(self) -> RuleSet:
        codes = {z.code for z in self.zones}
        for i, z in enumerate(self.zones):
            for attr in ("to", "case_upgrades_to"):
                v = getattr(z, attr)
                if v is not None and v not in codes:
                    raise ValueError(f"zones[{i}].{attr}: unknown zone level {v!r} (levels: {', '.join(sorted(codes))})")
        for i, s in enumerate(self.supplies):
            bad = sorted(set(s.zones) - codes)
            if bad:
                raise ValueError(f"supplies[{i}].zones: unknown zone level(s) {', '.join(bad)}")
        if not any(c.source for c in self.classifications.values()):
            raise ValueError("classifications: at least one class must be a source of contacts")
        return self

    def zone(self, code: str) -> ZoneLevel:
        for z in self.zones:
            if z.code == code:
                return z
        raise InvalidInput([Problem(f"未知的区域等级 unknown zone level {code!r}; levels: "
                                    f"{', '.join(z.code for z in self.zones)}", ["body", "level"], "value_error")])

    def source_classes(self) -> set[str]:
        return {k for k, c in self.classifications.items() if c.source}


class RuleDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: str
    note: str = ""
    rule_sets: list[RuleSet]


def parse(doc: object, loc: str = "rules") -> dict[str, RuleSet]:
    try:
        parsed = RuleDoc.model_validate(doc)
    except ValidationError as exc:
        raise InvalidInput([Problem(e["msg"], [loc, *e["loc"]], "value_error") for e in exc.errors()]) from None
    return {r.code: r for r in parsed.rule_sets}


@lru_cache
def rule_sets() -> dict[str, RuleSet]:
    return parse(json.loads(DEFAULT_FILE.read_text(encoding="utf-8")), DEFAULT_FILE.name)


def get(code: str) -> RuleSet:
    rs = rule_sets().get(code)
    if rs is None:
        raise NotFound([Problem(f"未知的规则集 unknown rule set {code!r}; known: {', '.join(rule_sets())}",
                                ["body", "rule_set"], "not_found")])
    return rs


def default_for(disease: str) -> RuleSet:
    """The rule set listed first for a disease (the file's order: the protocol a new outbreak uses
    unless another is named)."""
    sets = [r for r in rule_sets().values() if r.disease == disease]
    if not sets:
        raise NotFound([Problem(f"没有该病种的规则集 no rule set for disease {disease!r}", ["body", "disease"],
                                "not_found")])
    return sets[0]
