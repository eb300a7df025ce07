"""The case workflow's transition table is validated data: a table naming an unknown guard, effect,
requirement or step is refused naming it (and nothing changes); every effect the shipped table
names is a function; 自行处置 goes through the table; effects are what the table says (an urgent
dispatch escalates because its row names ``urgent_dispatched``)."""

from __future__ import annotations

import copy

import pytest
from sqlalchemy import func, select

from tests.cases_helpers import category, free_point
from tests.helpers import auth_headers, make_user


def _rows(client, h):
    return [{k: t[k] for k in ("from", "action", "to", "roles", "permission", "required", "guard", "department",
                               "start_steps", "finish_steps", "cancel_steps", "effects")}
            for t in client.get("/api/v1/cases/workflow", headers=h).json()["transitions"]]


@pytest.fixture()
def admin(client, session):
    u, pw = make_user(session, "t_wf_admin", ["district_commander"], area_code="310117")
    return auth_headers(client, u, pw)


def test_the_shipped_table_names_only_known_functions():
    from cityops.cases.transitions import DEFAULT_TABLE
    from cityops.cases.workflow_rules import CASE_MACHINE

    assert DEFAULT_TABLE.transitions
    for t in DEFAULT_TABLE.transitions.values():
        assert set(t.effects) <= set(CASE_MACHINE.effects) and (t.guard is None or t.guard in CASE_MACHINE.guards)
    # every action the table lists has a label, and self_handle is a row
    assert ("reported", "self_handle") in DEFAULT_TABLE.transitions
    assert "urgent_dispatched" in DEFAULT_TABLE.transitions[("registered", "dispatch")].effects


@pytest.mark.parametrize("column, value, kind", [
    ("guard", "moon_is_full", "unknown_guard"),
    ("effects", ["assign", "teleport"], "unknown_effect"),
    ("required", ["blood_sample"], "unknown_requirement"),
    ("finish_steps", ["lunch"], "value_error"),
    ("department", "boss", "literal_error"),  # refused by the typed body already
])
def test_a_table_naming_unknown_names_is_refused_and_nothing_changes(client, admin, column, value, kind):
    rows = _rows(client, admin)
    before = copy.deepcopy(rows)
    i = next(n for n, r in enumerate(rows) if r["action"] == "dispatch")
    rows[i][column] = value
    r = client.put("/api/v1/cases/workflow", json=rows, headers=admin)
    assert r.status_code == 422, r.text
    locs = [(d["loc"], d["type"]) for d in r.json()["detail"]]
    assert any(loc[:3] == ["body", i, column] and t == kind for loc, t in locs), locs
    assert _rows(client, admin) == before


def test_self_handling_goes_through_the_table(client, session, admin):
    from cityops.cases.models import Case, CaseEvent

    cat = category(session, "暴露垃圾")
    lon, lat, grid = free_point(session, cat.id, skip=7)
    sup, pw = make_user(session, "t_wf_sup", ["supervisor"], area_code=grid[:9])
    disp, dpw = make_user(session, "t_wf_disp", ["dispatcher"], area_code="310117")
    hs, hd = auth_headers(client, sup, pw), auth_headers(client, disp, dpw)
    body = {"category_code": cat.code, "lat": lat, "lon": lon, "description": "已当场清理", "source": "supervisor",
            "self_handled": True}
    r = client.post("/api/v1/cases", json=body, headers=hs)
    assert r.status_code == 201, r.text
    cid = r.json()["case_id"]
    assert session.get(Case, cid).state == "closed"
    assert session.scalar(select(func.count()).select_from(CaseEvent).where(
        CaseEvent.case_id == cid, CaseEvent.action == "self_handle")) == 1
    session.rollback()
    # a dispatcher holds no role of the self_handle row
    r = client.post("/api/v1/cases", json={**body, "lon": lon + 0.002}, headers=hd)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "self_handled"]
    # and the row is never offered as an action on an existing case
    acts = client.get(f"/api/v1/cases/{cid}/actions", headers=hs).json()["actions"]
    assert "self_handle" not in [a["action"] for a in acts]
    # without the row, nobody may self-handle
    rows = [r for r in _rows(client, admin) if r["action"] != "self_handle"]
    assert client.put("/api/v1/cases/workflow", json=rows, headers=admin).status_code == 200
    try:
        r = client.post("/api/v1/cases", json={**body, "lon": lon + 0.004}, headers=hs)
        assert r.status_code == 422 and "self_handle" in r.text
    finally:
        from cityops.cases.models import Transition

        session.execute(Transition.__table__.delete())  # back to the shipped table
        session.commit()
        from cityops.cases import reference

        reference.invalidate()
