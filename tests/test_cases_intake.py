"""Intake: duplicates linked (not new cases), idempotency keys (retries and concurrent retries),
12345 import all-or-nothing with errors by row, machine signals deduplicated and snoozed, media."""

from __future__ import annotations

import datetime as dt
import threading
import uuid

from sqlalchemy import func, select

from cityops.cases import schemas, service
from cityops.cases.models import Case, CaseReport, IdempotencyRecord, Signal
from cityops.security.principal import SYSTEM
from tests.cases_helpers import category, free_point, offset, scalar, scalars
from tests.helpers import auth_headers, make_user


def _sup(client, session, area):
    u, pw = make_user(session, "ci_sup", ["supervisor"], area_code=area)
    return auth_headers(client, u, pw)


def test_second_report_30m_away_same_category_is_linked(client, session):
    cat = category(session, "乱堆物堆料")
    lon, lat, grid = free_point(session, cat.id)
    h = _sup(client, session, "310117")
    r1 = client.post("/api/v1/cases", json={"category_code": cat.code, "lat": lat, "lon": lon, "source": "supervisor"},
                     headers=h)
    assert r1.status_code == 201 and r1.json()["linked"] is False
    cid = r1.json()["case_id"]
    lon2, lat2 = offset(lon, lat, 18, 24)  # 30 m away
    r2 = client.post("/api/v1/public/reports", json={"category_code": cat.code, "lat": lat2, "lon": lon2,
                                                     "reporter_phone": "13600002222", "description": "又有人堆东西"})
    assert r2.status_code == 200, r2.text
    b = r2.json()
    assert b["linked"] is True and b["case_id"] == cid and b["reporter_count"] == 2
    assert 29 <= b["distance_m"] <= 31
    assert scalar(session, select(func.count()).select_from(CaseReport).where(CaseReport.case_id == cid)) == 2
    # another category at the same place, or the same category 120 m away: new cases
    other = category(session, "暴露垃圾")
    r3 = client.post("/api/v1/cases", json={"category_code": other.code, "lat": lat2, "lon": lon2}, headers=h)
    assert r3.status_code == 201 and r3.json()["case_id"] != cid
    lon4, lat4 = offset(lon, lat, 120, 0)
    r4 = client.post("/api/v1/cases", json={"category_code": cat.code, "lat": lat4, "lon": lon4}, headers=h)
    assert r4.json()["linked"] is False and r4.json()["case_id"] != cid
    d = client.get(f"/api/v1/cases/{cid}", headers=h).json()
    assert d["reporter_count"] == 2 and [e["action"] for e in d["timeline"]][:2] == ["report", "link_report"]
    # a closed case does not swallow new reports: void it, report again -> new case
    lead, pw = make_user(session, "ci_lead", ["shift_lead"], area_code="310117")
    assert client.post(f"/api/v1/cases/{cid}/actions/void", json={"reason": "测试"},
                       headers=auth_headers(client, lead, pw)).status_code == 200
    r5 = client.post("/api/v1/cases", json={"category_code": cat.code, "lat": lat2, "lon": lon2}, headers=h)
    assert r5.json()["linked"] is False


def test_bad_input_names_the_field(client, session):
    h = _sup(client, session, "310117")
    r = client.post("/api/v1/cases", json={"category_code": "99999", "lat": 31.03, "lon": 121.22}, headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "category_code"]
    r = client.post("/api/v1/cases", json={"category_code": "20102", "lat": 39.9, "lon": 116.4}, headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "lat"] and "outside" in r.json()["detail"][0]["msg"]
    r = client.post("/api/v1/cases", json={"category_code": "20102", "lat": 31.03, "lon": 121.22,
                                           "media": ["0" * 32]}, headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "media", 0]
    assert client.post("/api/v1/cases", json={"category_code": "20102", "lat": 31.03, "lon": 121.22}).status_code == 401


def test_idempotency_key_retry_returns_the_first_answer(client, session):
    cat = category(session, "非法小广告")
    lon, lat, _ = free_point(session, cat.id)
    h = _sup(client, session, "310117")
    key = "ik-" + uuid.uuid4().hex
    body = {"category_code": cat.code, "lat": lat, "lon": lon, "description": "电线杆上小广告"}
    r1 = client.post("/api/v1/cases", json=body, headers={**h, "Idempotency-Key": key})
    r2 = client.post("/api/v1/cases", json=body, headers={**h, "Idempotency-Key": key})
    assert r1.status_code == r2.status_code == 201
    assert r1.json() == r2.json() and r2.headers.get("Idempotent-Replayed") == "true"
    assert scalar(session, select(func.count()).select_from(CaseReport).where(CaseReport.case_id == r1.json()["case_id"])) == 1
    r3 = client.post("/api/v1/cases", json={**body, "description": "different"}, headers={**h, "Idempotency-Key": key})
    assert r3.status_code == 422 and r3.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
    # public reports: the key is scoped to the caller's address
    r4 = client.post("/api/v1/public/reports", json=body | {"description": "公众"}, headers={"Idempotency-Key": key})
    r5 = client.post("/api/v1/public/reports", json=body | {"description": "公众"}, headers={"Idempotency-Key": key})
    assert r4.json()["case_id"] == r5.json()["case_id"] == r1.json()["case_id"]  # linked once, not twice
    assert r4.json()["report_id"] == r5.json()["report_id"]


