"""The inbox of every role (待办, generated from the transition table): a department account's inbox
holds exactly its department's actionable cases, decided again one case at a time by the table
(``workflow.allowed_actions``, what the case page offers); a public report waits for 派发核实, not
立案, and the case page says why 立案 is missing; a closed case is found by its number."""

from __future__ import annotations

from sqlalchemy import select

from tests.cases_helpers import category, free_point, upload
from tests.helpers import auth_headers, make_user

DISTRICT = "310117"


def _principal(session, username):
    from cityops.security.models import Account
    from cityops.security.service import _principal_for

    acc = session.scalar(select(Account).where(Account.username == username))
    p = _principal_for(session, acc, None)
    session.commit()
    return p


def _inbox_ids(client, h, buckets):
    ids: dict[str, set[int]] = {}
    for b in buckets:
        r = client.get("/api/v1/inbox", params={"bucket": b, "limit": 500}, headers=h)
        assert r.status_code == 200, r.text
        ids[b] = {i["id"] for i in r.json()["items"]}
    return ids


def _act(client, h, cid, action, **body):
    r = client.post(f"/api/v1/cases/{cid}/actions/{action}", json=body, headers=h)
    assert r.status_code == 200, (action, r.text)
    return r.json()


def _report(client, session, skip=0):
    cat = category(session, "暴露垃圾")
    lon, lat, grid = free_point(session, cat.id, skip=skip)
    r = client.post("/api/v1/public/reports", json={"category_code": cat.code, "lat": lat, "lon": lon,
                                                     "description": "路边堆了很多生活垃圾（待办测试）"})
    assert r.status_code == 201, r.text
    return r.json()["case_id"], grid


def test_department_inbox_is_exactly_its_actionable_cases(client, session):
    from cityops.cases import inbox as inbox_mod
    from cityops.cases import workflow
    from cityops.cases.models import CaseDepartment
    from cityops.cases.queries import readable_statement

    users = {}
    for name, roles, dept in [("ib_intake", ["intake_operator"], None), ("ib_lead", ["shift_lead"], None),
                              ("ib_disp", ["dispatcher"], None), ("ib_super", ["supervisor"], None),
                              ("ib_cgzf", ["dept_handler"], "cgzf"), ("ib_sw", ["dept_handler"], "sw")]:
        u, pw = make_user(session, name, roles, area_code=DISTRICT, department_code=dept)
        users[name] = auth_headers(client, u, pw)
    # two cases dispatched to cgzf (one signed for), one to sw
    made = []
    for i, dept in enumerate(["cgzf", "cgzf", "sw"]):
        cid, _grid = _report(client, session, skip=i)
        _act(client, users["ib_intake"], cid, "accept")
        _act(client, users["ib_intake"], cid, "request_verification")
        photo = upload(client, users["ib_super"])
        _act(client, users["ib_super"], cid, "verify", result="valid", photos=[photo])
        _act(client, users["ib_lead"], cid, "register")
        _act(client, users["ib_disp"], cid, "dispatch", department_code=dept)
        made.append(cid)
    _act(client, users["ib_cgzf"], made[1], "acknowledge")

    for name in ("ib_cgzf", "ib_sw"):
        p = _principal(session, name)
        r = client.get("/api/v1/inbox", headers=users[name])
        assert r.status_code == 200, r.text
        body = r.json()
        keys = [b["key"] for b in body["buckets"]]
        assert "to_acknowledge" in keys and "handling" in keys and "to_accept" not in keys
        got = set().union(*_inbox_ids(client, users[name], keys).values())
        assert sum(b["count"] for b in body["buckets"]) >= len(got)
        # independently: every case this account may see, asked one at a time what it may do now
        wanted = {b["action"] for b in inbox_mod.BUCKETS}
        expect = set()
        for c in session.scalars(readable_statement(session, p)):
            acts = {a["action"] for a in workflow.allowed_actions(session, p, c)}
            if acts & wanted:
                expect.add(c.id)
        session.commit()
        assert got == expect, name
        handled = {d.case_id for d in session.scalars(select(CaseDepartment).where(
            CaseDepartment.department_code == p.department_code, CaseDepartment.released_at.is_(None)))}
        session.commit()
        assert got and got <= handled  # all of them cases its department handles now (lead or co)
    cg = _inbox_ids(client, users["ib_cgzf"], ["to_acknowledge", "handling"])
    assert made[0] in cg["to_acknowledge"] and made[1] in cg["handling"] and made[2] not in cg["to_acknowledge"]
    sw = _inbox_ids(client, users["ib_sw"], ["to_acknowledge"])
    assert made[2] in sw["to_acknowledge"] and not ({made[0], made[1]} & sw["to_acknowledge"])


def test_public_report_waits_for_verification_and_register_says_why(client, session):
    u, pw = make_user(session, "ib_lead2", ["shift_lead"], area_code=DISTRICT)
    h = auth_headers(client, u, pw)
    cid, _grid = _report(client, session, skip=5)
    ib = _inbox_ids(client, h, ["to_accept"])
    assert cid in ib["to_accept"]
    # the inbox's line: number, SLA colour, owner; counts by bucket, oldest first
    r = client.get("/api/v1/inbox", params={"bucket": "to_accept", "limit": 500}, headers=h).json()
    line = next(i for i in r["items"] if i["id"] == cid)
    assert len(line["case_no"]) == 15 and line["sla"] in ("green", "yellow", "red")
    times = [i["reported_at"] for i in r["items"]]
    assert times == sorted(times)
    _act(client, h, cid, "accept")
    ib = _inbox_ids(client, h, ["to_request_verification", "to_register"])
    assert cid in ib["to_request_verification"] and cid not in ib["to_register"]
    d = client.get(f"/api/v1/cases/{cid}", headers=h).json()
    miss = {m["action"]: m["why"] for m in d["missing_actions"]}
    assert "register" in miss and "核实" in miss["register"]
    assert "accept" not in miss  # behind the case: no hint
    r = client.get(f"/api/v1/cases/{cid}", headers=auth_headers(client, *make_user(session, "ib_disp2", ["dispatcher"],
                                                                                   area_code=DISTRICT))).json()
    hint = {m["action"]: m["why"] for m in r["missing_actions"]}
    assert "立案" in hint["dispatch"]  # 派遣 is taken from 立案
    assert "register" not in {a["action"] for a in d["allowed_actions"]}


def test_closed_case_found_by_number(client, session):
    from cityops.cases.models import Case

    u, pw = make_user(session, "ib_lead3", ["shift_lead"], area_code=DISTRICT)
    h = auth_headers(client, u, pw)
    c = session.scalar(select(Case).where(Case.state.in_(("closed", "evaluated"))).limit(1))
    if c is None:  # none in the demo: void one
        cid, _ = _report(client, session, skip=7)
        _act(client, h, cid, "void", reason="测试作废")
        c = session.get(Case, cid)
    no = c.case_no
    session.commit()
    r = client.get("/api/v1/cases", params={"open": "true", "q": no}, headers=h)
    assert r.status_code == 200 and [i["id"] for i in r.json()["items"]] == [c.id], r.text
    r = client.get("/api/v1/console/map", params={"q": no}, headers=h)
    assert r.status_code == 200 and r.json()["total"] == 1, r.text
