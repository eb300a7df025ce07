"""The lifecycles of the resource domain as ``cityops.lifecycle`` machines; their transition tables
are data (``data/shipment_lifecycle.json``, ``data/requisition_lifecycle.json``).

Effects live in the modules that own the work (``shipments``, ``requisitions``) and are looked up
when they run, so this module imports no service. A requisition is closed only when its return
and compensation records are complete (requirement ``records_complete``, which reads the record,
not the request; the table's ``close`` rows name it, and a CHECK constraint holds it in the
database as well).
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from pathlib import Path
from typing import Any

from cityops.errors import Problem
from cityops.lifecycle import Context, Machine
from cityops.lifecycle.machine import Table, requirement_field

DATA = Path(__file__).parent / "data"


def _call(module: str, fn: str) -> Any:
    def run(ctx: Context) -> Any:
        return getattr(importlib.import_module(f"cityops.resources.{module}"), fn)(ctx)

    return run


def _body(ctx: Context, key: str) -> Any:
    b = ctx.body
    return b.get(key) if isinstance(b, dict) else getattr(b, key, None)


def _fields(*names: str, msg: str) -> Any:
    def check(ctx: Context) -> list[Problem]:
        out = []
        for n in names:
            v = _body(ctx, n)
            if v is None or (isinstance(v, str) and not v.strip()):
                out.append(Problem(f"{msg}: 缺少 {n} ({n} is needed)", ["body", n], "missing"))
        return out

    return check


def records_missing(r: Any) -> list[Problem]:
    """What a requisition still lacks before it may be closed (empty when complete)."""
    out = []
    need = [("returned_at", "归还时间 the return date"), ("condition_after", "归还时状况 the condition at return"),
            ("compensation_amount", "补偿金额 the compensation amount"),
            ("compensation_basis", "补偿依据 the basis of the compensation")]
    for attr, label in need:
        v = getattr(r, attr)
        if v is None or (isinstance(v, str) and not v.strip()):
            out.append(Problem(f"未记录{label}，不能结案 not recorded: cannot close", ["requisition", attr],
                               "missing_record"))
    if r.compensation_amount and r.compensation_paid_at is None:
        out.append(Problem("补偿尚未支付，不能结案 the compensation is not paid: cannot close",
                           ["requisition", "compensation_paid_at"], "missing_record"))
    return out


SHIPMENT = Machine(
    name="rs_shipment",
    states={"committed": {"zh": "已承诺（预留）", "en": "Committed"}, "dispatched": {"zh": "已发运", "en": "Dispatched"},
            "received": {"zh": "已签收", "en": "Received"}, "returned": {"zh": "已归还", "en": "Returned"},
            "cancelled": {"zh": "已取消", "en": "Cancelled"}},
    actions={"dispatch": {"zh": "发运出库", "en": "Dispatch"}, "receive": {"zh": "签收", "en": "Receive"},
             "return": {"zh": "归还入库", "en": "Return to stock"}, "cancel": {"zh": "取消", "en": "Cancel"}},
    default_permission="supply.dispatch",
    requirements={"returned_qty": requirement_field("returned_qty", "需填写归还数量 the quantity returned is needed"),
                  "reason": requirement_field("reason", "需填写原因 a reason is needed")},
    effects={"issue": _call("shipments", "issue_effect"), "receive": _call("shipments", "receive_effect"),
             "restock": _call("shipments", "restock_effect"), "release": _call("shipments", "release_effect")},
)


def _records_complete(ctx: Context) -> list[Problem]:
    return records_missing(ctx.obj)


REQUISITION = Machine(
    name="rs_requisition",
    states={"registered": {"zh": "已登记", "en": "Registered"}, "in_use": {"zh": "征用中", "en": "In use"},
            "returned": {"zh": "已归还", "en": "Returned"}, "closed": {"zh": "已结案", "en": "Closed"},
            "cancelled": {"zh": "已撤销", "en": "Cancelled"}},
    actions={"take": {"zh": "实施征用（交接）", "en": "Take over"},
             "record_return": {"zh": "登记归还", "en": "Record the return"},
             "record_compensation": {"zh": "登记补偿", "en": "Record the compensation"},
             "record_payment": {"zh": "登记补偿支付", "en": "Record the payment"},
             "close": {"zh": "结案", "en": "Close"}, "cancel": {"zh": "撤销", "en": "Cancel"}},
    default_permission="requisition.manage",
    requirements={"return": _fields("returned_at", "condition_after", msg="登记归还 recording the return"),
                  "compensation": _fields("amount", "basis", msg="登记补偿 recording the compensation"),
                  "payment": _fields("paid_at", msg="登记支付 recording the payment"),
                  "records_complete": _records_complete,
                  "reason": requirement_field("reason", "需填写原因 a reason is needed")},
    effects={"take": _call("requisitions", "take_effect"), "record_return": _call("requisitions", "return_effect"),
             "record_compensation": _call("requisitions", "compensation_effect"),
             "record_payment": _call("requisitions", "payment_effect")},
)


@lru_cache(maxsize=1)
def shipment_table() -> Table:
    return SHIPMENT.load_file(DATA / "shipment_lifecycle.json")


@lru_cache(maxsize=1)
def requisition_table() -> Table:
    return REQUISITION.load_file(DATA / "requisition_lifecycle.json")


def states_out(machine: Machine, lang: str = "zh") -> dict[str, str]:
    return {k: str(v.get("en" if lang == "en" else "zh", k)) for k, v in machine.states.items()}