def test_concurrent_retries_one_case_each(db_url, session):
    """Many concurrent intakes, each sent three times with its key: exactly one case or link per key."""
    from cityops.db import get_sessionmaker

    cat = category(session, "占压盲道")
    points = [free_point(session, cat.id, skip=k, clear_m=200) for k in range(6)]
    session.commit()
    keys = [f"cc-{uuid.uuid4().hex}" for _ in range(12)]
    results: dict[str, set[int]] = {k: set() for k in keys}
    errors: list[BaseException] = []

    def run(i: int, k: str) -> None:
        s = get_sessionmaker()()
        try:
            lon, lat, _ = points[i % len(points)]
            _st, res, _ = service.submit_report(s, SYSTEM, schemas.ReportCreate(
                category_code=cat.code, lat=lat, lon=lon, source="supervisor", description=k), k)
            results[k].add(res["report_id"])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            s.close()

    threads = [threading.Thread(target=run, args=(i, k)) for i, k in enumerate(keys) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert all(len(v) == 1 for v in results.values())
    n_reports = scalar(session, select(func.count()).select_from(CaseReport).where(CaseReport.description.in_(keys)))
    assert n_reports == len(keys)
    # 6 places, 2 keys each: one case per place, the second report linked
    cases = scalar(session, select(func.count(func.distinct(CaseReport.case_id))).where(CaseReport.description.in_(keys)))
    assert cases == len(points)
    assert scalar(session, select(func.count()).select_from(IdempotencyRecord).where(IdempotencyRecord.key.in_(keys))) == len(keys)


def test_hotline_import_all_or_nothing_and_keeps_the_hotline_id(client, session):
    u, pw = make_user(session, "ci_hot", ["intake_operator"], area_code="310117")
    h = auth_headers(client, u, pw)
    cat = category(session, "店外经营")
    (lon1, lat1, _), (_lon2, _lat2, g2) = free_point(session, cat.id), free_point(session, cat.id, skip=2)
    tag = uuid.uuid4().hex[:6]
    good = [{"order_id": f"SH{tag}01", "received_at": "2025-06-01T09:30:00+08:00", "category_code": cat.code,
             "lat": lat1, "lon": lon1, "content": "商户占道", "appeal_type": "投诉", "urgency": "一般",
             "caller_name": "李四", "caller_phone": "13700001111"},
            {"order_id": f"SH{tag}02", "received_at": "2025-06-01T10:00:00+08:00", "category_code": cat.code,
             "grid_code": g2, "content": "网格内店外经营"}]
    bad = good + [{"order_id": f"SH{tag}03", "received_at": "2025-06-01T10:00:00", "category_code": "1"},
                  {"order_id": f"SH{tag}01", "received_at": "2025-06-01T10:00:00+08:00", "category_code": "77777",
                   "lat": 39.9, "lon": 116.4}]
    before = scalar(session, select(func.count()).select_from(Case))
    r = client.post("/api/v1/cases/import/hotline", json=bad, headers=h)
    assert r.status_code == 422
    locs = [tuple(p["loc"][:3]) for p in r.json()["detail"]]
    assert ("rows", 2, "received_at") in locs and ("rows", 2, "category_code") in locs
    assert ("rows", 3, "order_id") in locs and ("rows", 3, "category_code") in locs and ("rows", 3, "lat") in locs
    session.expire_all()
    assert scalar(session, select(func.count()).select_from(Case)) == before  # nothing written
    r = client.post("/api/v1/cases/import/hotline", json=good, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 2
    c = scalar(session, select(Case).where(Case.source == "hotline", Case.external_id == f"SH{tag}01"))
    assert c is not None and c.appeal_type == "complaint" and c.reported_at == dt.datetime(2025, 6, 1, 1, 30, tzinfo=dt.UTC)
    # importing again: an error naming the row, or skipped on request
    r = client.post("/api/v1/cases/import/hotline", json=good, headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["rows", 0, "order_id"]
    r = client.post("/api/v1/cases/import/hotline?skip_existing=true", json=good, headers=h)
    assert r.status_code == 200 and r.json()["skipped"] == 2 and r.json()["created"] == 0
    # CSV with the same columns
    csv_text = ("order_id,received_at,category_code,lat,lon,content\n"
                f"SH{tag}09,2025-06-02T08:00:00+08:00,{cat.code},{lat1},{lon1},CSV工单\n")
    r = client.post("/api/v1/cases/import/hotline", content=csv_text.encode(), headers={**h, "Content-Type": "text/csv"})
    assert r.status_code == 200 and r.json()["created"] + r.json()["linked"] == 1
    r = client.post("/api/v1/cases/import/hotline", content=b"order_id,foo\n1,2\n", headers={**h, "Content-Type": "text/csv"})
    assert r.status_code == 422


def test_signals_dedupe_snooze_and_raw_storage(client, session):
    from cityops.security.service import create_api_key

    _row, key = create_api_key(session, SYSTEM, "ci-sensor-" + uuid.uuid4().hex[:6],
                               ["signal.ingest", "case.read", "catalogue.read", "catalogue.write"])
    h = {"X-API-Key": key}
    cat = category(session, "暴露垃圾")
    lon, lat, grid = free_point(session, cat.id, skip=5)
    dev = "cam-" + uuid.uuid4().hex[:6]
    sig = {"source": "video_ai", "device_id": dev, "signal_type": "暴露垃圾", "category_code": cat.code,
           "lat": lat, "lon": lon, "confidence": 0.93}
    r1 = client.post("/api/v1/signals", json=sig, headers=h)
    assert r1.status_code == 201 and r1.json()["outcome"] == "case_created", r1.text
    r2 = client.post("/api/v1/signals", json=sig, headers=h)
    assert r2.json()["outcome"] == "deduplicated" and r2.json()["case_id"] == r1.json()["case_id"]
    # low confidence / no category: stored, ignored
    assert client.post("/api/v1/signals", json=sig | {"confidence": 0.1}, headers=h).json()["outcome"] == "ignored"
    # a snooze filter for this device (e.g. known works) -> snoozed, raw signal still stored
    r = client.post("/api/v1/signal-filters", json={"name": "施工期间静默", "action": "snooze", "device_prefix": dev},
                    headers=h)
    assert r.status_code == 201
    r3 = client.post("/api/v1/signals", json=sig | {"signal_type": "other"}, headers=h)
    assert r3.json()["outcome"] == "snoozed" and r3.json()["case_id"] is None
    stored = scalars(session, select(Signal.outcome).where(Signal.device_id == dev).order_by(Signal.id))
    assert stored == ["case_created", "deduplicated", "ignored", "snoozed"]
    # a signal key observed after the window opens a new case
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).isoformat()
    client.put(f"/api/v1/signal-filters/{r.json()['id']}", json={"name": "x", "mode": "inactive", "action": "snooze"},
               headers=h)
    r4 = client.post("/api/v1/signals", json=sig | {"observed_at": later}, headers=h)
    assert r4.json()["outcome"] == "case_created" and r4.json()["case_id"] != r1.json()["case_id"]


def test_media_upload_is_checked(client, session, tmp_path, monkeypatch):
    monkeypatch.setenv("CITYOPS_MEDIA_DIR", str(tmp_path))
    h = _sup(client, session, "310117")
    r = client.post("/api/v1/media", files=[("files", ("x.png", b"not an image", "image/png"))], headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "files", 0]
    from tests.cases_helpers import PNG

    r = client.post("/api/v1/media", files=[("files", ("x.png", PNG, "image/png"))], headers=h)
    assert r.status_code == 201
    m = r.json()["items"][0]
    assert m["content_type"] == "image/png" and (tmp_path / m["sha256"][:2] / (m["sha256"] + ".png")).exists()
    got = client.get(m["url"], headers=h)
    assert got.status_code == 200 and got.content == PNG


def test_hotline_csv_that_cannot_be_read_is_a_422_naming_the_line(client, session):
    u, pw = make_user(session, "ci_hot_csv", ["intake_operator"], area_code="310117")
    h = {**auth_headers(client, u, pw), "Content-Type": "text/csv"}
    for body in (b"\r0", b"order_id,received_at,category_code\n\"A1,2025-06-01T09:30:00+08:00,101001\n"):
        r = client.post("/api/v1/cases/import/hotline", content=body, headers=h)
        assert r.status_code == 422, (body, r.status_code, r.text)
        assert r.json()["detail"][0]["loc"][0] in ("body", "rows")
    # a field over the csv module's limit (128 KiB): the reader's own error, with its line
    r = client.post("/api/v1/cases/import/hotline",
                    content=b"order_id,received_at,category_code\n" + b"A" * 140_000 + b",x,y\n", headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "line", 2], r.text
