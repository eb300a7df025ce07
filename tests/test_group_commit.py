"""Group commit of reports: many requests in one transaction, and still each request's own answer.

* retries with the same Idempotency-Key inside one batch: one case, the later ones replayed; the
  same key with another body is refused for that request alone;
* a report with bad input fails alone; a batch that fails as a whole is written one report per
  transaction, so the good reports are kept and only the bad one fails;
* an answer is given only after its commit: every acknowledged case is in the database.
"""

from __future__ import annotations

from concurrent.futures import Future, wait

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cityops.cases import flows, intake, schemas
from cityops.cases.models import Case
from cityops.errors import CityOpsError, InvalidInput
from tests.cases_helpers import category, free_point, offset
from tests.helpers import make_user, principal_of


def _req(principal, cat, lon, lat, key=None, text="组提交"):
    body = schemas.ReportCreate(category_code=cat.code, lon=lon, lat=lat, description=text, source="supervisor")
    return intake.ReportRequest(principal, body, "supervisor", "app", key)


def test_same_key_twice_in_one_batch_is_one_case(session):
    make_user(session, "gc_sup", ["supervisor"], area_code="310117")
    p = principal_of(session, "gc_sup")
    cat = category(session, "道路不洁")
    lon, lat, _g = free_point(session, cat.id, skip=3)
    lon2, lat2 = offset(lon, lat, 900, 0)
    session.commit()
    reqs = [_req(p, cat, lon, lat, "gc-k1"), _req(p, cat, lon, lat, "gc-k1"),
            _req(p, cat, lon, lat, "gc-k1", text="另一个内容"), _req(p, cat, lon2, lat2, "gc-k2")]
    out = intake.submit_reports(session, reqs)
    session.commit()
    assert len(out) == 4
    first, again, other, second = out
    assert not isinstance(first, CityOpsError) and first[0] == 201 and first[2] is False
    assert not isinstance(again, CityOpsError) and again[2] is True and again[1]["case_id"] == first[1]["case_id"]
    assert isinstance(other, InvalidInput) and other.problems[0].type == "idempotency_mismatch"
    assert not isinstance(second, CityOpsError) and second[1]["case_id"] != first[1]["case_id"]
    # a later batch replays from the stored record
    out2 = intake.submit_reports(session, [_req(p, cat, lon, lat, "gc-k1")])
    session.commit()
    assert not isinstance(out2[0], CityOpsError) and out2[0][2] is True and out2[0][1]["case_id"] == first[1]["case_id"]


def test_writer_isolates_a_bad_report_and_survives_a_failed_batch(session, monkeypatch):
    make_user(session, "gc_sup2", ["supervisor"], area_code="310117")
    p = principal_of(session, "gc_sup2")
    cat = category(session, "非法小广告")
    spots = [free_point(session, cat.id, skip=s) for s in (7, 9, 11)]
    session.commit()
    engine = session.get_bind()
    writer = flows.Writer(engine)  # type: ignore[arg-type]
    # bad input (outside the district) fails alone, in a batch with good ones
    good = [_req(p, cat, lon, lat) for lon, lat, _g in spots[:2]]
    bad = _req(p, cat, 116.4, 39.9)
    batch: list[tuple[intake.ReportRequest, Future]] = [(r, Future()) for r in (good[0], bad, good[1])]
    writer._write(batch)
    assert isinstance(batch[1][1].exception(), InvalidInput)
    ids = [batch[k][1].result()[1]["case_id"] for k in (0, 2)]
    # a batch that fails as a whole (here: the set-based write breaks once) is written report by report
    real = intake.submit_reports
    calls = {"n": 0}

    def flaky(s: Session, requests):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("simulated failure of the whole batch")
        return real(s, requests)

    monkeypatch.setattr(intake, "submit_reports", flaky)
    lon, lat, _g = spots[2]
    futs = [writer.submit(_req(p, cat, lon, lat)), writer.submit(_req(p, cat, 116.4, 39.9))]
    wait(futs, timeout=60)
    assert calls["n"] >= 2
    assert not isinstance(futs[0].exception(), BaseException)
    assert isinstance(futs[1].exception(), InvalidInput)
    ids.append(futs[0].result()[1]["case_id"])
    # every acknowledged case is committed
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Case).where(Case.id.in_(ids))) == 3


def test_group_commit_can_be_turned_off(session, monkeypatch):
    monkeypatch.setenv("CITYOPS_GROUP_COMMIT", "0")
    assert not flows.enabled()
    monkeypatch.setenv("CITYOPS_GROUP_COMMIT", "1")
    assert flows.enabled()


@pytest.mark.parametrize("n", [1, 37])
def test_writer_answers_every_request(session, n):
    make_user(session, "gc_sup3", ["supervisor"], area_code="310117")
    p = principal_of(session, "gc_sup3")
    cat = category(session, "绿地脏乱")
    lon, lat, _g = free_point(session, cat.id, skip=13 + n)
    session.commit()
    writer = flows.writer_for(session.get_bind())  # type: ignore[arg-type]
    futs = [writer.submit(_req(p, cat, *offset(lon, lat, 120 * (k % 6), 120 * (k // 6)))) for k in range(n)]
    wait(futs, timeout=60)
    got = [f.result() for f in futs]
    assert len({g[1]["case_id"] for g in got}) == n  # 120 m apart: no duplicates
    with Session(session.get_bind()) as s:
        assert s.scalar(select(func.count()).select_from(Case).where(
            Case.id.in_([g[1]["case_id"] for g in got]))) == n
