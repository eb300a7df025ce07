"""Plans as versioned data driving department tasks (issue 12 acceptance):

* activating a plan at level II creates exactly that level's tasks; raising to I adds the
  difference; lowering retires it (work already done stays done); each change is ONE timeline row;
* the mobilisation ladder follows the level the same way (checked against the ladder file, resolved
  here independently);
* plan documents: JSON/YAML import all-or-nothing with every problem named, versions, export round
  trip, the JSON Schema checked by an independent validator, review/drill reminders.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from cityops.emergency import incidents, plans, tasks
from cityops.emergency.models_command import EmergencyTask, MobilisationCallup, PlanActivation
from cityops.jobs.models import Notification, Timer
from cityops.lifecycle.models import TimelineEntry
from cityops.security.principal import SYSTEM
from tests.emergency_helpers import expected_tasks, plan_doc

# each test on its own street: reports of one kind in one street merge into one incident
S_LEVELS, S_ROWS, S_AUTO, S_API = "310117002", "310117003", "310117004", "310117005"

DATA = Path(__file__).resolve().parent.parent / "cityops" / "emergency" / "data"


def _rows(session, iid: int) -> int:
    return session.scalar(select(func.count()).select_from(TimelineEntry)
                          .where(TimelineEntry.object_type == "incident", TimelineEntry.object_id == str(iid))) or 0


def _live(session, iid: int) -> set[tuple[str, str]]:
    return {(k, o) for k, o in session.execute(select(EmergencyTask.task_key, EmergencyTask.owner_department_code)
                                               .where(EmergencyTask.incident_id == iid,
                                                      EmergencyTask.state != "retired"))}


def _ladder(level: str) -> set[tuple[str, str]]:
    """The ladder file resolved by hand: a level's calls plus those of the levels it inherits."""
    doc = json.loads((DATA / "mobilisation.json").read_text(encoding="utf-8"))["levels"]
    out: set[tuple[str, str]] = set()
    cur: str | None = level
    while cur:
        out |= {(c["pool"], c["org_code"]) for c in doc[cur]["calls"]}
        cur = doc[cur].get("inherits")
    return out


def _called(session, iid: int) -> set[tuple[str, str]]:
    return {(p, o) for p, o in session.execute(select(MobilisationCallup.pool, MobilisationCallup.org_code)
                                               .where(MobilisationCallup.incident_id == iid,
                                                      MobilisationCallup.state != "stood_down"))}


@pytest.fixture()
def test_plan(session):
    out = plans.import_plan(session, SYSTEM, plan_doc("T-LV"))
    session.commit()
    return out


def test_levels_create_add_and_retire_exactly_the_difference(session, test_plan):
    res = incidents.open_incident(session, SYSTEM, "phone", None, "natural", "II", area=S_LEVELS,
                                  subtype="flood_drought", title="测试：分级启动预案")
    session.commit()
    iid = res.incident_id
    n0 = _rows(session, iid)

    incidents.act(session, SYSTEM, iid, "respond", {"level": "II", "plans": ["T-LV"]})
    session.commit()
    assert _live(session, iid) == expected_tasks("II", S_LEVELS)
    assert _rows(session, iid) == n0 + 1
    assert _called(session, iid) == _ladder("II")
    ids_ii = set(session.scalars(select(EmergencyTask.id).where(EmergencyTask.incident_id == iid)))
    timers = session.scalar(select(func.count()).select_from(Timer).where(
        Timer.ref_type == tasks.TASK_REF, Timer.ref_id.in_([str(i) for i in ids_ii]))) or 0
    assert timers == len(ids_ii)  # every task has its deadline armed
    note = session.scalar(select(func.count()).select_from(Notification).where(
        Notification.department_code == "xf", Notification.link == f"/emergency/tasks?incident={iid}"))
    assert note == 1  # one to-do notification per department, not one per task

    incidents.act(session, SYSTEM, iid, "adjust_level", {"level": "I"})
    session.commit()
    assert _live(session, iid) == expected_tasks("I", S_LEVELS)
    assert _rows(session, iid) == n0 + 2
    added = session.execute(select(EmergencyTask.task_key, EmergencyTask.owner_department_code)
                            .where(EmergencyTask.incident_id == iid, EmergencyTask.id.not_in(ids_ii))).all()
    assert set(map(tuple, added)) == expected_tasks("I", S_LEVELS) - expected_tasks("II", S_LEVELS)
    assert _called(session, iid) == _ladder("I")

    # the level-I task F is finished before the level is lowered: it stays done
    f = session.scalar(select(EmergencyTask).where(EmergencyTask.incident_id == iid, EmergencyTask.task_key == "f"))
    tasks.act(session, SYSTEM, f.id, "complete", {})
    session.commit()
    incidents.act(session, SYSTEM, iid, "adjust_level", {"level": "II"})
    session.commit()
    assert _rows(session, iid) == n0 + 3  # the completion is a row of the task's own timeline
    states = dict(session.execute(select(EmergencyTask.task_key, EmergencyTask.state)
                                  .where(EmergencyTask.incident_id == iid)).all())
    assert states["f"] == "done" and states["g"] == "retired" and states["h"] == "retired"
    assert _live(session, iid) == expected_tasks("II", S_LEVELS) | {("f", "jj")}
    assert _called(session, iid) == _ladder("II")
    row = lifecycle_last(session, iid)
    assert row.action == "adjust_level" and row.data["tasks_retired"] == 2 and row.data["level_from"] == "I"


