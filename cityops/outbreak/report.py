"""The daily situation report (疫情日报) of an outbreak for one Shanghai day, in the reader's scope:
new and cumulative cases by classification and street, contacts under management and due today,
zones with their populations, supply status, the epidemic curve. HTML in the console and a PDF
printed by the console's briefing pipeline (``cityops.console.briefing.html_to_pdf``: headless
Chromium; the page names the CJK font so that Chinese renders)."""

from __future__ import annotations

import datetime as dt
import subprocess
from collections import Counter
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops import clock
from cityops.outbreak import categorise as cat
from cityops.outbreak import followup, rules, supplies, zones
from cityops.outbreak.days import TZ, local_day
from cityops.outbreak.models import OutbreakCase, SituationReport, TrackedPerson
from cityops.outbreak.scopes import CASE_SCOPE, PERSON_SCOPE, get_outbreak
from cityops.security import scope
from cityops.security.principal import Principal

GENERATE_TOPIC = "outbreak.report.generate"


def _area(principal: Principal, ob_area: str) -> str:
    code = principal.area_code
    return code if code and not principal.is_district_wide and principal.kind != "system" else ob_area


def report_data(session: Session, principal: Principal, ob_ref: str | int, day: dt.date) -> dict[str, Any]:
    from cityops.geo import service as geo

    ob = get_outbreak(session, ob_ref)
    rs = rules.get(ob.rule_set)
    names = geo.indexes(session).names
    rows = session.execute(select(OutbreakCase.classification, OutbreakCase.street_code, OutbreakCase.reported_at,
                                  OutbreakCase.onset_on).where(OutbreakCase.outbreak_id == ob.id,
                                                               scope.clause(principal, CASE_SCOPE))).all()
    rdays = [local_day(r[2]) for r in rows]
    upto = [(r, d) for r, d in zip(rows, rdays, strict=True) if d <= day]
    new = [r for r, d in upto if d == day]
    classes = list(rs.classifications)
    by_class = [{"code": k, "label": rs.classifications[k].zh, "new": sum(1 for r in new if r[0] == k),
                 "total": sum(1 for r, _d in upto if r[0] == k)} for k in classes]
    streets = sorted({r[1] for r, _d in upto if r[1]})
    by_street = [{"code": s, "name": names.get(s, s), "new": sum(1 for r in new if r[1] == s),
                  "total": sum(1 for r, _d in upto if r[1] == s)} for s in streets]
    per_day = Counter((r[3] or d) for r, d in upto)  # by onset, else by report day
    first = min(per_day) if per_day else day
    start = max(first, day - dt.timedelta(days=44))
    curve = [((start + dt.timedelta(days=i)).strftime("%m-%d"), per_day.get(start + dt.timedelta(days=i), 0))
             for i in range((day - start).days + 1)]
    keys = session.scalars(select(TrackedPerson.cat_key).where(
        TrackedPerson.outbreak_id == ob.id, TrackedPerson.category.in_(("close", "secondary")),
        TrackedPerson.monitoring_end >= day, scope.clause(principal, PERSON_SCOPE))).all()
    u = cat.unpack(np.fromiter((k or 0 for k in keys), dtype=np.int64, count=len(keys)))
    under = cat.under_management(u.category, u.last_exposure, u.monitoring_end, day.toordinal())
    due = followup.due_today(session, principal, ob.id, day, limit=0)
    zone_rows = zones.list_zones(session, principal, ob.id)
    sup = supplies.list_supplies(session, principal, ob.id)
    return {
        "outbreak": {"code": ob.code, "title": ob.title, "disease": rs.disease_zh, "rule_set": rs.name_zh},
        "day": day, "generated_at": clock.now(), "area_code": _area(principal, ob.area_code),
        "area_name": names.get(_area(principal, ob.area_code), ""),
        "new_cases": len(new), "total_cases": len(upto), "by_class": by_class, "by_street": by_street,
        "curve": curve, "close": int((under & (u.category == cat.CAT_CLOSE)).sum()),
        "secondary": int((under & (u.category == cat.CAT_SECONDARY)).sum()), "due_today": due["total"],
        "due_by_community": [{"name": c["community_name"] or c["community_code"], "count": c["count"]}
                             for c in due["communities"]],
        "zones": [z for z in zone_rows if z["level"] != "lifted"], "lifted": sum(1 for z in zone_rows
                                                                               if z["level"] == "lifted"),
        "supplies": sup, "supplies_open": sum(1 for s in sup if s["state"] == "requested"),
        "supplies_delivered": sum(1 for s in sup if s["state"] == "delivered"),
    }


