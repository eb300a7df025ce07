"""Permission matrix built from the app's route table (acceptance, issue 3).

For every API route x every role (+ anonymous) the expected outcome follows from the route's
declared rule (``cityops.security.deps.route_rule``) and the role's permissions IN THE DATABASE:

* a route without a rule fails the test (every new route of every domain is covered);
* public -> never 401/403; anonymous on a protected route -> 401;
* a role without the permission -> 403; with it -> neither 401 nor 403;
* routes whose path names an object get an in-scope and an out-of-scope object (see SCOPE_CASES):
  a 岳阳街道-level account gets 404 for the 佘山镇 object.

It runs on its own seeded database because permitted calls really execute.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from cityops.security.deps import AUTHENTICATED, api_routes

IN_AREA = "310117001"  # 岳阳街道
OUT_AREA = "310117103"  # 佘山镇
PARAM_RE = re.compile(r"{([^}:]+)(?::[^}]*)?}")


def _account_ids(session: Any) -> tuple[str, str]:
    from cityops.security.models import Account

    ids = dict(session.execute(select(Account.username, Account.id)
                               .where(Account.username.in_(["yy_street", "ss_street"]))).all())
    return str(ids["yy_street"]), str(ids["ss_street"])


def _ids_in_areas(session: Any, id_col: Any, code_col: Any, *where: Any) -> tuple[str, str] | None:
    """An object id inside 岳阳街道 and one inside 佘山镇 (None when the table has neither)."""
    ids = []
    for area in (IN_AREA, OUT_AREA):
        oid = session.scalar(select(id_col).where(code_col >= area, code_col < area + ":", *where)
                             .order_by(id_col).limit(1))
        if oid is None:
            return None
        ids.append(str(oid))
    return ids[0], ids[1]


def _registry(session: Any, m: re.Match[str]) -> dict[str, tuple[str, str]] | None:
    try:
        from cityops.registry.models import MODELS
    except ImportError:
        return None
    model = MODELS.get(m.group(1))
    if model is None:
        return None
    ids = _ids_in_areas(session, model.entity_id, model.grid_code, model.valid_to.is_(None))
    return {"id": ids} if ids else None


def _cases(session: Any, m: re.Match[str]) -> dict[str, tuple[str, str]] | None:
    try:
        from cityops.cases.models import Case
    except ImportError:
        return None
    ids = _ids_in_areas(session, Case.id, Case.grid_code)
    return {"case": ids, "case_id": ids} if ids else None


def _emergency(session: Any, m: re.Match[str]) -> dict[str, tuple[str, str]] | None:
    try:
        from cityops.emergency.models_command import (
            EmergencyTask,
            Incident,
            MobilisationCallup,
            PublicWarning,
        )
    except ImportError:
        return None
    kinds = {"incidents": ("incident", Incident.id, Incident.area_code), "tasks": ("task_id", EmergencyTask.id,
             EmergencyTask.area_code), "warnings": ("warning_id", PublicWarning.id, PublicWarning.area_code),
             "mobilisation": ("callup_id", MobilisationCallup.id, MobilisationCallup.area_code)}
    name, id_col, code_col = kinds[m.group(1)]
    ids = _ids_in_areas(session, id_col, code_col)
    return {name: ids} if ids else None


def _warnings(session: Any, m: re.Match[str]) -> dict[str, tuple[str, str]] | None:
    """A warning in 岳阳街道 and one in 佘山镇, raised by readings (vital signs)."""
    try:
        from cityops.indicators.models import EarlyWarning
    except ImportError:
        return None
    ids = _ids_in_areas(session, EarlyWarning.id, EarlyWarning.area_code)
    if ids is None:
        import datetime as dt

        from cityops.indicators import service
        from cityops.indicators.evaluator import pipeline
        from cityops.security.principal import SYSTEM
        from tests.indicators_helpers import make_devices

        make_devices(session, [("MX-GP-IN", "gas_pressure", IN_AREA, 0), ("MX-GP-OUT", "gas_pressure", OUT_AREA, 0)])
        t0 = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(hours=2)
        service.ingest_readings(session, SYSTEM, [{"device": d, "indicator": "gas_pressure",
                                                   "ts": t0 + dt.timedelta(minutes=k), "value": 1.0}
                                                  for d in ("MX-GP-IN", "MX-GP-OUT") for k in range(6)])
        session.commit()
        pipeline().drain(timeout=120)
        ids = _ids_in_areas(session, EarlyWarning.id, EarlyWarning.area_code)
    return {"warning_id": ids} if ids else None


def _resources(session: Any, m: re.Match[str]) -> dict[str, tuple[str, str]] | None:
    try:
        from cityops.resources import models as rs
    except ImportError:
        return None
    model = {"warehouses": rs.Warehouse, "teams": rs.Team, "experts": rs.Expert, "equipment": rs.Equipment,
             "shelters": rs.Shelter, "requests": rs.SupplyRequest, "requisitions": rs.Requisition,
             "shipments": rs.Shipment}[m.group(1)]
    ids = _ids_in_areas(session, model.id, model.grid_code)
    return {m.group(2): ids} if ids else None


# path regex -> provider(session, match) -> {param: (in-scope value, out-of-scope value)}; extend for new domains
SCOPE_CASES: list[tuple[str, Callable[[Any, re.Match[str]], dict[str, tuple[str, str]] | None]]] = [
    (r"^/api/v1/security/accounts/\{account_id\}", lambda s, m: {"account_id": _account_ids(s)}),
    (r"^/api/v1/registry/(\w+)/\{id\}", _registry),
    (r"^/api/v1/cases/\{case\}", _cases),
    (r"^/api/v1/emergency/(incidents|tasks|warnings|mobilisation)/\{(incident|task_id|warning_id|callup_id)\}",
     _emergency),
    (r"^/api/v1/warnings/\{warning_id\}", _warnings),
    (r"^/api/v1/resources/(warehouses|teams|experts|equipment|shelters|requests|requisitions|shipments)/"
     r"\{(ref|shipment_id)\}", _resources),
    # (the console's /cases/{case_id} is a page shell answering 200 for any id; its data comes from the API)
]
# request bodies that pass validation so that an out-of-scope object reaches the service (404)
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PUT", "/api/v1/security/accounts/{account_id}/roles"): {"roles": ["supervisor"]},
    ("PATCH", "/api/v1/security/accounts/{account_id}"): {"display_name": "矩阵测试"},
    ("POST", "/api/v1/cases/{case}/consultations"): {"body": "矩阵测试"},
    ("POST", "/api/v1/resources/warehouses/{ref}/stock"): {"item_code": "1010101", "item_name": "饮用水", "unit": "箱",
                                                         "quantity": 1},
    ("POST", "/api/v1/emergency/incidents/{incident}/reports"): {"level": "district", "channel": "phone",
                                                                 "kind": "follow_up"},
}
# path parameters that need a well-formed value to reach the service
PATH_VALUES = {"action": "zz_no_such_action"}
DUMMY = "987654321"


@pytest.fixture(scope="module")
def matrix_env(tmp_root):
    from fastapi.testclient import TestClient

    from cityops.app import create_app
    from cityops.db import get_sessionmaker, session_scope
    from cityops.demo.seed import seed_demo
    from cityops.security.service import role_permissions
    from tests.conftest import _new_database, migrate, use_database
    from tests.helpers import auth_headers, make_user

    url = _new_database(tmp_root, "matrix")
    migrate(url)
    prev = os.environ.get("CITYOPS_DATABASE_URL")
    use_database(url)
    with session_scope() as s:
        seed_demo(s, small=True)
    app = create_app()
    client = TestClient(app)
    s = get_sessionmaker()()
    try:
        perms = role_permissions(s)
        s.rollback()
        tokens = {}
        for role in sorted(perms):
            user, pw = make_user(s, f"mx_{role}", [role], area_code=IN_AREA)
            tokens[role] = auth_headers(client, user, pw)
        scope_values: dict[str, dict[str, tuple[str, str]]] = {}
        for path, _methods, _rule, _route in api_routes(app):
            for pattern, provider in SCOPE_CASES:
                m = re.match(pattern, path)
                if m and path not in scope_values:
                    values = provider(s, m)
                    s.rollback()
                    if values:
                        scope_values[path] = values
    finally:
        s.close()
    yield app, client, tokens, perms, scope_values
    client.close()
    if prev:
        use_database(prev)


def _fill(path: str, route: Any, values: dict[str, tuple[str, str]] | None, which: int) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if values and name in values:
            return values[name][which]
        if name in PATH_VALUES:
            return PATH_VALUES[name]
        return DUMMY  # a number that names nothing (valid for int and str parameters)

    return PARAM_RE.sub(sub, path)


class _Answer:
    def __init__(self, status_code: int, text: str, location: str = "") -> None:
        self.status_code, self.text, self.location = status_code, text, location

    @property
    def sign_in_asked(self) -> bool:
        """401, or (console pages) a redirect to the sign-in page."""
        return self.status_code == 401 or (300 <= self.status_code < 400 and "/login" in self.location)


def _call(client: Any, method: str, url: str, headers: dict[str, str], body: dict[str, Any] | None) -> _Answer:
    """Status and (for non-streams) body; event streams (SSE) are closed after their headers."""
    kw: dict[str, Any] = {"headers": headers, "follow_redirects": False}
    if method in ("POST", "PUT", "PATCH"):
        kw["json"] = body if body is not None else {}
    with client.stream(method, url, **kw) as r:
        if r.headers.get("content-type", "").startswith("text/event-stream"):
            return _Answer(r.status_code, "")
        r.read()
        return _Answer(r.status_code, r.text, r.headers.get("location", ""))


def test_every_route_declares_a_rule(matrix_env):
    app = matrix_env[0]
    missing = [f"{sorted(m)} {p}" for p, m, rule, _ in api_routes(app) if rule is None]
    assert not missing, f"routes without an access rule (public_route or require(...)): {missing}"


def test_permission_matrix(matrix_env):
    app, client, tokens, perms, scope_values = matrix_env
    failures: list[str] = []
    checked = 0
    scoped_checked = 0
    for path, methods, rule, route in api_routes(app):
        if rule is None:
            continue
        values = scope_values.get(path)
        for method in sorted(methods - {"HEAD", "OPTIONS"}):
            body = BODIES.get((method, path))
            url_in = _fill(path, route, values, 0)
            # anonymous
            r = _call(client, method, url_in, {}, body)
            checked += 1
            if rule == "public":
                if r.status_code in (401, 403):
                    failures.append(f"anonymous {method} {path}: public route answered {r.status_code}")
                continue
            if not r.sign_in_asked:
                failures.append(f"anonymous {method} {path}: expected 401 (or a redirect to /login), got "
                                f"{r.status_code}")
            for role, granted in perms.items():
                allowed = rule == AUTHENTICATED or rule in granted
                r = _call(client, method, url_in, tokens[role], body)
                checked += 1
                if allowed and r.status_code in (401, 403):
                    failures.append(f"{role} {method} {path}: holds {rule} but got {r.status_code} {r.text[:200]}")
                if not allowed and r.status_code != 403:
                    failures.append(f"{role} {method} {path}: lacks {rule}, expected 403, got {r.status_code}")
                if allowed and values:
                    r = _call(client, method, _fill(path, route, values, 1), tokens[role], body)
                    scoped_checked += 1
                    if r.status_code != 404:
                        failures.append(f"{role} {method} {path}: out-of-scope object must be 404, got "
                                        f"{r.status_code} {r.text[:200]}")
    assert not failures, f"{len(failures)} of {checked} matrix cells wrong:\n" + "\n".join(failures[:60])
    assert checked > 100 and scoped_checked >= 20, (checked, scoped_checked)
