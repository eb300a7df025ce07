"""Every demo account x every route that lists, counts, maps, aggregates, streams or exports
objects returns exactly the objects that account may open by id.

The routes are enumerated from the route table: every GET route without a path parameter must be
in ``READS`` (with how to check it) or in ``NOT_SCOPED`` (with why it holds no scoped object) —
a new route fails this test until it is classified. The expected set of each account is computed
here from the rows, with the scope rule written out independently of ``cityops.security.scope``.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select

from cityops.security.seed import DEMO_ACCOUNTS, demo_password
from tests.helpers import auth_headers

DISTRICT = "310117"


# ------------------------------------------------------------------------------------------ the rule


def expected(who: dict[str, Any], area: str | None, depts: set[str], handled_kind: bool) -> bool:
    """Written from docs/architecture.md: a department account sees what its department handles (within its
    area below the district); otherwise an account sees what lies in its area; nothing without an area."""
    own = who["area_code"]
    below = own is not None and not DISTRICT.startswith(own)
    inside = (not below) or (area is not None and area.startswith(own))
    if who["department_code"] and handled_kind:
        return who["department_code"] in depts and inside
    if own is None:
        return False
    return inside


# ------------------------------------------------------------------------------------------ the world


@dataclass
class World:
    cases: dict[int, tuple[str, set[str], bool]]  # id -> (grid code, active departments, open)
    registry: dict[str, dict[int, str]]  # kind -> entity id -> grid code (current versions)
    signals: dict[int, str | None]
    accounts: dict[int, str | None]
    api_keys: dict[int, str | None]
    incidents: dict[int, tuple[str | None, set[str]]] = field(default_factory=dict)
    em_tasks: dict[int, tuple[str | None, set[str]]] = field(default_factory=dict)
    em_warnings: dict[int, str | None] = field(default_factory=dict)
    callups: dict[int, tuple[str | None, set[str]]] = field(default_factory=dict)
    early_warnings: dict[int, tuple[str | None, set[str]]] = field(default_factory=dict)
    devices: dict[int, str | None] = field(default_factory=dict)
    resources: dict[str, dict[int, str | None]] = field(default_factory=dict)  # kind -> id -> grid code


def _some_warnings(db_url: str) -> None:
    """Warnings raised by readings in three streets (through the real ingest and rules), if none yet."""
    import datetime as dt

    from cityops.db import get_sessionmaker
    from cityops.indicators import service
    from cityops.indicators.evaluator import pipeline
    from cityops.indicators.models import EarlyWarning
    from cityops.security.principal import SYSTEM
    from tests.indicators_helpers import make_devices

    with get_sessionmaker()() as s:
        if s.scalar(select(EarlyWarning.id).limit(1)) is not None:
            return
        specs = [(f"SR-GP-{a}", "gas_pressure", a, 0) for a in ("310117001", "310117103", "310117002")]
        make_devices(s, specs)
        t0 = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(hours=2)
        service.ingest_readings(s, SYSTEM, [{"device": code, "indicator": "gas_pressure",
                                             "ts": t0 + dt.timedelta(minutes=k), "value": 1.0}
                                            for code, *_ in specs for k in range(6)])
        s.commit()
    pipeline().drain(timeout=120)


@pytest.fixture(scope="module")
def world(db_url) -> World:
    from cityops.cases import reference as ref
    from cityops.cases.models import Case, CaseDepartment, Signal
    from cityops.db import get_sessionmaker
    from cityops.registry.models import MODELS
    from cityops.security.models import Account, ApiKey

    _some_warnings(db_url)
    with get_sessionmaker(False)() as s:
        depts: dict[int, set[str]] = {}
        for cid, code in s.execute(select(CaseDepartment.case_id, CaseDepartment.department_code)
                                   .where(CaseDepartment.released_at.is_(None))):
            depts.setdefault(cid, set()).add(code)
        cases = {cid: (grid, depts.get(cid, set()), state in ref.OPEN_STATES)
                 for cid, grid, state in s.execute(select(Case.id, Case.grid_code, Case.state))}
        registry = {k: dict(s.execute(select(m.entity_id, m.grid_code).where(m.valid_to.is_(None))).all())
                    for k, m in MODELS.items()}
        signals = dict(s.execute(select(Signal.id, Signal.grid_code)).all())
        accounts = dict(s.execute(select(Account.id, Account.area_code)).all())
        keys = dict(s.execute(select(ApiKey.id, ApiKey.area_code)).all())
        w = World(cases, registry, signals, accounts, keys)  # type: ignore[arg-type]
        from cityops.emergency.models_command import (
            EmergencyTask,
            Incident,
            IncidentNotice,
            MobilisationCallup,
            PublicWarning,
        )

        handling: dict[int, set[str]] = {}
        for iid, dept in s.execute(select(EmergencyTask.incident_id, EmergencyTask.owner_department_code)):
            handling.setdefault(iid, set()).add(dept)
        for iid, dept in s.execute(select(IncidentNotice.incident_id, IncidentNotice.recipient_code)
                                   .where(IncidentNotice.kind == "department")):
            handling.setdefault(iid, set()).add(dept)
        w.incidents = {i: (g or c or st, handling.get(i, set())) for i, g, c, st in s.execute(
            select(Incident.id, Incident.grid_code, Incident.community_code, Incident.street_code))}
        w.em_tasks = {i: (a, {d}) for i, a, d in s.execute(
            select(EmergencyTask.id, EmergencyTask.area_code, EmergencyTask.owner_department_code))}
        w.em_warnings = dict(s.execute(select(PublicWarning.id, PublicWarning.area_code)).all())
        w.callups = {i: (a, {d} if d else set()) for i, a, d in s.execute(
            select(MobilisationCallup.id, MobilisationCallup.area_code, MobilisationCallup.department_code))}
        from cityops.indicators.models import Device, EarlyWarning

        w.early_warnings = {i: (g or c or st, {d} if d else set()) for i, g, c, st, d in s.execute(
            select(EarlyWarning.id, EarlyWarning.grid_code, EarlyWarning.community_code, EarlyWarning.street_code,
                   EarlyWarning.owner_department_code))}
        w.devices = dict(s.execute(select(Device.id, Device.grid_code)).all())
        from cityops.resources import models as rs

        for kind, m in (("warehouses", rs.Warehouse), ("teams", rs.Team), ("experts", rs.Expert),
                        ("equipment", rs.Equipment), ("shelters", rs.Shelter), ("requests", rs.SupplyRequest),
                        ("shipments", rs.Shipment), ("requisitions", rs.Requisition)):
            w.resources[kind] = dict(s.execute(select(m.id, m.grid_code)).all())
    return w


@pytest.fixture(scope="module")
def client(db_url):
    from fastapi.testclient import TestClient

    from cityops.app import create_app
    from tests.conftest import use_database

    use_database(db_url)
    with TestClient(create_app()) as c:
        yield c


@pytest.fixture(scope="module")
def demo(client, db_url) -> dict[str, tuple[dict[str, Any], dict[str, str]]]:
    """username -> (its scope facts, its Authorization header), for every demo account."""
    from cityops.db import get_sessionmaker
    from cityops.security import service
    from cityops.security.models import Account

    out = {}
    with get_sessionmaker()() as s:
        for a in DEMO_ACCOUNTS:
            acc = s.scalar(select(Account).where(Account.username == a.username))
            assert acc is not None, a.username
            acc.must_change_password = False
            acc.failed_logins, acc.locked_until = 0, None
        s.commit()
        service.clear_auth_cache()
        perms = {a.username: service.principal_for_username(s, a.username).permissions for a in DEMO_ACCOUNTS}
    for a in DEMO_ACCOUNTS:
        who = {"area_code": a.area_code, "department_code": a.department, "permissions": perms[a.username]}
        out[a.username] = (who, auth_headers(client, a.username, demo_password(a.username)))
    return out


# ------------------------------------------------------------------------------------------ checks


@dataclass
class Read:
    """How to read one route: the permission it needs, the query, the ids it returns (or None when
    it returns only aggregates), its total, and the ids it should return in the world."""

    permission: str
    params: dict[str, Any] = field(default_factory=dict)
    ids: Callable[[Any], list[int]] | None = None
    total: Callable[[Any], int] | None = None
    want: Callable[[dict[str, Any], World], set[int]] | None = None
    open_by_id: str | None = None  # template of the by-id route
    exact: bool = True  # ids (or total) must equal the expected set, not only be inside it
    csv: bool = False


def _cases(open_only: bool) -> Callable[[dict[str, Any], World], set[int]]:
    return lambda who, w: {cid for cid, (grid, depts, is_open) in w.cases.items()
                           if (is_open or not open_only) and expected(who, grid, depts, True)}


def _located(pick: Callable[[World], dict[int, Any]]) -> Callable[[dict[str, Any], World], set[int]]:
    return lambda who, w: {i for i, code in pick(w).items() if expected(who, code, set(), False)}


def _items(key: str = "id", where: str = "items") -> Callable[[Any], list[int]]:
    return lambda j: [int(i[key]) for i in j[where]]


def _csv_ids(column: str) -> Callable[[Any], list[int]]:
    from cityops.exports import csv_unwrap

    return lambda text: [int(csv_unwrap(r[column])) for r in csv.DictReader(io.StringIO(text.lstrip("\ufeff")))]


def _case_no_ids(text: str) -> list[int]:
    from cityops.cases.models import parse_case_no
    from cityops.exports import csv_unwrap  # case numbers are written ="…" so spreadsheets keep them

    return [int(parse_case_no(csv_unwrap(r["case_no"])) or 0) for r in csv.DictReader(io.StringIO(text.lstrip("\ufeff")))]


def _todo_ids(j: Any) -> list[int]:
    return [int(i["id"]) for box in j.values() if isinstance(box, dict) for i in box.get("items", [])]


def _map_ids(j: Any) -> list[int]:
    return [int(p[0]) for p in j["items"]] if j.get("mode") == "points" else []


def _handled(pick: Callable[[World], dict[int, tuple[str | None, set[str]]]]) -> Callable[[dict[str, Any], World],
                                                                                           set[int]]:
    return lambda who, w: {i for i, (code, depts) in pick(w).items() if expected(who, code, depts, True)}


REGISTRY = ("buildings", "households", "persons", "facilities", "organisations", "places")
READS: dict[str, Read] = {
    "/api/v1/cases": Read("case.read", {"open": "true", "page_size": 500}, _items(), lambda j: j["total"],
                          _cases(True), "/api/v1/cases/{id}"),
    "/api/v1/cases/counts": Read("case.read", {"open": "true"}, None, lambda j: j["total"], _cases(True)),
    "/api/v1/cases.geojson": Read("case.read", {"open": "true"}, lambda j: [int(f["id"]) for f in j["features"]],
                                  None, _cases(True), "/api/v1/cases/{id}"),
    "/api/v1/cases.csv": Read("case.export", {"open": "true"}, _case_no_ids, None, _cases(True), "/api/v1/cases/{id}",
                              csv=True),
    "/api/v1/cases/aggregate": Read("case.read", {}, None, lambda j: j["kpi"]["open"], _cases(True)),
    "/api/v1/console/map": Read("console.view", {}, _map_ids, lambda j: j["total"], _cases(True), "/api/v1/cases/{id}"),
    "/api/v1/console/kpis": Read("console.view", {}, None, lambda j: j["open"], _cases(True)),
    "/api/v1/console/overdue": Read("console.view", {"limit": 200}, _items(), None, _cases(True),
                                    "/api/v1/cases/{id}", exact=False),
    "/api/v1/inbox": Read("case.read", {"limit": 500}, _items(), None, _cases(True), "/api/v1/cases/{id}", exact=False),
    "/api/v1/console/todo": Read("console.view", {}, _todo_ids, None, _cases(True), "/api/v1/cases/{id}", exact=False),
    "/api/v1/console/feed": Read("console.view", {}, _items("case_id"), None, _cases(False), "/api/v1/cases/{id}",
                                 exact=False),
    "/api/v1/signals": Read("case.read", {"page_size": 500}, _items(), lambda j: j["total"],
                            _located(lambda w: w.signals)),
    "/api/v1/security/accounts": Read("account.manage", {"page_size": 500}, _items(), lambda j: j["total"],
                                      lambda who, w: {i for i, a in w.accounts.items()
                                                      if expected(who, a, set(), False)},
                                      "/api/v1/security/accounts/{id}"),
    "/api/v1/security/api-keys": Read("apikey.manage", {}, lambda j: [int(k["id"]) for k in j], None,
                                      lambda who, w: {i for i, a in w.api_keys.items()
                                                      if expected(who, a, set(), False)}),
}
READS.update({
    "/api/v1/emergency/incidents": Read("incident.read", {"page_size": 500}, _items(), lambda j: j["total"],
                                        _handled(lambda w: w.incidents), "/api/v1/emergency/incidents/{id}"),
    "/api/v1/emergency/tasks": Read("incident.read", {"page_size": 1000}, _items(), lambda j: j["total"],
                                    _handled(lambda w: w.em_tasks), "/api/v1/emergency/tasks/{id}"),
    "/api/v1/emergency/warnings": Read("warning.read", {"page_size": 500}, _items(), lambda j: j["total"],
                                       _located(lambda w: w.em_warnings), "/api/v1/emergency/warnings/{id}"),
    "/api/v1/emergency/mobilisation": Read("incident.read", {}, lambda j: [int(c["id"]) for c in j], None,
                                           _handled(lambda w: w.callups)),
    "/api/v1/warnings": Read("indicator.read", {"page_size": 500}, _items(), lambda j: j["total"],
                             _handled(lambda w: w.early_warnings), "/api/v1/warnings/{id}"),
    "/api/v1/devices": Read("indicator.read", {"page_size": 1000}, None, lambda j: j["total"],
                            _located(lambda w: w.devices)),
})
for _k in ("warehouses", "teams", "experts", "equipment", "shelters", "requests", "shipments", "requisitions"):
    READS[f"/api/v1/resources/{_k}"] = Read("resource.read", {"page_size": 1000}, _items(), lambda j: j["total"],
                                            _located(lambda w, k=_k: w.resources[k]),
                                            f"/api/v1/resources/{_k}/{{id}}" if _k != "shipments" else None)
READS["/api/v1/resources/map"] = Read("resource.read", {}, lambda j: [int(x["id"]) for x in j["shelters"]], None,
                                      _located(lambda w: w.resources["shelters"]))
for _k in REGISTRY:
    _perm = "person.read" if _k == "persons" else "registry.read"
    READS[f"/api/v1/registry/{_k}"] = Read(_perm, {"page_size": 500}, _items(), lambda j: j["total"],
                                           _located(lambda w, k=_k: w.registry[k]), f"/api/v1/registry/{_k}/{{id}}")
    READS[f"/api/v1/registry/{_k}.csv"] = Read("registry.export", {}, _csv_ids("记录ID"), None,
                                               _located(lambda w, k=_k: w.registry[k]), csv=True)
    if _k not in ("households", "persons"):
        READS[f"/api/v1/registry/{_k}.geojson"] = Read(
            "registry.read", {}, lambda j: [int(f["properties"]["id"]) for f in j["features"]], None,
            _located(lambda w, k=_k: w.registry[k]))

# GET routes that hold no object of a scoped kind, and why (reference data, one's own things, pages,
# administration of the platform, aggregates checked elsewhere)
NOT_SCOPED = {
    "/": "page", "/cases": "page", "/inbox": "page", "/m": "page", "/workstation": "page", "/briefing": "page (its data: test_console_data)",
    "/briefing.pdf": "the briefing of the principal's own area (test_console_data)", "/evaluation": "page",
    "/evaluation.csv": "evaluation of the principal's own area (test_evaluation_*)", "/login": "page",
    "/report": "public page", "/docs": "API docs", "/docs/oauth2-redirect": "API docs", "/favicon.ico": "icon",
    "/healthz": "liveness", "/api/v1/auth/me": "oneself", "/api/v1/areas": "public administrative areas",
    "/api/v1/areas.geojson": "public administrative areas", "/api/v1/grids/locate": "public point lookup",
    "/api/v1/calendars": "reference data", "/api/v1/calendars/active": "reference data",
    "/api/v1/calendars/due": "computation", "/api/v1/cases/policy": "reference data",
    "/api/v1/cases/workflow": "reference data", "/api/v1/catalogue/categories": "reference data",
    "/api/v1/catalogue/route": "computation", "/api/v1/catalogue/versions": "reference data",
    "/api/v1/departments": "reference data", "/api/v1/escalation-rules": "reference data",
    "/api/v1/evaluation/schemes": "reference data", "/api/v1/signal-filters": "reference data",
    "/api/v1/layers": "grid layers (reference data)", "/api/v1/security/permissions": "reference data",
    "/api/v1/security/roles": "reference data", "/api/v1/security/fields": "reference data",
    "/api/v1/registry/kinds": "reference data", "/api/v1/registry/counts": "counts per kind: checked below",
    "/api/v1/console/meta": "reference data + one's own scope", "/api/v1/console/report-categories": "public",
    "/api/v1/console/choropleth": "aggregates: checked below", "/api/v1/console/panels": "availability flags",
    "/api/v1/console/my-reports": "one's own reports", "/api/v1/console/stream": "checked below (SSE)",
    "/api/v1/notifications": "addressed to the principal (cityops.jobs addressing, test_jobs_notifications)",
    "/api/v1/notifications/unread-count": "addressed to the principal",
    "/api/v1/audit": "the auditor's (district) log", "/api/v1/audit/verify": "the auditor's check",
    "/api/v1/jobs/outbox": "platform operations (webhook.manage)", "/api/v1/jobs/stats": "platform operations",
    "/api/v1/webhooks": "platform operations", "/api/v1/webhooks/deliveries": "platform operations",
    "/api/v1/saferoom/queries": "the catalogue of approved aggregate queries (no personal data)",
    "/api/v1/security/export-requests": "the approvers' queue (export.approve)",
    "/api/v1/security/admin-changes": "the administrators' four-eyes queue (each kind by the permission it needs)",
    "/api/v1/classify/models": "model versions (classify.manage)",
    "/api/v1/basemap": "public base map (roads, water, places)", "/api/v1/basemap/search": "public place names",
    "/api/v1/emergency/categories": "reference data", "/api/v1/emergency/mobilisation/ladder": "reference data",
    "/api/v1/emergency/plans": "the plan library (reference data)", "/api/v1/emergency/plans/schema.json": "schema",
    "/api/v1/emergency/reporting/rules": "reference data",
    "/api/v1/emergency/reporting/reach": "times of the incidents in scope (test_emergency_reporting)",
    "/api/v1/emergency/warnings/feed.atom": "public CAP feed (published warnings)", "/emergency": "page",
    "/emergency/plans": "page", "/emergency/reporting": "page", "/emergency/tasks": "page",
    "/emergency/warnings": "page", "/vitals": "page", "/resources": "page",
    "/api/v1/resources/expiring": "stock rows of the warehouses in scope (test_resources_flows)",
    "/api/v1/indicators": "the indicator catalogue (reference data)", "/api/v1/indicators/versions": "reference data",
    "/api/v1/readings/series": "aggregates of the principal's area (test_indicators_*: area checked)",
    "/api/v1/vitals/board": "levels per street in scope (test_indicators_*)",
    "/health": "page (its data: test_health_domain)",
    "/api/v1/health/sites": "sentinel sites in scope (SITE_SCOPE; test_health_domain)",
    "/api/v1/health/case-reports": "case reports in scope, masked (CASE_REPORT_SCOPE; test_health_domain)",
    "/api/v1/health/signals": "signals in scope (SIGNAL_SCOPE; test_health_domain)",
    "/api/v1/health/signals/kpis": "KPIs over the signals in scope (test_health_domain)",
    "/api/v1/outbreak/rule-sets": "reference data",
    "/api/v1/outbreak/outbreaks": "outbreak command objects without personal data; the figures inside are counted "
                                  "in scope (test_outbreak_scope)",
    "/outbreak": "page", "/outbreak/report": "the report of the principal's scope (test_outbreak_report)",
}
# the XLSX exports read the very rows of the CSV exports (registry.service.export_table), checked above
NOT_SCOPED.update({f"/api/v1/registry/{_k}.xlsx": "same rows as .csv (export_table): checked there" for _k in REGISTRY})
NOT_SCOPED.update({f"/api/v1/registry/{k}/columns": "reference data" for k in REGISTRY})


def test_the_console_shows_cases_only_to_those_who_may_read_them():
    """The console's map, KPIs, to-do and feed are cases: a role that may use the console may read cases."""
    from cityops.security import catalog

    bad = [code for code, (_zh, _en, perms, _triad) in catalog.ROLES.items()
           if "console.view" in perms and "case.read" not in perms]
    assert bad == [], bad


