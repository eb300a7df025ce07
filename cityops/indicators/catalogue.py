"""The indicator catalogue as versioned data: indicators (what is measured, how often, by whom)
and rules (thresholds, rates, silence, baselines, composites, lift and auto-case), validated as
a whole (every problem named with its place in the document), stored as a version, one active.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cityops.db import database_key
from cityops.errors import InvalidInput, NotFound, Problem
from cityops.indicators.models import CatalogueVersion
from cityops.indicators.rules import AGGREGATES, LEVELS, OPS, RANK, Band, SlotRule
from cityops.security.principal import Principal

DATA = Path(__file__).resolve().parent / "data"
DEFAULT = DATA / "catalogue_default.json"
KINDS = ("amount", "gauge")
RULE_KINDS = ("threshold", "rate", "silence", "baseline", "composite")
AREA_LEVELS = {"grid": 15, "community": 12, "street": 9, "district": 6}
AGG_LEVELS = ("point", "grid", "community", "street", "district")


@dataclass(frozen=True)
class IndicatorDef:
    code: str
    name_zh: str
    name_en: str
    category: str
    unit: str
    kind: str
    interval_s: int
    definition: str
    source: str
    aggregation: str
    level: str
    owner_department_code: str | None
    baseline: dict[str, Any]

    @property
    def interval_ms(self) -> int:
        return self.interval_s * 1000


@dataclass(frozen=True)
class RuleDef:
    code: str
    kind: str
    name_zh: str
    name_en: str
    category: str
    owner_department_code: str | None
    area_level: str
    indicators: tuple[str, ...]
    reference: str
    raw: dict[str, Any]
    slot: SlotRule | None = None  # threshold / rate
    silence_bands: tuple[tuple[int, int], ...] = ()
    score_bands: tuple[tuple[int, float], ...] = ()
    weeks: int = 4
    z: float = 2.0
    min_sd: float = 0.0
    direction: str = "above"
    components: tuple[tuple[str, int], ...] = ()
    composite_level: int = -1
    auto_case: dict[str, Any] | None = None
    auto_case_rank: int = 99

    @property
    def indicator(self) -> str | None:
        return self.indicators[0] if self.indicators else None

    def params(self) -> set[str]:
        out = set()
        if self.slot is not None:
            for b in self.slot.bands:
                for v in (b.value, b.clear):
                    if isinstance(v, str):
                        out.add(v.split(":", 1)[1])
        return out


@dataclass
class Catalogue:
    id: int
    version: str
    doc: dict[str, Any]
    indicators: dict[str, IndicatorDef]
    rules: dict[str, RuleDef]
    categories: dict[str, str]
    by_indicator: dict[str, list[RuleDef]] = field(default_factory=dict)

    def rules_for(self, indicator: str) -> list[RuleDef]:
        return self.by_indicator.get(indicator, [])


# ------------------------------------------------------------------------------------ validation

def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v == v and abs(v) != float("inf")


def _text(d: dict[str, Any], key: str, at: list[Any], probs: list[Problem], *, required: bool = True,
          n: int = 200) -> str:
    v = d.get(key)
    if v is None and not required:
        return ""
    if not isinstance(v, str) or not v.strip() or len(v) > n:
        probs.append(Problem(f"{key} 须为1-{n}个字符 {key} must be 1-{n} characters", [*at, key], "value_error"))
        return ""
    return v


def _duration(d: dict[str, Any], key: str, at: list[Any], probs: list[Problem], default: int = 0) -> int:
    v = d.get(key, default)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0 or v > 90 * 86400:
        probs.append(Problem(f"{key} 须为0至7776000之间的整数秒 {key} must be whole seconds 0..7776000",
                             [*at, key], "value_error"))
        return default
    return v


def _threshold(v: Any, at: list[Any], probs: list[Problem], *, optional: bool = False) -> float | str | None:
    if v is None and optional:
        return None
    if _num(v):
        return float(v)
    if isinstance(v, str) and v.startswith("param:") and v[6:].isidentifier():
        return v
    probs.append(Problem("阈值须为数字或 param:<设备参数名> a threshold is a number or param:<device parameter>",
                         at, "value_error"))
    return None


def _level(v: Any, at: list[Any], probs: list[Problem]) -> int:
    if v not in RANK:
        probs.append(Problem(f"未知级别 unknown level {v!r}; levels: {', '.join(LEVELS)}", at, "unknown_level"))
        return -1
    return RANK[v]


def _slot_rule(r: dict[str, Any], at: list[Any], ind: IndicatorDef | None, probs: list[Problem]) -> SlotRule | None:
    bands_in = r.get("bands")
    if not isinstance(bands_in, list) or not bands_in:
        probs.append(Problem("bands 须为非空列表 bands must be a non-empty list", [*at, "bands"], "value_error"))
        return None
    bands = []
    for j, b in enumerate(bands_in):
        bat = [*at, "bands", j]
        if not isinstance(b, dict):
            probs.append(Problem("每个分级须为对象 a band is an object", bat, "type"))
            continue
        rank = _level(b.get("level"), [*bat, "level"], probs)
        stat = b.get("stat", "rate" if r.get("kind") == "rate" else "last")
        if r.get("kind") == "rate" and stat != "rate":
            probs.append(Problem("变化率规则的 stat 须为 rate a rate rule's stat is rate", [*bat, "stat"], "value_error"))
        if r.get("kind") == "threshold" and stat not in AGGREGATES:
            probs.append(Problem(f"未知统计量 unknown stat {stat!r}; one of {', '.join(AGGREGATES)}", [*bat, "stat"],
                                 "value_error"))
        op = b.get("op", ">=")
        if op not in OPS:
            probs.append(Problem(f"未知比较符 unknown operator {op!r}; one of {', '.join(OPS)}", [*bat, "op"], "value_error"))
        window = _duration(b, "window_s", bat, probs)
        n = 1
        if ind is not None:
            if window % ind.interval_s:
                probs.append(Problem(f"窗口须为采集周期 {ind.interval_s}s 的整数倍 window_s must be a multiple of the "
                                     f"indicator's interval {ind.interval_s}s", [*bat, "window_s"], "value_error"))
            n = max(1, window // ind.interval_s)
            if n > 5000:
                probs.append(Problem("窗口不能超过5000个周期 a window spans at most 5000 intervals", [*bat, "window_s"],
                                     "value_error"))
        if stat == "rate" and window <= 0:
            probs.append(Problem("变化率须有窗口 a rate needs window_s > 0", [*bat, "window_s"], "value_error"))
        value = _threshold(b.get("value"), [*bat, "value"], probs)
        clear = _threshold(b.get("clear"), [*bat, "clear"], probs, optional=True)
        dur = _duration(b, "min_duration_s", bat, probs)
        if rank >= 0 and value is not None:
            bands.append(Band(rank, str(stat), n, str(op), value, clear, dur * 1000))
    ranks = [b.rank for b in bands]
    if len(set(ranks)) != len(ranks):
        probs.append(Problem("每个级别只能有一个分级 one band per level", [*at, "bands"], "duplicate"))
    lift = r.get("lift") or {}
    if not isinstance(lift, dict):
        probs.append(Problem("lift 须为对象 lift is an object", [*at, "lift"], "type"))
        lift = {}
    after = _duration(lift, "after_s", [*at, "lift"], probs)
    if ind is None or not bands:
        return None
    return SlotRule(str(r.get("code")), ind.interval_ms, tuple(sorted(bands, key=lambda b: b.rank)), after * 1000)


def validate(doc: Any) -> tuple[dict[str, IndicatorDef], dict[str, RuleDef], dict[str, str]]:
    """Parse and check a catalogue document; every problem is listed (``InvalidInput``)."""
    probs: list[Problem] = []
    if not isinstance(doc, dict):
        raise InvalidInput([Problem("目录须为对象 the catalogue is an object", ["body"], "type")])
    doc = dict[str, Any](doc)
    cats = doc.get("categories")
    if not isinstance(cats, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in cats.items()):
        probs.append(Problem("categories 须为 {中文: English} a map of category names", ["body", "categories"], "type"))
        cats = {}
    if not isinstance(doc.get("version"), str) or not doc["version"].strip() or len(doc["version"]) > 60:
        probs.append(Problem("version 须为1-60个字符 version must be 1-60 characters", ["body", "version"], "value_error"))
    indicators: dict[str, IndicatorDef] = {}
    raw_inds: list[Any] = doc.get("indicators") if isinstance(doc.get("indicators"), list) else []
    for i, d in enumerate(raw_inds):
        at: list[Any] = ["body", "indicators", i]
        if not isinstance(d, dict):
            probs.append(Problem("指标须为对象 an indicator is an object", at, "type"))
            continue
        code = _text(d, "code", at, probs, n=40)
        if code and code in indicators:
            probs.append(Problem(f"重复的指标代码 duplicate indicator code {code}", [*at, "code"], "duplicate"))
        cat = _text(d, "category", at, probs, n=20)
        if cat and cat not in cats:
            probs.append(Problem(f"未知类别 unknown category {cat}", [*at, "category"], "unknown_category"))
        kind = d.get("kind", "gauge")
        if kind not in KINDS:
            probs.append(Problem(f"kind 须为 {'/'.join(KINDS)}", [*at, "kind"], "value_error"))
        interval = d.get("interval_s")
        if not isinstance(interval, int) or isinstance(interval, bool) or not 1 <= interval <= 86400:
            probs.append(Problem("interval_s 须为1-86400秒 interval_s must be 1..86400 s", [*at, "interval_s"], "value_error"))
            interval = 60
        agg = d.get("aggregation", "grid")
        if agg not in AGG_LEVELS:
            probs.append(Problem(f"aggregation 须为 {'/'.join(AGG_LEVELS)}", [*at, "aggregation"], "value_error"))
        if code:
            indicators[code] = IndicatorDef(
                code, _text(d, "name_zh", at, probs), _text(d, "name_en", at, probs), cat, _text(d, "unit", at, probs, n=20),
                str(kind), int(interval), str(d.get("definition") or ""), str(d.get("source") or ""), str(agg),
                str(d.get("level") or "meso"), d.get("owner_department_code"), dict(d.get("baseline") or {}))
    if not indicators:
        probs.append(Problem("至少需要一个指标 at least one indicator", ["body", "indicators"], "value_error"))
    rules: dict[str, RuleDef] = {}
    raw_rules: list[Any] = doc.get("rules") if isinstance(doc.get("rules"), list) else []
    codes = {r.get("code") for r in raw_rules if isinstance(r, dict)}
    for i, r in enumerate(raw_rules):
        at = ["body", "rules", i]
        if not isinstance(r, dict):
            probs.append(Problem("规则须为对象 a rule is an object", at, "type"))
            continue
        code = _text(r, "code", at, probs, n=60)
        if code and code in rules:
            probs.append(Problem(f"重复的规则代码 duplicate rule code {code}", [*at, "code"], "duplicate"))
        kind = r.get("kind")
        if kind not in RULE_KINDS:
            probs.append(Problem(f"未知规则类型 unknown rule kind {kind!r}; one of {', '.join(RULE_KINDS)}", [*at, "kind"],
                                 "value_error"))
            continue
        cat = _text(r, "category", at, probs, n=20)
        if cat and cat not in cats:
            probs.append(Problem(f"未知类别 unknown category {cat}", [*at, "category"], "unknown_category"))
        level = r.get("area_level", "grid")
        if level not in AREA_LEVELS:
            probs.append(Problem(f"area_level 须为 {'/'.join(AREA_LEVELS)}", [*at, "area_level"], "value_error"))
        inds: list[Any] = []
        if kind == "silence":
            inds = list(r["indicators"]) if isinstance(r.get("indicators"), list) else []
            if not inds:
                probs.append(Problem("silence 规则须列出指标 a silence rule lists its indicators", [*at, "indicators"],
                                     "value_error"))
        elif kind != "composite":
            inds = [r.get("indicator")]
        for j, ic in enumerate(inds):
            if ic not in indicators:
                probs.append(Problem(f"未知指标 unknown indicator {ic!r}", [*at, "indicators" if kind == "silence" else "indicator",
                                                                           *([j] if kind == "silence" else [])],
                                     "unknown_indicator"))
        ind = indicators.get(inds[0]) if inds and inds[0] in indicators else None
        extra: dict[str, Any] = {}
        if kind in ("threshold", "rate"):
            extra["slot"] = _slot_rule(r, at, ind, probs)
        elif kind == "silence":
            sb = []
            for j, b in enumerate(r.get("bands") or []):
                rank = _level(b.get("level") if isinstance(b, dict) else None, [*at, "bands", j, "level"], probs)
                n = b.get("intervals") if isinstance(b, dict) else None
                if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                    probs.append(Problem("intervals 须为正整数 intervals must be a positive integer",
                                         [*at, "bands", j, "intervals"], "value_error"))
                elif rank >= 0:
                    sb.append((rank, n))
            if not sb:
                probs.append(Problem("bands 须为非空列表 bands must be a non-empty list", [*at, "bands"], "value_error"))
            extra["silence_bands"] = tuple(sorted(sb))
        elif kind == "baseline":
            sb2 = []
            for j, b in enumerate(r.get("bands") or []):
                rank = _level(b.get("level") if isinstance(b, dict) else None, [*at, "bands", j, "level"], probs)
                z = b.get("score") if isinstance(b, dict) else None
                if not _num(z):
                    probs.append(Problem("score 须为数字 score must be a number", [*at, "bands", j, "score"], "value_error"))
                elif rank >= 0:
                    sb2.append((rank, float(z)))  # type: ignore[arg-type]
            weeks = r.get("weeks", 4)
            if not isinstance(weeks, int) or not 2 <= weeks <= 52:
                probs.append(Problem("weeks 须为2-52 weeks must be 2..52", [*at, "weeks"], "value_error"))
                weeks = 4
            if r.get("direction", "above") not in ("above", "below", "both"):
                probs.append(Problem("direction 须为 above/below/both", [*at, "direction"], "value_error"))
            extra.update(score_bands=tuple(sorted(sb2)), weeks=weeks, z=float(r.get("z") or 2.0),
                         min_sd=float(r.get("min_sd") or 0.0), direction=str(r.get("direction", "above")))
        elif kind == "composite":
            comps = []
            for j, c in enumerate(r.get("all_of") or []):
                cat2 = [*at, "all_of", j]
                if not isinstance(c, dict) or c.get("rule") not in codes or c.get("rule") == code:
                    probs.append(Problem(f"未知组成规则 unknown component rule {c.get('rule') if isinstance(c, dict) else c!r}",
                                         [*cat2, "rule"], "unknown_rule"))
                    continue
                comps.append((str(c["rule"]), _level(c.get("min_level"), [*cat2, "min_level"], probs)))
            if len(comps) < 2:
                probs.append(Problem("组合规则至少两个组成 a composite needs at least two components", [*at, "all_of"],
                                     "value_error"))
            extra.update(components=tuple(comps), composite_level=_level(r.get("level"), [*at, "level"], probs))
        auto = r.get("auto_case")
        if auto is not None:
            if not isinstance(auto, dict) or not isinstance(auto.get("category_code"), str):
                probs.append(Problem("auto_case 须含 category_code auto_case needs category_code", [*at, "auto_case"], "type"))
                auto = None
            else:
                extra["auto_case_rank"] = _level(auto.get("min_level"), [*at, "auto_case", "min_level"], probs)
                extra["auto_case"] = dict(auto)
        if code:
            rules[code] = RuleDef(code, str(kind), _text(r, "name_zh", at, probs), _text(r, "name_en", at, probs), cat,
                                  r.get("owner_department_code"), str(level), tuple(str(x) for x in inds),
                                  str(r.get("reference") or ""), dict(r), **extra)
    if probs:
        raise InvalidInput(probs)
    return indicators, rules, dict(cats)


def build(doc: dict[str, Any], cid: int = 0) -> Catalogue:
    indicators, rules, cats = validate(doc)
    by: dict[str, list[RuleDef]] = {}
    for r in rules.values():
        if r.kind in ("threshold", "rate"):
            by.setdefault(r.indicators[0], []).append(r)
    return Catalogue(cid, str(doc["version"]), doc, indicators, rules, cats, by)


# ------------------------------------------------------------------------------------ storage

_cache: dict[str, tuple[int, Catalogue]] = {}
_lock = threading.Lock()


def default_doc() -> dict[str, Any]:
    return dict(json.loads(DEFAULT.read_text(encoding="utf-8")))


def _sha(doc: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def publish(session: Session, principal: Principal, doc: dict[str, Any]) -> Catalogue:
    """Validate ``doc`` and make it the active version (a new version; the old ones are kept)."""
    cat = build(doc)
    if session.scalar(select(CatalogueVersion.id).where(CatalogueVersion.version == cat.version)) is not None:
        raise InvalidInput([Problem(f"版本 {cat.version} 已存在 version {cat.version} exists", ["body", "version"],
                                    "duplicate")])
    session.execute(update(CatalogueVersion).values(active=False))
    row = CatalogueVersion(version=cat.version, active=True, doc=doc, sha256=_sha(doc), created_by=principal.username[:120])
    session.add(row)
    session.flush()
    from cityops.security import audit

    audit.record(session, principal, "indicator_catalogue.publish", "indicator_catalogue", row.id,
                 detail={"version": cat.version})
    return active(session)


def ensure_default(session: Session, principal: Principal) -> Catalogue:
    """The active catalogue, seeding the shipped default when there is none."""
    if session.scalar(select(CatalogueVersion.id).where(CatalogueVersion.active.is_(True))) is None:
        return publish(session, principal, default_doc())
    return active(session)


def active(session: Session) -> Catalogue:
    row = session.execute(select(CatalogueVersion.id, CatalogueVersion.version).where(
        CatalogueVersion.active.is_(True))).first()
    if row is None:
        raise NotFound([Problem("没有启用的指标目录 no active indicator catalogue (cityops seed demo)", ["catalogue"],
                                "not_found")])
    key = database_key(session)
    hit = _cache.get(key)
    if hit is not None and hit[0] == row.id:
        return hit[1]
    with _lock:
        doc = session.scalar(select(CatalogueVersion.doc).where(CatalogueVersion.id == row.id))
        cat = build(dict(doc or {}), row.id)
        _cache[key] = (row.id, cat)
        return cat


def versions(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(select(CatalogueVersion.id, CatalogueVersion.version, CatalogueVersion.active,
                                  CatalogueVersion.created_at, CatalogueVersion.created_by)
                           .order_by(CatalogueVersion.id)).all()
    return [dict(r._mapping) for r in rows]
