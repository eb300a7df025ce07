"""Scoped reads: lists with filters and sorting, counts, map GeoJSON, aggregates, CSV export."""

from __future__ import annotations

import csv
import io

from tests.helpers import auth_headers, make_user


def _h(client, session, name, roles, area=None, dept=None):
    u, pw = make_user(session, name, roles, area_code=area, department_code=dept)
    return auth_headers(client, u, pw)


def test_scoping_by_area_and_department(client, session):
    dist = _h(client, session, "cq_lead", ["shift_lead"], "310117")
    street = _h(client, session, "cq_street", ["street_operator"], "310117001")
    dept = _h(client, session, "cq_cgzf", ["dept_handler"], "310117", "cgzf")
    all_ = client.get("/api/v1/cases", params={"page_size": 500}, headers=dist).json()
    assert all_["total"] >= 250
    mine = client.get("/api/v1/cases", params={"page_size": 500}, headers=street).json()
    assert 0 < mine["total"] < all_["total"] and all(i["street_code"] == "310117001" for i in mine["items"])
    d = client.get("/api/v1/cases", params={"page_size": 500}, headers=dept).json()
    assert d["total"] > 0
    ids = [i["id"] for i in d["items"]]
    for cid in ids[:5]:
        det = client.get(f"/api/v1/cases/{cid}", headers=dept).json()
        assert "cgzf" in [x["department_code"] for x in det["departments"]]
    outside = next(i for i in all_["items"] if i["street_code"] != "310117001")
    assert client.get(f"/api/v1/cases/{outside['id']}", headers=street).status_code == 404
    not_cgzf = next(i for i in all_["items"] if i["id"] not in ids)
    assert client.get(f"/api/v1/cases/{not_cgzf['id']}", headers=dept).status_code == 404
    # the case number works as well as the id
    assert client.get(f"/api/v1/cases/{all_['items'][0]['case_no']}", headers=dist).json()["id"] == all_["items"][0]["id"]


def test_filters_sort_counts(client, session):
    h = _h(client, session, "cq_lead", ["shift_lead"], "310117")
    counts = client.get("/api/v1/cases/counts", headers=h).json()
    assert counts["total"] == sum(counts["by_state"].values()) == sum(counts["by_sla"].values())
    red = client.get("/api/v1/cases", params={"overdue": "true", "page_size": 500}, headers=h).json()
    assert red["total"] == counts["by_sla"]["red"] > 0 and all(i["sla"] == "red" for i in red["items"])
    y = client.get("/api/v1/cases", params={"sla": "yellow", "page_size": 500}, headers=h).json()
    assert y["total"] == counts["by_sla"]["yellow"] and all(i["sla"] == "yellow" for i in y["items"])
    closed = client.get("/api/v1/cases", params={"state": "closed,evaluated", "page_size": 500}, headers=h).json()
    assert closed["total"] == counts["by_state"].get("closed", 0) + counts["by_state"].get("evaluated", 0)
    items = client.get("/api/v1/cases", params={"page_size": 50}, headers=h).json()["items"]
    assert [i["reported_at"] for i in items] == sorted([i["reported_at"] for i in items], reverse=True)
    items = client.get("/api/v1/cases", params={"page_size": 50, "sort": "due_at", "open": "true"}, headers=h).json()["items"]
    dues = [i["due_at"] for i in items if i["due_at"]]
    assert dues == sorted(dues)
    cat = items[0]["category_code"]
    byc = client.get("/api/v1/cases", params={"category": cat, "page_size": 500}, headers=h).json()
    assert byc["total"] >= 1 and all(i["category_code"] == cat for i in byc["items"])
    first = items[0]
    hit = client.get("/api/v1/cases", params={"q": first["case_no"]}, headers=h).json()
    assert [i["id"] for i in hit["items"]] == [first["id"]]
    p1 = client.get("/api/v1/cases", params={"page_size": 7, "page": 1}, headers=h).json()
    p2 = client.get("/api/v1/cases", params={"page_size": 7, "page": 2}, headers=h).json()
    assert not {i["id"] for i in p1["items"]} & {i["id"] for i in p2["items"]}
    assert client.get("/api/v1/cases", params={"state": "flying"}, headers=h).status_code == 422
    assert client.get("/api/v1/cases", params={"sort": "name"}, headers=h).status_code == 422
    assert client.get("/api/v1/cases", params={"date_from": "2025-01-01T00:00:00"}, headers=h).status_code == 422


