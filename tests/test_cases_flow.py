"""A citizen report through every step to 结案 and 评价 over HTTP with the right roles; 核查 fail ->
返工 -> second 核查 pass; illegal actions get 409 naming the state and the allowed actions."""

from __future__ import annotations

from sqlalchemy import select

from tests.cases_helpers import category, free_point, upload
from tests.helpers import auth_headers, make_user

DISTRICT = "310117"


def _users(session, client, street):
    out = {}
    for name, roles, area, dept in [
        ("cf_intake", ["intake_operator"], DISTRICT, None),
        ("cf_super", ["supervisor"], street, None),
        ("cf_lead", ["shift_lead"], DISTRICT, None),
        ("cf_disp", ["dispatcher"], DISTRICT, None),
        ("cf_cgzf", ["dept_handler"], DISTRICT, "cgzf"),
        ("cf_sw", ["dept_handler"], DISTRICT, "sw"),
        ("cf_other_street", ["street_operator"], "310117999", None),
    ]:
        u, pw = make_user(session, name, roles, area_code=area, department_code=dept)
        out[name] = auth_headers(client, u, pw)
    return out


def _act(client, h, cid, action, expect=200, **body):
    r = client.post(f"/api/v1/cases/{cid}/actions/{action}", json=body, headers=h)
    assert r.status_code == expect, (action, r.status_code, r.text)
    return r.json()


