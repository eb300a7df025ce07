"""Page rendering for the console: Jinja2 templates, static bundles, the page access rule.

Pages are server-rendered (Jinja2) and enhanced by small vanilla JS modules of our own in
``static/``. Third-party browser code (Leaflet, Leaflet.markercluster) is served from the
installed xstatic packages, never copied into the repository and never loaded from the internet.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import xstatic.pkg.leaflet as xs_leaflet
import xstatic.pkg.leaflet_markercluster as xs_markercluster
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.staticfiles import StaticFiles

from cityops.console import i18n
from cityops.errors import CityOpsError
from cityops.security.deps import Permission
from cityops.security.principal import Principal

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
TEMPLATE_DIR = HERE / "templates"

# bundle name -> folder; served at /static/{bundle}/{path}
BUNDLES: dict[str, Path] = {
    "console": STATIC_DIR,
    "leaflet": Path(xs_leaflet.BASE_DIR),
    "markercluster": Path(xs_markercluster.BASE_DIR),
}
_static_apps = {name: StaticFiles(directory=str(path)) for name, path in BUNDLES.items()}


def _asset_version() -> str:
    h = hashlib.sha1()
    for p in sorted(STATIC_DIR.glob("*")):
        if p.is_file():
            h.update(p.name.encode())
            h.update(p.read_bytes())
    h.update(xs_leaflet.VERSION.encode())
    h.update(xs_markercluster.VERSION.encode())
    return h.hexdigest()[:10]


ASSET_VERSION = _asset_version()


async def static_response(bundle: str, path: str, request: Request) -> Response:
    app = _static_apps.get(bundle)
    if app is None or ".." in path.split("/"):
        return Response(status_code=404)
    resp = await app.get_response(path, request.scope)
    if resp.status_code in (200, 304):
        # versioned URLs (?v=...) never change; unversioned ones revalidate by ETag
        resp.headers["Cache-Control"] = ("public, max-age=31536000, immutable" if request.query_params.get("v")
                                         else "no-cache")
    return resp


templates = Jinja2Templates(directory=str(TEMPLATE_DIR))
templates.env.globals["ASSET_VERSION"] = ASSET_VERSION
templates.env.filters["localtime"] = i18n.local_time


def static_url(bundle: str, path: str) -> str:
    return f"/static/{bundle}/{path}?v={ASSET_VERSION}"


templates.env.globals["static_url"] = static_url

# (key, href, label, permission): an entry is shown to principals holding its permission (the pages of
# every domain; a page checks the same permission itself)
NAV: list[tuple[str, str, str, str]] = [
    ("inbox", "/inbox", "nav.inbox", "case.read"),
    ("console", "/", "nav.console", "console.view"),
    ("cases", "/cases", "nav.cases", "case.read"),
    ("vitals", "/vitals", "nav.vitals", "indicator.read"),
    ("health", "/health", "nav.health", "health.read"),
    ("workstation", "/workstation", "nav.workstation", "console.view"),
    ("report", "/report", "nav.report", "case.report"),
    ("evaluation", "/evaluation", "nav.evaluation", "evaluation.read"),
    ("briefing", "/briefing", "nav.briefing", "console.view"),
    ("emergency", "/emergency", "nav.emergency", "incident.read"),
    ("em_warnings", "/emergency/warnings", "nav.em_warnings", "warning.read"),
    ("em_plans", "/emergency/plans", "nav.em_plans", "plan.read"),
    ("em_reporting", "/emergency/reporting", "nav.em_reporting", "incident.read"),
    ("outbreak", "/outbreak", "nav.outbreak", "outbreak.read"),
    ("resources", "/resources", "nav.resources", "resource.read"),
]


# entries reached from their parent's page (its tabs): in the top bar only for an account that may
# not open the parent
NAV_PARENT: dict[str, str] = {"em_warnings": "emergency", "em_plans": "emergency", "em_reporting": "emergency",
                              "resources": "emergency"}


def nav_for(principal: Principal | None) -> list[tuple[str, str, str]]:
    """The top-bar entries this principal may use."""
    if principal is None:
        return []
    allowed = {k for k, _h, _l, perm in NAV if principal.can(perm)}
    return [(k, h, label) for k, h, label, _perm in NAV
            if k in allowed and NAV_PARENT.get(k) not in allowed]


_display_names: dict[int, tuple[float, str | None]] = {}


def display_name(principal: Principal) -> str | None:
    """The account's display name (e.g. 区城运中心派遣员), cached for a minute."""
    import time

    if principal.account_id is None:
        return None
    hit = _display_names.get(principal.account_id)
    if hit is not None and time.monotonic() - hit[0] < 60:
        return hit[1]
    from sqlalchemy import select

    from cityops.console.snapshot import reading
    from cityops.db import get_sessionmaker
    from cityops.security.models import Account

    # a read-only connection: the request's own session may hold SQLite's write lock already
    with get_sessionmaker()() as s0, reading(s0) as s:
        name = s.scalar(select(Account.display_name).where(Account.id == principal.account_id))
    _display_names[principal.account_id] = (time.monotonic(), name)
    return name


