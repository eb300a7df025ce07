"""Supplies for a zone become a case of the responsible department (through the cases service) and are
tracked until delivered; the daily situation report (疫情日报) as HTML and as a PDF printed by the
console's briefing pipeline, with its Chinese text rendered (the CJK font embedded, the text extractable)."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.helpers import auth_headers, make_user
from tests.outbreak_helpers import new_outbreak, sh

STREET = "310117121"  # 小昆山镇
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "outbreak"


@pytest.fixture(scope="module")
def world(db_url):
    from tests.conftest import use_database

    use_database(db_url)
    from cityops.db import get_sessionmaker
    from cityops.outbreak import tracing, zones
    from cityops.outbreak.schemas import CaseIn, PersonIn, ZoneIn
    from cityops.registry.models import Building
    from cityops.security.principal import SYSTEM

    with get_sessionmaker()() as s:
        ob = new_outbreak(s, STREET, "测试：小昆山镇保供与日报")
        b = s.execute(select(Building).where(Building.street_code == STREET, Building.valid_to.is_(None))
                      .order_by(Building.code)).scalars().first()
        today = dt.datetime.now(dt.UTC).date()
        tracing.report_case(s, SYSTEM, ob["id"], CaseIn(person=PersonIn(name="王小明", lon=b.lon, lat=b.lat,
                                                                        phone="13900001111"),
                                                        classification="confirmed", onset_on=today - dt.timedelta(days=1),
                                                        reported_at=sh(today.year, today.month, today.day, 8)))
        z = zones.create_zone(s, SYSTEM, ob["id"], ZoneIn(level="sealed", building_code=b.code, name="小昆山测试封控区"))
        s.commit()
        user = make_user(s, "ob_report_cdc", ["cdc_analyst"], area_code="310117")
        return {"ob": ob["id"], "zone": z["id"], "households": z["population"]["households"], "user": user}


def test_supplies_become_a_case_of_the_street_centre_and_are_tracked(client, world):
    h = auth_headers(client, *world["user"])
    r = client.post(f"/api/v1/outbreak/zones/{world['zone']}/supplies", json={"kind": "food_pack"}, headers=h)
    assert r.status_code == 201, r.text
    sup = r.json()
    assert sup["households"] == world["households"] > 0 and sup["quantity"] == world["households"]
    assert sup["department_code"] == f"jz{STREET}" and sup["case_no"]
    from cityops.cases import service as cases
    from cityops.db import get_sessionmaker
    from cityops.security.principal import SYSTEM

    with get_sessionmaker()() as s:
        c = cases.case_detail(s, SYSTEM, sup["case_id"])
        assert c["state"] == "dispatched", c["state"]
        assert "保供" in c["title"]
    r = client.post(f"/api/v1/outbreak/zones/{world['zone']}/supplies", json={"kind": "nope"}, headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "kind"]
    r = client.post(f"/api/v1/outbreak/supplies/{sup['id']}/delivered", json={}, headers=h)
    assert r.status_code == 200 and r.json()["state"] == "delivered"
    assert client.post(f"/api/v1/outbreak/supplies/{sup['id']}/delivered", json={}, headers=h).status_code == 409
    listed = client.get(f"/api/v1/outbreak/outbreaks/{world['ob']}/supplies", headers=h).json()
    assert [x["state"] for x in listed] == ["delivered"] and listed[0]["case_state"] == "dispatched"


def test_daily_report_html_and_pdf_render_chinese(client, world, session):
    from cityops.console import briefing
    from cityops.outbreak import report
    from cityops.security.principal import SYSTEM

    h = auth_headers(client, *world["user"])
    day = dt.datetime.now(dt.UTC).date()
    j = client.get(f"/api/v1/outbreak/outbreaks/{world['ob']}/report", params={"date": day.isoformat()}, headers=h).json()
    assert j["total_cases"] >= 1 and j["zones"] and j["zones"][0]["population"]["households"] == world["households"]
    page = client.get("/outbreak/report", params={"outbreak": world["ob"], "date": day.isoformat()}, headers=h)
    assert page.status_code == 200 and "疫情日报" in page.text and "13900001111" not in page.text
    if not Path(briefing.CHROMIUM).exists():
        pytest.skip("/usr/bin/chromium missing: PDF not checked")
    pypdf = pytest.importorskip("pypdf")
    row = report.generate(session, SYSTEM, world["ob"], day)
    assert row.pdf is not None and row.pdf[:5] == b"%PDF-", row.pdf_error
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "report.pdf").write_bytes(row.pdf)
    doc = pypdf.PdfReader(io.BytesIO(row.pdf))
    text = "".join(p.extract_text() or "" for p in doc.pages)
    for word in ("疫情日报", "管控区域", "封控区", "流行曲线", "保供物资"):
        assert word in text, (word, text[:300])
    fonts = set()
    for p in doc.pages:
        for f in (p.get("/Resources", {}).get("/Font", {}) or {}).values():
            fonts.add(str(f.get_object().get("/BaseFont")))
    assert any("WenQuanYi" in f or "Noto" in f or "CJK" in f for f in fonts), fonts
    # the queued route: 202 first, the stored PDF once printed
    from cityops.outbreak.models import SituationReport

    assert session.scalar(select(SituationReport.id).where(SituationReport.outbreak_id == world["ob"])) is not None
    session.rollback()
    r = client.get(f"/api/v1/outbreak/outbreaks/{world['ob']}/report.pdf", params={"date": day.isoformat()}, headers=h)
    assert r.status_code == 202
