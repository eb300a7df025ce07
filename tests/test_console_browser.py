"""The console in a real browser: Debian's headless Chromium driven by Python Playwright (no
browser download) against a real uvicorn server on 127.0.0.1 and the test database.

A dispatcher signs in, sees the map with area boundaries, grid layers and cases, filters by a
street, opens a case and dispatches it and sees the timeline grow; a grid worker reports a problem
from the phone page and the dispatcher's console shows it without a reload; a community operator
sees only that community. Screenshots of every screen go to test-artifacts/console/. Every
request the pages make must go to the test server (nothing from outside 127.0.0.1).
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import time
import zlib
from pathlib import Path

import pytest
from sqlalchemy import select

from cityops import devserver
from tests.helpers import make_user, principal_of

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "console"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
C1 = "310117001001"
STREET = "310117001"

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing (scripts/browser.sh installs Debian's chromium): browser tests skipped",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="python playwright not installed")


def _png(w: int = 8, h: int = 8) -> bytes:
    raw = b"".join(b"\x00" + bytes([200, 60, 60] * w) for _ in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _grid_point(session, prefix: str, k: int):
    from cityops.geo.models import Area

    grids = session.execute(select(Area.code, Area.geom).where(Area.level == "grid", Area.code.startswith(prefix))
                            .order_by(Area.code)).all()
    p = grids[k % len(grids)][1].representative_point()
    return p.y, p.x


@pytest.fixture(scope="module")
def world(db_url):
    """Accounts and one registered case (ready to dispatch) in the first community of 岳阳街道."""
    from tests.conftest import use_database

    use_database(db_url)
    from cityops.cases import reference as ref
    from cityops.cases import schemas, service
    from cityops.cases.models import Category, Department
    from cityops.db import get_sessionmaker
    from cityops.security.principal import SYSTEM

    s = get_sessionmaker()()
    try:
        if s.scalar(select(Department.id).limit(1)) is None:
            ref.seed_departments(s, SYSTEM)
            ref.seed_catalogue(s, SYSTEM)
            s.commit()
        users = {
            "dispatcher": make_user(s, "br_dispatcher", ["dispatcher"], area_code="310117"),
            "shiftlead": make_user(s, "br_shiftlead", ["shift_lead"], area_code="310117"),
            "worker": make_user(s, "br_worker", ["supervisor"], area_code=STREET),
            "community": make_user(s, "br_community", ["community_operator"], area_code=C1),
        }
        cats = list(s.scalars(select(Category.code).where(Category.version_id == ref.active_version_id(s),
                                                          Category.enabled.is_(True)).order_by(Category.code)))
        lat, lon = _grid_point(s, C1, 1)
        sup = principal_of(s, "br_worker")
        _, res, _ = service.submit_report(s, sup, schemas.ReportCreate(
            category_code=cats[len(cats) // 2], lat=lat, lon=lon, description="浏览器测试：路面破损待派遣",
            source="supervisor"))
        assert not res["linked"], "the case to dispatch must be new (not a duplicate of another test's case)"
        case_id = res["case_id"]
        lead = principal_of(s, "br_shiftlead")
        s.commit()
        service.act(s, lead, case_id, "accept", schemas.ActionIn())
        service.act(s, lead, case_id, "register", schemas.ActionIn(note="立案"))
        s.commit()
        mobile_point = _grid_point(s, C1, 2)
        s.rollback()  # SQLite: never hold the write lock while the server works
    finally:
        s.close()
    return {"users": users, "case_id": case_id, "mobile_category": cats[-1], "mobile_point": mobile_point}


@pytest.fixture(scope="module")
def server(world, db_url, tmp_path_factory):
    try:
        port = devserver.free_ports(1, range(8150, 8160))[0]  # the console's assigned port range
    except devserver.ServerError as exc:
        pytest.skip(str(exc))
    log = tmp_path_factory.mktemp("console-server") / "server.log"
    with devserver.api_server(db_url, port, logfile=log, timeout=60,
                              env={"CITYOPS_LOGIN_RATE_PER_MINUTE": "1000"}) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Outside:
    """Every request a page makes; the ones not to the test server are a failure."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.bad: list[str] = []
        self.count = 0

    def __call__(self, request) -> None:
        self.count += 1
        url = request.url
        if not (url.startswith(self.base + "/") or url.startswith(("data:", "blob:", "about:"))):
            self.bad.append(url)


def _context(browser, base, outside, **kw):
    ctx = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", **kw)
    ctx.set_default_timeout(20_000)
    ctx.on("request", outside)
    return ctx


def _login(page, base, user):
    page.goto(base + "/")
    page.wait_for_url(re.compile(r"/login\?next="))
    page.fill("#username", user[0])
    page.fill("#password", user[1])
    page.click("button[type=submit]")
    try:
        page.wait_for_url(re.compile("^" + re.escape(base) + r"/(m)?$"), timeout=10_000)  # a phone lands on /m
    except sync_api.TimeoutError:
        err = page.locator("#login-error")
        raise AssertionError(f"sign-in of {user[0]} failed: {err.inner_text() if err.is_visible() else page.url}")


