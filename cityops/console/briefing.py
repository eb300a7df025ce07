"""The daily briefing (城运日报): yesterday's figures, a map and charts, as printable HTML and a PDF.

* ``briefing_data`` computes the figures of one Shanghai calendar day within the caller's scope;
* ``render_html`` renders them (``standalone=True``: one self-contained document with its CSS
  inlined and every chart/map as inline SVG, nothing loaded from anywhere);
* ``html_to_pdf`` prints that document with Debian's headless Chromium (``--print-to-pdf``);
* ``generate`` stores HTML + PDF in ``console_briefing`` (on demand, and every morning from the
  ``console.briefing`` timer run by ``cityops worker``, see ``cityops.console.jobs``).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from cityops.cases.models import Case
from cityops.console import charts, i18n, service
from cityops.console.models import Briefing
from cityops.console.snapshot import reading
from cityops.console.views import STATIC_DIR, templates
from cityops.db import utcnow
from cityops.errors import InvalidInput, Problem
from cityops.geo.models import Area
from cityops.security.principal import SYSTEM, Principal, code_prefix_clause

CHROMIUM = os.environ.get("CITYOPS_CHROMIUM", "/usr/bin/chromium")
SCHEDULE_HOUR = 6  # the daily briefing of yesterday is generated at 06:00 Asia/Shanghai


def default_day(now: dt.datetime | None = None) -> dt.date:
    """Yesterday in Shanghai."""
    now = now or utcnow()
    return now.astimezone(i18n.TZ).date() - dt.timedelta(days=1)


def parse_day(value: str | None) -> dt.date:
    if not value:
        return default_day()
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidInput([Problem("日期格式应为 YYYY-MM-DD date must be YYYY-MM-DD", ["query", "date"])])
    if day > i18n.today_local():
        raise InvalidInput([Problem("日期不能晚于今天 date may not be in the future", ["query", "date"])])
    return day


def _scope_area(principal: Principal) -> str:
    code = principal.area_code
    return code if code and len(code) > 6 and principal.kind != "system" else "310117"


def briefing_data(session: Session, principal: Principal, day: dt.date, lang: str = "zh",
                  now: dt.datetime | None = None) -> dict[str, Any]:
    from cityops.cases import sla as case_sla

    now = now or case_sla.now()
    start, end = i18n.local_day_bounds(day)
    prev_start = start - dt.timedelta(days=1)
    scope = service._scope_clause(principal)
    in_day = and_(Case.reported_at >= start, Case.reported_at < end)
    closed_in_day = and_(Case.closed_at >= start, Case.closed_at < end)
    open_now = service.is_open()
    row = session.execute(select(
        func.sum(case((in_day, 1), else_=0)),
        func.sum(case((and_(Case.reported_at >= prev_start, Case.reported_at < start), 1), else_=0)),
        func.sum(case((closed_in_day, 1), else_=0)),
        func.sum(case((and_(closed_in_day, Case.overdue_count == 0), 1), else_=0)),
        func.sum(case((and_(Case.dispatched_at >= start, Case.dispatched_at < end), 1), else_=0)),
        func.sum(case((and_(open_now, Case.due_at <= now), 1), else_=0)),
        func.sum(case((open_now, 1), else_=0)),
    ).where(scope)).one()
    intake, intake_prev, closed, ontime, dispatched, overdue, open_ = (int(x or 0) for x in row)

    names = service.area_names(session)
    area_code = _scope_area(principal)
    sub_level = "street" if len(area_code) == 6 else "community" if len(area_code) == 9 else "grid"
    col = {"street": Case.street_code, "community": Case.community_code, "grid": Case.grid_code}[sub_level]
    rows = session.execute(select(
        col, func.sum(case((in_day, 1), else_=0)), func.sum(case((closed_in_day, 1), else_=0)),
        func.sum(case((and_(closed_in_day, Case.overdue_count == 0), 1), else_=0)),
        func.sum(case((and_(open_now, Case.due_at <= now), 1), else_=0)))
        .where(scope, code_prefix_clause(col, area_code)).group_by(col)).all()
    by_area = []
    for code, n_in, n_closed, n_ontime, n_over in rows:
        nm = names.get(code)
        by_area.append({"code": code, "name": ((nm[1] or nm[0]) if lang == "en" else nm[0]) if nm else code,
                        "intake": int(n_in or 0), "closed": int(n_closed or 0),
                        "rate": (n_ontime or 0) / n_closed if n_closed else None, "overdue": int(n_over or 0)})
    by_area.sort(key=lambda r: (-r["intake"], r["code"]))

    cats = service.category_names(session)
    top_cats = session.execute(select(Case.category_code, func.count()).where(scope, in_day)
                               .group_by(Case.category_code).order_by(func.count().desc()).limit(10)).all()
    by_cat = [(((cats[c][1] or cats[c][0]) if lang == "en" else cats[c][0]) if c in cats else c, int(n)) for c, n in top_cats]
    by_src = [(service.label(service.SOURCE_LABELS, s, lang), int(n)) for s, n in session.execute(
        select(Case.source, func.count()).where(scope, in_day).group_by(Case.source).order_by(func.count().desc()))]
    hours = [0] * 24
    for (at,) in session.execute(select(Case.reported_at).where(scope, in_day)):
        hours[at.astimezone(i18n.TZ).hour] += 1
    sla = service.sla_expr(now)
    points = [(float(r.lon), float(r.lat), r[2]) for r in session.execute(
        select(Case.lon, Case.lat, sla).where(scope, in_day).limit(4000))]
    over_rows = session.scalars(select(Case).where(scope, open_now, Case.due_at <= now)
                                .order_by(Case.due_at).limit(15)).all()
    overdue_list = [{"case_no": c.case_no, "id": c.id,
                     "category": ((cats[c.category_code][1] or cats[c.category_code][0]) if lang == "en"
                                  else cats[c.category_code][0]) if c.category_code in cats else c.category_code,
                     "area": service.area_name(session, c.street_code, lang),
                     "state": service.state_label(c.state, lang), "due": i18n.local_time(c.due_at),
                     "late_h": round((now - c.due_at).total_seconds() / 3600, 1) if c.due_at else None}
                    for c in over_rows]
    map_areas = [(r.code, ((r.name_en or r.name) if lang == "en" else r.name), r.geom) for r in session.execute(
        select(Area.code, Area.name, Area.name_en, Area.geom).where(Area.level == sub_level, Area.valid_to.is_(None),
                                                                     code_prefix_clause(Area.code, area_code)))]
    values = {r["code"]: float(r["intake"]) for r in by_area}
    area_name = names.get(area_code, ("松江区",))[0] if lang != "en" else (names.get(area_code, (None, "Songjiang"))[1] or "Songjiang")
    return {
        "day": day, "area_code": area_code, "area_name": area_name, "sub_level": sub_level,
        "generated_at": now, "lang": lang,
        "intake": intake, "intake_prev": intake_prev, "closed": closed, "ontime": ontime,
        "ontime_rate": ontime / closed if closed else None, "dispatched": dispatched,
        "overdue": overdue, "open": open_, "by_area": by_area, "by_cat": by_cat, "by_src": by_src,
        "hours": hours, "points": points, "overdue_list": overdue_list, "map_areas": map_areas, "values": values,
    }


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x * 100:.1f}%"


def render_html(data: dict[str, Any], lang: str, *, standalone: bool, request: Any = None,
                user: dict[str, Any] | None = None) -> str:
    def t(key: str, **kw: Any) -> str:
        return i18n.translate(key, lang, **kw)

    light = True
    figures = {
        "map": charts.map_svg(data["map_areas"], data["values"], data["points"], t("brief.map"), light=light,
                              width=620, height=470),
        "hourly": charts.column_chart([(f"{h:02d}", v) for h, v in enumerate(data["hours"])], t("brief.hourly"),
                                      light=light, width=900, height=170),
        "by_cat": charts.hbar_chart(data["by_cat"], t("brief.by_category"), light=light, width=420),
        "by_src": charts.hbar_chart(data["by_src"], t("brief.by_source"), light=light, width=420, color="#2f9e44"),
    }
    delta = data["intake"] - data["intake_prev"]
    ctx = {
        "t": t, "lang": lang, "d": data, "fig": figures, "pct": _pct, "standalone": standalone,
        "delta": delta, "day_text": data["day"].isoformat(),
        "generated_text": i18n.local_time(data["generated_at"], "%Y-%m-%d %H:%M"),
        "css": (STATIC_DIR / "briefing.css").read_text(encoding="utf-8") if standalone else "",
    }
    tpl = templates.get_template("briefing_doc.html" if standalone else "_briefing_body.html")
    return tpl.render(**ctx)


def chromium_version() -> str | None:
    if not Path(CHROMIUM).exists():
        return None
    try:
        out = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip().splitlines()[-1] if out.strip() else "chromium"


def html_to_pdf(html: str, timeout: float = 90.0) -> bytes:
    """Print a self-contained HTML document to PDF with headless Chromium (A4, backgrounds on)."""
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} not found: install Debian's chromium (scripts/browser.sh)")
    work = Path(tempfile.mkdtemp(prefix="cityops-briefing-"))
    try:
        src = work / "briefing.html"
        out = work / "briefing.pdf"
        src.write_text(html, encoding="utf-8")
        cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
               f"--user-data-dir={work / 'profile'}", "--no-pdf-header-footer", "--print-to-pdf-no-header",
               f"--print-to-pdf={out}", src.as_uri()]
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, env={**os.environ, "HOME": str(work)})
        if not out.exists() or out.stat().st_size == 0:
            raise RuntimeError(f"chromium produced no PDF (exit {proc.returncode}): "
                               f"{proc.stderr.decode('utf-8', 'replace')[-500:]}")
        return out.read_bytes()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def generate(session: Session, principal: Principal, day: dt.date, lang: str = "zh", *, by: str | None = None,
             pdf: bool = True, store: bool = True) -> Briefing:
    """Render (and store) the briefing of ``day`` for the principal's area; replaces an older one.

    The figures are read and the PDF printed without holding a write transaction; only the
    final upsert of the row runs in ``session`` (the caller's unit of work commits it: the request's,
    or the worker's with the timer's own)."""
    with reading(session) as rs:
        data = briefing_data(rs, principal, day, lang)
    html = render_html(data, lang, standalone=True)
    pdf_bytes = engine_name = error = None
    if pdf:
        try:
            pdf_bytes = html_to_pdf(html)
            engine_name = (chromium_version() or "chromium")[:120]
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            error = str(exc)[:2000]
    row = session.scalar(select(Briefing).where(Briefing.day == day, Briefing.area_code == data["area_code"],
                                                Briefing.lang == lang))
    if row is None:
        row = Briefing(day=day, area_code=data["area_code"], lang=lang, html="", generated_by="")
        if store:
            session.add(row)
    row.html = html
    row.generated_at = utcnow()
    row.generated_by = by or principal.username
    row.pdf, row.pdf_engine, row.pdf_error = pdf_bytes, engine_name, error
    if store:
        session.flush()
    return row


GENERATE_TOPIC = "console.briefing.generate"
REGENERATE_PER_MINUTE = 2.0


def request_generation(session: Session, principal: Principal, day: dt.date, lang: str) -> None:
    """Queue the printing of a day's briefing for the principal's area (the worker runs Chromium, never a
    request); rate-limited per account, one queued job per area, day and language at a time."""
    from cityops.jobs import service as jobs
    from cityops.security.ratelimit import check_rate

    check_rate(f"briefing-generate:{principal.username}", REGENERATE_PER_MINUTE, what="briefing prints")
    area = _scope_area(principal)
    bucket = int(utcnow().timestamp() // 600)  # at most one job per area, day and language each 10 minutes
    jobs.enqueue(session, GENERATE_TOPIC, {"username": principal.username, "day": day.isoformat(), "lang": lang},
                 dedupe_key=f"{GENERATE_TOPIC}:{area}:{day.isoformat()}:{lang}:{bucket}")


def stored(session: Session, principal: Principal, day: dt.date, lang: str) -> Briefing | None:
    return session.scalar(select(Briefing).where(Briefing.day == day, Briefing.area_code == _scope_area(principal),
                                                 Briefing.lang == lang))


def archive(session: Session, principal: Principal, limit: int = 14) -> list[dict[str, Any]]:
    rows = session.execute(select(Briefing.day, Briefing.lang, Briefing.generated_at, Briefing.generated_by,
                                  Briefing.pdf_engine, Briefing.pdf_error)
                           .where(Briefing.area_code == _scope_area(principal))
                           .order_by(Briefing.day.desc()).limit(limit)).all()
    return [{"day": r.day.isoformat(), "lang": r.lang, "generated_at": i18n.local_time(r.generated_at),
             "by": r.generated_by, "pdf": r.pdf_error is None and r.pdf_engine is not None} for r in rows]


def next_run(now: dt.datetime | None = None) -> dt.datetime:
    """The next 06:00 in Shanghai after ``now``, in UTC."""
    now = (now or utcnow()).astimezone(i18n.TZ)
    at = now.replace(hour=SCHEDULE_HOUR, minute=0, second=0, microsecond=0)
    if at <= now:
        at += dt.timedelta(days=1)
    return at.astimezone(dt.UTC)


def scheduled_run(session: Session, now: dt.datetime | None = None) -> Briefing:
    """What the daily timer does: yesterday's district briefing, HTML + PDF, by the system."""
    return generate(session, SYSTEM, default_day(now), "zh", by="schedule")
