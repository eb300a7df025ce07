"""Area scoping and personal data (acceptance, issue 3), on base-data persons and cases:

* an operator of 岳阳街道 gets 404 for a 佘山镇 object by id and sees none of 佘山镇's in lists,
  counts or exports;
* every response with a person shows masked fields unless unmasked with a reason, and the
  unmask is in the audit log;
* the scoping helper ``scoped`` and unmask/export helpers behave as documented.
"""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import select

from cityops.errors import Forbidden, InvalidInput
from cityops.security.principal import Principal
from cityops.security.privacy import check_unmask, export_row, mask_record, use_export_approval
from tests.helpers import auth_headers, make_user

YY, SS = "310117001", "310117103"


def _persons(session, area):
    from cityops.registry.models import Person

    stmt = select(Person).where(Person.grid_code >= area, Person.grid_code < area + ":", Person.valid_to.is_(None))
    rows = session.scalars(stmt.order_by(Person.entity_id)).all()
    out = [(r.entity_id, r.name, r.id_number, r.phone) for r in rows]
    session.rollback()
    return out


def _audit_rows(session, username, action):
    from cityops.security.models import AuditLog

    rows = session.execute(select(AuditLog.object_id, AuditLog.detail).where(
        AuditLog.username == username, AuditLog.action == action).order_by(AuditLog.seq)).all()
    session.rollback()
    return rows


def test_street_operator_sees_only_own_street_persons(client, session):
    yy_people, ss_people = _persons(session, YY), _persons(session, SS)
    assert yy_people and ss_people, "the small demo district has persons in both streets"
    user, pw = make_user(session, "t_sc_yy", ["street_operator"], area_code=YY)
    h = auth_headers(client, user, pw)
    # by id: 404 (not 403) for 佘山镇, found for 岳阳街道
    r = client.get(f"/api/v1/registry/persons/{ss_people[0][0]}", headers=h)
    assert r.status_code == 404, r.text
    assert client.get(f"/api/v1/registry/persons/{ss_people[0][0]}/history", headers=h).status_code == 404
    r = client.get(f"/api/v1/registry/persons/{yy_people[0][0]}", headers=h)
    assert r.status_code == 200
    # lists: every row in 岳阳, total = all of 岳阳's persons
    r = client.get("/api/v1/registry/persons", headers=h, params={"page_size": 1000})
    body = r.json()
    assert body["total"] == len(yy_people)
    assert all(i["grid_code"].startswith(YY) for i in body["items"])
    # asking for the other street by filter gives nothing, not an error that leaks
    r = client.get("/api/v1/registry/persons", headers=h, params={"area_code": SS})
    assert r.status_code in (200, 404, 422) and (r.status_code != 200 or r.json()["total"] == 0)
    # counts
    assert client.get("/api/v1/registry/counts", headers=h).json()["persons"] == len(yy_people)
    # export
    r = client.get("/api/v1/registry/persons.csv", headers=h)
    assert r.status_code == 200
    text = r.content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert len(rows) - 1 == len(yy_people)
    assert SS not in text and YY in text
    ss_names = {p[1] for p in ss_people}
    assert not any(p[2] in text for p in ss_people) and not any(n in text for n in ss_names if len(n) > 2)


def test_persons_are_masked_unless_unmasked_with_reason(client, session):
    yy_people = _persons(session, YY)
    pid, name, id_number, phone = yy_people[0]
    op, opw = make_user(session, "t_sc_op", ["street_operator"], area_code=YY)
    cmd, cpw = make_user(session, "t_sc_cmd", ["district_commander"], area_code="310117")
    ho, hc = auth_headers(client, op, opw), auth_headers(client, cmd, cpw)
    for h in (ho, hc):
        one = client.get(f"/api/v1/registry/persons/{pid}", headers=h).json()
        assert one["name"] != name and one["name"].startswith(name[0]) and "*" in one["name"]
        assert one["id_number"] != id_number and "*" in one["id_number"]
        assert phone is None or (one["phone"] != phone and "****" in one["phone"])
        listed = client.get("/api/v1/registry/persons", headers=h, params={"page_size": 1000}).json()["items"]
        assert all("*" in i["id_number"] for i in listed)
        assert id_number not in client.get("/api/v1/registry/persons.csv", headers=h).text if h is hc else True
    # no permission -> 403; permission but no reason -> 422; both -> clear and audited
    r = client.get(f"/api/v1/registry/persons/{pid}", headers=ho, params={"unmask": True, "reason": "核查走访信息"})
    assert r.status_code == 403
    r = client.get(f"/api/v1/registry/persons/{pid}", headers=hc, params={"unmask": True})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "reason"]
    r = client.get(f"/api/v1/registry/persons/{pid}", headers=hc, params={"unmask": True, "reason": "防汛转移核对"})
    assert r.status_code == 200
    assert r.json()["name"] == name and r.json()["id_number"] == id_number
    rows = _audit_rows(session, cmd, "unmask")
    assert rows and rows[-1][0] == str(pid) and "防汛转移核对" in rows[-1][1]