def render_html(data: dict[str, Any], lang: str = "zh", *, standalone: bool = True,
                css_links: list[str] | None = None) -> str:
    """The report document: CSS inlined (the PDF), or with ``css_links`` linked stylesheets (the
    console page, under the console's style-src 'self')."""
    from cityops.console import charts
    from cityops.console.views import STATIC_DIR, templates

    fig = {"curve": charts.column_chart(data["curve"], "流行曲线（按发病/报告日期）epidemic curve", light=True,
                                        width=900, height=190, color="#b3141c"),
           "by_class": charts.hbar_chart([(c["label"], c["total"]) for c in data["by_class"]], "累计病例（按分类）",
                                         light=True, width=420)}
    css = (STATIC_DIR / "briefing.css").read_text(encoding="utf-8") if standalone and not css_links else ""
    tpl = templates.get_template("ob_report_doc.html" if standalone else "_ob_report_body.html")
    return tpl.render(d=data, fig=fig, css=css, css_links=css_links or [], lang=lang, standalone=standalone,
                      day_text=data["day"].isoformat(),
                      generated_text=data["generated_at"].astimezone(TZ).strftime("%Y-%m-%d %H:%M"))


def generate(session: Session, principal: Principal, ob_ref: str | int, day: dt.date, lang: str = "zh", *,
             pdf: bool = True) -> SituationReport:
    """Render the day's report (HTML + PDF) and store it (replacing an older one); no commit."""
    from cityops.console import briefing

    data = report_data(session, principal, ob_ref, day)
    html = render_html(data, lang)
    ob = get_outbreak(session, ob_ref)
    pdf_bytes = error = None
    if pdf:
        try:
            pdf_bytes = briefing.html_to_pdf(html)
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            error = str(exc)[:2000]
    row = session.scalar(select(SituationReport).where(SituationReport.outbreak_id == ob.id,
                                                       SituationReport.day == day,
                                                       SituationReport.area_code == data["area_code"],
                                                       SituationReport.lang == lang))
    if row is None:
        row = SituationReport(outbreak_id=ob.id, day=day, area_code=data["area_code"], lang=lang, html="",
                              generated_by="")
        session.add(row)
    row.html, row.pdf, row.pdf_error = html, pdf_bytes, error
    row.generated_at, row.generated_by = clock.now(), principal.username
    session.flush()
    return row


def stored(session: Session, principal: Principal, ob_ref: str | int, day: dt.date, lang: str) -> SituationReport | None:
    ob = get_outbreak(session, ob_ref)
    return session.scalar(select(SituationReport).where(
        SituationReport.outbreak_id == ob.id, SituationReport.day == day,
        SituationReport.area_code == _area(principal, ob.area_code), SituationReport.lang == lang))


def request_generation(session: Session, principal: Principal, ob_ref: str | int, day: dt.date, lang: str) -> None:
    """Queue the printing (the worker runs Chromium, never a request), one job per area/day/10 min."""
    from cityops.jobs import service as jobs
    from cityops.security.ratelimit import check_rate

    check_rate(f"ob-report:{principal.username}", 2.0, what="report prints")
    ob = get_outbreak(session, ob_ref)
    bucket = int(clock.now().timestamp() // 600)
    jobs.enqueue(session, GENERATE_TOPIC, {"username": principal.username, "outbreak_id": ob.id,
                                           "day": day.isoformat(), "lang": lang},
                 dedupe_key=f"{GENERATE_TOPIC}:{ob.id}:{_area(principal, ob.area_code)}:{day}:{lang}:{bucket}")
