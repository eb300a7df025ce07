"""The base map in a real browser (Debian's headless Chromium through Playwright): the console
draws roads, rivers and place names UNDER the grid boundaries, reloads them by zoom, finds a
place by name; the phone report page shows roads at zoom 16 and puts the pin on a found place.
Screenshots go to test-artifacts/basemap/ (looked at when the base map changes)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from cityops import devserver
from tests.helpers import make_user

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "basemap"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing (scripts/browser.sh installs Debian's chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="python playwright not installed")


@pytest.fixture(scope="module")
def server(db_url, tmp_path_factory):
    from cityops.db import get_sessionmaker
    from tests.conftest import use_database

    use_database(db_url)
    s = get_sessionmaker()()
    try:
        users = {"dispatcher": make_user(s, "bm_dispatcher", ["dispatcher"], area_code="310117"),
                 "worker": make_user(s, "bm_worker", ["supervisor"], area_code="310117001")}
        s.rollback()
    finally:
        s.close()
    try:
        port = devserver.free_ports(1, range(8170, 8180))[0]  # the base map's port range
    except devserver.ServerError as exc:
        pytest.skip(str(exc))
    log = tmp_path_factory.mktemp("basemap-server") / "server.log"
    with devserver.api_server(db_url, port, logfile=log, timeout=60,
                              env={"CITYOPS_LOGIN_RATE_PER_MINUTE": "1000"}) as base:
        yield base, users


@pytest.fixture(scope="module")
def browser():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _wait_js(page, expr: str, timeout: float = 20.0):
    t0 = time.monotonic()
    while True:
        v = page.evaluate(expr)
        if v:
            return v
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {expr}")
        page.wait_for_timeout(100)


def _login(page, base, user):
    page.goto(base + "/")
    page.wait_for_url(re.compile(r"/login\?next="))
    page.fill("#username", user[0])
    page.fill("#password", user[1])
    page.click("button[type=submit]")
    # the first sign-in of a session meets a cold server (console snapshot, caches): be patient
    # (a phone lands on 我的任务, /m)
    page.wait_for_url(re.compile(r"^" + re.escape(base) + r"/(m)?(\?.*)?$"), wait_until="commit", timeout=60_000)


def _outside(base, bad):
    def check(request):
        if not (request.url.startswith(base + "/") or request.url.startswith(("data:", "blob:", "about:"))):
            bad.append(request.url)
    return check


def test_console_draws_roads_under_the_grids(browser, server):
    base, users = server
    bad: list[str] = []
    ctx = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", viewport={"width": 1600, "height": 900})
    ctx.set_default_timeout(40_000)
    ctx.on("request", _outside(base, bad))
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        _login(page, base, users["dispatcher"])
        page.wait_for_selector("body[data-ready='1']")
        _wait_js(page, "document.querySelector('#map').dataset.basemapRoads > 0")
        # roads and water are paths in the base-map pane, which lies under the areas pane
        z = page.evaluate("""() => [getComputedStyle(document.querySelector('.leaflet-basemap-pane')).zIndex,
                                   getComputedStyle(document.querySelector('.leaflet-areas-pane')).zIndex].map(Number)""")
        assert z[0] < z[1]
        assert page.locator(".leaflet-basemap-pane path").count() > 10
        assert page.locator(".leaflet-areas-pane path").count() >= 17
        page.check("input[name=boundary][value=grid]")
        page.wait_for_timeout(800)
        page.screenshot(path=str(ARTIFACTS / "01-console-basemap-district.png"))
        low = int(page.get_attribute("#map", "data-basemap-roads"))
        # zoom in on the old town: local roads and their names appear
        page.evaluate("window.cityopsMap.map.setView([30.997, 121.222], 15, {animate: false})")
        _wait_js(page, "document.querySelector('#map').dataset.basemapZoom === '15'")
        page.wait_for_timeout(600)
        assert page.locator(".bm-road").count() > 3
        names = page.locator(".bm-road").all_inner_texts()
        assert all(n.strip() for n in names)
        page.screenshot(path=str(ARTIFACTS / "02-console-basemap-zoom15.png"))
        high = int(page.get_attribute("#map", "data-basemap-roads"))
        assert high != low
        # place search flies there
        page.fill("#place-search", "泗泾")
        page.wait_for_selector(".bm-results button")
        assert "泗泾镇" in page.inner_text(".bm-results")
        page.locator(".bm-results button").first.click()
        _wait_js(page, "Math.abs(window.cityopsMap.map.getCenter().lat - 31.12) < 0.03")
        page.wait_for_timeout(600)
        page.screenshot(path=str(ARTIFACTS / "03-console-search.png"))
        # the base map can be switched off
        page.uncheck("#show-basemap")
        assert page.locator(".leaflet-basemap-pane path").count() == 0
        assert not errors, errors
    finally:
        ctx.close()
    assert not bad, bad


def test_phone_page_has_roads_and_search(browser, server):
    base, users = server
    bad: list[str] = []
    ctx = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", viewport={"width": 390, "height": 844},
                              is_mobile=True, has_touch=True)
    ctx.set_default_timeout(40_000)
    ctx.on("request", _outside(base, bad))
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        _login(page, base, users["worker"])
        page.goto(base + "/report")
        page.wait_for_selector("body[data-ready='1']")
        page.fill("#place-search", "岳阳")
        page.wait_for_selector(".bm-results button")
        page.locator(".bm-results button").first.click()
        _wait_js(page, "document.getElementById('loc-info').dataset.grid")
        _wait_js(page, "document.querySelector('#pick-map').dataset.basemapZoom === '17'")
        assert page.locator("#pick-map .leaflet-basemap-pane path").count() > 3
        page.screenshot(path=str(ARTIFACTS / "04-phone-search-pin.png"))
        assert page.locator("body").evaluate("b => b.scrollWidth") <= 392
        assert not errors, errors
    finally:
        ctx.close()
    assert not bad, bad
