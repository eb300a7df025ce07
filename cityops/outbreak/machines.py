"""The lifecycles of outbreak command (``cityops.lifecycle``): the outbreak mode (table shipped as
``data/outbreak_lifecycle.json``) and the zones, whose table is built from the rule set's zone
levels (each level's ``to`` is its downgrade, ``case_upgrades_to`` its upgrade; every level may be
lifted with a reason), so the levels stay data of the rule set."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from cityops.lifecycle import Context, Machine
from cityops.lifecycle.machine import Table, requirement_field
from cityops.outbreak.rules import RuleSet, get

HERE = Path(__file__).resolve().parent
LIFTED = "lifted"


def _stamp_end(ctx: Context) -> None:
    ctx.obj.ended_at = ctx.at


def _stamp_resume(ctx: Context) -> None:
    ctx.obj.ended_at = None


OUTBREAK = Machine(
    name="ob_outbreak",
    states={"active": {"zh": "战时（启用）", "en": "active (wartime)"}, "ended": {"zh": "已关闭（平时）", "en": "ended"}},
    actions={"end": {"zh": "关闭战时模式", "en": "switch outbreak mode off"},
             "resume": {"zh": "重新启用", "en": "switch outbreak mode on again"}},
    default_permission="outbreak.command",
    requirements={"reason": requirement_field("reason", "需填写原因 a reason is needed")},
    effects={"stamp_end": _stamp_end, "stamp_resume": _stamp_resume},
)


@lru_cache
def outbreak_table() -> Table:
    return OUTBREAK.load_file(HERE / "data" / "outbreak_lifecycle.json")


def _level(ctx: Context) -> None:
    """A zone's new level starts its own count (the downgrade rule of the new level applies)."""
    ctx.obj.level_since = ctx.at.date() if ctx.body is None or not isinstance(ctx.body, dict) or \
        ctx.body.get("day") is None else ctx.body["day"]
    ctx.obj.by_downgrade = ctx.transition is not None and ctx.transition.action == "downgrade"


def _lift(ctx: Context) -> None:
    day = ctx.body.get("day") if isinstance(ctx.body, dict) else None
    ctx.obj.lifted_on = day or ctx.at.date()
    ctx.obj.downgrade_due = None


def zone_machine(rules: RuleSet) -> Machine:
    states: dict[str, dict[str, Any]] = {z.code: {"zh": z.zh, "en": z.en} for z in rules.zones}
    states[LIFTED] = {"zh": "已解除", "en": "lifted"}
    return Machine(
        name="ob_zone", states=states,
        actions={"downgrade": {"zh": "降级（连续无新增病例）", "en": "downgrade (no new case for N days)"},
                 "upgrade": {"zh": "升级（区域内出现病例）", "en": "upgrade (a case inside)"},
                 "lift": {"zh": "解除管控", "en": "lift"}},
        default_permission="outbreak.act",
        requirements={"reason": requirement_field("reason", "需填写原因 a reason is needed")},
        effects={"level": _level, "lift": _lift},
    )


@lru_cache
def zone_table(rule_set: str) -> Table:
    rules = get(rule_set)
    rows: list[dict[str, Any]] = []
    for z in rules.zones:
        if z.downgrade_after_days is not None:
            to = z.to or LIFTED
            rows.append({"from": z.code, "action": "downgrade", "to": to,
                         "effects": ["level"] if to != LIFTED else ["lift"]})
        if z.case_upgrades_to:
            rows.append({"from": z.code, "action": "upgrade", "to": z.case_upgrades_to, "effects": ["level"]})
        rows.append({"from": z.code, "action": "lift", "to": LIFTED, "required": ["reason"], "effects": ["lift"]})
    return zone_machine(rules).table(rows, loc=["rules", rule_set, "zones"], version=rules.version)
