"""Demo data of the case engine: reference data (departments, catalogue, calendar, rules,
transition table) and a realistic set of cases in every state, some overdue.

Cases are synthesised in bulk (not by replaying the workflow one action at a time): each case
walks the real transition table (the same rows the service checks) with delays drawn around
the category's time limits, stopping at its target state or at "now"; timeline rows, SLA steps
(with their timers for the open ones), department assignments and routing decisions are
written with multi-row inserts. Deterministic for a given ``rng_seed``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import numpy as np
from shapely.geometry import Point
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from cityops.cases import places, sla, workcal
from cityops.cases import reference as ref
from cityops.cases.models import (
    Case,
    CaseDepartment,
    CaseEvent,
    CaseReport,
    CaseStep,
    ConsultationMessage,
    RoutingDecision,
    Signal,
    table,
)
from cityops.cases.transitions import DEFAULT_TABLE
from cityops.cases.workflow_rules import steps as row_steps
from cityops.security.principal import SYSTEM

SOURCES = [("supervisor", 0.45), ("public", 0.18), ("hotline", 0.25), ("video_ai", 0.09), ("iot", 0.03)]
CHANNEL = {"supervisor": "app", "public": "web", "hotline": "phone", "video_ai": "sensor", "iot": "sensor"}
# (target state, weight)
TARGETS = [("evaluated", 0.22), ("closed", 0.26), ("reported", 0.04), ("accepted", 0.03), ("verifying", 0.04),
           ("verified", 0.02), ("registered", 0.04), ("dispatched", 0.07), ("acknowledged", 0.08),
           ("handled", 0.04), ("inspecting", 0.04), ("inspected", 0.02), ("not_registered", 0.03),
           ("voided", 0.02), ("sent_back", 0.03), ("suspended", 0.02)]
HOT = {"暴露垃圾": 6, "机动车乱停放": 6, "非机动车乱停放": 5, "占道经营": 5, "乱堆物堆料": 5, "店外经营": 4,
       "道路不洁": 4, "非法小广告": 4, "垃圾站（箱）满溢": 3, "积存垃圾渣土": 3, "私搭乱建": 3, "道路破损": 2,
       "路灯": 2, "上水井盖": 2, "污水井盖": 2, "绿地脏乱": 2, "施工扰民": 2, "油烟污染": 2, "道路积水": 2}
ACTORS = {"accept": "intake", "request_verification": "intake", "verify": "supervisor", "register": "shiftlead",
          "not_register": "shiftlead", "void": "shiftlead", "dispatch": "dispatcher", "acknowledge": "{dept}_handler",
          "send_back": "{dept}_handler", "report_back": "{dept}_handler", "request_inspection": "intake",
          "inspect": "supervisor", "close": "shiftlead", "rework": "shiftlead", "evaluate": "intake",
          "suspend": "shiftlead"}
ROLES = {"intake": "intake_operator", "supervisor": "supervisor", "shiftlead": "shift_lead", "dispatcher": "dispatcher"}


def _path(target: str, source: str, trusted: bool, rework: bool) -> list[tuple[str, dict[str, Any]]]:
    """Actions from 'reported' to ``target`` (following the transition table's happy path)."""
    a: list[tuple[str, dict[str, Any]]] = []
    if target == "reported":
        return a
    if target == "voided":
        return [("void", {"reason": "重复或无效上报 duplicate or invalid report"})]
    a.append(("accept", {}))
    if target == "accepted":
        return a
    if not trusted or target in ("verifying", "verified", "not_registered"):
        a.append(("request_verification", {}))
        if target == "verifying":
            return a
        a.append(("verify", {"result": "invalid" if target == "not_registered" else "valid"}))
        if target == "verified":
            return a
    if target == "not_registered":
        return [*a, ("not_register", {"reason": "经核实不属于立案范围 not within the registration criteria"})]
    a.append(("register", {}))
    if target == "registered":
        return a
    if target == "suspended":
        return [*a, ("suspend", {"reason": "涉及产权纠纷，待协调 ownership dispute pending"})]
    a.append(("dispatch", {}))
    if target == "dispatched":
        return a
    if target == "sent_back":
        return [*a, ("send_back", {"reason": "非本单位职责，请改派 not our responsibility"})]
    a.append(("acknowledge", {}))
    if target == "acknowledged":
        return a
    loops = [("report_back", {}), ("request_inspection", {}), ("inspect", {"result": "pass"})]
    if rework and target in ("closed", "evaluated"):
        a += [("report_back", {}), ("request_inspection", {}), ("inspect", {"result": "fail"}),
              ("rework", {"reason": "现场仍有问题，返工 the problem remains"}), ("acknowledge", {})]
    for act, extra in loops:
        a.append((act, extra))
        if (act == "report_back" and target == "handled") or (act == "request_inspection" and target == "inspecting") \
                or (act == "inspect" and target == "inspected"):
            return a
    a.append(("close", {}))
    if target == "closed":
        return a
    return [*a, ("evaluate", {"satisfaction": "satisfied"})]


def _back(now: dt.datetime, seconds: float, unit: str, cal: workcal.WorkCalendar) -> dt.datetime:
    """The time from which ``seconds`` of (working or natural) time have passed by ``now``."""
    if unit.startswith("natural_"):
        return now - dt.timedelta(seconds=seconds)
    lo, hi = now - dt.timedelta(seconds=seconds) - dt.timedelta(days=20), now
    for _ in range(30):
        mid = lo + (hi - lo) / 2
        if workcal.working_seconds_between(mid, now, cal) > seconds:
            lo = mid
        else:
            hi = mid
    return hi


def _points_in(geom: Any, n: int, rng: np.random.Generator) -> list[tuple[float, float]]:
    minx, miny, maxx, maxy = geom.bounds
    out: list[tuple[float, float]] = []
    for _ in range(200):
        xs = rng.uniform(minx, maxx, n * 3)
        ys = rng.uniform(miny, maxy, n * 3)
        for x, y in zip(xs, ys, strict=True):
            if geom.contains(Point(x, y)):
                out.append((float(x), float(y)))
                if len(out) >= n:
                    return out
    return out


def seed_demo(session: Session, district: Any = None, *, small: bool = False, rng_seed: int = 20210220,
              progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    tick = progress or (lambda _s, _d, _t: None)
    stage = "案件闭环 cases"
    ref.invalidate(session)
    out = ref.seed_reference(session, SYSTEM)
    session.flush()
    ref.invalidate(session)
    if session.scalar(select(Case.id).limit(1)) is not None:
        return out
    n = 300 if small else 3000
    tick(stage, 0, n)
    rng = np.random.default_rng(rng_seed + 4)
    from cityops.geo.demo import fake_mobile, fake_name
    from cityops.geo.models import Area

    grids = session.execute(select(Area.code, Area.geom, Area.population).where(Area.level == "grid",
                                                                                 Area.valid_to.is_(None))).all()
    if not grids:
        return out
    weights = np.array([max(1.0, float(g.population or 0)) for g in grids])
    gi = rng.choice(len(grids), size=n, p=weights / weights.sum())
    pts: list[tuple[float, float]] = []
    for k in gi:
        p = _points_in(grids[int(k)].geom, 1, rng)
        pts.append(p[0] if p else (grids[int(k)].geom.representative_point().x, grids[int(k)].geom.representative_point().y))
    lon = np.array([p[0] for p in pts])
    lat = np.array([p[1] for p in pts])
    where = places.locate(session, lon, lat)
    cats = list(ref.catalogue(session).by_version.get(ref.catalogue(session).active_id or -1, {}).values())
    cw = np.array([HOT.get(c.name_zh, 1.0) for c in cats])
    now = sla.now()
    pol = ref.policy(session)
    trusted_sources = set(pol.get("trusted_sources", []))
    depts = ref.departments(session)
    dept_codes = sorted(d for d, v in depts.items() if v.kind != "street_centre")

    case_rows: list[dict[str, Any]] = []
    plans: list[dict[str, Any]] = []
    for i in range(n):
        w = where[i]
        if w is None:
            continue
        cat = cats[int(rng.choice(len(cats), p=cw / cw.sum()))]
        source = str(rng.choice([s for s, _ in SOURCES], p=[p for _, p in SOURCES]))
        target = str(rng.choice([t for t, _ in TARGETS], p=np.array([p for _, p in TARGETS]) / sum(p for _, p in TARGETS)))
        open_target = ref.STATES[target]["open"]
        age_days = float(rng.exponential(2.0 if open_target else 9.0))
        age_days = min(age_days, 45.0)
        reported = now - dt.timedelta(days=age_days, minutes=float(rng.integers(0, 600)))
        urgency = cat.urgency_default if rng.random() > 0.05 else "urgent"
        person = source in ("public", "hotline")
        case_rows.append(dict(
            source=source, channel=CHANNEL[source], external_id=f"SH12345-{reported:%Y%m%d}-{i:05d}" if source == "hotline" else None,
            category_id=cat.id, category_code=cat.code, kind=cat.kind,
            title=f"{cat.name_zh}" + (f"：{w.street_code[-3:]}-{w.grid_code[-6:]}号网格" if rng.random() < 0.5 else ""),
            description=f"{cat.registration_criteria or cat.name_zh}（演示数据）", address=None,
            lon=float(lon[i]), lat=float(lat[i]), grid_code=w.grid_code, community_code=w.community_code,
            street_code=w.street_code, layer_codes=w.layers, urgency=urgency,
            appeal_type=str(rng.choice(["complaint", "help", "tip_off"])) if source == "hotline" else None,
            state="reported", reporter_name=fake_name(rng) if person else ("supervisor" if source == "supervisor" else None),
            reporter_phone=fake_mobile(rng) if person else None, reporter_count=1 + int(rng.poisson(0.3)),
            reported_at=reported, created_by="seed", updated_at=reported, version=1))
        plans.append({"k": i, "cat": cat, "target": target, "trusted": source in trusted_sources, "rework": rng.random() < 0.12,
                      "late": rng.random() < 0.12, "override": rng.random() < 0.06})
    def simulate(cid: int, row: dict[str, Any], plan: dict[str, Any], t0: dt.datetime,
                 cutoff: dt.datetime | None, sink: dict[str, list[dict[str, Any]]],
                 anchor: dt.datetime | None = None) -> dict[str, Any]:
        crng = np.random.default_rng([rng_seed, plan['k']])
        events, steps, reports, assigns, routes, updates, signals, consults = (
            sink['events'], sink['steps'], sink['reports'], sink['assigns'], sink['routes'], sink['updates'],
            sink['signals'], sink['consults'])
        cat: ref.CategoryInfo = plan["cat"]
        t: dt.datetime = t0
        state = "reported"
        lead: str | None = None
        open_: dict[str, dict[str, Any]] = {}
        done: list[dict[str, Any]] = []
        counters = {"rework_count": 0, "sendback_count": 0, "overdue_count": 0}
        stamps: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        reports.append(dict(case_id=cid, is_primary=True, source=row["source"], channel=row["channel"],
                            external_id=row["external_id"], reporter_name=row["reporter_name"],
                            reporter_phone=row["reporter_phone"], description=row["description"], lon=row["lon"],
                            lat=row["lat"], distance_m=0.0, media=[], reported_at=t))
        events.append(dict(case_id=cid, at=t, actor=row["reporter_name"] if row["source"] == "supervisor" else row["source"],
                           actor_roles=row["source"], action="report", from_state=None, to_state="reported",
                           note=row["description"], data={"source": row["source"], "seed": True}, attachments=[]))
        if row["source"] in ("video_ai", "iot"):
            signals.append(dict(source=row["source"], device_id=f"{'cam' if row['source'] == 'video_ai' else 'iot'}-{cid % 97:03d}",
                                signal_type=cat.name_zh, signal_key=f"seed|{cid}", category_id=cat.id, lon=row["lon"],
                                lat=row["lat"], grid_code=row["grid_code"], confidence=0.9, observed_at=t, received_at=t,
                                payload={}, outcome="case_created", case_id=cid))

        step_pi: dict[str, int] = {}
        times: dict[int, dt.datetime] = {-1: t0}
        cur_pi = -1

        def start(step: str, at: dt.datetime) -> None:
            step_pi[step] = cur_pi
            due, yellow, value, unit, cal_id = sla.deadline(session, cat, step, row["urgency"], at)
            open_[step] = dict(case_id=cid, step=step, round=1 + sum(1 for d in done if d["step"] == step),
                               department_code=lead if step in ("acknowledge", "handle") else None, status="open",
                               started_at=at, due_at=due, yellow_at=yellow, limit_value=value, limit_unit=unit,
                               calendar_id=cal_id, extended=0)

        start("accept", t)
        path = _path(plan["target"], row["source"], plan["trusted"], plan["rework"])
        for pi, (action, extra_in) in enumerate(path):
            tr = DEFAULT_TABLE.transitions.get((state, action))
            if tr is None:
                break
            # the delay: around 40 % of the step's limit; some late (after the due time)
            finishing = [s for s in row_steps(tr, "finish_steps") if s in open_] or list(open_)[:1]
            if finishing:
                s0 = open_[finishing[0]]
                span = (s0["due_at"] - s0["started_at"]).total_seconds()
                frac = float(crng.uniform(1.05, 1.8)) if plan["late"] and crng.random() < 0.5 else float(crng.beta(2, 4))
                nt = max(t, s0["started_at"] + dt.timedelta(seconds=span * frac))
            else:
                nt = t + dt.timedelta(minutes=float(crng.uniform(5, 90)))
            if anchor is not None and pi == plan.get("anchor_pi"):
                nt = max(t, anchor)
            if cutoff is not None and nt > cutoff:
                break
            t = nt
            cur_pi = pi
            times[pi] = t
            actor = ACTORS.get(action, "system")
            dept_now = lead
            if action in ("dispatch",):
                p = ref.propose_route(session, cat, row["grid_code"], row["street_code"])
                lead = p.department_code
                co = list(p.co_department_codes)
                if plan["override"] and dept_codes:
                    lead = str(crng.choice(dept_codes))
                    co = [c for c in co if c != lead]
                routes.append(dict(case_id=cid, at=t, action="dispatch", rule=p.rule, explanation=p.explanation[:300],
                                   proposed_department_code=p.department_code, proposed_co_codes=list(p.co_department_codes),
                                   chosen_department_code=lead, chosen_co_codes=co, overridden=lead != p.department_code,
                                   actor="dispatcher"))
                assigns.append(dict(case_id=cid, department_code=lead, role="lead", assigned_at=t, assigned_by="dispatcher",
                                    case_reported_at=t0))
                for c in co:
                    assigns.append(dict(case_id=cid, department_code=c, role="co", assigned_at=t, assigned_by="dispatcher",
                                        case_reported_at=t0))
                    if crng.random() < 0.3:
                        consults.append(dict(case_id=cid, at=t + dt.timedelta(minutes=30), author=f"{c}_handler",
                                             author_roles="dept_handler", department_code=c,
                                             body="已安排人员配合现场处置 we will send staff to assist", attachments=[]))
                extra_in = {**extra_in, "department_code": lead, "co_department_codes": co}
                dept_now = lead
            if action == "send_back":
                for a in assigns:
                    if a["case_id"] == cid and "released_at" not in a:
                        a["released_at"] = t
                counters["sendback_count"] += 1
                lead = None
            if action == "rework":
                counters["rework_count"] += 1
            if action == "verify":
                extra["verification_result"] = extra_in["result"]
            if action == "inspect":
                extra["inspection_result"] = extra_in["result"]
            if action == "evaluate":
                extra["satisfaction"] = str(crng.choice(["satisfied", "satisfied", "satisfied", "basically_satisfied", "unsatisfied"]))
                extra_in = {"satisfaction": extra["satisfaction"]}
            if action == "register":
                p = ref.propose_route(session, cat, row["grid_code"], row["street_code"])
                extra["proposed_department_code"] = p.department_code
                routes.append(dict(case_id=cid, at=t, action="register", rule=p.rule, explanation=p.explanation[:300],
                                   proposed_department_code=p.department_code, proposed_co_codes=list(p.co_department_codes),
                                   chosen_department_code=None, chosen_co_codes=[], overridden=False,
                                   actor="shiftlead"))
            for step in [*row_steps(tr, "cancel_steps"), *row_steps(tr, "finish_steps")]:
                names = list(open_) if step == "*" else [step]
                for nm in names:
                    s = open_.pop(nm, None)
                    if s is None:
                        continue
                    fin = step in row_steps(tr, "finish_steps") or "*" in row_steps(tr, "finish_steps")
                    s.update(status="done" if fin else "cancelled", finished_at=t,
                             on_time=(t <= s["due_at"]) if fin else None)
                    if fin and t > s["due_at"] and nm in sla.SLA_STEPS:
                        s["overdue_at"] = s["due_at"]
                        counters["overdue_count"] += 1
                    done.append(s)
            prev = state
            state = tr.to_state or state
            if state in ("voided", "not_registered"):
                for a in assigns:
                    if a["case_id"] == cid and "released_at" not in a:
                        a["released_at"] = t
            if action == "suspend":
                extra["prev_state"] = prev
            from cityops.cases.workflow import STAMPS

            if state in STAMPS and state != prev:
                stamps[STAMPS[state]] = t
            if action == "rework":
                stamps["dispatched_at"] = t
            for step in row_steps(tr, "start_steps"):
                start(step, t)
            who = actor.format(dept=dept_now or "dept")
            events.append(dict(case_id=cid, at=t, actor=who, actor_roles=ROLES.get(actor, "dept_handler"),
                               department_code=dept_now if "{dept}" in actor else None, action=action, from_state=prev,
                               to_state=state, note=None, reason=extra_in.get("reason"),
                               data={k: v for k, v in extra_in.items() if k != "reason"}, attachments=[]))
        if state == "suspended":
            for s in open_.values():
                s.update(status="paused", paused_at=t, paused_remaining_s=max(0.0, (s["due_at"] - t).total_seconds()))
        sla_open = [s for s in open_.values() if s["status"] == "open" and s["step"] in sla.SLA_STEPS]
        upd = dict(b_id=cid, state=state, lead_department_code=lead, updated_at=t, **counters, **extra,
                   sla_step=min(sla_open, key=lambda s: s["due_at"])["step"] if sla_open else None,
                   due_at=min((s["due_at"] for s in sla_open), default=None),
                   yellow_at=min((s["yellow_at"] for s in sla_open), default=None))
        for col in ("accepted_at", "verifying_at", "verified_at", "registered_at", "not_registered_at", "dispatched_at",
                    "acknowledged_at", "sent_back_at", "handled_at", "inspecting_at", "inspected_at", "closed_at",
                    "evaluated_at", "suspended_at", "voided_at"):
            upd[col] = stamps.get(col)
        for col in ("verification_result", "inspection_result", "satisfaction", "proposed_department_code", "prev_state"):
            upd.setdefault(col, None)
        updates.append(upd)
        steps.extend(done)
        steps.extend(open_.values())
        last_open = min((v for v in open_.values() if v['status'] == 'open'), key=lambda v: v['started_at'], default=None)
        open_pi = step_pi.get(last_open["step"], -1) if last_open else -1
        return {'t': t, 'start': t0, 'open': last_open, 'state': state, 'open_pi': open_pi,
                'open_at': times.get(open_pi, t0)}

    _cid, cal = ref.active_calendar(session)
    # first pass: how long each case's path takes; then place it so that open cases sit in their
    # current step (some yellow, some overdue) and finished ones ended days ago
    for row, plan in zip(case_rows, plans, strict=True):
        probe = simulate(0, row, plan, now - dt.timedelta(days=120), None, {k: [] for k in (
            'events', 'steps', 'reports', 'assigns', 'routes', 'updates', 'signals', 'consults')})
        dur = probe['t'] - probe['start']
        trng = np.random.default_rng([rng_seed, plan['k'], 7])
        if probe['open'] is not None and ref.STATES[plan['target']]['open']:
            o = probe['open']
            frac = float(trng.uniform(0.0, 1.3))
            anchor = _back(now, frac * workcal.amount_seconds(o['limit_value'], o['limit_unit'], cal), o['limit_unit'], cal)
            plan['anchor'] = anchor
            plan['anchor_pi'] = probe['open_pi']
            reported = anchor - (probe['open_at'] - probe['start']) - (dt.timedelta(minutes=1) if probe['open_pi'] >= 0
                                                                     else dt.timedelta(0))
        else:
            reported = now - dur - dt.timedelta(days=1 + float(trng.exponential(8.0)), minutes=float(trng.integers(5, 600)))
        row['reported_at'] = reported
        row['updated_at'] = reported
        if row['external_id']:
            row['external_id'] = f"SH12345-{reported:%Y%m%d}-{plan['k']:05d}"

    ids = session.execute(insert(table(Case)).returning(table(Case).c.id, sort_by_parameter_order=True),
                          case_rows).scalars().all()
    tick(stage, len(ids) // 3, n)
    events: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    reports: list[dict[str, Any]] = []
    assigns: list[dict[str, Any]] = []
    routes: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    signals: list[dict[str, Any]] = []
    consults: list[dict[str, Any]] = []
    sink: dict[str, list[dict[str, Any]]] = {k: [] for k in ('events', 'steps', 'reports', 'assigns', 'routes',
                                                           'updates', 'signals', 'consults')}
    for cid, row, plan in zip(ids, case_rows, plans, strict=True):
        simulate(cid, row, plan, row['reported_at'], now, sink, plan.get('anchor'))
    events, steps, reports, assigns, routes, updates, signals, consults = (
        sink['events'], sink['steps'], sink['reports'], sink['assigns'], sink['routes'], sink['updates'],
        sink['signals'], sink['consults'])
    tick(stage, 2 * len(ids) // 3, n)
    from sqlalchemy import bindparam, update

    ct = table(Case)
    cols = [k for k in updates[0] if k != "b_id"] if updates else []
    if updates:
        session.execute(update(ct).where(ct.c.id == bindparam("b_id")).values({c: bindparam("v_" + c) for c in cols}),
                        [{"b_id": u["b_id"], **{"v_" + c: u[c] for c in cols}} for u in updates],
                        execution_options={"synchronize_session": False})
    for tbl, rows in ((table(CaseEvent), events), (table(CaseReport), reports),
                        (table(CaseDepartment), assigns), (table(RoutingDecision), routes),
                        (table(Signal), signals), (table(ConsultationMessage), consults)):
        if rows:
            keys = sorted({k for r in rows for k in r})
            session.execute(insert(tbl), [{k: r.get(k) for k in keys} for r in rows])
    if steps:
        keys = sorted({k for r in steps for k in r})
        step_ids = session.execute(insert(table(CaseStep)).returning(table(CaseStep).c.id, sort_by_parameter_order=True),
                                   [{k: r.get(k) for k in keys} for r in steps]).scalars().all()
        for sid, s in zip(step_ids, steps, strict=True):
            if s["status"] == "open":
                sla.arm_timers(session, sid, s["case_id"], s["step"], s["due_at"], s["yellow_at"])
    session.flush()
    tick(stage, n, n)
    out["cases"] = len(ids)
    return out
