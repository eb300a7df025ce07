"""Console data and pages without a browser: scope, KPIs, map points vs clusters, choropleth,
to-do, live stream, the page access rule, language, assets, CSP-safe templates, the briefing."""

from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.helpers import auth_headers, make_user, principal_of

CONSOLE = Path(__file__).resolve().parent.parent / "cityops" / "console"
C1 = "310117001001"  # the first community of 岳阳街道 (exists in the small demo district)


def _ensure_reference(session):
    from cityops.cases import reference as ref
    from cityops.cases.models import CatalogueVersion, Department
    from cityops.security.principal import SYSTEM

    if session.scalar(select(Department.id).limit(1)) is None:
        ref.seed_departments(session, SYSTEM)
    if session.scalar(select(CatalogueVersion.id).limit(1)) is None:
        ref.seed_catalogue(session, SYSTEM)
    session.commit()


def _grid_point(session, prefix, k=0):
    from cityops.geo.models import Area

    grids = session.execute(select(Area.code, Area.geom).where(Area.level == "grid", Area.code.startswith(prefix))
                            .order_by(Area.code)).all()
    code, geom = grids[k % len(grids)]
    p = geom.representative_point()
    return code, p.y, p.x


def _category(session):
    from cityops.cases.models import Category
    from cityops.cases.reference import active_version_id

    return session.scalar(select(Category.code).where(Category.version_id == active_version_id(session),
                                                      Category.enabled.is_(True)).order_by(Category.code))


def _report(session, principal, prefix, k=0, code=None, description="测试案件"):
    from cityops.cases import intake, schemas

    _, lat, lon = _grid_point(session, prefix, k)
    body = schemas.ReportCreate(category_code=code or _category(session), lat=lat, lon=lon, description=description,
                                source="supervisor")
    out = intake.report(session, principal, body, source="supervisor", channel="app")
    session.commit()
    return out


@pytest.fixture(scope="module")
def world(db_url):
    """Reference data, three users and a few cases in two streets (reported through the real intake)."""
    from tests.conftest import use_database

    use_database(db_url)
    from cityops.db import get_sessionmaker

    s = get_sessionmaker()()
    try:
        _ensure_reference(s)
        disp = make_user(s, "cd_dispatcher", ["dispatcher"], area_code="310117")
        comm = make_user(s, "cd_community", ["community_operator"], area_code=C1)
        street = make_user(s, "cd_street", ["street_operator"], area_code="310117103")
        sup = principal_of(s, "cd_dispatcher")
        cats = sorted({_category(s)})
        ids = {"c1": [], "sheshan": []}
        for k in range(3):
            ids["c1"].append(_report(s, sup, C1, k, cats[0], f"岳阳测试{k}")["case_id"])
        for k in range(2):
            ids["sheshan"].append(_report(s, sup, "310117103", k, cats[0], f"佘山测试{k}")["case_id"])
        yield {"disp": disp, "comm": comm, "street": street, "ids": ids}
    finally:
        s.close()


def test_kpis_and_scope(client, world):
    h = auth_headers(client, *world["disp"])
    k = client.get("/api/v1/console/kpis", headers=h).json()
    assert k["intake_today"] >= 5 and k["open"] >= 5
    assert {s["code"] for s in k["by_street"]} >= {"310117001", "310117103"}
    hc = auth_headers(client, *world["comm"])
    kc = client.get("/api/v1/console/kpis", headers=hc).json()
    # the community account counts only its own community's cases
    assert kc["open"] == client.get("/api/v1/console/kpis", headers=h, params={"community": C1}).json()["open"]
    assert kc["open"] < k["open"]
    assert [s["code"] for s in kc["by_street"]] == ["310117001"]


