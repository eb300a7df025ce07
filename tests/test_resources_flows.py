"""Requisition (征用) and shipments through the API: a requisition without return and compensation
records cannot be closed (the table's requirement, and a CHECK constraint under it); the deciding
authority must be county level or above; the printable documents; a shipment's chain
request → commit → dispatch → received → returned, each a ledger movement; cancel releases."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.helpers import auth_headers, make_user
from tests.resources_helpers import SHESHAN, YUEYANG, make_request, make_stock, point_in


@pytest.fixture()
def cmd(client, session):
    return auth_headers(client, *make_user(session, "rs_flow_cmd", ["emergency_commander"], area_code="310117"))


def _requisition(client, h, session, **changes):
    lon, lat = point_in(session, YUEYANG, 2)
    body = {"notice_no": "松应征〔2026〕T1号", "authority": "松江区人民政府", "authority_level": "county",
            "legal_basis": "《中华人民共和国突发事件应对法》第十二条", "owner_name": "张三", "owner_kind": "person",
            "owner_contact": "13912345678", "item": "越野车", "quantity": 1, "identifiers": {"plate": "沪C88888"},
            "condition_before": "完好", "lon": lon, "lat": lat, **changes}
    return client.post("/api/v1/resources/requisitions", json=body, headers=h)


def _act(client, h, rid, action, body=None):
    return client.post(f"/api/v1/resources/requisitions/{rid}/actions/{action}", json=body or {}, headers=h)


def test_requisition_cannot_close_without_return_and_compensation(client, cmd, session):
    r = _requisition(client, cmd, session)
    assert r.status_code == 201, r.text
    req = r.json()
    assert req["owner_name"] != "张三" and req["owner_contact"] != "13912345678"  # masked in lists and details
    rid = req["id"]
    assert _act(client, cmd, rid, "take").status_code == 200
    r = _act(client, cmd, rid, "close")
    assert r.status_code == 422, r.text
    missing = {p["loc"][-1] for p in r.json()["detail"]}
    assert missing == {"returned_at", "condition_after", "compensation_amount", "compensation_basis"}
    r = _act(client, cmd, rid, "record_return", {"condition_after": "左前门刮擦"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "returned_at"]
    now = dt.datetime.now(dt.UTC).isoformat()
    r = _act(client, cmd, rid, "record_return", {"returned_at": now, "condition_after": "左前门刮擦", "damage": "刮擦"})
    assert r.status_code == 200 and r.json()["state"] == "returned", r.text
    r = _act(client, cmd, rid, "close")
    assert r.status_code == 422 and {p["loc"][-1] for p in r.json()["detail"]} == {"compensation_amount",
                                                                                  "compensation_basis"}
    r = _act(client, cmd, rid, "record_compensation", {"amount": 1800, "basis": "租赁市价 + 维修费"})
    assert r.status_code == 200 and r.json()["state"] == "returned"
    r = _act(client, cmd, rid, "close")
    assert r.status_code == 422 and [p["loc"][-1] for p in r.json()["detail"]] == ["compensation_paid_at"]
    assert _act(client, cmd, rid, "record_payment", {"paid_at": now, "payment_ref": "P-1"}).status_code == 200
    r = _act(client, cmd, rid, "close")
    assert r.status_code == 200 and r.json()["state"] == "closed", r.text
    steps = [e["action"] for e in r.json()["timeline"]]
    assert steps == ["register", "take", "record_return", "record_compensation", "record_payment", "close"]
    doc = client.get(f"/api/v1/resources/requisitions/{rid}/documents/return", headers=cmd)
    assert doc.status_code == 200 and "征用财产归还及补偿确认书" in doc.text and "1800.00" in doc.text
    notice = client.get(f"/api/v1/resources/requisitions/{rid}/documents/notice", headers=cmd)
    assert "应急处置征用通知书" in notice.text and "张三" in notice.text  # unmasked: handed to the owner


def test_closing_is_refused_by_the_database_too(session):
    from sqlalchemy.exc import IntegrityError

    from cityops.resources import requisitions, schemas
    from cityops.security.principal import SYSTEM

    lon, lat = point_in(session, YUEYANG, 3)
    r = requisitions.register(session, SYSTEM, schemas.RequisitionIn(
        notice_no="T2", authority="松江区应急管理局", authority_level="county", legal_basis="应对法第十二条",
        owner_name="某公司", owner_kind="organisation", item="挖掘机", condition_before="完好", lon=lon, lat=lat))
    session.commit()
    from cityops.resources.models import Requisition

    row = session.get(Requisition, r["id"])
    row.state = "closed"
    with pytest.raises(IntegrityError):
        session.flush()
    session.rollback()


@pytest.mark.parametrize("changes,loc", [
    ({"authority_level": "township"}, ["body", "authority_level"]),
    ({"notice_no": None}, ["body", "notice_no"]),
    ({"notice_no": None, "take_first": True}, ["body", "paperwork_due"]),
    ({"lon": 100.0, "lat": 30.0}, ["body", "lon"]),
])
def test_requisition_input_checks(client, cmd, session, changes, loc):
    r = _requisition(client, cmd, session, **changes)
    assert r.status_code == 422, r.text
    assert loc in [p["loc"] for p in r.json()["detail"]], r.json()


def test_take_first_paperwork_later(client, cmd, session):
    due = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).isoformat()
    r = _requisition(client, cmd, session, notice_no=None, take_first=True, paperwork_due=due)
    assert r.status_code == 201 and r.json()["take_first"] is True


def test_shipment_chain_each_step_a_ledger_movement(client, cmd, session):
    from cityops.resources import ledger

    wid, sid = make_stock(session, 50)
    rid = make_request(session, {"1010101": 30})
    r = client.post("/api/v1/resources/shipments", json={"request": rid, "item_code": "1010101", "warehouse": wid,
                                                         "quantity": 20, "dispatch": False}, headers=cmd)
    assert r.status_code == 201, r.text
    sh = r.json()[0]
    assert sh["state"] == "committed"
    stock = client.get(f"/api/v1/resources/stock/{sid}", headers=cmd).json()
    assert (stock["on_hand"], stock["reserved"], stock["available"]) == (50, 20, 30)

    def act(action, body=None):
        return client.post(f"/api/v1/resources/shipments/{sh['id']}/actions/{action}", json=body or {}, headers=cmd)

    r0 = act("receive")
    assert r0.status_code == 409, r0.text  # not dispatched yet
    assert act("dispatch").json()["state"] == "dispatched"
    assert act("receive").json()["state"] == "received"
    assert act("return").status_code == 422  # the quantity returned is needed
    assert act("return", {"returned_qty": 25}).status_code == 422  # more than shipped
    assert act("return", {"returned_qty": 5}).json()["state"] == "returned"
    stock = client.get(f"/api/v1/resources/stock/{sid}", headers=cmd).json()
    assert (stock["on_hand"], stock["reserved"]) == (35, 0)
    kinds = [m["kind"] for m in reversed(stock["ledger"])]
    assert kinds == ["receive", "commit", "dispatch", "return"]
    assert ledger.check(session, [sid]) == []
    session.rollback()  # end the read: on SQLite it holds the write lock
    req = client.get(f"/api/v1/resources/requests/{rid}", headers=cmd).json()
    assert req["lines"][0]["received"] == 20 and req["state"] == "open"
    # a second shipment, cancelled: the reservation is released and the line reopened
    r = client.post("/api/v1/resources/shipments", json={"request": rid, "item_code": "1010101", "warehouse": wid,
                                                         "quantity": 10, "dispatch": False}, headers=cmd)
    assert r.status_code == 201, r.text
    sh2 = r.json()[0]
    r = client.post(f"/api/v1/resources/shipments/{sh2['id']}/actions/cancel", json={"reason": "改派"}, headers=cmd)
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    stock = client.get(f"/api/v1/resources/stock/{sid}", headers=cmd).json()
    assert (stock["on_hand"], stock["reserved"]) == (35, 0)
    req = client.get(f"/api/v1/resources/requests/{rid}", headers=cmd).json()
    assert req["lines"][0]["committed"] == 20
    board = client.get("/api/v1/resources/shipments", params={"request": rid}, headers=cmd).json()
    assert board["by_state"] == {"returned": 1, "cancelled": 1}


def test_street_account_sees_its_street_only(client, session):
    wid, _sid = make_stock(session, 5, street=SHESHAN)
    h = auth_headers(client, *make_user(session, "rs_yy_street", ["street_operator"], area_code=YUEYANG))
    assert client.get(f"/api/v1/resources/warehouses/{wid}", headers=h).status_code == 404
    ids = [w["id"] for w in client.get("/api/v1/resources/warehouses", params={"page_size": 1000},
                                       headers=h).json()["items"]]
    assert wid not in ids
    assert all(e["warehouse"] for e in client.get("/api/v1/resources/expiring", params={"days": 3650},
                                                 headers=h).json())


def test_resource_upsert_and_bad_input(client, cmd, session):
    lon, lat = point_in(session, YUEYANG, 4)
    body = {"code": "T-SHELTER-1", "name": "测试避难场所", "grade": "community", "space_type": "site", "capacity": 800,
            "lon": lon, "lat": lat}
    r = client.post("/api/v1/resources/shelters", json=body, headers=cmd)
    assert r.status_code == 200 and r.json()["street_code"] == YUEYANG and r.json()["grid_code"].startswith(YUEYANG)
    r = client.post("/api/v1/resources/shelters", json={**body, "capacity": 900}, headers=cmd)
    assert r.status_code == 200 and r.json()["capacity"] == 900
    r = client.post("/api/v1/resources/shelters", json={**body, "grade": "village"}, headers=cmd)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "grade"]
    wid, _ = make_stock(session, 1)
    r = client.post(f"/api/v1/resources/warehouses/{wid}/stock", json={
        "item_code": "1000101", "item_name": "x", "unit": "件", "quantity": 1}, headers=cmd)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "item_code"]


def test_evacuation_to_the_shelters_on_record(client, cmd, session):
    from sqlalchemy import select

    from cityops.resources.models import Shelter

    r = client.post("/api/v1/resources/shelters/evacuate", json={"area_code": YUEYANG, "travel": "euclidean"},
                    headers=cmd)
    assert r.status_code == 200, r.text
    out = r.json()
    cap = {f"S{i}": c - o for i, c, o in session.execute(select(Shelter.id, Shelter.capacity, Shelter.occupancy))}
    session.rollback()
    used: dict[str, int] = {}
    for a in out["assignments"]:
        used[a["shelter"]] = used.get(a["shelter"], 0) + a["people"]
        assert a["shelter_code"]
    assert all(n <= cap[s] for s, n in used.items())  # no shelter over capacity
    assert out["assigned"] + sum(u["people"] for u in out["unassigned"]) == out["total_people"]
