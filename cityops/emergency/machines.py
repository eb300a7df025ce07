"""The three lifecycles of emergency command as ``cityops.lifecycle`` machines; their transition
tables are data (``data/incident_lifecycle.json``, ``task_lifecycle.json``, ``warning_lifecycle.json``).

The machines name the guards, requirements and effects the tables may use; the effects live in
the modules that own the work (``tasks.apply_level``, ``alerts.issue``...) and are looked up when
they run, so this module imports no service.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from cityops.emergency.rules import DATA, LEVELS
from cityops.errors import Problem
from cityops.lifecycle import Context, Machine
from cityops.lifecycle.machine import Guarded, Table, requirement_field


def _body(ctx: Context, key: str) -> Any:
    b = ctx.body
    return b.get(key) if isinstance(b, dict) else getattr(b, key, None)


def _level_required(ctx: Context) -> list[Problem]:
    v = _body(ctx, "level")
    if v not in LEVELS:
        return [Problem(f"需给出响应级别 a response level is needed: one of {', '.join(LEVELS)} (got {v!r})",
                        ["body", "level"], "missing" if v is None else "value_error")]
    return []


def _call(module: str, fn: str) -> Any:
    def run(ctx: Context) -> Any:
        import importlib

        return getattr(importlib.import_module(f"cityops.emergency.{module}"), fn)(ctx)

    return run


def _plan_required(ctx: Context) -> list[Problem]:
    v = _body(ctx, "plan")
    if not isinstance(v, str) or not v.strip():
        return [Problem("需指定预案代码 a plan code is needed", ["body", "plan"], "missing")]
    return []


INCIDENT = Machine(
    name="incident",
    states={"reported": {"zh": "接报", "en": "Reported"}, "initial_response": {"zh": "先期处置", "en": "Initial response"},
            "responding": {"zh": "应急响应", "en": "Responding"}, "ended": {"zh": "应急结束", "en": "Response ended"},
            "aftermath": {"zh": "善后处置与评估", "en": "Aftermath and evaluation"},
            "closed": {"zh": "已归档", "en": "Closed"}, "merged": {"zh": "已合并", "en": "Merged"},
            "dismissed": {"zh": "已核销（误报）", "en": "Dismissed (false report)"}},
    actions={"initial_response": {"zh": "先期处置", "en": "Start initial response"},
             "respond": {"zh": "启动应急响应", "en": "Launch the response"},
             "adjust_level": {"zh": "调整响应级别", "en": "Change the response level"},
             "activate_plan": {"zh": "启动预案", "en": "Activate a plan"},
             "end_response": {"zh": "终止应急响应", "en": "End the response"},
             "resume_response": {"zh": "恢复应急响应", "en": "Resume the response"},
             "start_aftermath": {"zh": "转入善后与评估", "en": "Start aftermath and evaluation"},
             "close": {"zh": "评估归档", "en": "Close with the evaluation"},
             "merge": {"zh": "合并重复事件", "en": "Merge into another incident"},
             "dismiss": {"zh": "核销（误报）", "en": "Dismiss as a false report"}},
    default_permission="incident.act",
    guards={"level_changes": Guarded(lambda c: _body(c, "level") != c.obj.response_level,
                                     "响应级别未变化 the response level is already that level")},
    requirements={"level": _level_required, "plan": _plan_required,
                  "target": requirement_field("target", "需指定合并到的事件 the incident to merge into is needed"),
                  "summary": requirement_field("summary", "需填写评估结论 an evaluation summary is needed"),
                  "reason": requirement_field("reason", "需填写原因 a reason is needed")},
    effects={"apply_level": _call("tasks", "apply_level"), "stand_down": _call("tasks", "stand_down"),
             "merge": _call("incidents", "merge_effect")},
)


def _task_actor(ctx: Context) -> str | None:
    """A department acts on its own tasks; a street centre's tasks also by that street's operators;
    commanders on any task they can see."""
    p, task = ctx.principal, ctx.obj
    if p.can("incident.act"):
        return None
    if p.department_code and p.department_code == task.owner_department_code:
        return None
    if (p.department_code is None and p.area_code and task.owner_department_code == f"jz{p.area_code}"):
        return None
    return (f"只有责任部门可办理此任务 only the owner department ({task.owner_department_code}) may act on this task")


TASK = Machine(
    name="emergency_task",
    states={"open": {"zh": "待接收", "en": "Open"}, "acknowledged": {"zh": "已接收", "en": "Acknowledged"},
            "in_progress": {"zh": "处置中", "en": "In progress"}, "done": {"zh": "已完成", "en": "Done"},
            "retired": {"zh": "已撤销", "en": "Retired"}},
    actions={"acknowledge": {"zh": "接收", "en": "Acknowledge"}, "start": {"zh": "开始处置", "en": "Start"},
             "complete": {"zh": "完成", "en": "Complete"}, "reopen": {"zh": "重新打开", "en": "Reopen"},
             "retire": {"zh": "撤销", "en": "Retire"}},
    default_permission="task.act",
    requirements={"reason": requirement_field("reason", "需填写原因 a reason is needed")},
    effects={"stamp": _call("tasks", "stamp_effect")},
    actor_check=_task_actor,
)


def _warning_actor(ctx: Context) -> str | None:
    t = ctx.transition
    if t is not None and t.action == "approve":
        p, w = ctx.principal, ctx.obj
        if (p.account_id is not None and p.account_id == w.drafted_by_id) or p.username == w.drafted_by:
            return "审核人不能是起草人 the approver must not be the drafter"
    return None


def _changes_required(ctx: Context) -> list[Problem]:
    v = _body(ctx, "changes")
    if not isinstance(v, dict) or not v:
        return [Problem("需给出调整内容 the changes to issue are needed", ["body", "changes"], "missing")]
    return []


WARNING = Machine(
    name="public_warning",
    states={"draft": {"zh": "草稿", "en": "Draft"}, "approved": {"zh": "已审核", "en": "Approved"},
            "published": {"zh": "已发布", "en": "Published"}, "cancelled": {"zh": "已解除", "en": "Cancelled"},
            "discarded": {"zh": "已作废", "en": "Discarded"}},
    actions={"approve": {"zh": "审核通过", "en": "Approve"}, "reject": {"zh": "退回修改", "en": "Send back"},
             "publish": {"zh": "发布", "en": "Publish"}, "update": {"zh": "调整（更新）", "en": "Update"},
             "cancel": {"zh": "解除", "en": "Cancel"}, "discard": {"zh": "作废", "en": "Discard"}},
    default_permission="warning.draft",
    requirements={"reason": requirement_field("reason", "需填写原因 a reason is needed"),
                  "changes": _changes_required},
    effects={"record_approval": _call("alerts", "record_approval"), "clear_approval": _call("alerts", "clear_approval"),
             "issue_alert": _call("alerts", "issue_alert"), "apply_changes": _call("alerts", "apply_changes"),
             "issue_update": _call("alerts", "issue_update"), "issue_cancel": _call("alerts", "issue_cancel")},
    actor_check=_warning_actor,
)


@lru_cache(maxsize=1)
def incident_table() -> Table:
    return INCIDENT.load_file(DATA / "incident_lifecycle.json")


@lru_cache(maxsize=1)
def task_table() -> Table:
    return TASK.load_file(DATA / "task_lifecycle.json")


@lru_cache(maxsize=1)
def warning_table() -> Table:
    return WARNING.load_file(DATA / "warning_lifecycle.json")


def from_states(table: Table, action: str) -> list[str]:
    """The states a table lets ``action`` start from (e.g. which tasks a level change may retire)."""
    return sorted({t.from_state for t in table.transitions.values() if t.action == action})


def states_pattern(machine: Machine) -> str:
    """The query pattern of a comma-separated list of ``machine``'s states (documented in OpenAPI)."""
    one = "(" + "|".join(sorted(machine.states)) + ")"
    return f"^({one}(,{one})*)?$"  # (empty: no filter)