def test_geojson_aggregate_and_export(client, session):
    h = _h(client, session, "cq_lead", ["shift_lead"], "310117")
    fc = client.get("/api/v1/cases.geojson", params={"cap": 20}, headers=h).json()
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == 20 and fc["truncated"] is True
    f0 = fc["features"][0]
    lon, lat = f0["geometry"]["coordinates"]
    box = f"{lon - 0.01},{lat - 0.01},{lon + 0.01},{lat + 0.01}"
    inbox = client.get("/api/v1/cases.geojson", params={"bbox": box}, headers=h).json()
    assert inbox["features"] and all(abs(f["geometry"]["coordinates"][0] - lon) <= 0.01 for f in inbox["features"])
    assert client.get("/api/v1/cases.geojson", params={"bbox": "1,2,3"}, headers=h).status_code == 422
    agg = client.get("/api/v1/cases/aggregate", params={"level": "street"}, headers=h).json()
    counts = client.get("/api/v1/cases/counts", headers=h).json()
    assert agg["kpi"]["overdue"] == counts["by_sla"]["red"] and agg["kpi"]["open"] == counts["open"]
    assert all(len(i["code"]) == 9 and i["name"] for i in agg["items"])
    for i in agg["items"]:
        if i["closed"]:
            assert i["on_time_rate"] == round(i["closed_on_time"] / i["closed"], 4)
    comm = client.get("/api/v1/cases/aggregate", params={"level": "community", "parent": "310117001"}, headers=h).json()
    assert all(i["code"].startswith("310117001") and len(i["code"]) == 12 for i in comm["items"])
    r = client.get("/api/v1/cases.csv", params={"source": "public,hotline"}, headers=h)
    assert r.status_code == 200
    rows = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert rows and all(not x["reporter_phone"] or "****" in x["reporter_phone"] for x in rows)
    dept = _h(client, session, "cq_cgzf", ["dept_handler"], "310117", "cgzf")
    assert client.get("/api/v1/cases.csv", headers=dept).status_code == 403


def test_department_lists_walk_the_department_index_with_the_same_rows(session):
    """A department's list (its account's scope, or a department filter) is driven through
    ``case_department``: its totals and pages are recomputed here from the rows, in both report-time
    orders and under filters, for a district-wide and a street-bound department account."""
    import datetime as dt

    from sqlalchemy import select

    from cityops.cases import queries as q
    from cityops.cases import reference as ref
    from cityops.cases.models import Case, CaseDepartment
    from cityops.cases.sla import now
    from cityops.security.principal import Principal

    handled: dict[str, set[int]] = {}
    for cid, code, _rep in session.execute(select(CaseDepartment.case_id, CaseDepartment.department_code,
                                                 CaseDepartment.case_reported_at)
                                          .where(CaseDepartment.released_at.is_(None))):
        handled.setdefault(code, set()).add(cid)
    cases = {c.id: c for c in session.scalars(select(Case))}
    assert all(cd.case_reported_at == cases[cd.case_id].reported_at for cd in session.scalars(select(CaseDepartment)))
    code = max(handled, key=lambda k: len(handled[k]))
    assert len(handled[code]) > 20
    at = now()
    some_state = max(ref.STATES, key=lambda s: sum(cases[i].state == s for i in handled[code]))
    street = cases[min(handled[code])].street_code
    filters = {"all": (q.CaseFilter(), lambda c: True),
               "open": (q.CaseFilter(open=True), lambda c: c.state in ref.OPEN_STATES),
               "state": (q.CaseFilter(state=[some_state]), lambda c: c.state == some_state),
               "overdue": (q.CaseFilter(overdue=True), lambda c: c.due_at is not None and c.due_at <= at),
               "since": (q.CaseFilter(date_from=at - dt.timedelta(days=7)),
                         lambda c: c.reported_at >= at - dt.timedelta(days=7))}
    who = {"district": (Principal(username="t_dept", roles=frozenset({"dept_handler"}), area_code="310117",
                                  department_code=code), lambda c: True, q.CaseFilter()),
           "street": (Principal(username="t_dept_s", roles=frozenset({"dept_handler"}), area_code=street,
                                department_code=code), lambda c: c.street_code == street, q.CaseFilter()),
           "filter": (Principal(username="t_lead", roles=frozenset({"shift_lead"}), area_code="310117"),
                      lambda c: True, q.CaseFilter(department=code))}
    for wname, (p, inside, base) in who.items():
        for fname, (f, keep) in filters.items():
            f = q.CaseFilter(**{**base.__dict__, **{k: v for k, v in f.__dict__.items() if v not in (None, [])}})
            want = [c for i, c in cases.items() if i in handled[code] and inside(c) and keep(c)]
            for sort, rev in (("-reported_at", True), ("reported_at", False)):
                order = [c.id for c in sorted(want, key=lambda c: (c.reported_at, c.id), reverse=rev)]
                for page in (1, 2):
                    got = q.list_cases(session, p, f, page=page, page_size=7, sort=sort)
                    assert got["total"] == len(want), (wname, fname)
                    assert [i["id"] for i in got["items"]] == order[(page - 1) * 7:page * 7], (wname, fname, sort, page)
