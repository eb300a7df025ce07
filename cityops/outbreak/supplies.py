"""Supplies for zones (保供): a request for the households inside a zone (food packs, medicine ...)
with the quantity derived from the zone's household count today (``zones.populations``), handed
over as a case to the responsible department through ``cityops.cases.service`` (the zone's street
centre, or the kind's department), tracked until delivered. When the emergency-resources module
exists the hand-over goes there instead (docs/outbreak.md)."""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops import clock
from cityops.errors import Conflict, InvalidInput, NotFound, Problem
from cityops.lifecycle import service as lifecycle
from cityops.outbreak import rules, zones
from cityops.outbreak.days import local_day
from cityops.outbreak.models import Outbreak, SupplyRequest
from cityops.outbreak.schemas import DeliveredIn, SupplyIn
from cityops.outbreak.scopes import SUPPLY_SCOPE, get_outbreak, get_zone
from cityops.security import audit, scope
from cityops.security.principal import Principal

OBJECT = "ob_supply"


def request(session: Session, principal: Principal, zone_ref: str | int, body: SupplyIn) -> dict[str, Any]:
    from cityops.cases import service as cases

    z = get_zone(session, principal, zone_ref, for_update=True)
    ob = session.get(Outbreak, z.outbreak_id)
    assert ob is not None
    rs = rules.get(ob.rule_set)
    kind = next((k for k in rs.supplies if k.code == body.kind), None)
    if kind is None:
        raise InvalidInput([Problem(f"未知的物资类别 unknown supply kind {body.kind!r}; known: "
                                    f"{', '.join(k.code for k in rs.supplies)}", ["body", "kind"], "value_error")])
    if z.state not in kind.zones:
        raise Conflict([Problem(f"{kind.zh}只供应{'、'.join(kind.zones)}，该区域为 {z.state} "
                                f"{kind.code} is for {', '.join(kind.zones)} zones", ["body", "kind"], "conflict")])
    now = clock.now()
    pop = zones.populations(session, [z], rs, day=local_day(now))[0]
    households = int(pop["households"])
    if households <= 0:
        raise Conflict([Problem("区域内没有住户 no household lives inside the zone", ["path", "zone"], "conflict")])
    qty = int(math.ceil(households * kind.per_household))
    dept = f"jz{z.street_code}" if kind.department == "street" else kind.department
    rp = z.geom.representative_point()
    text = (f"{z.name}（{z.code}，{z.state}）{kind.zh} {qty}{kind.unit}：{households} 户 × {kind.per_household}"
            f"{'；' + body.note if body.note else ''}")
    case = cases.open_domain_case(session, principal, category_code=kind.category_code, lon=rp.x, lat=rp.y,
                                  title=f"保供：{z.name}{kind.zh}"[:200], description=text, department_code=dept,
                                  note=f"疫情保供需求 outbreak supplies request ({ob.code})",
                                  external_id=f"{z.code}-{kind.code}"[:64], urgency="urgent")
    row = SupplyRequest(zone_id=z.id, outbreak_id=ob.id, kind=kind.code, households=households, quantity=qty,
                        unit=kind.unit, department_code=dept, state="requested", case_id=case["case_id"],
                        case_no=case["case_no"], street_code=z.street_code, community_code=z.community_code,
                        requested_at=now, requested_by=principal.username, note=body.note)
    session.add(row)
    session.flush()
    lifecycle.add_entry(session, principal, OBJECT, row.id, "request", at=now, to_state="requested", note=text,
                        data={"case_no": case["case_no"], "department": dept})
    audit.record(session, principal, "ob_supply.request", OBJECT, row.id,
                 detail={"zone": z.code, "kind": kind.code, "quantity": qty, "case": case["case_no"]})
    return supply_dict(row, rs, case.get("state"))


def _get(session: Session, principal: Principal, supply_id: int) -> SupplyRequest:
    row = session.scalar(select(SupplyRequest).where(SupplyRequest.id == supply_id,
                                                     scope.clause(principal, SUPPLY_SCOPE)).with_for_update())
    if row is None:
        raise NotFound([Problem(f"未找到保供需求 supply request {supply_id} not found", ["path", "supply"], "not_found")])
    return row


def delivered(session: Session, principal: Principal, supply_id: int, body: DeliveredIn) -> dict[str, Any]:
    row = _get(session, principal, supply_id)
    if row.state != "requested":
        raise Conflict([Problem(f"该需求状态为 {row.state} the request is {row.state}", ["path", "supply"], "conflict")])
    now = clock.now()
    row.state, row.delivered_at = "delivered", now
    row.delivered_quantity = body.quantity if body.quantity is not None else row.quantity
    lifecycle.add_entry(session, principal, OBJECT, row.id, "deliver", at=now, from_state="requested",
                        to_state="delivered", note=body.note, data={"quantity": row.delivered_quantity})
    audit.record(session, principal, "ob_supply.deliver", OBJECT, row.id, detail={"quantity": row.delivered_quantity})
    ob = session.get(Outbreak, row.outbreak_id)
    assert ob is not None
    return supply_dict(row, rules.get(ob.rule_set))


def supply_dict(row: SupplyRequest, rs: rules.RuleSet, case_state: str | None = None) -> dict[str, Any]:
    kind = next((k for k in rs.supplies if k.code == row.kind), None)
    return {"id": row.id, "zone_id": row.zone_id, "kind": row.kind, "kind_label": kind.zh if kind else row.kind,
            "households": row.households, "quantity": row.quantity, "unit": row.unit,
            "department_code": row.department_code, "state": row.state, "case_id": row.case_id,
            "case_no": row.case_no, "case_state": case_state, "street_code": row.street_code,
            "requested_at": row.requested_at, "delivered_at": row.delivered_at,
            "delivered_quantity": row.delivered_quantity}


def list_supplies(session: Session, principal: Principal, ob_ref: str | int) -> list[dict[str, Any]]:
    from cityops.cases import service as cases

    ob = get_outbreak(session, ob_ref)
    rs = rules.get(ob.rule_set)
    rows = list(session.scalars(select(SupplyRequest).where(SupplyRequest.outbreak_id == ob.id,
                                                            scope.clause(principal, SUPPLY_SCOPE))
                                .order_by(SupplyRequest.id)))
    states = cases.case_states(session, [r.case_id for r in rows if r.case_id])
    return [supply_dict(r, rs, states.get(r.case_id or 0)) for r in rows]