def test_citizen_report_full_loop_with_rework(client, session):
    cat = category(session, "暴露垃圾")
    lon, lat, grid = free_point(session, cat.id)
    street = grid[:9]
    u = _users(session, client, street)

    # 上报 (public, no sign-in); the 2013-format code is mapped to the active catalogue by the crosswalk
    r = client.post("/api/v1/public/reports", json={
        "category_code": "20102", "lat": lat, "lon": lon, "description": "路边堆了很多生活垃圾",
        "reporter_name": "张三丰", "reporter_phone": "13912345678"})
    assert r.status_code == 201, r.text
    rep = r.json()
    cid, token = rep["case_id"], rep["tracking_token"]
    assert rep["state"] == "reported" and not rep["linked"] and rep["grid_code"] == grid
    assert rep["category_code"] == cat.code and rep["street_code"] == street and token

    # the console shows only the actions the signed-in principal may take now
    acts = client.get(f"/api/v1/cases/{cid}/actions", headers=u["cf_intake"]).json()
    assert [a["action"] for a in acts["actions"]] == ["accept", "merge"]
    assert client.get(f"/api/v1/cases/{cid}/actions", headers=u["cf_cgzf"]).status_code == 404  # not its case
    assert client.get(f"/api/v1/cases/{cid}", headers=u["cf_other_street"]).status_code == 404

    # illegal: closing a just-reported case -> 409 naming the state and the allowed actions
    r = client.post(f"/api/v1/cases/{cid}/actions/close", json={}, headers=u["cf_lead"])
    assert r.status_code == 409
    body = r.json()
    assert body["state"] == "reported" and "void" in body["allowed_actions"] and "close" not in body["allowed_actions"]
    assert "reported" in body["detail"][0]["msg"]

    _act(client, u["cf_intake"], cid, "accept", note="受理")
    # a public report must be verified before registration (guard), so register is refused
    r = client.post(f"/api/v1/cases/{cid}/actions/register", json={}, headers=u["cf_lead"])
    assert r.status_code == 409 and "register" not in r.json()["allowed_actions"]
    assert "request_verification" in r.json()["allowed_actions"]
    # the intake operator has no register right at all -> 403
    assert client.post(f"/api/v1/cases/{cid}/actions/not_register", json={"reason": "x"},
                       headers=u["cf_intake"]).status_code == 403
    _act(client, u["cf_intake"], cid, "request_verification")
    photo = upload(client, u["cf_super"])
    r = client.post(f"/api/v1/cases/{cid}/actions/verify", json={}, headers=u["cf_super"])
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "result"]
    _act(client, u["cf_super"], cid, "verify", result="valid", photos=[photo], note="现场核实属实")
    d = _act(client, u["cf_lead"], cid, "register")
    assert d["state"] == "registered" and d["proposed_department_code"] == "jz" + street  # 事件: 先属地
    assert d["sla_step"] == "dispatch" and d["due_at"]

    # dispatch: the dispatcher overrides the proposal; the override is recorded
    r = client.post(f"/api/v1/cases/{cid}/actions/dispatch", json={"department_code": "nope"}, headers=u["cf_disp"])
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "department_code"]
    d = _act(client, u["cf_disp"], cid, "dispatch", department_code="cgzf", co_department_codes=["lhsr"],
             note="城管执法主办，绿化市容协办")
    assert d["state"] == "dispatched" and d["lead_department_code"] == "cgzf"
    assert {x["department_code"]: x["role"] for x in d["departments"]} == {"cgzf": "lead", "lhsr": "co"}
    last = d["routing"][-1]
    assert last["proposed_department_code"] == "jz" + street and last["chosen_department_code"] == "cgzf"
    assert last["overridden"] is True and last["actor"] == "cf_disp"

    # only the lead department acknowledges; another department does not even see the case
    assert client.post(f"/api/v1/cases/{cid}/actions/acknowledge", json={}, headers=u["cf_sw"]).status_code == 404
    _act(client, u["cf_cgzf"], cid, "acknowledge")
    r = client.post(f"/api/v1/cases/{cid}/actions/report_back", json={"note": "已清理"}, headers=u["cf_cgzf"])
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "photos"]
    fix = upload(client, u["cf_cgzf"])
    _act(client, u["cf_cgzf"], cid, "report_back", note="已清理", photos=[fix])
    _act(client, u["cf_intake"], cid, "request_inspection")
    # 核查 fail -> 返工
    d = _act(client, u["cf_super"], cid, "inspect", result="fail", photos=[upload(client, u["cf_super"])],
             note="仍有残留垃圾")
    assert d["state"] == "inspected"
    allowed = _act(client, u["cf_lead"], cid, "close", expect=409)["allowed_actions"]
    assert "rework" in allowed and "close" not in allowed
    d = _act(client, u["cf_lead"], cid, "rework", reason="现场仍有残留")
    assert d["state"] == "dispatched" and d["counters"]["rework_count"] == 1 and d["lead_department_code"] == "cgzf"
    # second round: 签收, 反馈, 核查 pass, 结案
    _act(client, u["cf_cgzf"], cid, "acknowledge")
    _act(client, u["cf_cgzf"], cid, "report_back", photos=[upload(client, u["cf_cgzf"])], note="已彻底清理")
    _act(client, u["cf_intake"], cid, "request_inspection")
    _act(client, u["cf_super"], cid, "inspect", result="pass", photos=[upload(client, u["cf_super"])])
    d = _act(client, u["cf_lead"], cid, "close", note="核查通过")
    assert d["state"] == "closed" and d["timestamps"]["closed_at"]

    # 评价: the reporter with the tracking token
    st = client.get(f"/api/v1/public/reports/{token}").json()
    assert st["state"] == "closed" and st["can_evaluate"] is True
    r = client.post(f"/api/v1/public/reports/{token}/evaluation", json={"satisfaction": "satisfied", "note": "很快"})
    assert r.status_code == 200 and r.json()["state"] == "evaluated"
    assert client.post(f"/api/v1/public/reports/{token}/evaluation",
                       json={"satisfaction": "satisfied"}).status_code == 409

    d = client.get(f"/api/v1/cases/{cid}", headers=u["cf_lead"]).json()
    assert d["state"] == "evaluated" and d["satisfaction"] == "satisfied"
    assert d["reporter_name"] == "张**" and d["reporter_phone"] == "139****5678"  # masked
    actions = [(e["action"], e["from_state"], e["to_state"]) for e in d["timeline"] if e["action"] not in ("warn", "escalate")]
    assert actions == [
        ("report", None, "reported"), ("accept", "reported", "accepted"),
        ("request_verification", "accepted", "verifying"), ("verify", "verifying", "verified"),
        ("register", "verified", "registered"), ("dispatch", "registered", "dispatched"),
        ("acknowledge", "dispatched", "acknowledged"), ("report_back", "acknowledged", "handled"),
        ("request_inspection", "handled", "inspecting"), ("inspect", "inspecting", "inspected"),
        ("rework", "inspected", "dispatched"), ("acknowledge", "dispatched", "acknowledged"),
        ("report_back", "acknowledged", "handled"), ("request_inspection", "handled", "inspecting"),
        ("inspect", "inspecting", "inspected"), ("close", "inspected", "closed"), ("evaluate", "closed", "evaluated")]
    actors = {e["action"]: e["actor"] for e in d["timeline"]}
    assert actors["accept"] == "cf_intake" and actors["verify"] == "cf_super" and actors["acknowledge"] == "cf_cgzf"
    assert actors["evaluate"] == "reporter" and actors["report"] == "public"
    for k in ("accepted_at", "verifying_at", "verified_at", "registered_at", "dispatched_at", "acknowledged_at",
              "handled_at", "inspecting_at", "inspected_at", "closed_at", "evaluated_at"):
        assert d["timestamps"][k], k
    steps = [(s["step"], s["status"]) for s in d["steps"]]
    assert ("handle", "done") in steps and steps.count(("inspect", "done")) == 2 and steps.count(("handle", "done")) == 2
    assert all(s["status"] in ("done", "cancelled") for s in d["steps"])
    assert d["due_at"] is None and d["sla"] == "none"

    # the co-handler may post to the consultation thread, the other department may not see it
    co, pw = make_user(session, "cf_lhsr", ["dept_handler"], area_code=DISTRICT, department_code="lhsr")
    hco = auth_headers(client, co, pw)
    assert client.get(f"/api/v1/cases/{cid}", headers=hco).status_code == 200


