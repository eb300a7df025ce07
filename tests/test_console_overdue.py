"""超期在办 / 临期在办 behind the console's cards: the same count as the card, most overdue first, how
long overdue and who owns it, and the stuck-at-step counts adding up to the card."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import update

from tests.cases_helpers import category, free_point
from tests.helpers import auth_headers, make_user


def test_overdue_board_matches_the_card(client, session):
    from cityops.cases.models import Case
    from cityops.cases.sla import now

    u, pw = make_user(session, "od_lead", ["shift_lead"], area_code="310117")
    h = auth_headers(client, u, pw)
    cat = category(session, "暴露垃圾")
    lon, lat, _grid = free_point(session, cat.id, skip=11)
    r = client.post("/api/v1/public/reports", json={"category_code": cat.code, "lat": lat, "lon": lon,
                                                     "description": "超期测试：井盖缺失"})
    assert r.status_code == 201, r.text
    cid = r.json()["case_id"]
    # due three days ago, owned by 城管执法 (other tests' cases may be older still: find ours by id)
    session.execute(update(Case).where(Case.id == cid).values(due_at=now() - dt.timedelta(days=3, minutes=5),
                                                              yellow_at=now() - dt.timedelta(days=4),
                                                              lead_department_code="cgzf"))
    session.commit()
    card = client.get("/api/v1/console/kpis", params={"engine": "sql"}, headers=h).json()
    b = client.get("/api/v1/console/overdue", params={"limit": 200}, headers=h)
    assert b.status_code == 200, b.text
    b = b.json()
    mine = [i for i in b["items"] if i["id"] == cid]
    assert b["total"] >= 1 and len(mine) == 1, b["items"][:3]
    top = mine[0]
    assert top["overdue_min"] >= 3 * 24 * 60 and top["owner"] == "区城管执法局" and top["state_label"] == "上报"
    dues = [i["due_at"] for i in b["items"]]
    assert dues == sorted(dues) and all(i["overdue_min"] > 0 for i in b["items"])
    assert sum(s["count"] for s in b["stuck"]) == b["total"]
    assert any(s["state"] == "reported" and s["label"] == "上报" for s in b["stuck"])
    assert b["total"] == card["overdue"]
    near = client.get("/api/v1/console/overdue", params={"kind": "near"}, headers=h).json()
    assert near["total"] == card["yellow"] and all(i["remaining_min"] is not None for i in near["items"])
    assert client.get("/api/v1/console/overdue", params={"kind": "x"}, headers=h).status_code == 422
