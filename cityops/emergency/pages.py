"""Console pages of emergency command (server-rendered shells; their data comes from the API):
incidents, the incident command view, tasks (a department's to-do), warnings, the plan library and
the flat-reporting dashboard. Nav entries per permission: ``cityops.console.views.NAV``."""

from __future__ import annotations

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, Response

from cityops.console import i18n
from cityops.console.views import render, require_page
from cityops.emergency.console_text import MESSAGES
from cityops.security.principal import Principal

i18n.MESSAGES.update({k: v for k, v in MESSAGES.items() if k not in i18n.MESSAGES})
router = APIRouter(include_in_schema=False)


@router.get("/emergency", response_class=HTMLResponse)
def incidents_page(request: Request, principal: Principal = require_page("incident.read")) -> Response:
    return render(request, "em_incidents.html", "emergency", principal, tab="incidents")


@router.get("/emergency/incidents/{incident_id}", response_class=HTMLResponse)
def command_page(request: Request, incident_id: int = Path(..., ge=1, le=2**62),
                 principal: Principal = require_page("incident.read")) -> Response:
    return render(request, "em_command.html", "emergency", principal, tab="incidents", incident_id=incident_id,
                  boot={"incident_id": incident_id})


@router.get("/emergency/tasks", response_class=HTMLResponse)
def tasks_page(request: Request, principal: Principal = require_page("incident.read")) -> Response:
    return render(request, "em_tasks.html", "emergency", principal, tab="tasks")


@router.get("/emergency/warnings", response_class=HTMLResponse)
def warnings_page(request: Request, principal: Principal = require_page("warning.read")) -> Response:
    return render(request, "em_warnings.html", "em_warnings", principal, tab="warnings")


@router.get("/emergency/plans", response_class=HTMLResponse)
def plans_page(request: Request, principal: Principal = require_page("plan.read")) -> Response:
    return render(request, "em_plans.html", "em_plans", principal, tab="plans")


@router.get("/emergency/reporting", response_class=HTMLResponse)
def reporting_page(request: Request, principal: Principal = require_page("incident.read")) -> Response:
    return render(request, "em_reporting.html", "em_reporting", principal, tab="reporting")
