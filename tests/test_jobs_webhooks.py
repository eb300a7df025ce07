"""Webhooks against a real HTTP receiver on 127.0.0.1: Standard Webhooks signatures, a stable delivery
id, retry with exponential backoff and jitter, dead letters visible over the API, 410 Gone."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from cityops.jobs import service as jobs
from cityops.jobs import webhooks, worker
from cityops.jobs.models import WebhookDelivery, WebhookSubscription
from cityops.jobs.settings import get_job_settings
from cityops.security.principal import SYSTEM
from tests.jobs_helpers import Receiver, clear_job_tables, own_database, verify_standard_webhook


@pytest.fixture(scope="module")
def hooks_db(tmp_root):
    from tests.conftest import use_database

    url, prev = own_database(tmp_root, "hooks")
    yield url
    if prev:
        use_database(prev)


@pytest.fixture()
def sf(hooks_db):
    from tests.conftest import use_database

    use_database(hooks_db)
    clear_job_tables()
    from cityops.db import get_sessionmaker

    return get_sessionmaker()


@pytest.fixture()
def receiver():
    r = Receiver()
    yield r
    r.close()


def _subscribe(sf, url, topics, **kw):
    with sf() as s:
        out = webhooks.create_subscription(s, SYSTEM, url=url, topics=topics, **kw)
        s.commit()
        return out


def _deliveries(sf):
    with sf() as s:
        rows = s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)).all()
        for r in rows:
            s.expunge(r)
        return rows


def test_delivery_is_signed_and_matches_topics(sf, receiver):
    sub = _subscribe(sf, receiver.url, ["case.*", "notification.created"])
    receiver.secret = sub["secret"]
    assert sub["secret"].startswith("whsec_")
    _subscribe(sf, receiver.url, ["inspection.*"], active=False)  # inactive: gets nothing
    with sf() as s:
        ev = jobs.enqueue(s, "case.created", {"case_id": 1, "title": "井盖缺失"})
        jobs.enqueue(s, "registry.changed", {"x": 1})  # no subscription matches
        jobs.notify(s, account_ids=[1], title="新案件", body="请处理")
        s.commit()
    st = jobs.run_due(sf)
    assert st.outbox == 3 and st.deliveries == 2
    assert receiver.bad_signatures == 0
    got = sorted(receiver.successes(), key=lambda r: r["body"]["event_id"])
    assert [r["body"]["type"] for r in got] == ["case.created", "notification.created"]
    first = got[0]
    assert first["body"]["data"] == {"case_id": 1, "title": "井盖缺失"} and first["body"]["event_id"] == ev
    h = first["headers"]
    assert h["webhook-id"].startswith("dlv_") and h["x-cityops-event"] == "case.created"
    assert h["x-cityops-attempt"] == "1" and h["content-type"].startswith("application/json")
    assert abs(int(h["webhook-timestamp"]) - dt.datetime.now(dt.UTC).timestamp()) < 60
    # the reference library of the spec accepts it too
    from standardwebhooks import Webhook

    assert Webhook(sub["secret"]).verify(first["raw"], h)["event_id"] == ev
    # a wrong secret does not verify
    assert not verify_standard_webhook(webhooks.new_secret(), h, first["raw"])
    assert all(d.status == "delivered" and d.response_code == 200 for d in _deliveries(sf))


def test_retry_with_backoff_until_the_receiver_recovers(sf):
    st = get_job_settings()
    rec = Receiver(fail_first=3, fail_status=503)
    try:
        _subscribe(sf, rec.url, ["*"])
        with sf() as s:
            jobs.enqueue(s, "alert.raised", {"level": "red"})
            s.commit()
        t = jobs.now() + dt.timedelta(seconds=1)
        jobs.run_due(sf, now=t)
        (d,) = _deliveries(sf)
        assert d.status == "pending" and d.attempts == 1 and d.response_code == 503
        assert "HTTP 503" in d.last_error
        gaps = []
        for attempt in (2, 3, 4):
            prev_run = d.run_at
            gaps.append((d.run_at - t).total_seconds())
            assert jobs.run_due(sf, now=prev_run - dt.timedelta(seconds=0.001)).deliveries == 0  # not before
            t = prev_run
            jobs.run_due(sf, now=t)
            (d,) = _deliveries(sf)
            assert d.attempts == attempt
        # exponential with jitter: attempt k waits within [b*2^(k-1)/2, b*2^(k-1)]
        for k, g in enumerate(gaps, start=1):
            full = st.webhook_backoff_base_seconds * 2 ** (k - 1)
            assert full / 2 <= g <= full, (k, g)
        assert d.status == "delivered" and d.last_error is None and d.delivered_at == t
        ids = [r["headers"]["webhook-id"] for r in rec.requests]
        assert len(ids) == 4 and len(set(ids)) == 1  # the same delivery id on every attempt
        assert [r["headers"]["x-cityops-attempt"] for r in rec.requests] == ["1", "2", "3", "4"]
    finally:
        rec.close()


def test_dead_letter_visible_over_the_api_and_retried(sf, hooks_db):
    rec = Receiver(fail_first=1000, fail_status=500)
    try:
        sub = _subscribe(sf, rec.url, ["alert.*"])
        with sf() as s:
            jobs.enqueue(s, "alert.raised", {"level": "orange"})
            s.commit()
        t = jobs.now() + dt.timedelta(seconds=1)
        for _ in range(get_job_settings().webhook_max_attempts):
            jobs.run_due(sf, now=t)
            t += dt.timedelta(days=1)
        (d,) = _deliveries(sf)
        assert d.status == "dead" and d.attempts == get_job_settings().webhook_max_attempts
        assert jobs.run_due(sf, now=t + dt.timedelta(days=30)).total == 0
        from fastapi.testclient import TestClient

        from cityops.app import create_app
        from tests.helpers import auth_headers, make_user

        with sf() as s:
            admin = make_user(s, "jt_hook_admin", ["sys_admin"])
            plain = make_user(s, "jt_hook_plain", ["supervisor"])
        with TestClient(create_app()) as client:
            h = auth_headers(client, *admin)
            r = client.get("/api/v1/webhooks/deliveries", params={"status": "dead"}, headers=h)
            assert r.status_code == 200 and r.json()["total"] == 1
            item = r.json()["items"][0]
            assert item["id"] == d.id and item["subscription_id"] == sub["id"] and "HTTP 500" in item["last_error"]
            assert client.get("/api/v1/webhooks/deliveries", headers=auth_headers(client, *plain)).status_code == 403
            rec.fail_first = 0
            r = client.post(f"/api/v1/webhooks/deliveries/{d.id}/retry", headers=h)
            assert r.status_code == 200 and r.json()["status"] == "pending" and r.json()["attempts"] == 0
            assert jobs.run_due(sf).deliveries == 1
            assert client.post(f"/api/v1/webhooks/deliveries/{d.id}/retry", headers=h).status_code == 409
            assert client.post("/api/v1/webhooks/deliveries/999999/retry", headers=h).status_code == 404
            stats = client.get("/api/v1/jobs/stats", headers=h).json()
            assert stats["deliveries"] == {"delivered": 1} and stats["outbox"] == {"done": 1}
    finally:
        rec.close()


def test_410_gone_disables_the_subscription(sf):
    rec = Receiver(fail_first=1000, fail_status=410)
    try:
        sub = _subscribe(sf, rec.url, ["*"])
        with sf() as s:
            jobs.enqueue(s, "x.one", {})
            s.commit()
        jobs.run_due(sf, now=jobs.now() + dt.timedelta(seconds=1))
        (d,) = _deliveries(sf)
        assert d.status == "dead" and d.attempts == 1
        with sf() as s:
            got = s.get(WebhookSubscription, sub["id"])
            assert got.active is False and "410" in got.disabled_reason
            jobs.enqueue(s, "x.two", {})
            s.commit()
        jobs.run_due(sf)
        assert len(_deliveries(sf)) == 1  # nothing more for a disabled subscription
    finally:
        rec.close()


def test_unreachable_receiver_is_retried_and_delivery_survives_a_dead_worker(sf, receiver):
    # nothing listens on this port (the receiver was closed): connection refused -> retry
    gone = Receiver()
    url = gone.url
    gone.close()
    sub = _subscribe(sf, url, ["*"])
    with sf() as s:
        jobs.enqueue(s, "x.ping", {"n": 1})
        s.commit()
    t = jobs.now() + dt.timedelta(seconds=1)
    jobs.run_due(sf, now=t)
    (d,) = _deliveries(sf)
    assert d.status == "pending" and d.response_code is None and "ConnectError" in d.last_error
    # the receiver comes up at a new address; the delivery is claimed by a worker that then dies
    with sf() as s:
        webhooks.update_subscription(s, SYSTEM, sub["id"], url=receiver.url)
        s.commit()
    t = d.run_at
    assert worker.claim(sf, worker.DELIVERIES, t, 10, "worker-x/died") == [d.id]
    assert jobs.run_due(sf, now=t + dt.timedelta(seconds=10)).deliveries == 0
    lease = get_job_settings().lease_seconds
    assert jobs.run_due(sf, now=t + dt.timedelta(seconds=lease + 1)).deliveries == 1
    assert len(receiver.successes()) == 1
    (d,) = _deliveries(sf)
    assert d.status == "delivered" and d.attempts == 3


def test_subscription_api_validation_and_secret_handling(sf, hooks_db):
    from fastapi.testclient import TestClient

    from cityops.app import create_app
    from tests.helpers import auth_headers, make_user

    with sf() as s:
        admin = make_user(s, "jt_hook_admin2", ["district_commander"])
    with TestClient(create_app()) as client:
        h = auth_headers(client, *admin)
        r = client.post("/api/v1/webhooks", json={"url": "ftp://x", "topics": ["case.*"]}, headers=h)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "url"]
        r = client.post("/api/v1/webhooks", json={"url": "https://hooks.example/x", "topics": ["a b"]}, headers=h)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "topics", 0]
        r = client.post("/api/v1/webhooks", json={"url": "https://hooks.example/x", "topics": ["case.*"],
                                                  "secret": "short"}, headers=h)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "secret"]
        r = client.post("/api/v1/webhooks", json={"url": "https://hooks.example/x", "topics": ["case.*"]}, headers=h)
        assert r.status_code == 201
        created = r.json()
        assert created["secret"].startswith("whsec_")
        listed = client.get("/api/v1/webhooks", headers=h).json()
        assert [w["id"] for w in listed] == [created["id"]] and listed[0]["secret"] is None
        r = client.patch(f"/api/v1/webhooks/{created['id']}", json={"rotate_secret": True, "active": False},
                         headers=h)
        assert r.status_code == 200 and r.json()["secret"] not in (None, created["secret"])
        assert r.json()["active"] is False
        assert client.get(f"/api/v1/webhooks/{created['id']}", headers=h).json()["secret"] is None
        assert client.delete(f"/api/v1/webhooks/{created['id']}", headers=h).status_code == 204
        assert client.get(f"/api/v1/webhooks/{created['id']}", headers=h).status_code == 404
        assert client.get("/api/v1/webhooks").status_code == 401
