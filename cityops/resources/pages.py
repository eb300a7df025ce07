"""Console page of the resource domain: the resources map (warehouses with stock levels, teams,
shelters, equipment on the road/river base map) and the shipments board. Server-rendered shell;
its data comes from the API (``/api/v1/resources/map``, ``/shipments``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from cityops.console import i18n
from cityops.console.views import render, require_page
from cityops.resources.console_text import MESSAGES
from cityops.security.principal import Principal

i18n.MESSAGES.update({k: v for k, v in MESSAGES.items() if k not in i18n.MESSAGES})
router = APIRouter(include_in_schema=False)


@router.get("/resources", response_class=HTMLResponse)
def resources_page(request: Request, principal: Principal = require_page("resource.read")) -> Response:
    return render(request, "rs_map.html", "resources", principal, tab="resources")
