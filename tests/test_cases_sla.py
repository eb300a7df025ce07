"""SLA: deadlines from the category limit and the calendar; with the server stopped while a case
is yellow and started after its deadline, the case is red and its escalation exists exactly once
(timer pass run twice, and by two workers at once)."""

from __future__ import annotations

import datetime as dt
import threading

from sqlalchemy import func, select

from cityops import clock
from cityops.cases import queries, schemas, service, sla, workcal
from cityops.cases import reference as ref
from cityops.cases.models import CaseStep, Escalation
from cityops.jobs import service as jobs
from cityops.jobs.models import Notification
from cityops.security.principal import SYSTEM
from tests.cases_helpers import category, free_point


def _pass(now: dt.datetime, worker: str) -> int:
    from cityops.db import get_sessionmaker

    total = 0
    while True:
        stats = jobs.run_due(get_sessionmaker(), now=now, limit=200, worker_id=worker)
        total += stats.total
        if stats.total == 0:
            return total


def test_restart_after_deadline_red_and_escalated_exactly_once(db_url, session):
    cat = category(session, "暴露垃圾")  # handle: 4 working hours
    lon, lat, grid = free_point(session, cat.id, skip=3)
    t0 = sla.now().replace(microsecond=0)
    clock.set_clock(lambda: t0)
    try:
        st, res, _ = service.submit_report(session, SYSTEM, schemas.ReportCreate(
            category_code=cat.code, lat=lat, lon=lon, source="supervisor", description="SLA test"))
        cid = res["case_id"]
        for action, body in [("accept", {}), ("register", {}), ("dispatch", {"department_code": "hw"}),
                             ("acknowledge", {})]:
            service.act(session, SYSTEM, cid, action, schemas.ActionIn(**body))
    finally:
        clock.set_clock(None)
    handle = session.scalar(select(CaseStep).where(CaseStep.case_id == cid, CaseStep.step == "handle"))
    assert handle.status == "open" and handle.started_at == t0
    _cid, cal = ref.active_calendar(session)
    assert handle.due_at == workcal.add_working_time(t0, 4, "working_hour", cal)
    assert handle.yellow_at == workcal.add_working_time(t0, 3.2, "working_hour", cal)

    # the worker runs while the case is yellow: a warning, no escalation yet
    y = handle.yellow_at + dt.timedelta(minutes=1)
    session.commit()  # end the read transaction (SQLite: the worker needs the write lock)
    _pass(y, "w-before")
    session.expire_all()
    c = queries.get_case(session, SYSTEM, cid)
    assert sla.sla_of(c.due_at, c.yellow_at, y) == "yellow"
    keys = set(session.scalars(select(Escalation.key).where(Escalation.case_id == cid)))
    assert keys == {f"yellow:{cid}:{handle.id}"}

    # "server stopped"; it comes back an hour after the deadline: two passes, then two workers at once
    late = handle.due_at + dt.timedelta(hours=1)
    session.commit()
    _pass(late, "w-after-1")
    _pass(late, "w-after-2")
    threads = [threading.Thread(target=_pass, args=(late, f"w-par-{i}")) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    session.expire_all()
    c = queries.get_case(session, SYSTEM, cid)
    assert sla.sla_of(c.due_at, c.yellow_at, late) == "red" and c.overdue_count == 1
    got = session.scalar(select(func.count()).select_from(Escalation).where(
        Escalation.case_id == cid, Escalation.rule_code == "overdue"))
    assert got == 1
    esc = session.scalar(select(Escalation).where(Escalation.case_id == cid, Escalation.rule_code == "overdue"))
    assert esc.step_id == handle.id
    assert {t.get("role") for t in esc.targets} >= {"district_commander", "dept_leader"}
    assert any(t.get("department_code") == "hw" for t in esc.targets)
    n = session.scalar(select(func.count()).select_from(Notification).where(
        Notification.title.like(f"超期督办：案件 {c.case_no}%")))
    assert n == len(esc.targets)  # one notification per target, once
    step = session.get(CaseStep, handle.id)
    assert step.overdue_at is not None and step.status == "open"
    # the overdue list filter is an index range on due_at
    clock.set_clock(lambda: late)
    try:
        page = service.list_cases(session, SYSTEM, queries.CaseFilter(overdue=True, area=grid), page_size=500)
        assert cid in [i["id"] for i in page["items"]]
        assert next(i for i in page["items"] if i["id"] == cid)["sla"] == "red"
        # finishing late: the step is not on time; the case is not 按期
        service.act(session, SYSTEM, cid, "report_back", schemas.ActionIn(photos=[_media(session)]))
    finally:
        clock.set_clock(None)
    session.expire_all()
    step = session.get(CaseStep, handle.id)
    assert step.status == "done" and step.on_time is False
    assert queries.get_case(session, SYSTEM, cid).overdue_count == 1


def _media(session) -> str:
    from cityops.cases import intake
    from tests.cases_helpers import PNG

    out = intake.save_media(session, SYSTEM, [("p.png", PNG)])
    session.commit()
    return out[0]["id"]


def test_urgent_case_escalates_at_once(db_url, session):
    cat = category(session, "燃气管道破裂")  # critical by default
    lon, lat, _grid = free_point(session, cat.id)
    _st, res, _ = service.submit_report(session, SYSTEM, schemas.ReportCreate(
        category_code=cat.code, lat=lat, lon=lon, source="public", reporter_phone="13800001111"))
    cid = res["case_id"]
    assert res["urgency"] == "critical"
    keys = set(session.scalars(select(Escalation.key).where(Escalation.case_id == cid)))
    assert keys == {f"urgent_reported:{cid}:0"}
    service.act(session, SYSTEM, cid, "accept", schemas.ActionIn())
    service.act(session, SYSTEM, cid, "request_verification", schemas.ActionIn())
    service.act(session, SYSTEM, cid, "verify", schemas.ActionIn(result="valid"))
    d = service.act(session, SYSTEM, cid, "register", schemas.ActionIn())
    assert d["proposed_department_code"] == "rq"  # 部件/owner first: the gas company
    # urgent limits are natural hours: dispatch within 0.5 h
    dispatch = next(s for s in d["steps"] if s["step"] == "dispatch")
    assert dispatch["limit"] == {"value": 0.5, "unit": "natural_hour"}
    d = service.act(session, SYSTEM, cid, "dispatch", schemas.ActionIn(department_code="rq"))
    esc = session.scalar(select(Escalation).where(Escalation.case_id == cid, Escalation.rule_code == "urgent_dispatched"))
    assert esc is not None and any(t.get("department_code") == "rq" and t["role"] == "dept_leader" for t in esc.targets)