def test_every_listing_route_is_classified():
    from cityops.app import create_app
    from cityops.security.deps import api_routes

    gets = {p for p, methods, _rule, _r in api_routes(create_app()) if "GET" in methods and "{" not in p}
    unclassified = sorted(gets - set(READS) - set(NOT_SCOPED))
    assert unclassified == [], ("GET routes without a scope check: add them to READS (how to check the objects "
                                f"they return) or NOT_SCOPED (why they hold none): {unclassified}")
    assert sorted(set(READS) - gets) == [], "READS names routes that do not exist"


def _body(r: Any, read: Read) -> Any:
    return r.text if read.csv else r.json()


@pytest.mark.parametrize("path", sorted(READS))
def test_each_account_reads_exactly_what_it_may_open(client, demo, world, path):
    read = READS[path]
    rng = random.Random(path)
    checked = 0
    objects = 0
    for username, (who, h) in sorted(demo.items()):
        if read.permission not in who["permissions"]:
            continue
        r = client.get(path, params=read.params, headers=h)
        assert r.status_code == 200, (username, path, r.status_code, r.text[:300])
        assert read.want is not None
        want = read.want(who, world)
        body = _body(r, read)
        if read.ids is not None:
            got = read.ids(body)
            if read.exact:  # a list names each object once (a feed or a to-do may name one several times)
                assert len(got) == len(set(got)), (username, path, "an object twice")
            outside = set(got) - want
            assert not outside, (username, path, "objects outside the account's scope", sorted(outside)[:10])
            if read.exact and (read.total is None or len(got) == read.total(body)):
                assert set(got) == want, (username, path, "missing", sorted(want - set(got))[:10])
            if read.open_by_id:
                for oid in rng.sample(sorted(got), min(5, len(got))):
                    o = client.get(read.open_by_id.format(id=oid), headers=h)
                    assert o.status_code == 200, (username, path, oid, o.status_code)
                visible = _cases(False)(who, world)
                others = sorted(set(world.cases) - visible) if read.open_by_id.startswith("/api/v1/cases") else []
                for oid in rng.sample(others, min(3, len(others))):
                    assert client.get(read.open_by_id.format(id=oid), headers=h).status_code == 404
        if read.total is not None:
            assert read.total(body) == len(want), (username, path, read.total(body), len(want))
        checked += 1
        objects += len(want)
    assert checked, f"no demo account may read {path}"
    assert objects, f"the demo world holds nothing {path} could return: the check would prove nothing"


