"""The evaluation from the daily facts (kept by the worker) equals the evaluation from the history,
for every subject, for the district, a street and a street account, over 30 and 7 days; it also
equals the independent plain-Python recomputation (tests/test_evaluation_formulas.py) once the facts
serve it; a change to an old case is seen at once (its days are read from the history until the
worker rebuilds them); and the console's 按期结案率 is the evaluation's, to the case."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from sqlalchemy import select

from tests.helpers import auth_headers, make_user

TZ_DAYS = (29, 6)


def _same(a, b, where):
    assert a["from"] == b["from"] and a["to"] == b["to"]
    ia = {i["code"]: i for i in a["items"]}
    ib = {i["code"]: i for i in b["items"]}
    assert set(ia) == set(ib), (where, sorted(set(ia) ^ set(ib))[:10])
    for code in ia:
        for k, v in ia[code].items():
            w = ib[code][k]
            if isinstance(v, float) or isinstance(w, float):
                assert (v is None) == (w is None) and (v is None or math.isclose(v, w, abs_tol=0.011)), (where, code, k, v, w)
            else:
                assert v == w, (where, code, k, v, w)
    for k, v in a["total"].items():
        if isinstance(v, int | float) and not isinstance(v, bool):
            assert math.isclose(v, b["total"][k] or 0, abs_tol=0.011), (where, "total", k)


def _compare_all(session, principal, now, areas=(None, "310117001")):
    from cityops.cases import evaluation

    today = now.astimezone(evaluation.TZ).date()
    n = 0
    for area in areas:
        for back in TZ_DAYS:
            for subject in evaluation.SUBJECTS:
                kw = {"date_from": today - dt.timedelta(days=back), "date_to": today, "area": area, "now": now}
                hist = evaluation.evaluate(session, principal, subject, history=True, **kw)
                fact = evaluation.evaluate(session, principal, subject, **kw)
                session.rollback()
                _same(fact, hist, (subject, area, back))
                n += len(hist["items"])
    return n


@pytest.fixture(scope="module")
def built(db_url):
    from cityops.cases import evaluation_jobs
    from cityops.cases.evaluation_models import EvaluationFactDay
    from cityops.cases.sla import now as sla_now
    from cityops.db import get_sessionmaker

    s = get_sessionmaker()()
    now = sla_now()
    r = evaluation_jobs.refresh_all(s, now)  # first run: sets the mark
    r = evaluation_jobs.refresh_all(s, now)
    s.commit()
    days = list(s.scalars(select(EvaluationFactDay)))
    s.close()
    assert days and all(not d.dirty for d in days) and sum(d.rows for d in days) > 0, r
    return now


def test_facts_equal_history(session, built, monkeypatch):
    from cityops.cases import evaluation, evaluation_facts
    from cityops.security.principal import SYSTEM

    used: list[int] = []
    plan = evaluation_facts.plan

    def spy(*a, **kw):
        fact_days, live = plan(*a, **kw)
        used.append(len(fact_days))
        assert all(b - a0 <= dt.timedelta(days=0) for a0, b in live)  # only today from the history
        return fact_days, live

    monkeypatch.setattr(evaluation.facts, "plan", spy)
    assert _compare_all(session, SYSTEM, built) > 50
    assert used and min(used) >= 6 and max(used) == 29


def test_facts_equal_independent_recomputation(session, built):
    from tests.test_evaluation_formulas import test_sql_matches_python_recomputation

    for area in (None, "310117001"):
        test_sql_matches_python_recomputation(session, area)


def test_street_and_department_accounts(session, built):
    from cityops.cases import evaluation_facts
    from cityops.security.models import Account
    from cityops.security.service import _principal_for

    make_user(session, "ef_street", ["street_operator"], area_code="310117001")
    make_user(session, "ef_dept", ["dept_leader"], area_code="310117", department_code="cgzf")
    for name in ("ef_street", "ef_dept"):
        p = _principal_for(session, session.scalar(select(Account).where(Account.username == name)), None)
        session.commit()
        assert (evaluation_facts.street_of(p, None) is None) == (name == "ef_dept")
        _compare_all(session, p, built, areas=(None,))


def test_a_change_to_an_old_case_is_seen_at_once(session, built):
    from cityops.cases import evaluation_facts, evaluation_jobs, workflow
    from cityops.cases.evaluation_models import EvaluationFactDay, EvaluationFactMark
    from cityops.cases.models import Case
    from cityops.cases.schemas import ActionIn
    from cityops.security.principal import SYSTEM

    old = built - dt.timedelta(days=2)
    c = session.scalar(select(Case).where(Case.state.in_(("dispatched", "acknowledged")), Case.reported_at < old)
                       .order_by(Case.id).limit(1))
    assert c is not None
    workflow.perform(session, SYSTEM, c, "send_back", ActionIn(reason="非本部门职责（评价事实测试）"), at=built)
    session.commit()
    _compare_all(session, SYSTEM, built, areas=(None,))  # before the worker ran
    r = evaluation_jobs.refresh(session, built)
    session.commit()
    assert r["marked"] >= 1 and r["built"] >= 1
    assert not session.scalar(select(EvaluationFactDay).where(EvaluationFactDay.dirty.is_(True)).limit(1))
    mark = session.get(EvaluationFactMark, 1)
    assert evaluation_facts.touched_days(session, mark.last_event_id, 10) == set()
    session.commit()
    _compare_all(session, SYSTEM, built, areas=(None,))


def test_console_rate_is_the_evaluations(client, session, built):
    from cityops.cases import evaluation
    from cityops.security.principal import SYSTEM

    u, pw = make_user(session, "ef_lead", ["shift_lead"], area_code="310117")
    h = auth_headers(client, u, pw)
    k = client.get("/api/v1/console/kpis", headers=h).json()
    ev = evaluation.evaluate(session, SYSTEM, "street")
    session.rollback()
    tot = ev["total"]
    assert k["closed_30d"] == tot["closed"]
    assert k["ontime_rate"] == (tot["closed_ontime"] / tot["closed"] if tot["closed"] else None)
    by = {s["code"]: s for s in k["by_street"]}
    for i in ev["items"]:
        assert by[i["code"]]["closed"] == i["closed"] and by[i["code"]]["ontime"] == i["closed_ontime"]
    page = client.get("/evaluation", headers=h)
    assert page.status_code == 200