def states_out(machine: Machine, lang: str = "zh") -> dict[str, str]:
    return {k: str(v.get("en" if lang == "en" else "zh", k)) for k, v in machine.states.items()}


STEP_LABELS: dict[str, tuple[str, str]] = {
    "report": ("接报", "Reported"), "report_merged": ("重复报告已合并", "Report merged"),
    "info_report": ("信息报告", "Information report"), "report_overdue": ("信息报告超时", "Report overdue"),
    "absorb": ("合并事件", "Absorbed an incident"), "mobilisation_ack": ("动员已确认", "Call-up acknowledged"),
    "draft": ("起草", "Drafted"), "edit": ("修改草稿", "Draft edited"), "overdue": ("任务超时", "Task overdue"),
    "import": ("导入版本", "Version imported"), "drill": ("演练", "Drill held"),
    "review_reminder": ("修订提醒", "Review reminder"), "drill_reminder": ("演练提醒", "Drill reminder"),
}


def label_timeline(rows: list[dict[str, Any]], machine: Machine | None, lang: str = "zh") -> list[dict[str, Any]]:
    """Timeline rows with the labels of their action and states (zh, or en)."""
    k = "en" if lang == "en" else "zh"
    for r in rows:
        a = r["action"]
        if machine is not None and a in machine.actions:
            r["action_label"] = machine.actions[a].get(k, a)
        else:
            r["action_label"] = STEP_LABELS.get(a, (a, a))[1 if k == "en" else 0]
        if machine is not None:
            for f in ("from_state", "to_state"):
                st = r.get(f)
                r[f"{f}_label"] = machine.states.get(st, {}).get(k, st) if st else None
    return rows
