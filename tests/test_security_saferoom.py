"""Data safe room: approved aggregate queries only (checked on the parse tree), sensitive columns
never output or grouped by, groups under k dropped whole, decisions once and by another account,
runs audited."""

from __future__ import annotations

from sqlalchemy import select, text

from tests.helpers import auth_headers, make_user

SQL = ("SELECT community_code, age_band, count(*) AS n, avg(age) AS avg_age FROM t_sr_people "
       "WHERE community_code >= :area AND community_code < :area_end GROUP BY community_code, age_band "
       "ORDER BY community_code, age_band")


def _people(engine) -> None:
    from cityops.security import saferoom

    saferoom.allow_table("t_sr_people", sensitive={"name"})
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
    assert r.json()["status"] == "pending"
    params = {"area": "310117001", "area_end": "310117001:"}
    r = client.post("/api/v1/saferoom/queries/age_bands/run", headers=ha, json=params)
    assert r.status_code == 403 and r.json()["detail"][0]["type"] == "not_approved"
    assert client.post("/api/v1/saferoom/queries/age_bands/decision", headers=ha,
                       json={"approve": True}).status_code == 403
    r = client.post("/api/v1/saferoom/queries/age_bands/decision", headers=hs, json={"approve": True})
    assert r.status_code == 200 and r.json()["approved_by"] == "t_sr_sec"

    r = client.post("/api/v1/saferoom/queries/age_bands/decision", headers=hs, json={"approve": False})
    assert r.status_code == 409 and r.json()["state"] == "approved"  # decided once

    r = client.post("/api/v1/saferoom/queries/age_bands/run", headers=ha, json=params)
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["k"] == 5
    cells = {(row["community_code"], row["age_band"]): row for row in res["rows"]}
    # the group of 3 is dropped whole: neither its count nor its keys come back
    assert set(cells) == {("310117001001", "18-59"), ("310117001002", "60+")}
    assert cells[("310117001001", "18-59")]["n"] == 7 and cells[("310117001002", "60+")]["n"] == 5  # k is kept
    assert cells[("310117001002", "60+")]["avg_age"] is not None
    assert res["suppressed_groups"] == 1 and res["suppressed_rows"] is None  # 3 < k: not even the total
    assert 3 not in [v for row in res["rows"] for v in row.values() if isinstance(v, int)]
    assert "0-17" not in r.text

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
    r = propose("del", "SELECT age_band, count(*) AS n FROM t_sr_people GROUP BY age_band; DELETE FROM t_sr_people")
    assert r.status_code == 422 and "multiple_statements" in {d["type"] for d in r.json()["detail"]}
    r = propose("undeclared", "SELECT age_band, count(*) AS n FROM t_sr_people WHERE age > :min_age GROUP BY age_band")
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "undeclared"
    for name, sql, kind in [
        ("by_name", "SELECT name, count(*) AS n FROM t_sr_people GROUP BY name", "sensitive_key"),
        ("max_name", "SELECT age_band, max(name) AS who, count(*) AS n FROM t_sr_people GROUP BY age_band",
         "sensitive_output"),
        ("sub", "SELECT age_band, count(*) AS n FROM (SELECT * FROM t_sr_people) x GROUP BY age_band", "forbidden"),
        ("star", "SELECT *, count(*) AS n FROM t_sr_people GROUP BY age_band", "forbidden"),
        ("loose", "SELECT age_band, age, count(*) AS n FROM t_sr_people GROUP BY age_band", "not_aggregate"),
        ("cte", "WITH p AS (SELECT age_band FROM t_sr_people) SELECT age_band, count(*) AS n FROM p GROUP BY age_band",
         "forbidden"),
        ("update", "UPDATE t_sr_people SET age = 1", "not_select"),
        ("order", "SELECT age_band, count(*) AS n FROM t_sr_people GROUP BY age_band ORDER BY name", "sensitive_output"),
    ]:
        r = propose(name, sql)
        assert r.status_code == 422, (name, r.text)
        assert kind in {d["type"] for d in r.json()["detail"]}, (name, r.json())
    # counting a sensitive column is fine (and WHERE on it)
    r = propose("count_names", "SELECT age_band, count(DISTINCT name) AS n FROM t_sr_people WHERE name <> 'x' "
                               "GROUP BY age_band")
    assert r.status_code == 201, r.text


def test_the_id_number_query_of_the_leak_returns_nothing(fresh_client):
    """The query that leaked ID numbers with names is refused at proposal; approved under the old rules
    (a row written directly), its run returns no row; a row-level key that is not marked sensitive
    (entity_id) returns no row either: every group is below k and dropped whole."""
    from cityops.db import get_sessionmaker
    from cityops.security.models import SafeRoomQuery

    client = fresh_client
    s = get_sessionmaker()()
    from cityops.registry.models import Person

    if not s.query(Person).first():
        from cityops.demo.seed import seed_demo

        seed_demo(s, small=True)
        s.commit()
    analyst = make_user(s, "t_sr_analyst4", ["cdc_analyst"], area_code="310117")
    secadm = make_user(s, "t_sr_sec4", ["sec_admin"], area_code="310117")
    leak = "select id_number, name, count(*) n from registry_person group by id_number, name"
    s.add(SafeRoomQuery(name="legacy_leak", title="legacy", sql=leak, params_schema={}, count_columns=["n"],
                        measure_columns=[], status="approved", proposed_by="someone", approved_by="else"))
    s.commit()
    ids = [p.id_number for p in s.query(Person).limit(50)]
    s.close()
    ha, hs = auth_headers(client, *analyst), auth_headers(client, *secadm)
    r = client.post("/api/v1/saferoom/queries", headers=ha, json={
        "name": "leak", "title": "leak", "sql": leak, "params_schema": {}, "count_columns": ["n"]})
    assert r.status_code == 422 and "sensitive_key" in {d["type"] for d in r.json()["detail"]}
    r = client.post("/api/v1/saferoom/queries/legacy_leak/run", headers=ha, json={})
    assert r.status_code == 409 and r.json()["detail"][0]["type"] == "stale_rules"
    assert not any(i in r.text for i in ids)
    r = client.post("/api/v1/saferoom/queries", headers=ha, json={
        "name": "per_person", "title": "per person", "count_columns": ["n"], "params_schema": {},
        "sql": "select entity_id, count(*) n from registry_person group by entity_id"})
    assert r.status_code == 201, r.text
    assert client.post("/api/v1/saferoom/queries/per_person/decision", headers=hs,
                       json={"approve": True}).status_code == 200
    r = client.post("/api/v1/saferoom/queries/per_person/run", headers=ha, json={})
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == [] and r.json()["suppressed_groups"] > 0 and r.json()["suppressed_rows"] > 0


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
        "sql": "SELECT age_band, count(*) AS cnt FROM t_sr_people GROUP BY age_band"})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "unknown_column"
    # approved rows whose result lacks the count column (written directly, older rules) never return data
    from cityops.security.models import SafeRoomQuery

    s = get_sessionmaker()()
    s.add(SafeRoomQuery(name="sneaky", title="sneaky", sql="SELECT age_band, count(*) AS cnt FROM t_sr_people "
                        "GROUP BY age_band", params_schema={}, count_columns=["n"], measure_columns=[],
                        status="approved", proposed_by="x", approved_by="y"))
    s.commit()
    s.close()
    r = client.post("/api/v1/saferoom/queries/sneaky/run", headers=ha, json={})
    assert r.status_code == 409 and "cnt" not in r.text.split("detail")[0]
    _ = hs
