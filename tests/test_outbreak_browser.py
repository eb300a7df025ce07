"""The outbreak command view in a real browser (Debian's headless Chromium via Playwright) against a
real uvicorn server, as a street operator of 岳阳街道 over the demo outbreak: zones on the map with
their counts, cases and exposure places, the contact graph of one case, today's follow-up list; only
岳阳街道's cases; ID numbers masked on the page. Screenshot: test-artifacts/outbreak/command.png.
Every request must go to the test server."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from cityops import devserver
from tests.helpers import make_user

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "outbreak"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
YUEYANG = "310117001"

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing (scripts/browser.sh installs it): browser tests skipped", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="python playwright not installed")


@pytest.fixture(scope="module")
def world(db_url):
    from tests.conftest import use_database

    use_database(db_url)
    from sqlalchemy import select

    from cityops.db import get_sessionmaker
    from cityops.outbreak.models import Outbreak, OutbreakCase

    with get_sessionmaker()() as s:
        user = make_user(s, "br_ob_yy", ["street_operator"], area_code=YUEYANG)
        ob = s.scalar(select(Outbreak.id).where(Outbreak.signal_ref == "demo-cluster-1"))
        cases = dict(s.execute(select(OutbreakCase.code, OutbreakCase.street_code)
                               .where(OutbreakCase.outbreak_id == ob)).tuples().all())
        return {"user": user, "outbreak": ob, "cases": cases}


@pytest.fixture(scope="module")
def server(world, db_url, tmp_path_factory):
    try:
        port = devserver.free_ports(1, range(8260, 8270))[0]
    except devserver.ServerError as exc:
        pytest.skip(str(exc))
    log = tmp_path_factory.mktemp("ob-server") / "server.log"
    with devserver.api_server(db_url, port, logfile=log, timeout=60,
                              env={"CITYOPS_LOGIN_RATE_PER_MINUTE": "1000"}) as base:
        yield base


@pytest.fixture(scope="module")
def page(server, world):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    outside: list[str] = []
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        ctx = b.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", viewport={"width": 1600, "height": 1100})
        ctx.set_default_timeout(30_000)
        ctx.on("request", lambda r: None if r.url.startswith((server + "/", "data:", "blob:", "about:"))
               else outside.append(r.url))
        pg = ctx.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(server + "/outbreak")
        pg.wait_for_url(re.compile(r"/login\?next="))
        pg.fill("#username", world["user"][0])
        pg.fill("#password", world["user"][1])
        pg.click("button[type=submit]")
        pg.wait_for_url(server + "/outbreak")
        yield pg, errors
        ctx.close()
        b.close()
    assert not outside, f"requests outside 127.0.0.1: {outside}"


def _wait(pg, expr: str, timeout: float = 30.0):
    t0 = time.monotonic()
    while True:
        v = pg.evaluate(expr)
        if v:
            return v
        assert time.monotonic() - t0 < timeout, f"timed out waiting for {expr}"
        pg.wait_for_timeout(100)


def test_outbreak_command_view(page, server, world):
    pg, errors = page
    pg.goto(f"{server}/outbreak?outbreak={world['outbreak']}")
    _wait(pg, "document.getElementById('ob-page').dataset.ready === '1' || document.getElementById('ob-page').dataset.error")
    assert not pg.evaluate("document.getElementById('ob-page').dataset.error"), pg.evaluate(
        "document.getElementById('ob-page').dataset.error")
    pg.wait_for_selector("#ob-map[data-ready='1']")
    assert "疫情指挥" in pg.inner_text("nav.mainnav")
    # zones on the map (polygons) and in the table with their counts; only 岳阳街道's
    _wait(pg, "document.querySelectorAll('#ob-map path.leaflet-interactive').length >= 2")
    rows = pg.locator("#ob-zones tbody tr")
    assert rows.count() >= 1
    assert "封控区" in pg.inner_text("#ob-zones")
    assert int(rows.first.locator("td").nth(2).inner_text().replace(",", "")) > 0  # households
    # cases: only 岳阳街道's, ID numbers masked
    mine = sorted(c for c, s in world["cases"].items() if s == YUEYANG)
    shown = sorted(pg.eval_on_selector_all("#ob-cases tbody tr", "rs => rs.map(r => r.dataset.case)"))
    assert shown == mine
    ids = pg.eval_on_selector_all("#ob-cases tbody td.mono", "ts => ts.map(t => t.textContent)")
    assert ids and all(re.fullmatch(r"\d{6}\*{8}\d{3}[\dX]", i) for i in ids), ids
    # the contact graph of the first case
    _wait(pg, "Number(document.getElementById('ob-graph').dataset.nodes || 0) >= 2")
    assert pg.locator("#ob-graph circle").count() >= 2
    assert "密接" in pg.inner_text("#ob-graph")
    # today's follow-up list per community
    assert pg.locator("#ob-followup .com").count() >= 1
    assert "健康监测" in pg.inner_text("#ob-followup")
    pg.screenshot(path=str(ARTIFACTS / "command.png"), full_page=True)
    # another case: the graph follows
    pg.click(f"#ob-cases tbody tr[data-case='{mine[-1]}']")
    _wait(pg, f"document.getElementById('ob-graph-case').textContent === '{mine[-1]}'")
    assert not errors, errors