def _wait_js(page, expr: str, timeout: float = 20.0):
    """Poll a JS expression until truthy (page.wait_for_function compiles with eval, which the
    console's CSP forbids, rightly)."""
    t0 = time.monotonic()
    while True:
        v = page.evaluate(expr)
        if v:
            return v
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {expr}")
        page.wait_for_timeout(100)


def _shot(page, name):
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def _map_ready(page):
    page.wait_for_selector("#map[data-ready='1']")
    page.wait_for_selector("body[data-ready='1']")


@pytest.fixture(scope="module")
def dispatcher(browser, server, world):
    outside = Outside(server)
    ctx = _context(browser, server, outside, viewport={"width": 1600, "height": 900})
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    _login(page, server, world["users"]["dispatcher"])
    yield page, outside, errors
    ctx.close()
    assert not outside.bad, f"requests outside 127.0.0.1: {outside.bad}"


def test_dispatcher_sees_map_grids_and_cases(dispatcher, server):
    page, outside, errors = dispatcher
    _map_ready(page)
    assert page.locator(".leaflet-areas-pane path").count() >= 17  # the 17 streets/towns
    assert int(page.get_attribute("#map", "data-count")) > 0
    assert page.locator(".ccluster, .case-dot").count() > 0
    assert page.locator("[data-kpi='open']").inner_text() not in ("", "–")
    # unit grids and a grid layer of 多格合一
    n0 = page.locator(".leaflet-areas-pane path").count()
    page.check("input[name=boundary][value=grid]")
    _wait_js(page, f"document.querySelectorAll('.leaflet-areas-pane path').length > {n0}")
    n1 = page.locator(".leaflet-areas-pane path").count()
    page.check("input[data-layer=policing]")
    _wait_js(page, f"document.querySelectorAll('.leaflet-areas-pane path').length > {n1}")
    assert "预警信息" in page.inner_text(".side-right") and "接入后" in page.inner_text(".side-right")
    page.evaluate("document.querySelector('.side-left').scrollTop = 0")
    page.wait_for_timeout(300)
    _shot(page, "01-console-dispatcher")
    docs_img = ROOT / "docs" / "img" / "console.png"
    if not docs_img.exists() or os.environ.get("CITYOPS_UPDATE_DOCS_IMG") == "1":
        docs_img.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ARTIFACTS / "01-console-dispatcher.png", docs_img)
    page.uncheck("input[data-layer=policing]")
    page.uncheck("input[name=boundary][value=grid]")
    assert not errors, errors
    assert outside.count > 10 and not outside.bad


def test_filter_by_street(dispatcher, server):
    page, _, errors = dispatcher
    _wait_js(page, "document.querySelector('#map').dataset.count !== undefined")  # the map has drawn
    before = int(page.get_attribute("#map", "data-count"))
    with page.expect_response(lambda r: "/api/v1/console/map" in r.url and f"street={STREET}" in r.url):
        page.select_option("#f-street", STREET)
    _wait_js(page, f"window.cityopsMap.filters.street === '{STREET}'")
    page.wait_for_timeout(500)  # the map also zooms to the street and reloads
    assert f"street={STREET}" in page.url
    after = int(page.get_attribute("#map", "data-count"))
    assert 0 < after <= before
    kpi = page.evaluate(f"fetch('/api/v1/console/kpis?street={STREET}').then(r => r.json())")
    assert page.locator("[data-kpi='open']").inner_text().replace(",", "") == str(kpi["open"])
    _shot(page, "02-console-street-filter")
    assert not errors, errors


def test_open_case_dispatch_and_timeline(dispatcher, server, world):
    page, _, errors = dispatcher
    cid = world["case_id"]
    page.goto(f"{server}/cases?street={STREET}&period=open")
    page.wait_for_selector("body[data-ready='1']")
    _shot(page, "03-case-list")
    link = page.locator(f"tr[data-case='{cid}'] a")
    if link.count():
        link.click()
    else:  # not on the first page: open it directly
        page.goto(f"{server}/cases/{cid}")
    page.wait_for_selector("#case-page[data-state='registered']")
    n0 = int(page.get_attribute("#timeline", "data-count"))
    buttons = page.locator("#actions button[data-action]")
    offered = {buttons.nth(i).get_attribute("data-action") for i in range(buttons.count())}
    assert "dispatch" in offered and "close" not in offered and "acknowledge" not in offered
    assert page.locator("#actions button[data-action=dispatch]").inner_text() == "派遣"
    page.click("#actions button[data-action=dispatch]")
    form = page.locator("form.action-form[data-action=dispatch]")
    assert form.locator("select[name=department_code]").input_value()  # the proposed department
    # no co-handling department unless the dispatcher picks one (the first option was pre-selected: B1)
    assert form.locator("select[name=co_department_codes]").evaluate("s => s.selectedOptions.length") == 0
    form.locator("textarea[name=note]").fill("请尽快处置")
    _shot(page, "04-case-dispatch-form")
    form.locator("button[type=submit]").click()
    page.wait_for_selector("#case-page[data-state='dispatched']")
    page.wait_for_selector("#timeline li[data-action='dispatch']")
    assert int(page.get_attribute("#timeline", "data-count")) > n0
    assert "已派遣" in page.inner_text("#case-badges")
    _shot(page, "05-case-dispatched")
    assert not errors, errors


