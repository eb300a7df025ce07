"""Acceptance (shared with the case core): 核查 fail -> 返工 -> second 核查 pass over HTTP with the
right roles; the department's 返工率 shows it, and so do the posts' figures (the dispatcher's
准确派遣率, the supervisor's inspections, ...). Also the API's scoping, CSV and access rule."""

from __future__ import annotations

import csv
import io
import uuid

from tests.cases_helpers import category, free_point, upload
from tests.helpers import auth_headers, make_user

DISTRICT = "310117"


def _act(client, h, cid, action, **body):
    r = client.post(f"/api/v1/cases/{cid}/actions/{action}", json=body, headers=h)
    assert r.status_code == 200, (action, r.status_code, r.text)
    return r.json()


def _row(result, code):
    got = [i for i in result["items"] if i["code"] == code]
    assert len(got) == 1, (code, [i["code"] for i in result["items"]])
    return got[0]


def test_rework_shows_in_department_rework_rate(client, session):
    from cityops.cases import reference as ref
    from cityops.security.principal import SYSTEM

    tag = uuid.uuid4().hex[:6]
    dept = f"evt{tag}"
    ref.upsert_departments(session, SYSTEM, [{"code": dept, "name": f"评价测试部门{tag}", "name_en": "evaluation test"}])
    session.commit()
    ref.invalidate(session)
    cat = category(session, "暴露垃圾")
    lon, lat, grid = free_point(session, cat.id, skip=30)
    street = grid[:9]
    session.rollback()
    h = {}
    for name, roles, area, d in [(f"ev_in_{tag}", ["intake_operator"], DISTRICT, None),
                                 (f"ev_sup_{tag}", ["supervisor"], street, None),
                                 (f"ev_lead_{tag}", ["shift_lead"], DISTRICT, None),
                                 (f"ev_disp_{tag}", ["dispatcher"], DISTRICT, None),
                                 (f"ev_h_{tag}", ["dept_handler"], DISTRICT, dept),
                                 (f"ev_view_{tag}", ["street_operator"], street, None),
                                 (f"ev_admin_{tag}", ["sys_admin"], DISTRICT, None)]:
        u, pw = make_user(session, name, roles, area_code=area, department_code=d)
        h[name.split("_")[1]] = auth_headers(client, u, pw)
    r = client.post("/api/v1/public/reports", json={"category_code": cat.code, "lat": lat, "lon": lon,
                                                     "description": "评价测试：暴露垃圾"})
    assert r.status_code == 201, r.text
    cid = r.json()["case_id"]
    _act(client, h["in"], cid, "accept")
    _act(client, h["in"], cid, "request_verification")
    _act(client, h["sup"], cid, "verify", result="valid", photos=[upload(client, h["sup"])])
    _act(client, h["lead"], cid, "register")
    _act(client, h["disp"], cid, "dispatch", department_code=dept)
    # round 1: handled, inspected, failed -> 返工
    _act(client, h["h"], cid, "acknowledge")
    _act(client, h["h"], cid, "report_back", photos=[upload(client, h["h"])])
    _act(client, h["in"], cid, "request_inspection")
    _act(client, h["sup"], cid, "inspect", result="fail", photos=[upload(client, h["sup"])])
    d = _act(client, h["lead"], cid, "rework", reason="仍有残留")
    assert d["state"] == "dispatched" and d["counters"]["rework_count"] == 1
    # department figures before the second round: 1 rework of 1 feedback
    ev = client.get("/api/v1/evaluation/department", headers=h["lead"]).json()
    mid = _row(ev, dept)
    assert mid["handled"] == 1 and mid["reworks"] == 1 and mid["rework_rate"] == 1.0
    # round 2: passed -> 结案
    _act(client, h["h"], cid, "acknowledge")
    _act(client, h["h"], cid, "report_back", photos=[upload(client, h["h"])])
    _act(client, h["in"], cid, "request_inspection")
    _act(client, h["sup"], cid, "inspect", result="pass", photos=[upload(client, h["sup"])])
    d = _act(client, h["lead"], cid, "close")
    assert d["state"] == "closed"

    ev = client.get("/api/v1/evaluation/department", headers=h["lead"]).json()
    row = _row(ev, dept)
    assert ev["subject"] == "department" and ev["scheme"]["weights"]["rework_rate"] == 0.3
    assert row["assigned"] == 1 and row["handled"] == 2 and row["reworks"] == 1 and row["closed"] == 1
    assert row["rework_rate"] == 0.5 and row["close_rate"] == 1.0
    assert row["ack_due"] == 2 and row["handle_due"] == 2 and row["handle_ontime"] == 2 and row["overdue"] == 0
    assert row["avg_handle_hours"] is not None and row["avg_handle_hours"] >= 0
    # composite: 10 points (<= 50 cases) + 30% x 结案率 + 30% x 按时处置率 + 30% x (100 - 返工率)
    assert row["assigned_count_points"] == 10.0
    assert abs(row["score"] - (10 + 0.3 * 100 + 0.3 * 100 + 0.3 * 50)) < 1e-6 and row["grade"] == "B"

    # the posts: the dispatch was followed by a rework -> not accurate
    disp = _row(client.get("/api/v1/evaluation/dispatcher", headers=h["lead"]).json(), f"ev_disp_{tag}")
    assert disp["dispatched"] == 1 and disp["accurate_dispatched"] == 0 and disp["accurate_dispatch_rate"] == 0.0
    assert disp["dispatch_due"] == 1
    sup = _row(client.get("/api/v1/evaluation/supervisor", headers=h["lead"]).json(), f"ev_sup_{tag}")
    assert sup["verified"] == 1 and sup["inspected"] == 2 and sup["reports"] == 0 and sup["area_registered"] >= 1
    intake = _row(client.get("/api/v1/evaluation/intake_operator", headers=h["lead"]).json(), f"ev_in_{tag}")
    assert intake["accepted"] == 1 and intake["verify_issued"] == 1 and intake["inspect_issued"] == 2
    lead = _row(client.get("/api/v1/evaluation/shift_lead", headers=h["lead"]).json(), f"ev_lead_{tag}")
    assert lead["registered"] == 1 and lead["closed"] == 1 and lead["accurate_register_rate"] == 1.0

    # the case's street counts the rework too; a street account sees its own street only
    st = client.get(f"/api/v1/evaluation/street?area={street}", headers=h["view"]).json()
    assert [i["code"] for i in st["items"]] == [street] and _row(st, street)["reworks"] >= 1
    other = "310117103" if street != "310117103" else "310117001"
    r = client.get(f"/api/v1/evaluation/street?area={other}", headers=h["view"])
    assert r.status_code == 404
    scoped = client.get("/api/v1/evaluation/grid", headers=h["view"]).json()
    assert scoped["items"] and all(i["code"].startswith(street) for i in scoped["items"])

    # CSV with Chinese headers
    r = client.get("/api/v1/evaluation/department.csv", headers=h["lead"])
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert "返工率" in rows[0] and "等级" in rows[0]
    mine = next(x for x in rows if x[1] == dept)
    assert mine[rows[0].index("返工率")] == "50.00%" and mine[rows[0].index("等级")] == "B"

    # access rule and argument errors
    assert client.get("/api/v1/evaluation/department", headers=h["admin"]).status_code == 403
    assert client.get("/api/v1/evaluation/department").status_code == 401
    r = client.get("/api/v1/evaluation/department?from=2026-02-01&to=2026-01-01", headers=h["lead"])
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "from"]
    assert client.get("/api/v1/evaluation/nobody", headers=h["lead"]).status_code == 422