def test_cases_scoped_by_street(client, session):
    from cityops.cases.models import Case

    def ids(area):
        out = session.scalars(select(Case.id).where(Case.grid_code >= area, Case.grid_code < area + ":")).all()
        session.rollback()
        return out

    yy_cases, ss_cases = ids(YY), ids(SS)
    if not yy_cases or not ss_cases:
        pytest.skip("the demo seed made no cases in both streets")
    user, pw = make_user(session, "t_sc_case_yy", ["street_operator"], area_code=YY)
    h = auth_headers(client, user, pw)
    assert client.get(f"/api/v1/cases/{ss_cases[0]}", headers=h).status_code == 404
    assert client.get(f"/api/v1/cases/{yy_cases[0]}", headers=h).status_code == 200
    r = client.get("/api/v1/cases", headers=h, params={"page_size": 500})
    assert r.status_code == 200, r.text
    body = r.json()
    items = body.get("items", body if isinstance(body, list) else [])
    assert items and all(str(i.get("grid_code", YY)).startswith(YY) for i in items)
    assert all(i["id"] not in set(ss_cases) for i in items)
    if "total" in body:
        assert body["total"] == len(yy_cases)


# ----------------------------------------------------------------------------------- helpers


def test_mask_record_helper(session):
    from cityops.security.privacy import F

    specs = [F("name", "姓名", "name", "important", True, "name"),
             F("phone", "电话", "phone", "important", True, "phone"), F("note", "备注", "note")]
    row = {"id": 7, "name": "林晓雨", "phone": "13900001234", "note": "ok"}
    viewer = Principal("viewer", permissions=frozenset({"person.read"}))
    boss = Principal("t_boss", permissions=frozenset({"person.read", "person.unmask"}), source_ip="10.1.1.1")
    assert mask_record(row, specs, viewer) == {"id": 7, "name": "林**", "phone": "139****1234", "note": "ok"}
    with pytest.raises(Forbidden):
        mask_record(row, specs, viewer, unmask_reason="需要核实身份", session=session)
    with pytest.raises(InvalidInput):
        check_unmask(boss, "  ")
    assert mask_record(row, specs, boss, unmask_reason="核实身份信息", session=session, object_type="test") == row
    session.commit()
    rows = _audit_rows(session, "t_boss", "unmask")
    assert rows[-1][0] == "7" and "核实身份信息" in rows[-1][1]


def test_unmasked_export_needs_an_approved_request(client, session):
    from cityops.security.privacy import declare_fields

    declare_fields("t_export_thing", [])
    analyst, apw = make_user(session, "t_exp_req", ["district_commander"], area_code="310117")
    sec, spw = make_user(session, "t_exp_sec", ["sec_admin"], area_code="310117")
    ha, hs = auth_headers(client, analyst, apw), auth_headers(client, sec, spw)
    r = client.post("/api/v1/security/export-requests", headers=ha,
                    json={"object_type": "person", "purpose": "防汛转移名单核对", "fields": ["name", "phone"]})
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    from cityops.security.service import principal_for_username

    p = principal_for_username(session, analyst)
    session.rollback()
    with pytest.raises(Forbidden):  # pending
        use_export_approval(session, p, "person", rid)
    session.rollback()
    assert client.post(f"/api/v1/security/export-requests/{rid}/decision", headers=ha,
                       json={"approve": True}).status_code == 403  # lacks export.approve
    r = client.post(f"/api/v1/security/export-requests/{rid}/decision", headers=hs, json={"approve": True})
    assert r.status_code == 200 and r.json()["status"] == "approved"
    r = client.post(f"/api/v1/security/export-requests/{rid}/decision", headers=hs, json={"approve": False})
    assert r.status_code == 409 and r.json()["state"] == "approved" and r.json()["allowed_actions"] == []
    other = Principal("someone_else", permissions=frozenset({"person.read"}))
    with pytest.raises(Forbidden):
        use_export_approval(session, other, "person", rid)
    approval = use_export_approval(session, p, "person", rid)
    session.commit()
    row = {"name": "林晓雨", "phone": "13900001234", "id_number": "310117190001010017"}
    out = export_row(row, "person", approval)
    assert out["name"] == "林晓雨" and out["phone"] == "13900001234" and out["id_number"] != row["id_number"]
    assert export_row(row, "person", None)["name"] == "林**"
    with pytest.raises(Forbidden):  # single use
        use_export_approval(session, p, "person", rid)
    session.rollback()
