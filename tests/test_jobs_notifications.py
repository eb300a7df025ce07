"""In-app inbox: recipients by account, role, area and department; unread filter, paging, marking read;
another account's notification is 404; the notification.created event carries the addressing."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from cityops.errors import InvalidInput
from cityops.jobs import service as jobs
from cityops.jobs.models import OutboxItem
from tests.helpers import auth_headers, make_user, principal_of

STREET = "310117001"  # 岳阳街道 in the demo district
OTHER_STREET = "310117002"


@pytest.fixture()
def people(session):
    users = {
        "district": make_user(session, "jn_district", ["district_commander"], area_code="310117"),
        "street": make_user(session, "jn_street", ["street_operator"], area_code=STREET),
        "other": make_user(session, "jn_other", ["street_operator"], area_code=OTHER_STREET),
        "water": make_user(session, "jn_water", ["dept_leader"], department_code="SW"),
        "green": make_user(session, "jn_green", ["dept_leader"], department_code="LH"),
    }
    return {k: principal_of(session, u) for k, (u, _pw) in users.items()}, users


def _titles(session, principal, **kw):
    return [i["title"] for i in jobs.list_notifications(session, principal, page_size=500, **kw)["items"]]


def test_recipients_resolved_from_role_area_department_and_accounts(session, people):
    p, _ = people
    tag = "jn1"
    jobs.notify(session, role="street_operator", area_code=STREET, title=f"{tag} 街道提醒", body="")
    jobs.notify(session, area_code=STREET + "001", title=f"{tag} 社区通报", body="")  # inside the street
    jobs.notify(session, role="district_commander", area_code="310117", title=f"{tag} 超期升级", body="",
                severity="urgent")
    jobs.notify(session, department_code="SW", title=f"{tag} 水务派单", body="")
    jobs.notify(session, role="dept_leader", department_code="LH", title=f"{tag} 绿化督办", body="")
    jobs.notify(session, account_ids=[p["other"].account_id], role="nobody_has_this", title=f"{tag} 点对点",
                body="")
    session.commit()

    def mine(k):
        return sorted(t for t in _titles(session, p[k]) if t.startswith(tag))

    assert mine("street") == sorted([f"{tag} 街道提醒", f"{tag} 社区通报"])
    assert mine("other") == [f"{tag} 点对点"]
    # a district account sees the area-only notice inside its district, and its role's escalation
    assert mine("district") == sorted([f"{tag} 社区通报", f"{tag} 超期升级"])
    assert mine("water") == [f"{tag} 水务派单"]
    assert mine("green") == [f"{tag} 绿化督办"]
    # the event carries the addressing, and the live-stream filter agrees with the inbox
    events = session.scalars(select(OutboxItem.payload).where(OutboxItem.topic == "notification.created")).all()
    events = [e for e in events if e["title"].startswith(tag)]
    assert len(events) == 6
    for k, principal in p.items():
        assert sorted(e["title"] for e in events if jobs.notification_visible_to(principal, e)) == mine(k)


def test_inbox_api_unread_paging_and_read(client, session, people):
    p, users = people
    ids = [jobs.notify(session, account_ids=[p["water"].account_id], title=f"jn2 消息{i}", body=f"正文{i}",
                       link=f"/cases/{i}") for i in range(5)]
    theirs = jobs.notify(session, account_ids=[p["green"].account_id], title="jn2 别人的", body="")
    session.commit()
    h = auth_headers(client, *users["water"])
    r = client.get("/api/v1/notifications", params={"page_size": 2}, headers=h)
    assert r.status_code == 200
    body = r.json()
    assert body["page_size"] == 2 and len(body["items"]) == 2 and body["total"] >= 5
    assert [i["title"] for i in body["items"]] == ["jn2 消息4", "jn2 消息3"]  # newest first
    assert body["items"][0]["read"] is False and body["items"][0]["link"] == "/cases/4"
    unread_before = client.get("/api/v1/notifications/unread-count", headers=h).json()["unread"]
    r = client.post(f"/api/v1/notifications/{ids[4]}/read", headers=h)
    assert r.status_code == 200 and r.json()["read"] is True and r.json()["read_at"]
    assert client.post(f"/api/v1/notifications/{ids[4]}/read", headers=h).status_code == 200  # idempotent
    assert client.get("/api/v1/notifications/unread-count", headers=h).json()["unread"] == unread_before - 1
    unread = client.get("/api/v1/notifications", params={"unread": True, "page_size": 500}, headers=h).json()
    assert ids[4] not in [i["id"] for i in unread["items"]] and ids[3] in [i["id"] for i in unread["items"]]
    read = client.get("/api/v1/notifications", params={"unread": False}, headers=h).json()
    assert [i["id"] for i in read["items"]] == [ids[4]]
    # someone else's notification does not exist for this reader
    r = client.post(f"/api/v1/notifications/{theirs}/read", headers=h)
    assert r.status_code == 404 and r.json()["detail"][0]["loc"] == ["path", "notification_id"]
    assert client.post("/api/v1/notifications/0/read", headers=h).status_code == 422
    r = client.post("/api/v1/notifications/read-all", headers=h)
    assert r.status_code == 200 and r.json()["marked"] == unread_before - 1
    assert client.get("/api/v1/notifications/unread-count", headers=h).json()["unread"] == 0
    # the other reader's state is untouched
    hg = auth_headers(client, *users["green"])
    assert theirs in [i["id"] for i in client.get("/api/v1/notifications", params={"unread": True},
                                                  headers=hg).json()["items"]]
    assert client.get("/api/v1/notifications").status_code == 401


def test_notify_refuses_bad_input(session):
    with pytest.raises(InvalidInput) as e:
        jobs.notify(session, title="", body="x", severity="loud", area_code="31A")
    locs = {tuple(pr.loc) for pr in e.value.problems}
    assert locs == {("title",), ("severity",), ("area_code",)}
    with pytest.raises(InvalidInput, match="no recipients"):
        jobs.notify(session, title="给谁？", body="")
    session.rollback()
