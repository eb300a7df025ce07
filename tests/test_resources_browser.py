"""The resources map in a real browser (Debian's Chromium + Playwright) against a real server: the
warehouses (with stock levels), teams and shelters of the demo district on the road/river base
map, the warehouse table and the shipments board, in zh-CN and English; a street account sees its
street's warehouses only. Screenshots: test-artifacts/resources/."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from cityops import devserver
from tests.helpers import make_user
from tests.resources_helpers import SHESHAN, YUEYANG

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "resources"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing (scripts/browser.sh installs it)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="python playwright not installed")


def _wait_js(page, expr, timeout=30.0):
    t0 = time.monotonic()
    while True:
        v = page.evaluate(expr)
        if v:
            return v
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {expr}")
        page.wait_for_timeout(150)


def _login(page, base, user, pw, nxt="/resources"):
    page.goto(base + nxt)
    page.wait_for_url(re.compile(r"/login\?next="))
    page.fill("#username", user)
    page.fill("#password", pw)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(re.escape(base + nxt)), timeout=15_000)


def test_resources_map(db_url, session):
    from cityops.resources.models import Warehouse
    from tests.resources_helpers import make_stock

    make_stock(session, 3, street=SHESHAN)  # below its minimum (5): drawn as low
    cmd = make_user(session, "rb_cmd", ["emergency_commander"], area_code="310117")
    yy = make_user(session, "rb_yy", ["street_operator"], area_code=YUEYANG)
    all_wh = dict(session.execute(select(Warehouse.id, Warehouse.street_code)).all())
    session.commit()
    try:
        port = devserver.free_ports(1, range(8250, 8260))[0]
    except devserver.ServerError as exc:
        pytest.skip(str(exc))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with devserver.api_server(db_url, port, logfile=ARTIFACTS / "server.log", timeout=60,
                              env={"CITYOPS_LOGIN_RATE_PER_MINUTE": "1000"}) as base:
        with sync_api.sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            outside: list[str] = []
            ctx = b.new_context(viewport={"width": 1440, "height": 1000})
            page = ctx.new_page()
            page.on("request", lambda req: outside.append(req.url) if not req.url.startswith(base) else None)
            _login(page, base, *cmd)
            assert page.locator("nav a[href='/resources']").count() == 1
            _wait_js(page, "document.getElementById('rs-map').dataset.ready === '1'")
            rows = _wait_js(page, "document.querySelectorAll('#rs-warehouses tbody tr[data-warehouse]').length")
            assert rows == len(all_wh)
            assert _wait_js(page, "document.querySelectorAll('#rs-map path.leaflet-interactive, #rs-map canvas').length")
            assert page.locator("#rs-warehouses td.low").count() >= 1
            _wait_js(page, "document.querySelectorAll('#rs-shipments tbody tr[data-shipment]').length > 0")
            assert "应急资源一张图" in page.inner_text("h1")
            page.wait_for_timeout(800)
            page.screenshot(path=str(ARTIFACTS / "map.png"), full_page=True)
            page.goto(base + "/resources?lang=en")
            _wait_js(page, "document.getElementById('rs-map').dataset.ready === '1'")
            assert "Emergency resources map" in page.inner_text("h1")
            page.wait_for_timeout(600)
            page.screenshot(path=str(ARTIFACTS / "map-en.png"), full_page=True)
            ctx2 = b.new_context(viewport={"width": 1280, "height": 900})
            page2 = ctx2.new_page()
            _login(page2, base, *yy)
            _wait_js(page2, "document.getElementById('rs-map').dataset.ready === '1'")
            ids = page2.evaluate("[...document.querySelectorAll('#rs-warehouses tr[data-warehouse]')]"
                                 ".map(r => +r.dataset.warehouse)")
            assert set(ids) == {i for i, st in all_wh.items() if st == YUEYANG}
            page2.screenshot(path=str(ARTIFACTS / "map-street.png"), full_page=True)
            b.close()
        assert not [u for u in outside if not u.startswith("data:")], outside