def test_registry_counts_and_choropleth_stay_in_scope(client, demo, world):
    for username, (who, h) in demo.items():
        if "registry.read" in who["permissions"]:
            r = client.get("/api/v1/registry/counts", headers=h)
            assert r.status_code == 200
            counts = r.json()
            for kind in REGISTRY:
                if kind in counts and isinstance(counts[kind], int):
                    assert counts[kind] == len(_located(lambda w, k=kind: w.registry[k])(who, world)), (username,
                                                                                                         kind)
        if "console.view" in who["permissions"]:
            r = client.get("/api/v1/console/choropleth", params={"metric": "count"}, headers=h)
            assert r.status_code == 200, r.text
            streets = {world.cases[c][0][:9] for c in _cases(True)(who, world)}
            assert set(r.json()["values"]) <= streets | {k for k, v in r.json()["values"].items() if not v}, username


def test_department_console_totals_equal_its_case_list(client, demo):
    for username in ("cgzf_handler", "cgzf_leader", "lhsr_handler", "sw_handler", "yy_centre_handler"):
        _who, h = demo[username]
        listed = client.get("/api/v1/cases", params={"open": "true", "page_size": 1}, headers=h).json()["total"]
        kpis = client.get("/api/v1/console/kpis", headers=h).json()
        mp = client.get("/api/v1/console/map", headers=h).json()
        assert kpis["open"] == listed == mp["total"], (username, kpis["open"], listed, mp["total"])


def test_the_stream_sends_only_cases_in_scope(client, demo, world):
    import json as _json

    from cityops.cases.models import Case
    from cityops.db import get_sessionmaker
    from cityops.jobs import service as jobs

    with get_sessionmaker()() as s:  # events for some cases inside and outside the department's scope
        ids = sorted(world.cases)[:40]
        for cid in ids:
            c = s.get(Case, cid)
            jobs.enqueue(s, "case.transition", {"case_id": cid, "action": "chase", "to_state": c.state})
        s.commit()
    for username in ("cgzf_handler", "yy_street", "commander"):
        who, h = demo[username]
        want = _cases(False)(who, world)
        seen: list[int] = []
        with client.stream("GET", "/api/v1/console/stream", headers={**h, "Last-Event-ID": "0"},
                           params={"max_s": 1.5}) as r:
            for line in r.iter_lines():
                if line.startswith("data: ") and '"case_id"' in line:
                    seen.append(int(_json.loads(line[6:])["case_id"]))
        assert seen and set(seen) <= want, (username, sorted(set(seen) - want)[:5])