def lifecycle_last(session, iid: int) -> TimelineEntry:
    return session.scalar(select(TimelineEntry).where(TimelineEntry.object_type == "incident",
                                                      TimelineEntry.object_id == str(iid))
                          .order_by(TimelineEntry.id.desc()).limit(1))


def test_each_level_change_is_one_timeline_row(session, test_plan):
    """Counted on the incident's own timeline only (the task completion above writes to the task's)."""
    res = incidents.open_incident(session, SYSTEM, "phone", None, "natural", "III", area=S_ROWS,
                                  subtype="flood_drought", title="测试：每次调整一行时间线")
    session.commit()
    iid = res.incident_id
    n0 = _rows(session, iid)
    for step, (action, body) in enumerate([("respond", {"level": "IV", "plans": ["T-LV"]}),
                                           ("adjust_level", {"level": "I"}), ("adjust_level", {"level": "III"})],
                                          start=1):
        incidents.act(session, SYSTEM, iid, action, body)
        session.commit()
        assert _rows(session, iid) == n0 + step
        assert _live(session, iid) == expected_tasks(body["level"], S_ROWS)
    acts = session.scalars(select(PlanActivation).where(PlanActivation.incident_id == iid)).all()
    assert [a.level for a in acts] == ["III"]


def test_respond_without_plans_picks_the_special_plan_of_the_kind(session):
    res = incidents.open_incident(session, SYSTEM, "phone", None, "public_health", "III", area=S_AUTO,
                                  subtype="infectious_disease", title="测试：自动匹配专项预案")
    session.commit()
    incidents.act(session, SYSTEM, res.incident_id, "respond", {"level": "III"})
    session.commit()
    codes = set(session.scalars(select(plans.Plan.code).join(PlanActivation, PlanActivation.plan_id == plans.Plan.id)
                                .where(PlanActivation.incident_id == res.incident_id)))
    assert codes == {"SJ-GGWS"}  # the public-health special plan, not the overall plan


def test_illegal_and_incomplete_actions_are_named(client, session, test_plan):
    from tests.helpers import auth_headers, make_user

    h = auth_headers(client, *make_user(session, "t_em_cmd", ["emergency_commander"], area_code="310117"))
    r = client.post("/api/v1/emergency/incidents", headers=h, json={
        "category": "natural", "subtype": "flood_drought", "severity": "IV", "title": "测试：非法动作", "area": S_API})
    assert r.status_code == 201, r.text
    iid = r.json()["incident_id"]
    r = client.post(f"/api/v1/emergency/incidents/{iid}/actions/close", headers=h, json={})
    assert r.status_code == 409
    body = r.json()
    assert body["state"] == "reported" and "respond" in body["allowed_actions"] and "close" not in body["allowed_actions"]
    assert "reported" in body["detail"][0]["msg"] and "respond" in body["detail"][0]["msg"]
    r = client.post(f"/api/v1/emergency/incidents/{iid}/actions/respond", headers=h, json={})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "level"]
    assert client.post(f"/api/v1/emergency/incidents/{iid}/actions/teleport", headers=h, json={}).status_code == 404
    r = client.post(f"/api/v1/emergency/incidents/{iid}/actions/respond", headers=h, json={"level": "IV", "plans": ["T-LV"]})
    assert r.status_code == 200 and r.json()["response_level"] == "IV"
    r = client.post(f"/api/v1/emergency/incidents/{iid}/actions/adjust_level", headers=h, json={"level": "IV"})
    assert r.status_code == 409 and r.json()["detail"][0]["type"] == "guard"
    task = client.get(f"/api/v1/emergency/tasks?incident={iid}", headers=h).json()["items"][0]
    assert client.post(f"/api/v1/emergency/tasks/{task['id']}/actions/complete", headers=h, json={}).status_code == 200
    r = client.post(f"/api/v1/emergency/tasks/{task['id']}/actions/complete", headers=h, json={})
    assert r.status_code == 409 and r.json()["state"] == "done" and r.json()["allowed_actions"] == ["reopen"]


