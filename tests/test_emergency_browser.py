"""The incident command view in a real browser (Debian's headless Chromium via Playwright) against a
real uvicorn server: the incident on the map with its area, tasks by department with SLA colour,
the timeline, the warnings; the commander raises the level from the page and the board grows; the
plan library and the flat-reporting dashboard render; zh-CN and English. Screenshots go to
test-artifacts/emergency/. Every request must go to the test server."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from cityops import devserver
from tests.emergency_helpers import point_in
from tests.helpers import make_user

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "emergency"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
STREET = "310117117"  # 新浜镇: an incident of this test's own

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing (scripts/browser.sh installs it): browser tests skipped", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="python playwright not installed")


@pytest.fixture(scope="module")
def world(db_url):
    from tests.conftest import use_database

    use_database(db_url)
    from cityops.db import get_sessionmaker
    from cityops.emergency import alerts, incidents
    from cityops.emergency.seed_command import APPROVER, DRAFTER
    from cityops.security.principal import SYSTEM

    s = get_sessionmaker()()
    try:
        user = make_user(s, "br_em_cmd", ["emergency_commander"], area_code="310117")
        lon, lat = point_in(s, STREET, 2)
        res = incidents.open_incident(s, SYSTEM, "phone", "browser-flood", "natural", "III", lon=lon, lat=lat,
                                      subtype="flood_drought", title="浏览器测试：新浜镇强降雨积水",
                                      description="多处农田与道路积水", event_type="暴雨内涝")
        if res.created:
            incidents.act(s, SYSTEM, res.incident_id, "respond", {"level": "III", "plans": ["SJ-FXFT"]})
            w = alerts.draft(s, DRAFTER, alerts.WarningIn(level="yellow", event="暴雨", headline="新浜镇暴雨黄色预警（测试）",
                                                          description="测试预警", area_codes=[STREET],
                                                          incident=res.code))
            alerts.act(s, APPROVER, w["id"], "approve", {})
        s.commit()
        return {"user": user, "incident_id": res.incident_id}
    finally:
        s.close()


@pytest.fixture(scope="module")
def server(world, db_url, tmp_path_factory):
    try:
        port = devserver.free_ports(1, range(8240, 8250))[0]
    except devserver.ServerError as exc:
        pytest.skip(str(exc))
    log = tmp_path_factory.mktemp("em-server") / "server.log"
    with devserver.api_server(db_url, port, logfile=log, timeout=60,
                              env={"CITYOPS_LOGIN_RATE_PER_MINUTE": "1000"}) as base:
        yield base


@pytest.fixture(scope="module")
def page(server, world):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    outside: list[str] = []
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        ctx = b.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", viewport={"width": 1600, "height": 1000})
        ctx.set_default_timeout(20_000)
        ctx.on("request", lambda r: None if r.url.startswith((server + "/", "data:", "blob:", "about:"))
               else outside.append(r.url))
        pg = ctx.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(server + "/")
        pg.wait_for_url(re.compile(r"/login\?next="))
        pg.fill("#username", world["user"][0])
        pg.fill("#password", world["user"][1])
        pg.click("button[type=submit]")
        pg.wait_for_url(server + "/")
        yield pg, errors
        ctx.close()
        b.close()
    assert not outside, f"requests outside 127.0.0.1: {outside}"


def _wait(pg, expr: str, timeout: float = 20.0):
    t0 = time.monotonic()
    while True:
        v = pg.evaluate(expr)
        if v:
            return v
        assert time.monotonic() - t0 < timeout, f"timed out waiting for {expr}"
        pg.wait_for_timeout(100)


def _ready(pg):
    pg.wait_for_selector("body[data-ready='1']")


def test_command_view(page, server, world):
    pg, errors = page
    iid = world["incident_id"]
    pg.goto(f"{server}/emergency/incidents/{iid}")
    _ready(pg)
    pg.wait_for_selector("#inc-map[data-ready='1']")
    assert "浏览器测试" in pg.inner_text("#inc-title")
    # the area drawn on the map and the marker
    _wait(pg, "document.querySelectorAll('#inc-map path.leaflet-interactive').length >= 1")
    assert pg.locator("#inc-map .em-dot").count() == 1
    # tasks by department, each with its SLA colour; the street centre of 新浜镇 among them
    depts = pg.locator("#task-board .task-dept")
    assert depts.count() >= 10
    assert pg.locator(f"#task-board [data-department='jz{STREET}']").count() == 1
    assert pg.locator("#task-board .em-sla-green").count() >= 1
    # one top-bar entry for emergency command; warnings, plans and reporting are its page's tabs
    nav = pg.inner_text("nav.mainnav")
    assert "应急指挥" in nav and "预案库" not in nav and "扁平化报告" not in nav
    tabs = pg.inner_text("nav.em-tabs")
    assert "预警信息" in tabs and "预案库" in tabs and "报告时效" in tabs
    assert pg.locator("#timeline li").count() >= 2
    assert "新浜镇暴雨黄色预警" in pg.inner_text("#warnings")
    assert pg.locator("#deadlines tr").count() >= 3
    assert pg.locator("#mobilisation tr").count() >= 5
    pg.screenshot(path=str(ARTIFACTS / "command.png"), full_page=True)

    # the commander raises the response to level II from the page: more departments get tasks
    before = depts.count()
    pg.click("#inc-actions [data-action='adjust_level']")
    pg.select_option("#af-level", "II")
    pg.click("form[data-form='adjust_level'] button[type=submit]")
    _wait(pg, "document.querySelector('#task-board [data-department=\"jy\"]') !== null")
    assert depts.count() > before
    assert "Ⅱ级" in pg.inner_text("#inc-badges")
    _wait(pg, "document.querySelector('#timeline li .what').textContent.includes('调整响应级别')")
    pg.screenshot(path=str(ARTIFACTS / "command_level_II.png"), full_page=True)
    assert not errors, errors


def test_english_plans_and_dashboard(page, server, world):
    pg, errors = page
    pg.goto(f"{server}/emergency/incidents/{world['incident_id']}?lang=en")
    _ready(pg)
    assert "Tasks by department" in pg.inner_text("main")
    pg.screenshot(path=str(ARTIFACTS / "command_en.png"), full_page=True)
    pg.goto(f"{server}/emergency/plans?code=SJ-FXFT&lang=zh")
    _ready(pg)
    pg.wait_for_selector("#plan-detail:not([hidden])")
    assert pg.locator("#plans-table tbody tr").count() >= 5
    assert "防汛防台" in pg.inner_text("#pd-title")
    pg.screenshot(path=str(ARTIFACTS / "plans.png"), full_page=True)
    pg.goto(f"{server}/emergency/reporting")
    _ready(pg)
    assert pg.locator("#reach-table tbody tr").count() >= 3
    assert "incident" in pg.evaluate("[...document.querySelectorAll('#reach-table tbody tr')].map(r => r.dataset.group).join(' ')")
    pg.screenshot(path=str(ARTIFACTS / "reporting.png"), full_page=True)
    pg.goto(f"{server}/emergency/warnings")
    _ready(pg)
    assert pg.locator("#warnings-table tbody tr").count() >= 2
    pg.screenshot(path=str(ARTIFACTS / "warnings.png"), full_page=True)
    assert not errors, errors


def test_publish_a_warning_from_the_page(page, server):
    pg, errors = page
    pg.goto(f"{server}/emergency/warnings")
    _ready(pg)
    pg.click("text=新浜镇暴雨黄色预警（测试）")
    pg.wait_for_selector("#warning-detail:not([hidden])")
    pg.click("#wd-actions [data-action='publish']")
    pg.wait_for_selector("#wd-messages li a[href*='.cap?seq=1']")
    assert "已发布" in pg.inner_text("#wd-kv")
    assert "Alert CN-SH-SJ-YJ-" in pg.inner_text("#wd-messages")
    pg.screenshot(path=str(ARTIFACTS / "warning_published.png"), full_page=True)
    assert not errors, errors
