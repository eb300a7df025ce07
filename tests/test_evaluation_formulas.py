"""The evaluation's SQL aggregations against an independent formulation: plain Python over the same
rows (timeline events, SLA steps, department assignments, cases), for every subject, for the whole
district and for one street; plus the scoring rules (step functions, composite, grades) and the
scheme as versioned, validated data."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

TZ = ZoneInfo("Asia/Shanghai")
DEFAULT = json.loads((Path(__file__).resolve().parent.parent / "cityops" / "cases" / "data" /
                      "evaluation_default.json").read_text(encoding="utf-8"))
PUBLIC = {"public", "hotline", "open311"}


# ---------------------------------------------------------------- the data, as plain rows


def _load(session) -> dict[str, Any]:
    from cityops.cases.models import Case, CaseDepartment, CaseEvent, CaseStep
    from cityops.security.models import Account

    cases = {c.id: c for c in session.execute(select(
        Case.id, Case.source, Case.grid_code, Case.community_code, Case.street_code, Case.registered_at,
        Case.self_handled, Case.voided_at, Case.satisfaction, Case.reported_at)).all()}
    events = list(session.execute(select(CaseEvent.id, CaseEvent.case_id, CaseEvent.at, CaseEvent.actor,
                                         CaseEvent.actor_roles, CaseEvent.action).order_by(CaseEvent.id)).all())
    steps = defaultdict(list)
    for s in session.execute(select(CaseStep.case_id, CaseStep.step, CaseStep.status, CaseStep.started_at,
                                    CaseStep.finished_at, CaseStep.due_at, CaseStep.on_time, CaseStep.overdue_at,
                                    CaseStep.department_code)).all():
        steps[s.case_id].append(s)
    cds = defaultdict(list)
    for d in session.execute(select(CaseDepartment.case_id, CaseDepartment.department_code, CaseDepartment.role,
                                    CaseDepartment.assigned_at, CaseDepartment.released_at)).all():
        cds[d.case_id].append(d)
    accounts = dict(session.execute(select(Account.username, Account.area_code)).all())
    session.rollback()
    by_case = defaultdict(list)
    for e in events:
        by_case[e.case_id].append(e)
    return {"cases": cases, "events": events, "steps": steps, "cds": cds, "accounts": accounts, "by_case": by_case}


class Recompute:
    """Every indicator written out again from its definition (docs/evaluation.md)."""

    def __init__(self, data: dict[str, Any], start: dt.datetime, end: dt.datetime, now: dt.datetime,
                 area: str | None) -> None:
        self.d, self.start, self.end, self.now, self.area = data, start, end, now, area

    def inp(self, t: dt.datetime | None) -> bool:
        return t is not None and self.start <= t < self.end

    def in_scope(self, cid: int) -> bool:
        c = self.d["cases"].get(cid)
        return c is not None and (self.area is None or c.grid_code.startswith(self.area))

    def events(self, role: str | None, actions: set[str]) -> list[Any]:
        return [e for e in self.d["events"] if e.action in actions and self.inp(e.at) and self.in_scope(e.case_id)
                and (role is None or role in (e.actor_roles or "").split(","))]

    def running(self, cid: int, step: str, t: dt.datetime) -> list[Any]:
        return [s for s in self.d["steps"][cid] if s.step == step and s.started_at <= t
                and (s.finished_at is None or s.finished_at >= t)]

    def has(self, e: Any, step: str, pred: Any = lambda s: True) -> bool:
        return any(pred(s) for s in self.running(e.case_id, step, e.at))

    @staticmethod
    def done(s: Any) -> bool:
        return s.status == "done"

    @staticmethod
    def ontime(s: Any) -> bool:
        return s.status == "done" and s.on_time is True

    # -------------------------------------------------------------- posts

    def supervisor(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for e in self.events("supervisor", {"report", "verify", "inspect"}):
            r, c = out[e.actor], self.d["cases"][e.case_id]
            if e.action == "report":
                r["reports"] += 1
                r["valid_reports"] += int(c.registered_at is not None or bool(c.self_handled))
            for act, name in (("verify", "verified"), ("inspect", "inspected")):
                if e.action == act:
                    r[name] += int(self.has(e, act, self.done))
                    r[name + "_ontime"] += int(self.has(e, act, self.ontime))
        registers = self.events(None, {"register"})
        for actor, r in out.items():
            area = self.d["accounts"].get(actor)
            if not area:
                continue
            mine = [e for e in registers if self.d["cases"][e.case_id].grid_code.startswith(area)]
            r["area_registered"] = len(mine)
            r["area_public_first"] = sum(1 for e in mine if self.d["cases"][e.case_id].source in PUBLIC)
        return out

    def intake_operator(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for e in self.events("intake_operator", {"accept", "request_verification", "request_inspection"}):
            r = out[e.actor]
            if e.action == "accept":
                r["accepted"] += 1
            for act, step, name in (("request_verification", "register", "verify_issued"),
                                    ("request_inspection", "inspect", "inspect_issued")):
                if e.action == act:
                    r[name] += int(self.has(e, step))
                    r[name + "_ontime"] += int(self.has(e, step, lambda s, e=e: s.due_at >= e.at))
        return out

    def shift_lead(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for e in self.events("shift_lead", {"register", "close"}):
            r = out[e.actor]
            if e.action == "register":
                r["registered"] += 1
                r["register_due"] += int(self.has(e, "register", self.done))
                r["register_ontime"] += int(self.has(e, "register", self.ontime))
                r["accurate_registered"] += int(self.d["cases"][e.case_id].voided_at is None)
            else:
                r["closed"] += 1
                r["close_due"] += int(self.has(e, "close", self.done))
                r["close_ontime"] += int(self.has(e, "close", self.ontime))
        return out

    def dispatcher(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for e in self.events("dispatcher", {"dispatch", "reassign"}):
            r = out[e.actor]
            r["dispatched"] += 1
            r["dispatch_due"] += int(self.has(e, "dispatch", self.done))
            r["dispatch_ontime"] += int(self.has(e, "dispatch", self.ontime))
            later = [f for f in self.d["by_case"][e.case_id] if f.id > e.id]
            bad = False
            for f in later:
                if f.action in ("dispatch", "reassign"):
                    break  # a new dispatch: what follows is not this dispatch's fault
                if f.action in ("send_back", "rework"):
                    bad = True
                    break
            r["accurate_dispatched"] += int(not bad)
        return out

    # -------------------------------------------------------------- steps, leads

    def step_rows(self, step: str, key: Any, case_ok: Any = lambda c: True) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = defaultdict(lambda: defaultdict(int))
        overdue_cases: dict[str, set[int]] = defaultdict(set)
        prefix = "ack" if step == "acknowledge" else "handle"
        for cid, ss in self.d["steps"].items():
            if not self.in_scope(cid) or not case_ok(self.d["cases"][cid]):
                continue
            for s in ss:
                if s.step != step:
                    continue
                k = key(s, self.d["cases"][cid])
                if k is None:
                    continue
                finished = s.status == "done" and self.inp(s.finished_at)
                late_open = s.status in ("open", "paused") and self.start <= s.due_at < min(self.end, self.now)
                if not (finished or late_open):
                    continue
                r = out[k]
                r[f"{prefix}_due"] += 1
                r[f"{prefix}_ontime"] += int(finished and s.on_time is True)
                if step == "handle":
                    r["handled"] += int(finished)
                    r["handle_hours"] += (s.finished_at - s.started_at).total_seconds() / 3600 if finished else 0.0
                    if late_open:
                        overdue_cases[k].add(cid)
        for k, v in overdue_cases.items():
            out[k]["open_overdue"] = len(v)
        return out

    def leads_at(self, e: Any) -> list[str]:
        return [d.department_code for d in self.d["cds"][e.case_id] if d.role == "lead" and d.assigned_at <= e.at
                and (d.released_at is None or d.released_at >= e.at)]

    def assigned(self, case_ok: Any = lambda c: True) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for cid, ds in self.d["cds"].items():
            if self.in_scope(cid) and case_ok(self.d["cases"][cid]):
                for d in ds:
                    if d.role == "lead" and self.inp(d.assigned_at):
                        out[d.department_code]["assigned"] += 1
        return out

    def by_lead(self, names: dict[str, str], case_ok: Any = lambda c: True) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for e in self.events(None, set(names.values())):
            if not case_ok(self.d["cases"][e.case_id]):
                continue
            for dept in self.leads_at(e):
                for name, act in names.items():
                    out[dept][name] += int(e.action == act)
        return out

    @staticmethod
    def merge(*parts: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = defaultdict(lambda: defaultdict(int))
        for p in parts:
            for k, v in p.items():
                for kk, vv in v.items():
                    out[k][kk] += vv
        return out

    def department(self) -> dict[str, dict[str, Any]]:
        dept = (lambda s, c: s.department_code)  # noqa: E731
        out = self.merge(self.assigned(), self.step_rows("acknowledge", dept), self.step_rows("handle", dept),
                         self.by_lead({"closed": "close", "reworks": "rework", "sendbacks": "send_back"}))
        for r in out.values():
            r["close_expected"] = r["closed"] + r["open_overdue"]
            r["overdue"] = r["handle_due"] - r["handle_ontime"]
        return out

    def area_rows(self, level: str) -> dict[str, dict[str, Any]]:
        col = {"street": "street_code", "community": "community_code", "grid": "grid_code"}[level]
        out: dict[str, dict[str, Any]] = defaultdict(lambda: defaultdict(int))
        for cid, c in self.d["cases"].items():
            if self.in_scope(cid) and self.inp(c.reported_at):
                out[getattr(c, col)]["reported"] += 1
        for e in self.events(None, {"register", "close", "self_handle", "rework"}):
            r = out[getattr(self.d["cases"][e.case_id], col)]
            name = {"register": "registered", "close": "closed", "self_handle": "self_handled", "rework": "reworks"}
            r[name[e.action]] += 1
            if e.action == "close":
                late = any(s.overdue_at is not None and s.overdue_at <= e.at for s in self.d["steps"][e.case_id])
                r["closed_ontime"] += int(not late)
        out = self.merge(out, self.step_rows("handle", lambda s, c: getattr(c, col)))
        for r in out.values():
            r["close_expected"] = r["closed"] + r["open_overdue"]
            r["overdue"] = r["handle_due"] - r["handle_ontime"]
        return out

    def hotline(self) -> dict[str, dict[str, Any]]:
        hot = (lambda c: c.source == "hotline")  # noqa: E731
        dept = (lambda s, c: s.department_code)  # noqa: E731
        out = self.merge(self.assigned(hot), self.step_rows("acknowledge", dept, hot),
                         self.step_rows("handle", dept, hot),
                         self.by_lead({"evaluated": "evaluate", "sendbacks": "send_back", "closed": "close",
                                       "reopened": "reopen"}, hot))
        for e in self.events(None, {"evaluate"}):
            c = self.d["cases"][e.case_id]
            if hot(c) and c.satisfaction in DEFAULT["satisfied_values"]:
                for dpt in self.leads_at(e):
                    out[dpt]["satisfied"] += 1
        return out


RATES = {  # subject -> rate -> (numerator, denominator), written out independently of the module
    "supervisor": {"valid_report_rate": ("valid_reports", "reports"),
                   "missed_report_rate": ("area_public_first", "area_registered"),
                   "ontime_verify_rate": ("verified_ontime", "verified"),
                   "ontime_inspect_rate": ("inspected_ontime", "inspected")},
    "intake_operator": {"verify_issue_ontime_rate": ("verify_issued_ontime", "verify_issued"),
                        "inspect_issue_ontime_rate": ("inspect_issued_ontime", "inspect_issued")},
    "shift_lead": {"ontime_register_rate": ("register_ontime", "register_due"),
                   "accurate_register_rate": ("accurate_registered", "registered"),
                   "ontime_close_rate": ("close_ontime", "close_due")},
    "dispatcher": {"ontime_dispatch_rate": ("dispatch_ontime", "dispatch_due"),
                   "accurate_dispatch_rate": ("accurate_dispatched", "dispatched")},
    "department": {"ack_rate": ("ack_ontime", "ack_due"), "ontime_handle_rate": ("handle_ontime", "handle_due"),
                   "close_rate": ("closed", "close_expected"), "rework_rate": ("reworks", "handled"),
                   "sendback_rate": ("sendbacks", "assigned")},
    "area": {"close_rate": ("closed", "close_expected"), "ontime_close_rate": ("closed_ontime", "closed"),
             "ontime_handle_rate": ("handle_ontime", "handle_due"), "rework_rate": ("reworks", "handled")},
    "hotline": {"ack_rate": ("ack_ontime", "ack_due"), "ontime_complete_rate": ("handle_ontime", "handle_due"),
                "satisfaction_rate": ("satisfied", "evaluated"), "sendback_rate": ("sendbacks", "assigned"),
                "redo_rate": ("reopened", "closed")},
}


def band_score(bands: list[dict[str, Any]], v: float) -> float:
    for b in bands:
        if v >= b.get("min", float("-inf")) and v <= b.get("max", float("inf")):
            return float(b["score"])
    raise AssertionError("no band")


def expected_score(subject: str, counts: dict[str, Any], rates: dict[str, Any], days: int) -> float | None:
    sub = DEFAULT["subjects"][subject]
    sfs = DEFAULT["step_functions"]
    parts, wsum = [], 0.0
    for k, w in sub["weights"].items():
        wsum += w
        if k in sfs:
            parts.append((w, band_score(sfs[k]["bands"], counts.get(sfs[k]["of"], 0) * 30 / days)))
        elif rates.get(k) is not None:
            v = rates[k] * 100
            parts.append((w, 100 - v if k in sub.get("inverse", []) else v))
    if not parts:
        return None
    have = sum(w for w, _ in parts)
    pts = sum(band_score(sfs[p]["bands"], counts.get(sfs[p]["of"], 0) * 30 / days) for p in sub.get("points", []))
    return pts + sum(w * s for w, s in parts) * wsum / have


@pytest.mark.parametrize("area", [None, "310117001"])
def test_sql_matches_python_recomputation(session, area):
    from cityops.cases import evaluation
    from cityops.cases.sla import now as sla_now
    from cityops.security.principal import SYSTEM

    now = sla_now()
    today = now.astimezone(TZ).date()
    d_from = today - dt.timedelta(days=29)
    start = dt.datetime.combine(d_from, dt.time(), TZ).astimezone(dt.UTC)
    end = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), TZ).astimezone(dt.UTC)
    data = _load(session)
    rc = Recompute(data, start, end, now, area)
    compared = 0
    for subject in evaluation.SUBJECTS:
        res = evaluation.evaluate(session, SYSTEM, subject, date_from=d_from, date_to=today, area=area, now=now)
        session.rollback()
        assert res["start"] == start and res["end"] == end
        kind = "area" if subject in ("street", "community", "grid") else subject
        want = rc.area_rows(subject) if kind == "area" else getattr(rc, subject)()
        got = {i["code"]: i for i in res["items"]}
        assert set(got) == set(want), (subject, sorted(set(got) ^ set(want))[:10])
        for code, exp in want.items():
            item = got[code]
            if "avg_handle_hours" in item:
                h = exp.get("handled", 0)
                assert (item["avg_handle_hours"] is None) == (h == 0), (subject, code)
                if h:
                    assert abs(item["avg_handle_hours"] - exp["handle_hours"] / h) < 0.01, (subject, code)
            for k in evaluation.SPEC[kind]["counts"]:
                assert item[k] == exp.get(k, 0), (subject, code, k, item[k], exp.get(k, 0))
                compared += 1
            rates = {}
            for r, (num, den) in RATES[kind].items():
                rates[r] = exp.get(num, 0) / exp[den] if exp.get(den) else None
                assert (item[r] is None) == (rates[r] is None), (subject, code, r)
                if rates[r] is not None:
                    assert abs(item[r] - rates[r]) < 1e-4, (subject, code, r, item[r], rates[r])
            score = expected_score(kind, exp, rates, 30)
            if score is None:
                assert item["score"] is None and item["grade"] is None
            else:
                assert abs(item["score"] - score) < 0.02, (subject, code, item["score"], score)
                grade = next(g["grade"] for g in DEFAULT["grades"] if item["score"] >= g["min"])
                assert item["grade"] == grade
        # the total row sums the items
        for k in res["total"]:
            if k in evaluation.SPEC[kind]["counts"]:
                assert res["total"][k] == sum(i[k] for i in res["items"]), (subject, k)
    assert compared > 200


def test_scoring_rules():
    from cityops.cases import evaluation as ev

    bands = DEFAULT["step_functions"]["accept_count_score"]["bands"]
    assert [ev.step_score(bands, v) for v in (0, 100, 101, 300, 301, 500, 501, 1200, 1201, 2000, 2001, 9999)] == \
        [0, 0, 40, 40, 60, 60, 75, 75, 90, 90, 100, 100]
    pts = DEFAULT["step_functions"]["assigned_count_points"]["bands"]
    assert [ev.step_score(pts, v) for v in (0, 50, 51, 100, 101, 200, 201, 500, 501, 1000, 1001)] == \
        [10, 10, 9, 9, 7.5, 7.5, 6, 6, 4, 4, 0]
    g = DEFAULT["grades"]
    assert [ev.grade_of(g, s) for s in (100, 90, 89.99, 75, 74.9, 60, 59, 40, 39.99, 0)] == \
        ["A", "A", "B", "B", "C", "C", "D", "D", "E", "E"]
    assert ev.grade_of(g, None) is None
    # 值班长: 25% x 80 + 40% x 100 + 35% x 50 = 77.5 -> B
    sub = DEFAULT["subjects"]["shift_lead"]
    assert ev.composite({"ontime_register_rate": 0.8, "accurate_register_rate": 1.0, "ontime_close_rate": 0.5}, sub,
                        {}) == 77.5
    # a missing indicator's weight is spread over the present ones: (0.25 x 80 + 0.4 x 100) / 0.65
    got = ev.composite({"ontime_register_rate": 0.8, "accurate_register_rate": 1.0, "ontime_close_rate": None}, sub, {})
    assert abs(got - (0.25 * 80 + 0.4 * 100) / 0.65) < 0.01
    assert ev.composite({}, sub, {}) is None
    # department: points + inverse rework rate
    dep = DEFAULT["subjects"]["department"]
    assert ev.composite({"close_rate": 1.0, "ontime_handle_rate": 0.9, "rework_rate": 0.2}, dep,
                        {"assigned_count_points": 7.5}) == pytest.approx(7.5 + 30 + 27 + 24)


def test_period_is_shanghai_days():
    from cityops.cases import evaluation as ev

    now = dt.datetime(2026, 3, 1, 17, 0, tzinfo=dt.UTC)  # 2026-03-02 01:00 in Shanghai
    d_from, d_to, start, end = ev.period(None, None, now)
    assert d_to == dt.date(2026, 3, 2) and d_from == dt.date(2026, 2, 1)
    assert start == dt.datetime(2026, 1, 31, 16, 0, tzinfo=dt.UTC) and end == dt.datetime(2026, 3, 2, 16, 0, tzinfo=dt.UTC)
    from cityops.errors import InvalidInput

    with pytest.raises(InvalidInput):
        ev.period(dt.date(2026, 3, 2), dt.date(2026, 3, 1))
    with pytest.raises(InvalidInput):
        ev.period(dt.date(2020, 1, 1), dt.date(2026, 3, 1))


def test_scheme_is_versioned_data(client, session):
    from cityops.cases import evaluation as ev
    from tests.helpers import auth_headers, make_user

    # every problem listed, nothing written
    bad = json.loads(json.dumps(DEFAULT))
    bad["grades"] = [{"grade": "A", "min": 60}, {"grade": "B", "min": 80}]
    bad["subjects"]["shift_lead"]["weights"]["ontime_register_rate"] = 0.9
    bad["subjects"]["dispatcher"]["weights"]["nonsense"] = 0.1
    probs = ev.scheme_problems(bad)
    locs = [p.loc for p in probs]
    assert ["body", "grades"] in locs and ["body", "subjects", "shift_lead"] in locs
    assert ["body", "subjects", "dispatcher", "weights", "nonsense"] in locs
    assert ev.scheme_problems(DEFAULT) == []

    u, pw = make_user(session, "ev_cmd", ["district_commander"], area_code="310117")
    h = auth_headers(client, u, pw)
    r = client.post("/api/v1/evaluation/schemes", json=bad, headers=h)
    assert r.status_code == 422 and len(r.json()["detail"]) >= 3
    # a new version (not yet in force): 值班长 judged on accuracy only
    new = json.loads(json.dumps(DEFAULT))
    new["valid_from"] = "2100-01-01T00:00:00+08:00"
    new["subjects"]["shift_lead"]["weights"] = {"accurate_register_rate": 1.0}
    r = client.post("/api/v1/evaluation/schemes", json=new, headers=h)
    assert r.status_code == 201, r.text
    version = r.json()["version"]
    assert version >= 2
    listed = client.get("/api/v1/evaluation/schemes", headers=h).json()
    assert {s["version"] for s in listed if s["code"] == "default"} >= {1, version}
    cur = client.get("/api/v1/evaluation/shift_lead", headers=h).json()
    assert cur["scheme"]["version"] != version  # still the one in force
    alt = client.get(f"/api/v1/evaluation/shift_lead?scheme_version={version}", headers=h).json()
    assert alt["scheme"]["version"] == version
    for a in alt["items"]:
        if a["accurate_register_rate"] is not None:
            assert a["score"] == pytest.approx(100 * a["accurate_register_rate"], abs=0.01)
    assert client.get("/api/v1/evaluation/shift_lead?scheme_version=9999", headers=h).status_code == 404
