"""Flat reporting and reporting deadlines (issue 12 acceptance):

* at intake every recipient's notification (district command, departments, street) is written in
  the intake's own transaction: none is visible before the commit, all of them after it, none after a
  rollback;
* on a hand-made history (pinned clocks) the measured report→department and report→command times
  are exact, for incidents (per command level) and for cases (read from the case timeline);
* a deadline passing unreported escalates once — also when the due time passes while nothing runs,
  and across new worker processes and re-armed timers; a report made in time does not escalate.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cityops import clock
from cityops.emergency import incidents, reporting
from cityops.emergency.models_command import IncidentNotice, ReportDeadline
from cityops.jobs import service as jobs
from cityops.jobs.models import Notification, OutboxItem
from cityops.lifecycle.models import TimelineEntry
from cityops.security.principal import SYSTEM
from tests.emergency_helpers import point_in, seed_world, utc

ROOT = Path(__file__).resolve().parent.parent
S_FLAT, S_REACH, S_CASE, S_DUE = "310117006", "310117102", "310117105", "310117106"


def _notes(s, iid: int) -> list[Notification]:
    return list(s.scalars(select(Notification).where(Notification.link == f"/emergency/incidents/{iid}")
                          .order_by(Notification.id)))


def test_every_recipient_is_notified_in_the_intake_transaction(session):
    from cityops.db import get_sessionmaker

    reader = get_sessionmaker(False)()
    try:
        res = incidents.open_incident(session, SYSTEM, "phone", "flat-1", "accident", "III", area=S_FLAT,
                                      subtype="hazardous_chemicals", title="测试：扁平化通知")
        iid = res.incident_id
        # not committed: another connection sees neither the incident's notices nor its notifications
        assert _notes(reader, iid) == []
        assert reader.scalar(select(func.count()).select_from(IncidentNotice)
                             .where(IncidentNotice.incident_id == iid)) == 0
        reader.rollback()
        session.commit()
        notes = _notes(reader, iid)
        got = {(n.role, n.department_code, n.area_code) for n in notes}
        assert got == {("emergency_commander", None, S_FLAT), ("district_commander", None, S_FLAT),
                       (None, "yj", None), (None, "xf", None), (None, "sthj", None),  # 危险化学品事故's departments
                       ("street_operator", None, S_FLAT), (None, f"jz{S_FLAT}", None)}
        assert len({n.created_at for n in notes}) == 1  # one moment, not a sequence
        events = reader.scalar(select(func.count()).select_from(OutboxItem).where(
            OutboxItem.topic == "notification.created",
            OutboxItem.payload["id"].as_integer().in_([n.id for n in notes])))
        assert events == len(notes)
        notices = reader.scalars(select(IncidentNotice).where(IncidentNotice.incident_id == iid)).all()
        assert sorted(n.notification_id for n in notices) == sorted(n.id for n in notes)
        assert {n.notified_at for n in notices} == {notes[0].created_at}
        reader.rollback()
    finally:
        reader.close()
    # a rolled-back intake leaves nothing behind
    before = session.scalar(select(func.count()).select_from(Notification))
    incidents.open_incident(session, SYSTEM, "phone", "flat-2", "accident", "II", area="310117004",
                            subtype="fire", title="测试：回滚的接报")
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Notification)) == before
    session.rollback()


def test_reach_times_on_a_hand_made_history_are_exact(session, client):
    from cityops.cases import schemas
    from cityops.cases import service as cases
    from tests.helpers import auth_headers, make_user, principal_of

    t0 = utc(2025, 3, 10, 2, 0, 0)
    with clock.pinned(t0):
        res = incidents.open_incident(session, SYSTEM, "phone", None, "accident", "III", area=S_REACH,
                                      subtype="traffic", title="测试：报告时效", reported_at=t0 - dt.timedelta(minutes=17))
        session.commit()
    with clock.pinned(t0 + dt.timedelta(minutes=40)):
        reporting.record_report(session, SYSTEM, res.incident_id, {"level": "city", "channel": "written"})
        session.commit()
    rows = {(r["measure"], r["level"]): r["seconds"] for r in reporting.incident_reach_rows(
        session, SYSTEM, t0 - dt.timedelta(hours=1), t0 + dt.timedelta(hours=1))}
    assert rows == {("department", "department"): 17 * 60.0, ("command", "district"): 17 * 60.0,
                    ("command", "city"): 57 * 60.0}  # severity III: district and city must know, not national

    # a case: reported at c0, accepted +5 min, registered +6, dispatched +12; an urgent one escalated at intake
    make_user(session, "t_em_sup", ["supervisor"], area_code=S_CASE)
    make_user(session, "t_em_lead", ["district_commander"], area_code="310117")
    sup, lead = principal_of(session, "t_em_sup"), principal_of(session, "t_em_lead")
    from cityops.cases import reference as ref

    cat = ref.catalogue(session)
    cat_code = sorted(c.code for c in cat.by_version[cat.active_id].values()
                      if c.kind != "component" and c.enabled and c.urgency_default == "normal")[0]
    session.commit()
    c0 = utc(2025, 3, 12, 1, 0, 0)
    lon, lat = point_in(session, S_CASE, 1)
    with clock.pinned(c0):
        _s, normal, _r = cases.submit_report(session, sup, schemas.ReportCreate(
            category_code=cat_code, lat=lat, lon=lon, description="测试：时效案件", source="supervisor"))
        lon2, lat2 = point_in(session, S_CASE, 3)
        _s, urgent, _r = cases.submit_report(session, sup, schemas.ReportCreate(
            category_code=cat_code, lat=lat2, lon=lon2, description="测试：紧急案件", source="supervisor",
            urgency="urgent"))
    assert not normal["linked"] and not urgent["linked"]
    for minutes, action, body in ((5, "accept", {}), (6, "register", {}), (12, "dispatch", {"department_code": "cgzf"})):
        with clock.pinned(c0 + dt.timedelta(minutes=minutes)):
            cases.act(session, lead, normal["case_id"], action, schemas.ActionIn(**body))
            session.commit()
    got = {r["case_id"]: r for r in cases.case_reach(session, SYSTEM, c0 - dt.timedelta(hours=1),
                                                   c0 + dt.timedelta(hours=1))}
    session.commit()
    n, u = got[normal["case_id"]], got[urgent["case_id"]]
    assert (n["department_at"] - n["reported_at"]).total_seconds() == 12 * 60 and n["department_code"] == "cgzf"
    assert n["command_level"] == "centre" and (n["command_at"] - n["reported_at"]).total_seconds() == 5 * 60
    assert u["command_level"] == "district" and u["command_at"] == u["reported_at"]  # flat: told at intake
    assert u["department_at"] is None

    # the dashboard over the same history (API, scoped, per channel and level)
    h = auth_headers(client, *make_user(session, "t_em_dash", ["emergency_commander"], area_code="310117"))
    d = client.get("/api/v1/emergency/reporting/reach", headers=h,
                   params={"from": "2025-03-10", "to": "2025-03-12"}).json()
    g = {(x["object_type"], x["channel"], x["measure"], x["level"]): x for x in d["groups"]}
    assert g[("incident", "phone", "command", "city")]["median_s"] == 57 * 60.0
    assert g[("incident", "phone", "department", "department")]["max_s"] == 17 * 60.0
    assert g[("case", "supervisor", "department", "department")]["n"] == 2
    assert g[("case", "supervisor", "department", "department")]["unreached"] == 1
    assert g[("case", "supervisor", "department", "department")]["median_s"] == 12 * 60.0
    assert g[("case", "supervisor", "command", "district")]["median_s"] == 0.0
    assert g[("case", "supervisor", "command", "centre")]["within_target"] == 1.0


# ---------------------------------------------------------------- deadlines escalate once


@pytest.fixture(scope="module")
def due_db(tmp_root):
    from cityops.db import session_scope
    from tests.conftest import use_database
    from tests.jobs_helpers import own_database

    url, prev = own_database(tmp_root, "emdue")
    with session_scope() as s:
        seed_world(s)
    yield url
    if prev:
        use_database(prev)


def _worker_process(url: str) -> None:
    env = dict(os.environ, CITYOPS_DATABASE_URL=url, CITYOPS_LOG_LEVEL="WARNING")
    out = subprocess.run([sys.executable, "-m", "cityops.cli", "worker", "--once"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]


def _overdue_rows(s, iid: int) -> list[str]:
    return [r.data["rule"] for r in s.scalars(select(TimelineEntry).where(
        TimelineEntry.object_type == "incident", TimelineEntry.object_id == str(iid),
        TimelineEntry.action == "report_overdue").order_by(TimelineEntry.id))]


def test_a_deadline_passing_unreported_escalates_once_across_restarts(due_db):
    from cityops.db import get_sessionmaker, reset_engine
    from tests.conftest import use_database

    use_database(due_db)
    sf = get_sessionmaker()
    now = jobs.now()
    with sf() as s:
        # reported 3 h ago, entered now: the 30 min / 1 h / 2 h deadlines have all passed
        res = incidents.open_incident(s, SYSTEM, "phone", None, "natural", "III", area=S_DUE, subtype="flood_drought",
                                      title="测试：报告超时", reported_at=now - dt.timedelta(hours=3))
        iid = res.incident_id
        s.commit()
        reporting.record_report(s, SYSTEM, iid, {"level": "district", "channel": "phone"})  # late, but made
        s.commit()
    # everything stops before any worker ran; a new process comes up and runs what is due
    reset_engine()
    use_database(due_db)
    _worker_process(due_db)
    sf = get_sessionmaker()
    with sf() as s:
        assert sorted(_overdue_rows(s, iid)) == ["onward_city", "written_district"]
        titles = [n.title for n in s.scalars(select(Notification).where(Notification.title.contains("信息报告超时"),
                                                                       Notification.link == f"/emergency/incidents/{iid}"))]
        assert len(titles) == 2 * 2  # two deadlines x the two command roles
        marks = dict(s.execute(select(ReportDeadline.rule_code, ReportDeadline.escalated_at)
                               .where(ReportDeadline.incident_id == iid)).all())
        assert marks["phone_district"] is None and marks["written_district"] and marks["onward_city"]
        # the same deadline armed again (a duplicate timer) must not escalate a second time
        did = s.scalar(select(ReportDeadline.id).where(ReportDeadline.incident_id == iid,
                                                       ReportDeadline.rule_code == "onward_city"))
        jobs.schedule_timer(s, reporting.DEADLINE_TIMER, reporting.DEADLINE_REF, did, now - dt.timedelta(minutes=1))
        s.commit()
    assert jobs.run_due(sf, now=now + dt.timedelta(hours=1)).timers >= 1
    _worker_process(due_db)
    assert jobs.Worker(sf, concurrency=2, poll_seconds=0.01).run(once=True).failed == 0
    with sf() as s:
        assert sorted(_overdue_rows(s, iid)) == ["onward_city", "written_district"]