def test_map_points_are_scoped_and_coloured(client, world):
    hc = auth_headers(client, *world["comm"])
    r = client.get("/api/v1/console/map", headers=hc, params={"bbox": "120,30,122,32", "zoom": 12})
    assert r.status_code == 200
    body = r.json()
    assert body["mode"] == "points"
    got = {it[0] for it in body["items"]}
    assert set(world["ids"]["c1"]) <= got
    assert not (set(world["ids"]["sheshan"]) & got)
    assert all(it[3] in ("green", "yellow", "red", "none") for it in body["items"])
    # asking for another street's area is out of scope: 404, never 403
    r = client.get("/api/v1/console/map", headers=hc, params={"area": "310117103"})
    assert r.status_code == 404
    r = client.get("/api/v1/console/map", headers=hc, params={"bbox": "1,2,3"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "bbox"]


def test_map_clusters_when_many(session, world):
    from cityops.console import service

    p = principal_of(session, "cd_dispatcher")
    f = service.Filters()
    small = service.map_data(session, p, f, None, 11, point_limit=1)
    assert small["mode"] == "clusters"
    assert sum(c["count"] for c in small["items"]) == small["total"]
    codes = {c["code"] for c in small["items"]}
    assert {"310117001", "310117103"} <= codes  # zoom 11: clusters by street
    grid = service.map_data(session, p, f, None, 15, point_limit=1)
    assert all(len(c["code"]) == 15 for c in grid["items"])
    for c in small["items"]:
        assert c["red"] + c["yellow"] + c["green"] <= c["count"]


def test_filters_by_street_category_state(client, world):
    h = auth_headers(client, *world["disp"])
    r = client.get("/api/v1/console/map", headers=h, params={"street": "310117103", "zoom": 14})
    ids = {it[0] for it in r.json()["items"]}
    assert set(world["ids"]["sheshan"]) <= ids and not (set(world["ids"]["c1"]) & ids)
    r = client.get("/api/v1/console/map", headers=h, params={"state": "closed"})
    assert not ({it[0] for it in r.json()["items"]} & set(world["ids"]["c1"]))
    r = client.get("/api/v1/console/map", headers=h, params={"street": "31011710"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "street"]
    r = client.get("/api/v1/console/map", headers=h, params={"period": "forever"})
    assert r.status_code == 422


def test_choropleth(client, world):
    h = auth_headers(client, *world["disp"])
    r = client.get("/api/v1/console/choropleth", headers=h, params={"level": "community", "metric": "count"})
    body = r.json()
    assert body["values"][C1] >= 3
    d = client.get("/api/v1/console/choropleth", headers=h, params={"level": "street", "metric": "density"}).json()
    assert d["values"]["310117001"] > 0 and d["breaks"] == sorted(d["breaks"])
    assert client.get("/api/v1/console/choropleth", headers=h, params={"metric": "x"}).status_code == 422


def test_meta_layers_and_todo(client, world):
    hc = auth_headers(client, *world["comm"])
    m = client.get("/api/v1/console/meta", headers=hc).json()
    assert m["scope"]["community"] == C1 and m["scope"]["street"] == "310117001"
    assert [s["code"] for s in m["streets"]] == ["310117001"]
    assert all(c["code"] == C1 for c in m["communities"])
    assert m["categories"] and m["departments"] and m["states"]
    keys = {layer["key"] for layer in m["layers"]}
    assert {"policing", "governance"} <= keys
    assert all(layer["count"] > 0 for layer in m["layers"])
    todo = client.get("/api/v1/console/todo", headers=hc).json()
    assert set(todo) == {"to_verify", "to_check", "overdue", "to_sign"}
    assert client.get("/api/v1/console/todo", headers=hc, params={"area": "310117103"}).status_code == 404


def test_data_needs_sign_in(client):
    assert client.get("/api/v1/console/kpis").status_code == 401
    assert client.get("/api/v1/console/map").status_code == 401


def test_stream_poll_follows_the_outbox_in_scope(session, world):
    from cityops.console import live

    comm = principal_of(session, "cd_community")
    disp = principal_of(session, "cd_dispatcher")
    session.commit()  # SQLite: every transaction takes the write lock; don't hold it while others work
    cursor = live.start_cursor(None)
    new_c1 = _report(session, disp, C1, 3, description="直播测试")["case_id"]
    new_sh = _report(session, disp, "310117103", 3, description="直播测试")["case_id"]
    msgs, cur2 = live.poll(comm, cursor, None, "zh")
    ids = {m["case_id"] for m in msgs}
    assert new_c1 in ids and new_sh not in ids
    assert cur2 > cursor
    created = next(m for m in msgs if m["case_id"] == new_c1)
    assert created["kind"] == "created" and created["label"] == "上报"
    msgs_d, _ = live.poll(disp, cursor, None, "en")
    assert {new_c1, new_sh} <= {m["case_id"] for m in msgs_d}
    assert live.poll(disp, cur2, None, "zh")[0] == []


def test_stream_endpoint_sends_sse(client, world):
    h = auth_headers(client, *world["disp"])
    with client.stream("GET", "/api/v1/console/stream", headers=h, params={"max_s": 0.5}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        text = "".join(r.iter_text())
    assert text.startswith("retry:") and '"type": "hello"' in text and "event: bye" in text


# ---------------------------------------------------------------------------------------------- pages


def test_pages_redirect_to_login_and_render(client, world):
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=/")
    r = client.get("/login")
    assert r.status_code == 200 and "城运平台登录" in r.text and 'lang="zh-CN"' in r.text
    r = client.get("/login?lang=en")
    assert "Sign in to CityOps" in r.text and "lang=en" in r.headers["set-cookie"]
    client.cookies.clear()
    r = client.post("/api/v1/auth/login", json={"username": world["disp"][0], "password": world["disp"][1]})
    assert r.status_code == 200
    for path in ("/", "/cases", f"/cases/{world['ids']['c1'][0]}", "/workstation", "/report", "/briefing",
                 "/evaluation"):
        r = client.get(path)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
        assert "松江区城市运行管理中心" in r.text
    # English toggle is remembered by cookie
    r = client.get("/?lang=en")
    assert "Songjiang City Operations Centre" in r.text
    assert "Songjiang City Operations Centre" in client.get("/cases").text
    client.get("/?lang=zh")
    client.cookies.clear()


def test_page_without_permission_is_a_readable_403(client, db_url, session):
    user = make_user(session, "cd_auditor", ["audit_admin"], area_code="310117")
    client.cookies.clear()
    client.post("/api/v1/auth/login", json={"username": user[0], "password": user[1]})
    r = client.get("/evaluation")
    assert r.status_code == 403 and "text/html" in r.headers["content-type"]
    client.cookies.clear()


def test_workstation_scope(client, world):
    client.cookies.clear()
    client.post("/api/v1/auth/login", json={"username": world["street"][0], "password": world["street"][1]})
    r = client.get("/workstation")
    assert r.status_code == 200 and 'data-scope="310117103"' in r.text and "佘山镇" in r.text
    assert client.get("/workstation?area=310117001").status_code == 404
    client.cookies.clear()


def test_static_assets_from_packages_and_ours(client):
    r = client.get("/static/leaflet/leaflet.js?v=x")
    assert r.status_code == 200 and "immutable" in r.headers["cache-control"]
    assert client.get("/static/markercluster/leaflet.markercluster.js").status_code == 200
    assert client.get("/static/console/console.js").status_code == 200
    assert client.get("/static/nope/x.js").status_code == 404
    assert client.get("/static/console/../api.py").status_code == 404


def test_templates_and_scripts_are_csp_safe_and_offline():
    """No inline scripts, handlers or style attributes (script-src/style-src 'self'); no URL
    outside this server in anything we serve."""
    for p in sorted((CONSOLE / "templates").glob("*.html")):
        text = p.read_text(encoding="utf-8")
        for m in re.finditer(r"<script\b([^>]*)>", text):
            attrs = m.group(1)
            assert "src=" in attrs or 'type="application/json"' in attrs, (p.name, m.group(0))
        assert not re.search(r"\son[a-z]+=", text), p.name
        assert not re.search(r"\sstyle=", text) or p.name == "briefing_doc.html", p.name
    for p in sorted((CONSOLE / "static").glob("*")):
        text = p.read_text(encoding="utf-8")
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), p.name


def test_i18n_catalogue_complete():
    from cityops.console.i18n import MESSAGES

    for key, (zh, en) in MESSAGES.items():
        assert zh, key
        assert en or key == "common.count", key
    used = set()
    for p in list((CONSOLE / "templates").glob("*.html")) + list((CONSOLE / "static").glob("*.js")):
        keys = re.findall(r"""\bt\(\s*['"]([a-z_]+\.[a-z_.]+)['"]""", p.read_text(encoding="utf-8"))
        used |= {k for k in keys if not k.endswith(".")}  # "sla." + state etc. are built at run time
    missing = sorted(k for k in used if k not in MESSAGES)
    assert not missing, missing


def test_briefing_data_html_and_pdf(session, world):
    from cityops.console import briefing
    from cityops.console.models import Briefing

    p = principal_of(session, "cd_dispatcher")
    today = briefing.i18n.today_local()
    data = briefing.briefing_data(session, p, today, "zh")
    assert data["intake"] >= 5 and len(data["hours"]) == 24 and sum(data["hours"]) == data["intake"]
    html = briefing.render_html(data, "zh", standalone=True)
    assert "城运日报" in html and "<svg" in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    if not Path(briefing.CHROMIUM).exists():
        pytest.skip("/usr/bin/chromium missing: PDF not checked")
    row = briefing.generate(session, p, today, "zh")
    assert row.pdf is not None and row.pdf[:5] == b"%PDF-", row.pdf_error
    assert session.scalar(select(Briefing.id).where(Briefing.day == today)) is not None


def test_briefing_pdf_route_and_bad_date(client, world):
    client.cookies.clear()
    h = auth_headers(client, *world["disp"])
    assert client.get("/briefing?date=2026-13-01", headers=h).status_code == 422
    future = (dt.date.today() + dt.timedelta(days=3)).isoformat()
    assert client.get(f"/briefing?date={future}", headers=h).status_code == 422


def test_briefing_print_is_a_queued_rate_limited_job(client, session, world):
    """A viewer never starts Chromium: a missing or regenerated PDF is queued for the worker (202, one job per
    area/day/language at a time, a few prints a minute per account); the worker's job stores it."""
    from cityops.console import jobs as cjobs
    from cityops.jobs.models import OutboxItem

    client.cookies.clear()
    h = auth_headers(client, *world["disp"])
    day = (dt.date.today() - dt.timedelta(days=40)).isoformat()

    def jobs_queued() -> int:
        n = session.scalar(select(func.count()).select_from(OutboxItem).where(
            OutboxItem.topic == "console.briefing.generate", OutboxItem.payload["day"].as_string() == day))
        session.rollback()
        return int(n or 0)

    r = client.get(f"/briefing.pdf?date={day}&regenerate=true", headers=h)
    assert r.status_code == 202 and "生成" in r.text
    assert client.get(f"/briefing.pdf?date={day}", headers=h).status_code == 202
    assert jobs_queued() == 1  # the second request found the job queued
    statuses = [client.get(f"/briefing.pdf?date={day}&regenerate=true", headers=h).status_code for _ in range(3)]
    assert 429 in statuses
    cjobs.generate_requested(session, {"username": world["disp"][0], "day": day, "lang": "zh"})
    session.commit()
    if Path(briefing_module().CHROMIUM).exists():
        r = client.get(f"/briefing.pdf?date={day}", headers=h)
        assert r.status_code == 200 and r.content[:5] == b"%PDF-"


def briefing_module():
    from cityops.console import briefing

    return briefing


def test_daily_briefing_timer_handler_generates_and_rearms(session, world):
    from cityops.console import briefing
    from cityops.console import jobs as cjobs
    from cityops.console.models import Briefing
    from cityops.jobs.registry import handlers_for
    from cityops.jobs.service import get_timer

    assert cjobs.run_daily_briefing in handlers_for(cjobs.KIND)  # the worker finds it
    cjobs.run_daily_briefing(session, {"kind": cjobs.KIND})
    session.commit()
    row = session.scalar(select(Briefing).where(Briefing.day == briefing.default_day(), Briefing.area_code == "310117"))
    assert row is not None and row.generated_by == "schedule" and "城运日报" in row.html
    if Path(briefing.CHROMIUM).exists():
        assert row.pdf is not None and row.pdf.startswith(b"%PDF-"), row.pdf_error
    t = get_timer(session, cjobs.KIND, cjobs.REF_TYPE, cjobs.REF_ID)
    assert t is not None and t.status == "pending" and t.due_at > dt.datetime.now(dt.UTC)


def test_daily_briefing_timer_rearms(session, world):
    from cityops.console import jobs as cjobs
    from cityops.jobs.service import get_timer

    at = cjobs.arm_daily_briefing(session, dt.datetime(2026, 3, 1, 23, 30, tzinfo=dt.UTC))
    session.commit()
    # 2026-03-02 07:30 in Shanghai -> the next 06:00 is 2026-03-03 06:00 (+08:00)
    assert at == dt.datetime(2026, 3, 2, 22, 0, tzinfo=dt.UTC)
    t = get_timer(session, cjobs.KIND, cjobs.REF_TYPE, cjobs.REF_ID)
    assert t is not None and t.status == "pending"
    from cityops.jobs.service import cancel_timers

    cancel_timers(session, cjobs.REF_TYPE, cjobs.REF_ID)
    session.commit()


def test_side_panels_are_placeholders_until_a_module_fills_them(client, world, monkeypatch):
    import sys
    import types

    from cityops.console import service

    h = auth_headers(client, *world["disp"])
    body = client.get("/api/v1/console/panels", headers=h).json()
    assert set(body) == {"warnings", "incidents", "resources"}
    assert all(v == {"available": False} for v in body.values())
    fake = types.ModuleType("cityops_test_fake_panel")
    fake.panel = lambda session, principal, lang: {"items": [{"label": "积水预警", "level": "warning"}], "total": 1}
    monkeypatch.setitem(sys.modules, "cityops_test_fake_panel", fake)
    monkeypatch.setitem(service.PANEL_PROVIDERS, "warnings", "cityops_test_fake_panel")
    body = client.get("/api/v1/console/panels", headers=h).json()
    assert body["warnings"]["available"] is True and body["warnings"]["items"][0]["label"] == "积水预警"


def _same(a, b):
    """Compare two answers, floats to 1e-6 and lists of clusters by code."""
    if isinstance(a, dict):
        assert set(a) == set(b), (set(a) ^ set(b))
        for k in a:
            if k != "at":
                _same(a[k], b[k])
    elif isinstance(a, list):
        assert len(a) == len(b), (a, b)
        for x, y in zip(a, b, strict=True):
            _same(x, y)
    elif isinstance(a, float) or isinstance(b, float):
        assert abs(a - b) < 1e-6, (a, b)
    else:
        assert a == b, (a, b)


@pytest.mark.parametrize("who", ["cd_dispatcher", "cd_community", "cd_street"])
def test_snapshot_answers_equal_sql(session, world, who):
    """The in-memory snapshot (NumPy) and SQL give the same KPIs, map, choropleth and to-do."""
    from cityops.cases import sla
    from cityops.console import service

    p = principal_of(session, who)
    session.commit()
    now = sla.now()
    filters = [service.Filters(), service.Filters(period="7d"), service.Filters(period="today", sla="green"),
               service.Filters(street="310117001"), service.Filters(state="reported"),
               service.Filters(source="supervisor", period="30d"), service.Filters(sla="red")]
    for f in filters:
        _same(service.kpis(session, p, f, now, engine="sql"), service.kpis(session, p, f, now, engine="snapshot"))
        for zoom, limit in ((11, 1), (13, 1), (15, 1), (12, 3000)):
            _same(service.map_data(session, p, f, None, zoom, now=now, point_limit=limit, engine="sql"),
                  service.map_data(session, p, f, None, zoom, now=now, point_limit=limit, engine="snapshot"))
        box = (121.1, 30.9, 121.3, 31.1)
        _same(service.map_data(session, p, f, box, 12, now=now, engine="sql"),
              service.map_data(session, p, f, box, 12, now=now, engine="snapshot"))
        for level in ("street", "community", "grid"):
            for metric in ("count", "density", "overdue"):
                _same(service.choropleth(session, p, f, level, metric, now, engine="sql"),
                      service.choropleth(session, p, f, level, metric, now, engine="snapshot"))
    for area in (None, "310117001", C1):
        if area and p.area_code and not area.startswith(p.area_code) and not p.area_code.startswith(area):
            continue
        _same(service.todo(session, p, area, now=now, engine="sql"), service.todo(session, p, area, now=now, engine="snapshot"))
    session.rollback()


def test_snapshot_follows_new_cases_and_transitions(session, world):
    from cityops.cases import schemas
    from cityops.cases import service as cases
    from cityops.console import service

    disp = principal_of(session, "cd_dispatcher")
    lead = principal_of(session, make_user(session, "cd_shiftlead", ["shift_lead"], area_code="310117")[0])
    session.commit()
    f = service.Filters(community=C1)
    before = service.map_data(session, disp, f, None, 14, engine="snapshot")
    session.commit()
    from cityops.cases.models import Category

    other = session.scalar(select(Category.code).where(Category.code != _category(session)).order_by(Category.code.desc()))
    out = _report(session, disp, C1, 5, other, description="快照测试")
    assert not out["linked"]
    cid = out["case_id"]
    after = service.map_data(session, disp, f, None, 14, engine="snapshot")
    session.commit()
    assert after["total"] == before["total"] + 1
    assert any(it[0] == cid and it[4] == "上报" for it in after["items"])
    cases.act(session, lead, cid, "accept", schemas.ActionIn())
    session.commit()
    # on PostgreSQL a fresh hole in the event ids (a transaction rolled back just before) holds the
    # snapshot back for up to the 1 s margin of ``jobs.events_since``: the console follows within it
    deadline = time.monotonic() + 5
    while True:
        moved = service.map_data(session, disp, service.Filters(community=C1, state="accepted"), None, 14,
                                 engine="snapshot")
        session.commit()
        if any(it[0] == cid for it in moved["items"]) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert any(it[0] == cid for it in moved["items"])
    assert service.kpis(session, disp, f, engine="snapshot")["open"] == service.kpis(session, disp, f, engine="sql")["open"]
    session.rollback()


def test_evaluation_page_rankings_and_csv(client, world):
    client.cookies.clear()
    h = auth_headers(client, *world["disp"])
    r = client.get("/evaluation", headers=h, params={"period": "30d"})
    assert r.status_code == 200
    assert 'data-ranking="streets"' in r.text and "grade grade-" in r.text and "<svg" in r.text
    r = client.get("/evaluation.csv", headers=h, params={"kind": "streets", "period": "30d"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    lines = r.text.lstrip("\ufeff").splitlines()
    assert lines[0].startswith("名次,名称") and len(lines) >= 2
    assert client.get("/evaluation.csv", headers=h, params={"kind": "nope"}).status_code == 422
    assert client.get("/evaluation", headers=h, params={"period": "forever"}).status_code == 422


def test_report_page_public_parts(client, world):
    client.cookies.clear()
    r = client.get("/report")
    assert r.status_code == 200 and 'id="contact"' in r.text  # a citizen may leave a phone number
    cats = client.get("/api/v1/console/report-categories").json()["items"]
    assert cats and {"code", "name", "group"} <= set(cats[0])
    assert client.get("/api/v1/console/my-reports").status_code == 401
    h = auth_headers(client, *world["disp"])
    mine = client.get("/api/v1/console/my-reports", headers=h).json()["items"]
    assert {c["id"] for c in mine} >= set(world["ids"]["c1"])  # the dispatcher reported these


def test_every_case_event_action_has_a_feed_label(session):
    """The live feed names actions in words (zh and en), never by code: every action the case
    engine writes (the SLA timer's warn/escalate too) has a label."""
    from sqlalchemy import select

    from cityops.cases import sla  # noqa: F401 - the timer's actions are written by it
    from cityops.cases.models import CaseEvent
    from cityops.console.service import ACTION_LABELS

    written = set(session.scalars(select(CaseEvent.action).distinct()))
    assert {"warn", "escalate"} <= set(ACTION_LABELS)
    assert written and not (written - set(ACTION_LABELS)), sorted(written - set(ACTION_LABELS))
