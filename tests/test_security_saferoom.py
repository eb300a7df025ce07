"""Data safe room: approved aggregate queries only, small cells suppressed, runs audited."""

from __future__ import annotations

from sqlalchemy import select, text

from tests.helpers import auth_headers, make_user

SQL = ("SELECT community_code, age_band, count(*) AS n, avg(age) AS avg_age FROM t_sr_people "
       "WHERE community_code >= :area AND community_code < :area_end GROUP BY community_code, age_band "
       "ORDER BY community_code, age_band")


def _people(engine) -> None:
    rows = ([("310117001001", "0-17", 10)] * 3 + [("310117001001", "18-59", 30)] * 7
            + [("310117001002", "60+", 70)] * 5 + [("310117103001", "60+", 80)] * 2)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t_sr_people (id INTEGER PRIMARY KEY, community_code VARCHAR(12), "
                          "age_band VARCHAR(8), age INTEGER, name VARCHAR(20))"))
        for i, (c, b, a) in enumerate(rows, start=1):
            conn.execute(text("INSERT INTO t_sr_people VALUES (:i, :c, :b, :a, :n)"),
                         {"i": i, "c": c, "b": b, "a": a + i % 3, "n": f"张{i}"})


def test_safe_room_flow_and_small_cell_suppression(fresh_client):
    from cityops.db import get_engine, get_sessionmaker
    from cityops.security.models import AuditLog

    client = fresh_client
    _people(get_engine())
    s = get_sessionmaker()()
    analyst = make_user(s, "t_sr_analyst", ["cdc_analyst"], area_code="310117")
    secadm = make_user(s, "t_sr_sec", ["sec_admin"], area_code="310117")
    s.close()
    ha, hs = auth_headers(client, *analyst), auth_headers(client, *secadm)
    body = {"name": "age_bands", "title": "按社区、年龄段统计人口", "sql": SQL,
            "params_schema": {"area": {"type": "string", "pattern": r"\d{6,12}"},
                              "area_end": {"type": "string", "pattern": r"\d{6,12}:"}},
            "count_columns": ["n"], "measure_columns": ["avg_age"]}
    r = client.post("/api/v1/saferoom/queries", headers=ha, json=body)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "proposed"
    params = {"area": "310117001", "area_end": "310117001:"}
    r = client.post("/api/v1/saferoom/queries/age_bands/run", headers=ha, json=params)
    assert r.status_code == 403 and r.json()["detail"][0]["type"] == "not_approved"
    assert client.post("/api/v1/saferoom/queries/age_bands/decision", headers=ha,
                       json={"approve": True}).status_code == 403
    r = client.post("/api/v1/saferoom/queries/age_bands/decision", headers=hs, json={"approve": True})
    assert r.status_code == 200 and r.json()["approved_by"] == "t_sr_sec"

    r = client.post("/api/v1/saferoom/queries/age_bands/run", headers=ha, json=params)
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["k"] == 5
    cells = {(row["community_code"], row["age_band"]): row for row in res["rows"]}
    assert set(cells) == {("310117001001", "0-17"), ("310117001001", "18-59"), ("310117001002", "60+")}
    small = cells[("310117001001", "0-17")]
    assert small["n"] is None and small["avg_age"] is None and set(small["_suppressed"]) == {"n", "avg_age"}
    assert cells[("310117001001", "18-59")]["n"] == 7 and cells[("310117001001", "18-59")]["_suppressed"] == []
    assert cells[("310117001002", "60+")]["n"] == 5  # k itself is not suppressed
    assert res["suppressed_cells"] == 2
    # 3 never appears anywhere in the answer
    assert 3 not in [v for row in res["rows"] for v in row.values() if isinstance(v, int)]

    s = get_sessionmaker()()
    runs = s.scalars(select(AuditLog).where(AuditLog.action == "saferoom.run")).all()
    assert runs and '"area":"310117001"' in runs[-1].detail and runs[-1].username == "t_sr_analyst"
    s.rollback()
    s.close()

    # bad parameters are named
    r = client.post("/api/v1/saferoom/queries/age_bands/run", headers=ha, json={"area": "abc", "x": 1})
    assert r.status_code == 422
    locs = {tuple(d["loc"]) for d in r.json()["detail"]}
    assert ("body", "area") in locs and ("body", "x") in locs and ("body", "area_end") in locs


def test_row_level_and_dangerous_queries_are_refused(fresh_client):
    from cityops.db import get_sessionmaker

    client = fresh_client
    s = get_sessionmaker()()
    analyst = make_user(s, "t_sr_analyst2", ["cdc_analyst"], area_code="310117")
    s.close()
    h = auth_headers(client, *analyst)

    def propose(name, sql, params=None):
        return client.post("/api/v1/saferoom/queries", headers=h,
                           json={"name": name, "title": name, "sql": sql, "params_schema": params or {},
                                 "count_columns": ["n"]})

    r = propose("rows", "SELECT name, community_code FROM t_sr_people")
    assert r.status_code == 422 and "not_aggregate" in {d["type"] for d in r.json()["detail"]}
    r = propose("creds", "SELECT username, count(*) AS n FROM account GROUP BY username")
    assert r.status_code == 422 and "forbidden_table" in {d["type"] for d in r.json()["detail"]}
    r = propose("del", "SELECT count(*) AS n FROM t_sr_people GROUP BY age_band; DELETE FROM t_sr_people")
    types = {d["type"] for d in r.json()["detail"]}
    assert r.status_code == 422 and {"multiple_statements", "forbidden_keyword"} <= types
    r = propose("undeclared", "SELECT age_band, count(*) AS n FROM t_sr_people WHERE age > :min_age GROUP BY age_band")
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "undeclared"


def test_result_without_count_columns_is_refused(fresh_client):
    """A query whose result lacks its declared count column never returns data."""
    from cityops.db import get_engine, get_sessionmaker

    client = fresh_client
    _people(get_engine())
    s = get_sessionmaker()()
    analyst = make_user(s, "t_sr_analyst3", ["cdc_analyst"], area_code="310117")
    secadm = make_user(s, "t_sr_sec3", ["sec_admin"], area_code="310117")
    s.close()
    ha, hs = auth_headers(client, *analyst), auth_headers(client, *secadm)
    r = client.post("/api/v1/saferoom/queries", headers=ha, json={
        "name": "sneaky", "title": "sneaky", "count_columns": ["n"],
        "sql": "SELECT age_band, max(name) AS who, count(*) AS cnt FROM t_sr_people GROUP BY age_band"})
    assert r.status_code == 201
    assert client.post("/api/v1/saferoom/queries/sneaky/decision", headers=hs, json={"approve": True}).status_code == 200
    r = client.post("/api/v1/saferoom/queries/sneaky/run", headers=ha, json={})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "shape"
    assert "张" not in r.text
