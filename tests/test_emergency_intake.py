"""The one intake of incidents and the scope of every read (issue 12):

* the callers of other domains (vital-signs warnings, health signals) and a case escalated by a
  dispatcher all go through ``open_incident``; a linked source is linked once; a report of the same
  kind in or around the place of an open incident joins it (first report time kept);
* a street account sees only its street's incidents (another street's is 404); a department sees
  the tasks it owns (another department's is 404), acts on them, and not on others'.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from cityops.emergency import incidents
from cityops.emergency.models_command import Incident, IncidentIntake
from cityops.security.principal import SYSTEM
from tests.emergency_helpers import SHESHAN, YUEYANG, plan_doc, point_in

S_VS, S_HEALTH, S_CASE = "310117107", "310117109", "310117116"


def vital_signs_caller(session, warning_id: str, polygon: dict) -> incidents.IntakeResult:
    """What the vital-signs domain does when a warning calls for an incident (its own code)."""
    return incidents.open_incident(session, SYSTEM, "vital_signs", warning_id, "natural", "III",
                                   geometry=polygon, title="城市体征预警：积水深度超阈值", subtype="meteorological",
                                   description="多个积水监测点超过30厘米")


def health_caller(session, signal_id: str, community: str, at: dt.datetime) -> incidents.IntakeResult:
    return incidents.open_incident(session, SYSTEM, "health_signal", signal_id, "public_health", "IV", area=community,
                                   subtype="infectious_disease", title="学校聚集性发热病例信号", reported_at=at)


def test_callers_of_other_domains_and_duplicates(session):
    from cityops.geo import service as geo

    g = geo.get_area(session, S_VS + "001")  # the first community of the street
    poly = {"type": "Polygon", "coordinates": [list(g.geom.exterior.coords)]}
    a = vital_signs_caller(session, "VS-W-1", poly)
    session.commit()
    assert a.created and a.notified > 0
    again = vital_signs_caller(session, "VS-W-1", poly)
    assert again.duplicate_source and again.incident_id == a.incident_id  # the same warning: linked once
    inc = session.get(Incident, a.incident_id)
    assert inc.street_code == S_VS and inc.geom is not None and inc.source_type == "vital_signs"

    now = incidents.now()
    c1 = S_HEALTH + "001"
    first = health_caller(session, "HS-1", c1, now - dt.timedelta(minutes=20))
    session.commit()
    second = health_caller(session, "HS-2", c1, now - dt.timedelta(minutes=50))  # another signal, earlier
    session.commit()
    assert second.merged and second.incident_id == first.incident_id
    inc = session.get(Incident, first.incident_id)
    session.refresh(inc)
    assert inc.report_count == 2 and inc.reported_at == now - dt.timedelta(minutes=50)
    srcs = session.scalars(select(IncidentIntake.source_ref).where(IncidentIntake.incident_id == inc.id)).all()
    assert sorted(srcs) == ["HS-1", "HS-2"]
    other_kind = incidents.open_incident(session, SYSTEM, "phone", None, "public_health", "IV", area=c1,
                                         subtype="food_occupational", title="食堂疑似食物中毒")
    assert other_kind.created  # another subtype is another incident
    session.commit()


def test_a_dispatcher_escalates_a_case(client, session):
    from cityops import clock
    from cityops.cases import reference as ref
    from cityops.cases import schemas
    from cityops.cases import service as cases
    from tests.helpers import auth_headers, make_user, principal_of

    make_user(session, "t_em_sup2", ["supervisor"], area_code=S_CASE)
    cat = ref.catalogue(session)
    code = sorted(c.code for c in cat.by_version[cat.active_id].values() if c.kind != "component")[3]
    session.commit()
    lon, lat = point_in(session, S_CASE, 2)
    with clock.pinned(dt.datetime(2025, 4, 2, 1, 0, tzinfo=dt.UTC)):
        _s, got, _r = cases.submit_report(session, principal_of(session, "t_em_sup2"), schemas.ReportCreate(
            category_code=code, lat=lat, lon=lon, description="测试：道路塌陷，多车受损", source="supervisor"))
    h = auth_headers(client, *make_user(session, "t_em_disp", ["dispatcher"], area_code="310117"))
    body = {"case_id": got["case_id"], "category": "accident", "subtype": "public_facility", "severity": "III",
            "note": "路面塌陷扩大，升级为突发事件"}
    r = client.post("/api/v1/emergency/incidents/from-case", headers=h, json=body)
    assert r.status_code == 201, r.text
    res = r.json()
    assert res["created"] and res["case_id"] == got["case_id"]
    d = client.get(f"/api/v1/emergency/incidents/{res['incident_id']}", headers=h).json()
    assert d["source_type"] == "case" and d["intakes"][0]["source_ref"] == str(got["case_id"])
    assert d["street_code"] == S_CASE and d["reported_at"].startswith("2025-04-02T01:00")
    tl = client.get(f"/api/v1/cases/{got['case_id']}/timeline", headers=h).json()
    links = [e for e in tl if e["action"] == "link"]
    assert len(links) == 1 and links[0]["data"] == {"kind": "incident", "ref": res["code"]}
    r = client.post("/api/v1/emergency/incidents/from-case", headers=h, json=body)
    assert r.json()["duplicate_source"] and r.json()["incident_id"] == res["incident_id"]
    tl = client.get(f"/api/v1/cases/{got['case_id']}/timeline", headers=h).json()
    assert len([e for e in tl if e["action"] == "link"]) == 1
    # a dispatcher of another street cannot see the case: 404, nothing opened
    h2 = auth_headers(client, *make_user(session, "t_em_disp_ss", ["dispatcher"], area_code=SHESHAN))
    assert client.post("/api/v1/emergency/incidents/from-case", headers=h2, json=body).status_code == 404


def test_street_and_department_scopes(client, session):
    from cityops.emergency import plans
    from tests.helpers import auth_headers, make_user

    plans.import_plan(session, SYSTEM, plan_doc("T-SCOPE"))
    ids = {}
    for street in (YUEYANG, SHESHAN):
        r = incidents.open_incident(session, SYSTEM, "phone", None, "natural", "II", area=street, subtype="earthquake",
                                    title=f"测试：辖区 {street}")
        incidents.act(session, SYSTEM, r.incident_id, "respond", {"level": "II", "plans": ["T-SCOPE"]})
        ids[street] = r.incident_id
    session.commit()
    hy = auth_headers(client, *make_user(session, "t_em_yy", ["street_operator"], area_code=YUEYANG))
    listed = client.get("/api/v1/emergency/incidents", headers=hy).json()["items"]
    assert listed and {i["street_code"] for i in listed} == {YUEYANG}
    assert ids[YUEYANG] in {i["id"] for i in listed} and ids[SHESHAN] not in {i["id"] for i in listed}
    assert client.get(f"/api/v1/emergency/incidents/{ids[SHESHAN]}", headers=hy).status_code == 404
    assert client.get(f"/api/v1/emergency/incidents/{ids[SHESHAN]}/timeline", headers=hy).status_code == 404
    assert client.get("/api/v1/emergency/incidents", headers=hy, params={"area": SHESHAN}).status_code == 404
    # its street centre's task: visible to the street operator, and it may act on it
    mine = client.get(f"/api/v1/emergency/tasks?incident={ids[YUEYANG]}", headers=hy).json()["items"]
    assert {t["incident_id"] for t in mine} == {ids[YUEYANG]}
    centre = next(t for t in mine if t["owner_department_code"] == f"jz{YUEYANG}")
    assert client.post(f"/api/v1/emergency/tasks/{centre['id']}/actions/acknowledge", headers=hy,
                       json={}).status_code == 200
    sw = next(t for t in mine if t["owner_department_code"] == "sw")
    r = client.post(f"/api/v1/emergency/tasks/{sw['id']}/actions/acknowledge", headers=hy, json={})
    assert r.status_code == 403  # visible in its street, but only 区水务局 acts on it

    hd = auth_headers(client, *make_user(session, "t_em_sw", ["dept_handler"], area_code="310117",
                                         department_code="sw"))
    items = client.get("/api/v1/emergency/tasks", headers=hd, params={"page_size": 1000}).json()["items"]
    assert items and {t["owner_department_code"] for t in items} == {"sw"}
    assert {ids[YUEYANG], ids[SHESHAN]} <= {t["incident_id"] for t in items}
    xf = client.get(f"/api/v1/emergency/tasks?incident={ids[SHESHAN]}",
                    headers=auth_headers(client, *make_user(session, "t_em_cmd2", ["emergency_commander"],
                                                            area_code="310117"))).json()["items"]
    other = next(t for t in xf if t["owner_department_code"] == "xf")
    assert client.get(f"/api/v1/emergency/tasks/{other['id']}", headers=hd).status_code == 404
    assert client.post(f"/api/v1/emergency/tasks/{other['id']}/actions/complete", headers=hd, json={}).status_code == 404
    own = next(t for t in items if t["incident_id"] == ids[SHESHAN])
    r = client.post(f"/api/v1/emergency/tasks/{own['id']}/actions/complete", headers=hd, json={})
    assert r.status_code == 200 and r.json()["state"] == "done" and r.json()["on_time"] is True
    # the department sees the incidents it has tasks in, not others
    incs = {i["id"] for i in client.get("/api/v1/emergency/incidents", headers=hd,
                                        params={"page_size": 500}).json()["items"]}
    assert {ids[YUEYANG], ids[SHESHAN]} <= incs
    hj = auth_headers(client, *make_user(session, "t_em_jt", ["dept_handler"], area_code="310117",
                                         department_code="xfb"))  # 区信访办: no task, never notified
    assert client.get("/api/v1/emergency/incidents", headers=hj).json()["total"] == 0


def test_live_feed_and_call_up_acknowledgements(client, session):
    from cityops.emergency import live, mobilisation
    from cityops.jobs import service as jobs
    from tests.helpers import auth_headers, make_user, principal_of

    cursor = jobs.latest_event_id(session)
    session.rollback()
    r = incidents.open_incident(session, SYSTEM, "phone", None, "accident", "III", area=SHESHAN, subtype="fire",
                                title="测试：实时动态")
    incidents.act(session, SYSTEM, r.incident_id, "respond", {"level": "III"})
    session.commit()
    events = list(jobs.events_since(session, cursor, topics=live.TOPICS, limit=500))
    make_user(session, "t_em_live_yy", ["street_operator"], area_code=YUEYANG)
    make_user(session, "t_em_live_ss", ["street_operator"], area_code=SHESHAN)
    yy, ss = principal_of(session, "t_em_live_yy"), principal_of(session, "t_em_live_ss")
    mine = [i for i in live.render(session, ss, events, None, "zh") if i.get("incident_id") == r.incident_id]
    assert {i["topic"] for i in mine} >= {"incident.opened", "incident.transition"}
    assert all(i["link"] == f"/emergency/incidents/{r.incident_id}" and i["event_id"] for i in mine)
    assert [i for i in live.render(session, yy, events, None, "zh") if i.get("incident_id") == r.incident_id] == []
    session.rollback()

    calls = mobilisation.list_callups(session, SYSTEM, incident=r.incident_id)
    xf = next(c for c in calls if c["department_code"] == "xf")
    session.rollback()
    hx = auth_headers(client, *make_user(session, "t_em_xf", ["dept_handler"], area_code="310117", department_code="xf"))
    hg = auth_headers(client, *make_user(session, "t_em_gd", ["dept_handler"], area_code="310117", department_code="gd"))
    gd_visible = {c["id"] for c in client.get(f"/api/v1/emergency/mobilisation?incident={r.incident_id}",
                                              headers=hg).json()}
    assert xf["id"] not in gd_visible  # another department's call-up is out of its scope
    assert client.post(f"/api/v1/emergency/mobilisation/{xf['id']}/ack", headers=hg, json={}).status_code == 404
    got = client.post(f"/api/v1/emergency/mobilisation/{xf['id']}/ack", headers=hx, json={"note": "已出动"})
    assert got.status_code == 200 and got.json()["state"] == "acknowledged" and got.json()["acknowledged_by"] == "t_em_xf"
    again = client.post(f"/api/v1/emergency/mobilisation/{xf['id']}/ack", headers=hx, json={})
    assert again.status_code == 409 and again.json()["state"] == "acknowledged"