# ---------------------------------------------------------------- plan documents


def test_import_names_every_problem_and_writes_nothing(client, session):
    from tests.helpers import auth_headers, make_user

    h = auth_headers(client, *make_user(session, "t_em_planner", ["emergency_commander"], area_code="310117"))
    # schema problems (Pydantic): all named
    bad = plan_doc("T-BAD")
    bad["type"] = "secret"
    bad["levels"]["IV"]["tasks"][1]["deadline_minutes"] = -5
    bad["levels"]["III"]["inherits"] = "I"
    r = client.post("/api/v1/emergency/plans", content=json.dumps(bad, ensure_ascii=False),
                    headers={**h, "Content-Type": "application/json"})
    assert r.status_code == 422
    locs = [tuple(p["loc"]) for p in r.json()["detail"]]
    assert ("body", "type") in locs and ("body", "levels", "IV", "tasks", 1, "deadline_minutes") in locs
    # references the schema cannot check: all named, from YAML
    bad = plan_doc("T-BAD")
    bad["levels"]["IV"]["tasks"][0]["department"] = "no_such_dept"
    bad["levels"]["I"]["tasks"][0]["group"] = "nope"
    bad["scope"]["categories"].append("weather")
    r = client.post("/api/v1/emergency/plans", content=yaml.safe_dump(bad, allow_unicode=True),
                    headers={**h, "Content-Type": "application/yaml"})
    assert r.status_code == 422
    locs = [tuple(p["loc"]) for p in r.json()["detail"]]
    assert ("body", "levels", "IV", "tasks", 0, "department") in locs
    assert ("body", "levels", "I", "tasks", 0, "group") in locs
    assert ("body", "scope", "categories", 1) in locs
    r = client.post("/api/v1/emergency/plans", content="levels: [unclosed", headers={**h, "Content-Type": "application/yaml"})
    assert r.status_code == 422 and "YAML" in r.json()["detail"][0]["msg"]
    assert client.get("/api/v1/emergency/plans/T-BAD", headers=h).status_code == 404


def test_versions_and_export_round_trip(client, session):
    from tests.helpers import auth_headers, make_user

    h = auth_headers(client, *make_user(session, "t_em_planner2", ["emergency_commander"], area_code="310117"))
    doc = plan_doc("T-VER")
    r = client.post("/api/v1/emergency/plans", content=yaml.safe_dump(doc, allow_unicode=True),
                    headers={**h, "Content-Type": "application/yaml"})
    assert r.status_code == 201 and r.json()["version"] == 1 and r.json()["created"]
    for fmt in ("json", "yaml"):
        text = client.get("/api/v1/emergency/plans/T-VER/export", headers=h, params={"format": fmt}).text
        r = client.post("/api/v1/emergency/plans", content=text, headers={**h, "Content-Type": f"application/{fmt}"})
        assert r.status_code == 201 and r.json() == {"code": "T-VER", "version": 1, "created": False, "changed": False}
    doc["levels"]["IV"]["tasks"][0]["deadline_minutes"] = 25
    doc["edition"] = "t2"
    r = client.post("/api/v1/emergency/plans", content=json.dumps(doc), headers={**h, "Content-Type": "application/json"})
    assert r.json()["version"] == 2
    d = client.get("/api/v1/emergency/plans/T-VER", headers=h).json()
    assert [v["version"] for v in d["versions"]] == [1, 2] and d["edition"] == "t2"
    assert d["tasks_by_level"]["IV"][0]["deadline_minutes"] == 25
    old = client.get("/api/v1/emergency/plans/T-VER", headers=h, params={"version": 1}).json()
    assert old["tasks_by_level"]["IV"][0]["deadline_minutes"] == 30


