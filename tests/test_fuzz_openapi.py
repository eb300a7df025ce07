"""Schemathesis against the app's own OpenAPI: no generated request may get a 5xx.

Runs on its own database (fuzzing mutates data). Every operation is exercised anonymously and
with a token of an account holding the permission the route requires.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from cityops.security.catalog import ADMIN_TRIAD, ROLES

MAX_EXAMPLES = int(os.environ.get("CITYOPS_FUZZ_EXAMPLES", "25"))
# The same examples on every run by default, so that `make test` passes or fails the same way on
# every machine; CITYOPS_FUZZ_RANDOM=1 explores new ones (run it now and then, fix what it finds).
DERANDOMIZE = os.environ.get("CITYOPS_FUZZ_RANDOM", "0") != "1"


@pytest.fixture(scope="module")
def fuzz_env(tmp_root):
    from tests.conftest import _new_database, migrate, use_database

    url = _new_database(tmp_root, "fuzz")
    migrate(url)
    prev = os.environ.get("CITYOPS_DATABASE_URL")
    use_database(url)
    from cityops.app import create_app
    from cityops.db import get_sessionmaker, session_scope
    from cityops.demo.seed import seed_demo
    from cityops.security.deps import AUTHENTICATED, api_routes

    with session_scope() as s:
        seed_demo(s, small=True)
    app = create_app()
    from fastapi.testclient import TestClient

    from tests.helpers import auth_headers, make_user

    client = TestClient(app)
    tokens: dict[str, dict[str, str]] = {}
    s = get_sessionmaker()()
    try:
        for _path, _methods, perm, _route in api_routes(app):
            if perm in (None, "public") or perm in tokens:
                continue
            # the first role holding the permission; admin-triad roles only when needed
            roles = sorted(ROLES, key=lambda r: (r in ADMIN_TRIAD, r))
            role = "district_commander" if perm == AUTHENTICATED else next((r for r in roles if perm in ROLES[r][2]), None)
            if role is None:  # a permission only integrations hold (API key)
                from cityops.security.principal import SYSTEM
                from cityops.security.service import create_api_key

                _k, clear = create_api_key(s, SYSTEM, f"fz-{perm.replace('.', '-')}", [perm], area_code="310117")
                tokens[perm] = {"X-API-Key": clear}
                continue
            user, pw = make_user(s, f"fz_{role}", [role], area_code="310117")
            tokens[perm] = auth_headers(client, user, pw)
    finally:
        s.close()
    yield app, tokens
    if prev:
        use_database(prev)


def _operations() -> list[str]:
    from cityops.app import create_app

    spec = create_app().openapi()
    return [f"{m.upper()} {path}" for path, item in spec["paths"].items() for m in item
            if m in ("get", "post", "put", "patch", "delete")]


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_env):
    app, _ = fuzz_env
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return {op.ok().label: op.ok() for op in schema.get_all_operations()}


@pytest.mark.parametrize("label", _operations())
def test_no_server_errors(label, fuzz_env, fuzz_schema):
    app, tokens = fuzz_env
    from cityops.security.deps import api_routes

    operation = fuzz_schema[label]
    method, path = label.split(" ", 1)
    perm = next((rule for p, methods, rule, _r in api_routes(app) if p == path and method in methods), None)
    auth = dict(tokens.get(perm or "", {}))
    if perm not in (None, "public"):
        assert auth, f"no fuzz account holds {perm}"

    @given(case=operation.as_strategy())
    @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None,
              derandomize=DERANDOMIZE)
    def run(case):
        for headers in ({}, auth) if auth else ({},):
            response = case.call(headers=headers or None)
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path} {case.query} -> {response.status_code}: {response.text[:500]}")

    run()