def user_info(principal: Principal | None, lang: str) -> dict[str, Any] | None:
    if principal is None or principal.kind == "anonymous":
        return None
    role_labels: list[str] = []
    try:
        from cityops.security.catalog import ROLES

        for r in sorted(principal.roles):
            if r in ROLES:
                role_labels.append(ROLES[r][1] if lang == "en" else ROLES[r][0])
            else:
                role_labels.append(r)
    except ImportError:  # pragma: no cover
        role_labels = sorted(principal.roles)
    return {
        "username": principal.username,
        "display_name": display_name(principal),
        "roles": sorted(principal.roles),
        "role_labels": role_labels,
        "area_code": principal.area_code,
        "department_code": principal.department_code,
        "permissions": sorted(principal.permissions),
        "district_wide": principal.is_district_wide,
    }


def safe_next(value: str | None) -> str:
    """Where to go after signing in: only a same-origin relative path ("/cases?x=1"), else "/".

    Refused: absolute and scheme-relative URLs ("//evil", "https://evil"), backslashes (browsers
    read "/\\evil" as "//evil"), control characters and white space, percent-encoded slashes or
    backslashes at the start ("/%5Cevil", "/%2F%2Fevil")."""
    from urllib.parse import unquote, urlsplit

    if not value or not value.startswith("/") or len(value) > 500:
        return "/"
    decoded = unquote(value)
    for v in (value, decoded):
        if v.startswith("//") or "\\" in v or any(ord(ch) < 33 or ord(ch) == 127 for ch in v):
            return "/"
        parts = urlsplit(v)
        if parts.scheme or parts.netloc:
            return "/"
    return value


def render(request: Request, template: str, page: str, principal: Principal | None,
           status_code: int = 200, **context: Any) -> HTMLResponse:
    lang = i18n.pick_lang(request)

    def t(key: str, **kw: Any) -> str:
        return i18n.translate(key, lang, **kw)

    user = user_info(principal, lang)
    boot = {
        "lang": lang,
        "page": page,
        "user": user,
        "i18n": i18n.catalogue(lang),
        "tz": "Asia/Shanghai",
        "data": context.get("boot", {}),
    }
    ctx = {
        "t": t, "lang": lang, "page": page, "user": user, "nav": nav_for(principal), "nav_parent": NAV_PARENT,
        "other_lang": "en" if lang == "zh" else "zh",
        "boot_json": json.dumps(boot, ensure_ascii=False).replace("</", "<\\/"),
        "request_path": request.url.path,
        **context,
    }
    resp = templates.TemplateResponse(request, template, ctx, status_code=status_code)
    if request.query_params.get("lang") in i18n.LANGS:
        resp.set_cookie(i18n.COOKIE, lang, max_age=365 * 86400, samesite="lax", httponly=False)
    resp.headers["Cache-Control"] = "no-store"
    return resp


class LoginRequired(Exception):
    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


class PageForbidden(Exception):
    def __init__(self, principal: Principal, permission: str) -> None:
        self.principal = principal
        self.permission = permission


class PagePermission(Permission):
    """The access rule of a console page: like ``require(name)`` (it IS a ``Permission``, so the
    route table shows the rule), but a visitor who is not signed in is sent to the login page
    and a signed-in user without the permission gets a readable page instead of JSON."""

    def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        from cityops.security.deps import get_principal

        nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        try:
            principal = get_principal(request)
        except CityOpsError as exc:
            if exc.status_code in (401, 403):
                raise LoginRequired(nxt)
            raise
        if principal.kind == "anonymous":
            raise LoginRequired(nxt)
        if not principal.can(self.name):
            raise PageForbidden(principal, self.name)
        return principal


def require_page(name: str) -> Any:
    from fastapi import Depends

    return Depends(PagePermission(name))


async def login_required_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    return RedirectResponse(f"/login?next={quote(exc.next_url, safe='/')}", status_code=303)


async def page_forbidden_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageForbidden)
    return render(request, "forbidden.html", "forbidden", exc.principal, status_code=403)