def test_json_schema_checked_by_an_independent_validator():
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    validator = jsonschema_rs.validator_for(plans.plan_schema())
    for path in sorted((DATA / "plans").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert validator.is_valid(json.loads(json.dumps(doc, default=str))), path.name
    broken = plan_doc("T-X")
    broken["type"] = "secret"
    broken["levels"]["IV"]["tasks"][0]["deadline_minutes"] = -5
    assert not validator.is_valid(broken)
    assert len(list(validator.iter_errors(broken))) >= 2


def test_review_and_drill_reminders(session):
    import datetime as dt
    from zoneinfo import ZoneInfo

    from cityops.emergency import jobs_command
    from cityops.jobs import service as jobs

    doc = plan_doc("T-REM", reminders={"review_every_days": 365, "drill_every_days": 365, "remind_days_before": 30,
                                       "last_review": "2024-01-01", "last_drill": "2020-01-01"})
    plans.import_plan(session, SYSTEM, doc)
    session.commit()
    plan = session.scalar(select(plans.Plan).where(plans.Plan.code == "T-REM"))
    drill = jobs.get_timer(session, plans.DRILL_TIMER, plans.PLAN_REF, plan.id)
    assert drill is not None and drill.status == "pending"
    local = ZoneInfo("Asia/Shanghai")
    assert plan.next_drill_at.astimezone(local).date() == dt.date(2020, 12, 31)  # 365 days (2020 is a leap year)
    assert drill.due_at <= jobs.now()  # overdue: the reminder is due now
    jobs_command.plan_drill_due(session, {**drill.payload, "kind": drill.kind, "ref_type": drill.ref_type,
                                          "ref_id": plan.id})
    session.commit()
    assert session.scalar(select(func.count()).select_from(Notification).where(
        Notification.department_code == "yj", Notification.title.contains("T-REM") | Notification.title.contains("测试预案"))) >= 1
    rows = [r for r in session.scalars(select(TimelineEntry).where(TimelineEntry.object_type == "plan",
                                                                  TimelineEntry.object_id == str(plan.id)))]
    assert [r.action for r in rows][-1] == "drill_reminder"
    held = jobs.now().astimezone(local).date() - dt.timedelta(days=10)
    plans.record_drill(session, SYSTEM, "T-REM", {"held_on": held.isoformat()})
    session.commit()
    session.refresh(plan)
    assert plan.next_drill_at.astimezone(local).date() == held + dt.timedelta(days=365)
    t = jobs.get_timer(session, plans.DRILL_TIMER, plans.PLAN_REF, plan.id)
    assert t.status == "pending"
    assert t.due_at.astimezone(local).date() == held + dt.timedelta(days=365 - 30)  # reminded 30 days before


def test_an_open_task_past_its_deadline_is_escalated_once(session, test_plan):
    import datetime as dt

    from cityops import clock

    res = incidents.open_incident(session, SYSTEM, "phone", None, "natural", "IV", area="310117120",
                                  subtype="flood_drought", title="测试：任务超时")
    incidents.act(session, SYSTEM, res.incident_id, "respond", {"level": "IV", "plans": ["T-LV"]})
    session.commit()
    a, b = sorted(session.scalars(select(EmergencyTask).where(EmergencyTask.incident_id == res.incident_id)),
                  key=lambda t: t.task_key)
    tasks.act(session, SYSTEM, b.id, "complete", {})  # done in time: never escalated
    session.commit()
    later = a.due_at + dt.timedelta(minutes=1)
    with clock.pinned(later):
        assert tasks.fire_task_due(session, {"ref_id": a.id}) == "escalated"
        assert tasks.fire_task_due(session, {"ref_id": a.id}) == "skipped"  # once
        assert tasks.fire_task_due(session, {"ref_id": b.id}) == "skipped"
    session.commit()
    session.refresh(a)
    assert a.overdue_at == later
    n = session.scalar(select(func.count()).select_from(Notification).where(
        Notification.department_code == "sw", Notification.role == "dept_leader",
        Notification.title.contains("应急任务超时"), Notification.link == f"/emergency/tasks?incident={res.incident_id}"))
    assert n == 1
    assert tasks.sla(a, later) == "red"
