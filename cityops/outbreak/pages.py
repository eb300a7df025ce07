"""Console pages of outbreak command: the command view (zones on the map with their counts, cases
and exposure places, the contact graph of one case, today's follow-up list per community) and the
daily report page (the same HTML the PDF is printed from). Nav entry: ``cityops.console.views.NAV``."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from cityops.console.views import render, require_page
from cityops.outbreak import console_text, report, service
from cityops.security.principal import Principal
from cityops.uow import UnitOfWork

console_text.install()
router = APIRouter(include_in_schema=False)


@router.get("/outbreak", response_class=HTMLResponse)
def outbreak_page(request: Request, outbreak: int | None = Query(None, ge=1, le=2**62),
                  principal: Principal = require_page("outbreak.read")) -> Response:
    return render(request, "outbreak.html", "outbreak", principal, boot={"outbreak": outbreak})


@router.get("/outbreak/report", response_class=HTMLResponse)
def report_page(request: Request, outbreak: int = Query(..., ge=1, le=2**62),
                date: dt.date | None = Query(None), principal: Principal = require_page("outbreak.read"),
                session: Session = UnitOfWork) -> Response:
    day = date or service.local_day(service.clock.now())
    from cityops.console.views import static_url

    html = report.render_html(report.report_data(session, principal, outbreak, day), standalone=True,
                              css_links=[static_url("console", "briefing.css"), static_url("console", "outbreak.css")])
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})