def test_mobile_report_appears_on_console_without_reload(browser, dispatcher, server, world):
    page, _, errors = dispatcher
    page.goto(server + "/")
    _map_ready(page)
    page.wait_for_selector("#live-badge:not(.off)")
    page.wait_for_timeout(1200)  # the stream says hello and starts from "now"
    marker = page.evaluate("window.__marker = Math.random()")
    outside = Outside(server)
    lat, lon = world["mobile_point"]
    ctx = _context(browser, server, outside, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                   geolocation={"latitude": lat, "longitude": lon}, permissions=["geolocation"])
    phone = ctx.new_page()
    perrs: list[str] = []
    phone.on("pageerror", lambda e: perrs.append(str(e)))
    try:
        _login(phone, server, world["users"]["worker"])
        phone.goto(server + "/report")
        phone.wait_for_selector("body[data-ready='1']")
        phone.click("#gps")
        _wait_js(phone, "document.getElementById('loc-info').dataset.grid")
        code = world["mobile_category"]
        phone.fill("#cat-search", code)
        phone.click(f"#catlist button[data-code='{code}']")
        phone.set_input_files("#photos", files=[{"name": "scene.png", "mimeType": "image/png", "buffer": _png()}])
        phone.fill("#description", "手机上报测试：井盖缺失")
        _shot(phone, "06-mobile-report-form")
        phone.click("#submit")
        _wait_js(phone, "document.body.dataset.lastReport")
        new_id = int(phone.evaluate("document.body.dataset.lastReport"))
        phone.wait_for_selector(f"#mine li[data-case='{new_id}']")
        _shot(phone, "07-mobile-my-reports")
        assert not perrs, perrs
        assert phone.locator("body").evaluate("b => b.scrollWidth") <= 392  # usable at phone width
    finally:
        ctx.close()
    assert not outside.bad, outside.bad
    # the console got it through the live stream: same page, no reload
    page.wait_for_selector(f"#feed a[href='/cases/{new_id}']", timeout=20_000)
    assert page.evaluate("window.__marker") == marker
    _shot(page, "08-console-live-update")
    assert not errors, errors


def test_community_operator_sees_only_their_community(browser, server, world):
    outside = Outside(server)
    ctx = _context(browser, server, outside, viewport={"width": 1500, "height": 900})
    page = ctx.new_page()
    area_requests: list[str] = []
    page.on("request", lambda r: area_requests.append(r.url) if "/api/v1/areas.geojson" in r.url else None)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        _login(page, server, world["users"]["community"])
        _map_ready(page)
        assert page.locator("#f-street").is_disabled() and page.locator("#f-community").is_disabled()
        assert page.locator("#f-community").input_value() == C1
        assert area_requests and all(f"code_prefix={C1}" in u for u in area_requests)
        street_rates = page.locator("#street-rates .bar")
        assert street_rates.count() == 1
        mine = page.evaluate("fetch('/api/v1/console/kpis').then(r => r.json())")
        assert page.locator("[data-kpi='open']").inner_text().replace(",", "") == str(mine["open"])
        _shot(page, "09-console-community")
        page.goto(server + "/workstation")
        page.wait_for_selector("body[data-ready='1']")
        assert page.locator("#ws-scope").inner_text() == C1
        _shot(page, "10-workstation-community")
        # a case of another street is not there for this account (404, not 403)
        other = page.evaluate("fetch('/api/v1/console/map?street=310117103').then(r => r.status)")
        assert other == 200
        data = page.evaluate("fetch('/api/v1/console/map?street=310117103').then(r => r.json())")
        assert data["total"] == 0
        assert page.evaluate("fetch('/api/v1/console/todo?area=310117103').then(r => r.status)") == 404
        page.goto(f"{server}/?lang=en")
        _map_ready(page)
        assert "Filters" in page.inner_text(".side-left")
        _shot(page, "11-console-english")
        page.goto(f"{server}/?lang=zh")
        assert not errors, errors
    finally:
        ctx.close()
    assert not outside.bad, outside.bad


def test_other_screens(dispatcher, server):
    page, outside, errors = dispatcher
    for path, name in (("/evaluation", "12-evaluation"), ("/briefing", "13-briefing"), ("/workstation", "14-workstation")):
        page.goto(server + path)
        if path != "/evaluation":
            page.wait_for_selector("body[data-ready='1']")
        _shot(page, name)
    assert "城运日报" in page.title() or page.locator("#briefing").count() == 0
    page.goto(server + "/briefing")
    assert page.locator("#briefing svg").count() >= 3
    page.click("#logout")
    page.wait_for_url(re.compile(r"/login"))
    assert not errors, errors
