"""The 城市体征 board in a real browser (Debian's Chromium + Playwright) against a real server:
readings posted over HTTP raise warnings; the board shows the streets' levels on the map, the
warnings with their actions (a click acknowledges one), sparklines and silent devices, in zh-CN and
English; a street account sees its street only. Screenshots: test-artifacts/vitals/."""

from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path

import httpx
import pytest

from cityops import devserver
from tests.helpers import make_user
from tests.indicators_helpers import make_devices, minute0, ndjson, reading, sensor_headers, tag

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "vitals"
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


def _login(page, base, user, pw, nxt="/vitals"):
    page.goto(base + nxt)
    page.wait_for_url(re.compile(r"/login\?next="))
    page.fill("#username", user)
    page.fill("#password", pw)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(re.escape(base + nxt)), timeout=15_000)


def test_vitals_board(db_url, session):
    t = tag()
    make_devices(session, [(f"T{t}-RG{i}", "rainfall", "310117001", 20 + i) for i in range(3)]
                 + [(f"T{t}-PD", "ponding_depth", "310117003", 2), (f"T{t}-GP", "gas_pressure", "310117103", 1)])
    cmd = make_user(session, f"vb_cmd_{t}", ["district_commander"], area_code="310117")
    yy = make_user(session, f"vb_yy_{t}", ["street_operator"], area_code="310117001")
    key = sensor_headers(session)
    try:
        port = devserver.free_ports(1, range(8170, 8180))[0]
    except devserver.ServerError as exc:
        pytest.skip(str(exc))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with devserver.api_server(db_url, port, logfile=ARTIFACTS / "server.log", timeout=60,
                              env={"CITYOPS_LOGIN_RATE_PER_MINUTE": "1000"}) as base:
        t0 = minute0(3)
        rows = [reading(f"T{t}-RG{i}", "rainfall", t0 + dt.timedelta(minutes=m), 9.0 + i) for i in range(3)
                for m in range(1, 14)]
        rows += [reading(f"T{t}-PD", "ponding_depth", t0 + dt.timedelta(minutes=m), 28.0) for m in range(1, 4)]
        rows += [reading(f"T{t}-GP", "gas_pressure", t0 + dt.timedelta(minutes=m), 1.0) for m in range(1, 7)]
        r = httpx.post(base + "/api/v1/readings", content=ndjson(rows),
                       headers={**key, "Content-Type": "application/x-ndjson"}, timeout=30)
        assert r.status_code == 202, r.text
        tok = httpx.post(base + "/api/v1/auth/token", data={"username": cmd[0], "password": cmd[1]}).json()
        h = {"Authorization": f"Bearer {tok['access_token']}"}
        end = time.monotonic() + 60
        while time.monotonic() < end:
            ws = httpx.get(base + "/api/v1/warnings", params={"page_size": 500}, headers=h).json()["items"]
            mine = [w for w in ws if any(d.startswith(f"T{t}") for d in w["subjects"])]
            if len({w["rule"] for w in mine}) >= 3:
                break
            time.sleep(0.5)
        rules = {w["rule"]: w for w in mine}
        assert {"rainstorm", "ponding", "gas_pressure_low"} <= set(rules), rules
        with sync_api.sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            outside = []
            ctx = b.new_context(viewport={"width": 1440, "height": 1000})
            page = ctx.new_page()
            page.on("request", lambda req: outside.append(req.url) if not req.url.startswith(base) else None)
            _login(page, base, *cmd)
            assert page.locator("nav a[href='/vitals']").count() == 1
            _wait_js(page, "document.getElementById('vs-map').dataset.ready === '1'")
            _wait_js(page, "document.querySelectorAll('#vs-warnings tbody tr[data-warning]').length >= 3")
            _wait_js(page, "document.querySelectorAll('#vs-warnings td.actions button').length > 0")
            red = page.locator(f"#vs-warnings tr[data-warning='{rules['rainstorm']['id']}']")
            assert "红色" in red.inner_text()
            page.wait_for_timeout(600)
            page.screenshot(path=str(ARTIFACTS / "board.png"), full_page=True)
            # acknowledge the gas warning with its button
            gas = page.locator(f"#vs-warnings tr[data-warning='{rules['gas_pressure_low']['id']}']")
            gas.locator("button", has_text="签收").click()
            _wait_js(page, f"(document.querySelector(\"#vs-warnings tr[data-warning='{rules['gas_pressure_low']['id']}']\")"
                           "||{}).innerText?.includes('已签收')")
            page.goto(base + "/vitals?lang=en")
            _wait_js(page, "document.getElementById('vs-map').dataset.ready === '1'")
            _wait_js(page, "document.querySelectorAll('#vs-warnings tbody tr[data-warning]').length >= 3")
            assert "City vital signs" in page.inner_text("h1")
            page.wait_for_timeout(600)
            page.screenshot(path=str(ARTIFACTS / "board-en.png"), full_page=True)
            # a street account sees its street only
            ctx2 = b.new_context(viewport={"width": 1280, "height": 900})
            page2 = ctx2.new_page()
            _login(page2, base, *yy)
            _wait_js(page2, "document.querySelectorAll('#vs-warnings tbody tr[data-warning]').length >= 1")
            ids = page2.evaluate("[...document.querySelectorAll('#vs-warnings tr[data-warning]')].map(r => +r.dataset.warning)")
            assert rules["rainstorm"]["id"] in ids and rules["gas_pressure_low"]["id"] not in ids
            page2.screenshot(path=str(ARTIFACTS / "board-street.png"), full_page=True)
            b.close()
        assert not [u for u in outside if not u.startswith("data:")], outside
