"""The whole loop of a citizen report in a real browser, by inbox clicks only (no search, no typed
case number, no URL typed): 受理 → 派发核实 → 核实 (phone) → 立案 → 派遣 → 退单 → 改派 → 签收 → 处置反馈 →
派发核查 → 核查 (phone) → 结案 → 评价. Every click (a select or a file picked counts as one) is
counted per step after sign-in, and each step takes at most 3. Each account signs in once and
keeps its page open: the inbox follows the live feed. Screenshots of the inbox, the phone landing
of the grid worker, the console and the evaluation go to docs/screenshots/.

Debian's headless Chromium driven by Python Playwright (scripts/browser.sh), a real uvicorn server
on 127.0.0.1 and the test database; nothing is fetched from outside 127.0.0.1.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from cityops import devserver
from tests.helpers import make_user

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "docs" / "screenshots"
ARTIFACTS = ROOT / "test-artifacts" / "inbox"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
MAX_CLICKS = 3

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing (scripts/browser.sh installs Debian's chromium): browser tests skipped",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="python playwright not installed")

from tests.test_console_browser import _png  # noqa: E402


@pytest.fixture(scope="module")
def world(db_url):
    """Accounts of one quiet community (its 受理员, 值班长, 派遣员 and grid worker) and a free point."""
    from tests.cases_helpers import category, free_point
    from tests.conftest import use_database

    use_database(db_url)
    from cityops.cases.models import Case
    from cityops.db import get_sessionmaker
    from cityops.geo.models import Area

    s = get_sessionmaker()()
    try:
        comms = list(s.scalars(select(Area.code).where(Area.level == "community", Area.valid_to.is_(None))
                               .order_by(Area.code)))
        counts = dict(s.execute(select(Case.community_code, func.count()).group_by(Case.community_code)).all())
        comm = min(comms[5:], key=lambda c: (counts.get(c, 0), c))  # the quietest (not the ones other tests use)
        users = {
            "intake": make_user(s, "lp_intake", ["intake_operator"], area_code=comm),
            "lead": make_user(s, "lp_lead", ["shift_lead"], area_code=comm),
            "disp": make_user(s, "lp_disp", ["dispatcher"], area_code=comm),
            "worker": make_user(s, "lp_worker", ["supervisor"], area_code=comm),
        }
        cat = category(s, "暴露垃圾")
        lon, lat, grid = free_point(s, cat.id, street=comm)
        s.rollback()
    finally:
        s.close()
    return {"users": users, "community": comm, "category": cat.code, "point": (lon, lat), "grid": grid}


@pytest.fixture(scope="module")
def server(world, db_url, tmp_path_factory):
    try:
        port = devserver.free_ports(1, range(8260, 8270))[0]
    except devserver.ServerError as exc:
        pytest.skip(str(exc))
    log = tmp_path_factory.mktemp("inbox-server") / "server.log"
    with devserver.api_server(db_url, port, logfile=log, timeout=60,
                              env={"CITYOPS_LOGIN_RATE_PER_MINUTE": "1000"}) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Clicks:
    """Counts the clicks of a page (page.click, select_option, set_input_files)."""

    def __init__(self, page) -> None:
        self.page, self.n = page, 0

    def click(self, sel: str) -> None:
        self.n += 1
        self.page.click(sel)

    def select(self, sel: str, value: str) -> None:
        self.n += 1
        self.page.select_option(sel, value)

    def files(self, sel: str) -> None:
        self.n += 1
        self.page.set_input_files(sel, files=[{"name": "photo.png", "mimeType": "image/png", "buffer": _png()}])


class Person:
    def __init__(self, browser, base, user, outside, *, phone=False) -> None:
        kw = ({"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True,
               "has_touch": True} if phone else {"viewport": {"width": 1440, "height": 900}})
        self.ctx = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", **kw)
        self.ctx.set_default_timeout(25_000)
        self.ctx.on("request", outside)
        self.page = self.ctx.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.base = base
        self.phone = phone
        # sign in (not counted): the desktop bookmark is the inbox; the phone opens the site's root
        self.page.goto(base + ("/" if phone else "/inbox"))
        self.page.wait_for_url(re.compile(r"/login\?next="))
        self.page.fill("#username", user[0])
        self.page.fill("#password", user[1])
        self.page.click("button[type=submit]")
        self.page.wait_for_url(re.compile(r"/m$" if phone else r"/inbox$"))
        self.page.wait_for_selector("body[data-ready='1']")

    def inbox_step(self, bucket: str, cid: int, action: str, *, reason: str | None = None,
                   photo: bool = False) -> int:
        c = Clicks(self.page)
        current = self.page.get_attribute(f"#buckets a[data-bucket='{bucket}']", "aria-current")
        if current != "true":
            c.click(f"#buckets a[data-bucket='{bucket}']")
        row = f"tr[data-case='{cid}'] a[data-act='{action}']"
        self.page.wait_for_selector(row)  # the live feed brings it when another account has just acted
        c.click(row)
        self._form(c, action, reason, photo)
        self.page.wait_for_url(re.compile(r"/inbox\?case="))
        self.page.wait_for_selector("body[data-ready='1']")
        return c.n

    def phone_step(self, cid: int, action: str, *, photo: bool = True) -> int:
        c = Clicks(self.page)
        card = f"a.m-card[data-case='{cid}'][data-act='{action}']"
        self.page.wait_for_selector(card)
        c.click(card)
        self._form(c, action, None, photo)
        self.page.wait_for_url(re.compile(r"/m$"))
        self.page.wait_for_selector("body[data-ready='1']")
        return c.n

    def _form(self, c: Clicks, action: str, reason: str | None, photo: bool) -> None:
        form = f"form.action-form[data-action='{action}']"
        self.page.wait_for_selector(form)
        if reason is not None:
            self.page.fill(f"{form} textarea[name=reason]", reason)  # typing, not a click
        if photo:
            c.files(f"{form} input[name=photos]")
        c.click(f"{form} button[type=submit]")


def _case(base, cid, h):
    r = httpx.get(f"{base}/api/v1/cases/{cid}", headers=h, timeout=20)
    assert r.status_code == 200, r.text
    return r.json()


def _dept_user(db_url, name, dept):
    from tests.conftest import use_database

    use_database(db_url)
    from cityops.db import get_sessionmaker

    s = get_sessionmaker()()
    try:
        return make_user(s, name, ["dept_handler"], area_code="310117", department_code=dept)
    finally:
        s.close()


def _district_user(db_url):
    from tests.conftest import use_database

    use_database(db_url)
    from cityops.db import get_sessionmaker

    s = get_sessionmaker()()
    try:
        return make_user(s, "lp_district", ["shift_lead"], area_code="310117")
    finally:
        s.close()


def _wait_state(base, cid, h, state, timeout=20.0):
    t0 = time.monotonic()
    while True:
        d = _case(base, cid, h)
        if d["state"] == state:
            return d
        assert time.monotonic() - t0 < timeout, (cid, d["state"], state)
        time.sleep(0.2)


def test_citizen_report_through_the_loop_by_inbox_clicks(browser, server, world, db_url):
    from tests.helpers import auth_headers
    from tests.test_console_browser import Outside

    outside = Outside(server)
    u = world["users"]
    people = {"intake": Person(browser, server, u["intake"], outside),
              "lead": Person(browser, server, u["lead"], outside),
              "disp": Person(browser, server, u["disp"], outside),
              "worker": Person(browser, server, u["worker"], outside, phone=True)}
    api = httpx.Client(base_url=server, timeout=20)
    h = auth_headers(api, *u["lead"])
    # the citizen's phone report (the public page's API; the citizen is not one of the counted accounts)
    lon, lat = world["point"]
    r = api.post("/api/v1/public/reports", json={"category_code": world["category"], "lat": lat, "lon": lon,
                                                  "description": "小区门口堆了很多生活垃圾，没人清理（浏览器闭环测试）",
                                                  "reporter_name": "李四", "reporter_phone": "13800001111"})
    assert r.status_code == 201, r.text
    cid = r.json()["case_id"]
    clicks: dict[str, int] = {}

    intake, lead, disp, worker = (people[k] for k in ("intake", "lead", "disp", "worker"))
    clicks["受理"] = intake.inbox_step("to_accept", cid, "accept")
    intake.page.screenshot(path=str(SHOTS / "inbox.png"))
    clicks["派发核实"] = intake.inbox_step("to_request_verification", cid, "request_verification")
    worker.page.wait_for_selector(f"a.m-card[data-case='{cid}']")
    worker.page.screenshot(path=str(SHOTS / "phone-landing-grid-worker.png"))
    # 核实 on the phone, with a photo (the form offers it)
    clicks["核实"] = worker.phone_step(cid, "verify", photo=True)
    d = _wait_state(server, cid, h, "verified")
    assert any(e["action"] == "verify" and e["attachments"] for e in d["timeline"])
    clicks["立案"] = lead.inbox_step("to_register", cid, "register")
    clicks["派遣"] = disp.inbox_step("to_dispatch", cid, "dispatch")
    d = _wait_state(server, cid, h, "dispatched")
    first = d["lead_department_code"]
    dept1 = Person(browser, server, _dept_user(db_url, "lp_dept1", first), outside)
    clicks["退单"] = dept1.inbox_step("to_acknowledge", cid, "send_back", reason="不属于本单位职责范围")
    clicks["改派"] = disp.inbox_step("sent_back", cid, "reassign")
    d = _wait_state(server, cid, h, "dispatched")
    second = d["lead_department_code"]
    assert second and second != first  # the form does not propose the department that sent it back
    dept2 = Person(browser, server, _dept_user(db_url, "lp_dept2", second), outside)
    clicks["签收"] = dept2.inbox_step("to_acknowledge", cid, "acknowledge")
    clicks["处置反馈"] = dept2.inbox_step("handling", cid, "report_back", photo=True)
    clicks["派发核查"] = intake.inbox_step("to_request_inspection", cid, "request_inspection")
    clicks["核查"] = worker.phone_step(cid, "inspect", photo=True)
    clicks["结案"] = lead.inbox_step("to_close", cid, "close")
    clicks["评价"] = intake.inbox_step("to_evaluate", cid, "evaluate")
    d = _wait_state(server, cid, h, "evaluated")
    assert [e["action"] for e in d["timeline"] if e["action"] != "report"][:13] == [
        "accept", "request_verification", "verify", "register", "dispatch", "send_back", "reassign", "acknowledge",
        "report_back", "request_inspection", "inspect", "close", "evaluate"]
    (ARTIFACTS / "clicks.json").write_text(json.dumps(clicks, ensure_ascii=False, indent=1), encoding="utf-8")
    print("clicks per step:", clicks, "total", sum(clicks.values()))
    assert all(n <= MAX_CLICKS for n in clicks.values()), clicks

    # screenshots of the district's console (with the overdue list open) and the evaluation page
    boss = Person(browser, server, _district_user(db_url), outside)
    boss.page.goto(server + "/")
    boss.page.wait_for_selector("#map[data-ready='1']")
    boss.page.wait_for_selector("body[data-ready='1']")
    boss.page.screenshot(path=str(SHOTS / "console.png"))
    boss.page.click(".kpi-red")
    boss.page.wait_for_selector("#overdue-dlg[open] [data-stuck]")
    boss.page.wait_for_timeout(300)
    boss.page.screenshot(path=str(SHOTS / "console-overdue.png"))
    boss.page.click("#overdue-dlg [data-close]")
    boss.page.goto(server + "/evaluation")
    boss.page.wait_for_load_state("networkidle")
    boss.page.screenshot(path=str(SHOTS / "evaluation.png"), full_page=True)
    for p in (intake, lead, disp, worker, dept1, dept2, boss):
        assert not p.errors, p.errors
        p.ctx.close()
    assert not outside.bad, outside.bad


def test_map_popup_stays_open_across_live_refreshes(browser, server, world, db_url):
    from tests.cases_helpers import category, free_point
    from tests.conftest import use_database
    from tests.test_console_browser import Outside

    outside = Outside(server)
    api = httpx.Client(base_url=server, timeout=20)
    lon, lat = world["point"]

    def report(x, y, text):
        r = api.post("/api/v1/public/reports", json={"category_code": world["category"], "lat": y, "lon": x,
                                                      "description": text})
        assert r.status_code == 201, r.text
        return r.json()

    use_database(db_url)
    from cityops.db import get_sessionmaker

    s = get_sessionmaker()()
    try:
        cat = category(s, "暴露垃圾")
        pts = [free_point(s, cat.id, skip=k)[:2] for k in (20, 26, 32, 38)]
        s.rollback()
    finally:
        s.close()
    first = report(*pts[0], "弹窗测试：路边垃圾")
    boss = Person(browser, server, _district_user(db_url), outside)
    page = boss.page
    page.goto(server + "/")
    page.wait_for_selector("#map[data-ready='1']")
    page.evaluate(f"window.cityopsMap.map.setView([{pts[0][1]}, {pts[0][0]}], 17)")
    marker = f".leaflet-marker-icon[title^='{first['case_id']} ']"
    page.wait_for_selector(marker)
    page.click(marker)
    page.wait_for_selector(".leaflet-popup [data-case-no]")
    _poll(page, "document.querySelector('.leaflet-popup [data-case-no]').textContent.length === 15")
    no = page.inner_text(".leaflet-popup [data-case-no]")
    assert no.isdigit() and len(no) == 15
    page.evaluate("window._loads = 0; document.getElementById('map').addEventListener('cases-loaded', () => window._loads++)")
    for k, (x, y) in enumerate(pts[1:]):  # three new reports: three live refreshes of the markers
        report(x, y, f"弹窗测试：第{k + 1}次刷新")
        _poll(page, f"window._loads >= {k + 1}")
        assert page.locator(".leaflet-popup").count() == 1, k
    assert page.inner_text(".leaflet-popup [data-case-no]") == no
    page.screenshot(path=str(ARTIFACTS / "popup-after-3-refreshes.png"))
    assert not boss.errors, boss.errors
    boss.ctx.close()
    assert not outside.bad, outside.bad


def _poll(page, expr, timeout=20.0):
    t0 = time.monotonic()
    while not page.evaluate(expr):
        assert time.monotonic() - t0 < timeout, expr
        page.wait_for_timeout(100)