def test_sendback_reassign_extension_suspend_and_oversee(client, session):
    cat = category(session, "道路破损")
    lon, lat, grid = free_point(session, cat.id, skip=1)
    u = _users(session, client, grid[:9])
    sup, pw = make_user(session, "cf_grid", ["supervisor"], area_code=grid[:12])
    hs = auth_headers(client, sup, pw)
    r = client.post("/api/v1/cases", json={"category_code": cat.code, "lat": lat, "lon": lon, "source": "supervisor",
                                           "description": "路面坑洼"}, headers=hs)
    assert r.status_code == 201, r.text
    cid = r.json()["case_id"]
    _act(client, u["cf_intake"], cid, "accept")
    d = _act(client, u["cf_lead"], cid, "register")  # supervisor's own report: registered directly
    assert d["state"] == "registered"
    _act(client, u["cf_disp"], cid, "dispatch", department_code="sw")
    # 退单 needs a reason; then the dispatcher reassigns (改派)
    assert client.post(f"/api/v1/cases/{cid}/actions/send_back", json={}, headers=u["cf_sw"]).status_code == 422
    d = _act(client, u["cf_sw"], cid, "send_back", reason="道路属建管委养护，非水务职责")
    assert d["state"] == "sent_back" and d["lead_department_code"] is None and d["counters"]["sendback_count"] == 1
    assert client.get(f"/api/v1/cases/{cid}", headers=u["cf_sw"]).status_code == 404  # released
    d = _act(client, u["cf_disp"], cid, "reassign", department_code="cgzf")
    assert d["state"] == "dispatched" and [r["action"] for r in d["routing"]][-2:] == ["dispatch", "reassign"]
    _act(client, u["cf_cgzf"], cid, "acknowledge")
    handle = next(s for s in d["steps"] if s["step"] == "handle" and s["status"] == "open")
    # 延期: request, approve -> the handle deadline moves
    _act(client, u["cf_cgzf"], cid, "request_extension", reason="需要采购材料",
         extension={"value": 2, "unit": "working_day"})
    _act(client, u["cf_cgzf"], cid, "request_extension", expect=409, reason="again",
         extension={"value": 1, "unit": "working_day"})
    d = _act(client, u["cf_lead"], cid, "approve_extension")
    new = next(s for s in d["steps"] if s["id"] == handle["id"])
    assert new["due_at"] > handle["due_at"] and new["extended"] == 1 and d["counters"]["extension_count"] == 1
    # 督办 notifies the department; it stays in its state
    d = _act(client, u["cf_lead"], cid, "oversee", note="请加快处置")
    assert d["state"] == "acknowledged" and d["counters"]["oversee_count"] == 1
    # 挂账 pauses the clock; resume returns to the previous state
    d = _act(client, u["cf_lead"], cid, "suspend", reason="产权纠纷待协调")
    assert d["state"] == "suspended" and d["due_at"] is None
    assert all(s["status"] != "open" for s in d["steps"])
    d = _act(client, u["cf_lead"], cid, "resume")
    assert d["state"] == "acknowledged" and d["due_at"] is not None
    # unknown action -> 404 naming it; stale version -> 409
    assert client.post(f"/api/v1/cases/{cid}/actions/fly", json={}, headers=u["cf_lead"]).status_code == 404
    r = client.post(f"/api/v1/cases/{cid}/actions/oversee", json={"note": "x", "expected_version": 1},
                    headers=u["cf_lead"])
    assert r.status_code == 409

    # notifications reached the department's inbox
    from cityops.jobs.models import Notification

    titles = [n.title for n in session.scalars(select(Notification).where(Notification.department_code == "cgzf"))]
    session.commit()
    assert any("督办" in t for t in titles) and any("改派" in t for t in titles)


def test_workflow_table_is_data(client, session):
    lead, pw = make_user(session, "cf_lead2", ["shift_lead"], area_code=DISTRICT)
    h = auth_headers(client, lead, pw)
    wf = client.get("/api/v1/cases/workflow", headers=h).json()
    pairs = {(t["from"], t["action"]): t for t in wf["transitions"]}
    assert pairs[("inspecting", "inspect")]["to"] == "inspected"
    assert pairs[("inspected", "rework")]["to"] == "dispatched"
    assert "photos" in pairs[("acknowledged", "report_back")]["required"]
    assert pairs[("dispatched", "acknowledge")]["department"] == "lead"
    assert set(wf["states"]) >= {"reported", "accepted", "verifying", "registered", "not_registered", "dispatched",
                                 "acknowledged", "handled", "inspecting", "closed", "evaluated", "sent_back",
                                 "suspended", "voided"}
