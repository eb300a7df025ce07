"""Demo feed: synthetic reports arriving through the real intake at an accelerated but realistic
rhythm, and simulated staff and departments working them through the real workflow.

A district like Songjiang sees about 1,500 cases a day (one a minute); the feed compresses that to
one every ``interval`` seconds (default 2.5 s, about 25x) with the real mix of channels: grid
workers' reports (some found hours ago, so their first step is already late), citizen reports,
12345 work orders, Open311 requests with the demo API key, and video-AI signals. Each tick also
moves a few cases that have rested long enough one step on: 受理, 核实, 立案, 派遣 (to the proposed
department, sometimes overridden), 签收 or 退单 -> 改派, 反馈 with a photo, 核查 (some fail ->
返工), 结案, 评价. Every call goes through the service layer (``cityops.cases.service`` /
``open311_service``) as the demo accounts (``intake``, ``supervisor``, ``shiftlead``,
``dispatcher``, the departments' handlers), so timelines, SLA timers, escalations, audit rows and
outbox events are the real ones. The seed's cases are left alone (they keep the console's
overdue examples stable).

``start_background_feed()`` runs it in a daemon thread of the demo process; ``Feed.stop()`` (also
registered with ``atexit``) ends it cleanly between two ticks.
"""

from __future__ import annotations

import atexit
import datetime as dt
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cityops.cases import intake as _intake
from cityops.cases import reference as ref
from cityops.cases import schemas, service, sla
from cityops.cases.models import Case, CaseEvent
from cityops.errors import CityOpsError
from cityops.security.principal import SYSTEM, Principal

log = logging.getLogger("cityops.feed")

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d4944415478da63f8cfc0f01f0005000201a5e5d2d80000000049454e44ae426082")
CHANNELS = [("supervisor", 0.45), ("hotline", 0.25), ("public", 0.15), ("open311", 0.07), ("video_ai", 0.08)]
HOT = {"暴露垃圾": 6, "机动车乱停放": 6, "非机动车乱停放": 5, "占道经营": 5, "乱堆物堆料": 5, "店外经营": 4,
       "道路不洁": 4, "非法小广告": 4, "垃圾站（箱）满溢": 3, "积存垃圾渣土": 3, "私搭乱建": 3, "道路破损": 2,
       "路灯": 2, "上水井盖": 2, "污水井盖": 2, "绿地脏乱": 2, "施工扰民": 2, "油烟污染": 2, "道路积水": 2}
TEXTS = ["现场情况属实，请尽快处理", "影响行人通行", "已持续两天", "居民反映强烈", "位于小区出入口附近", "夜间尤其明显",
         "靠近学校，存在安全隐患", "多次发现同类问题"]
STAFF = {"intake": "intake", "supervisor": "supervisor", "shiftlead": "shiftlead", "dispatcher": "dispatcher"}
# the states the feed moves on, and who takes each action
WORKABLE = ("reported", "accepted", "verifying", "verified", "registered", "dispatched", "acknowledged", "sent_back",
            "handled", "inspecting", "inspected", "closed", "suspended")
ACTOR = {"accept": "intake", "request_verification": "intake", "request_inspection": "intake", "evaluate": "intake",
         "verify": "supervisor", "inspect": "supervisor", "register": "shiftlead", "not_register": "shiftlead",
         "void": "shiftlead", "close": "shiftlead", "rework": "shiftlead", "resume": "shiftlead",
         "dispatch": "dispatcher", "reassign": "dispatcher", "acknowledge": "dept", "send_back": "dept",
         "report_back": "dept"}


@dataclass
class FeedStats:
    ticks: int = 0
    reports: dict[str, int] = field(default_factory=dict)
    actions: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    last_error: str | None = None


class Feed:
    def __init__(self, *, interval: float = 2.5, work_per_tick: int = 6, min_rest_s: float = 20.0,
                 seed: int | None = None, maker: sessionmaker[Session] | None = None) -> None:
        from cityops.db import get_sessionmaker

        self.interval = interval
        self.work_per_tick = work_per_tick
        self.min_rest = dt.timedelta(seconds=min_rest_s)
        self.rng = np.random.default_rng(seed)
        self.maker = maker or get_sessionmaker()
        self.stats = FeedStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ready = False
        self._grids: list[Any] = []
        self._cats: list[ref.CategoryInfo] = []
        self._weights: np.ndarray = np.array([])
        self._staff: dict[str, Principal] = {}
        self._dept_perms: frozenset[str] = frozenset()
        self._depts: dict[str, Principal] = {}
        self._photo: str | None = None
        self._open311_key: str | None = None

    # -------------------------------------------------------------- setup

    def _setup(self, session: Session) -> None:
        from cityops.geo.models import Area
        from cityops.security import service as security
        from cityops.security.models import Account

        self._grids = [g for g in session.execute(select(Area.code, Area.geom).where(
            Area.level == "grid", Area.valid_to.is_(None))).all()]
        cat = ref.catalogue(session)
        self._cats = [c for c in cat.by_version.get(cat.active_id or -1, {}).values() if c.enabled]
        w = np.array([float(HOT.get(c.name_zh, 1)) for c in self._cats])
        self._weights = w / w.sum() if len(w) else w
        have = set(session.scalars(select(Account.username).where(Account.username.in_(
            [*STAFF.values(), "cgzf_handler", "lhsr_handler", "sw_handler", "yy_centre_handler"]))))
        for key, username in STAFF.items():
            self._staff[key] = security.principal_for_username(session, username) if username in have else SYSTEM
        self._dept_perms = frozenset(security.role_permissions(session).get("dept_handler", set()))
        for username in ("cgzf_handler", "lhsr_handler", "sw_handler", "yy_centre_handler"):
            if username in have:
                p = security.principal_for_username(session, username)
                if p.department_code:
                    self._depts[p.department_code] = p
        self._photo = _intake.save_media(session, self._staff["supervisor"], [("feed.png", PNG)])[0]["id"]
        session.commit()
        try:
            from cityops.security.models import ApiKey
            from cityops.security.seed import demo_key

            if session.scalar(select(ApiKey.id).where(ApiKey.name == "demo-open311", ApiKey.revoked_at.is_(None))):
                self._open311_key = demo_key("demo-open311")
        except ImportError:  # pragma: no cover
            self._open311_key = None
        session.rollback()
        self._ready = bool(self._grids and self._cats)

    def dept_principal(self, code: str) -> Principal:
        """The department's demo handler, or a stand-in handler of that department."""
        p = self._depts.get(code)
        if p is None:
            p = Principal(username=f"{code}_handler", kind="user", roles=frozenset({"dept_handler"}),
                          permissions=self._dept_perms, area_code="310117", department_code=code)
            self._depts[code] = p
        return p

    # -------------------------------------------------------------- arrivals

    def _where(self) -> tuple[float, float]:
        from shapely.geometry import Point

        g = self._grids[int(self.rng.integers(0, len(self._grids)))].geom
        minx, miny, maxx, maxy = g.bounds
        for _ in range(20):
            x, y = float(self.rng.uniform(minx, maxx)), float(self.rng.uniform(miny, maxy))
            if g.contains(Point(x, y)):
                return x, y
        p = g.representative_point()
        return float(p.x), float(p.y)

    def arrive(self, session: Session, channel: str | None = None) -> dict[str, Any] | None:
        """One new report through the real intake path of its channel (committed)."""
        ch = channel or str(self.rng.choice([c for c, _ in CHANNELS], p=[p for _, p in CHANNELS]))
        cat = self._cats[int(self.rng.choice(len(self._cats), p=self._weights))]
        lon, lat = self._where()
        text = f"{cat.name_zh}：{str(self.rng.choice(TEXTS))}"
        from cityops.geo.demo import fake_mobile, fake_name

        if ch == "supervisor":
            found = None
            if self.rng.random() < 0.12:  # found hours ago: its first step may already be late
                found = sla.now() - dt.timedelta(hours=float(self.rng.uniform(1, 8)))
            body = schemas.ReportCreate(category_code=cat.code, lat=lat, lon=lon, description=text,
                                        media=[self._photo] if self._photo else [], source="supervisor",
                                        reported_at=found, self_handled=bool(self.rng.random() < 0.04))
            _st, out, _r = service.submit_report(session, self._staff["supervisor"], body)
        elif ch == "public":
            pbody = schemas.PublicReportCreate(category_code=cat.code, lat=lat, lon=lon, description=text,
                                               reporter_name=fake_name(self.rng), reporter_phone=fake_mobile(self.rng))
            _st, out, _r = service.submit_public_report(session, pbody, source_ip="127.0.0.2", channel="app")
        elif ch == "hotline":
            order = {"order_id": f"FEED-{sla.now():%Y%m%d}-{uuid.uuid4().hex[:10]}", "received_at": sla.now().isoformat(),
                     "category_code": cat.code, "lat": lat, "lon": lon, "content": f"市民来电反映：{text}",
                     "appeal_type": str(self.rng.choice(["complaint", "help", "tip_off"])),
                     "caller_name": fake_name(self.rng), "caller_phone": fake_mobile(self.rng)}
            res = service.import_hotline(session, self._staff["intake"], [order])
            out = res["items"][0]
        elif ch == "open311" and self._open311_key:
            from cityops.cases import open311_service as o311

            form = o311.Form({"api_key": self._open311_key, "service_code": cat.code, "lat": str(lat),
                              "long": str(lon), "description": text}, {})
            defs = [a for a in o311.attributes_for(cat) if a["variable"] and a["required"]]
            for a in defs:
                v = a["values"][0]["key"] if a["values"] else "1"
                key = f"attribute[{a['code']}]" + ("[]" if a["datatype"] == "multivaluelist" else "")
                form.single[key] = v
                form.multi[key] = [v]
            got = o311.create_request(session, form, header_key=None, source_ip="127.0.0.3")
            out = {"case_no": got[0]["service_request_id"]}
        else:
            ch = "video_ai"
            sig = schemas.SignalIn(source="video_ai", device_id=f"cam-{int(self.rng.integers(1, 400)):04d}",
                                   signal_type=cat.name_zh, category_code=cat.code, lat=lat, lon=lon,
                                   confidence=float(self.rng.uniform(0.55, 0.99)))
            _st, out, _r = service.ingest_signal(session, SYSTEM, sig)
        session.commit()  # the feed is a job: one unit of work per arrival
        self.stats.reports[ch] = self.stats.reports.get(ch, 0) + 1
        return out

    # -------------------------------------------------------------- work

    def _choose(self, session: Session, case: Any) -> tuple[str, dict[str, Any]] | None:
        r = float(self.rng.random())
        st = case.state
        if st == "reported":
            return ("void", {"reason": "重复上报 duplicate report"}) if r < 0.03 else ("accept", {"note": "受理"})
        if st == "accepted":
            trusted = case.source in ref.policy(session).get("trusted_sources", [])
            return ("register", {}) if trusted else ("request_verification", {})
        if st == "verifying":
            ok = r > 0.07
            return "verify", {"result": "valid" if ok else "invalid", "photos": [self._photo],
                              "note": "现场核实属实" if ok else "现场未发现该问题"}
        if st == "verified":
            if case.verification_result == "valid":
                return "register", {}
            return "not_register", {"reason": "经核实不属于立案范围 not within the registration criteria"}
        if st == "registered":
            dept = case.proposed_department_code or ref.territory_department(case.street_code)
            if r < 0.05:
                others = [d for d, v in ref.departments(session).items() if v.active and v.kind != "command_centre"]
                dept = str(self.rng.choice(sorted(others))) if others else dept
            return "dispatch", {"department_code": dept, "note": "请按时限处置"}
        if st == "dispatched":
            if r < 0.05:
                return "send_back", {"reason": "非本单位职责，请改派 not our responsibility"}
            return "acknowledge", {}
        if st == "sent_back":
            last = session.scalar(select(CaseEvent.department_code).where(
                CaseEvent.case_id == case.id, CaseEvent.action == "send_back").order_by(CaseEvent.id.desc()).limit(1))
            cat = ref.category_by_id(session, case.category_id)
            p = ref.propose_route(session, cat, case.grid_code, case.street_code)
            dept = p.department_code if p.department_code and p.department_code != last \
                else ref.territory_department(case.street_code)
            return "reassign", {"department_code": dept, "reason": "改派至责任单位"}
        if st == "acknowledged":
            return "report_back", {"photos": [self._photo], "note": "已处置完毕"}
        if st == "handled":
            return "request_inspection", {}
        if st == "inspecting":
            ok = r > 0.15
            return "inspect", {"result": "pass" if ok else "fail", "photos": [self._photo],
                               "note": "核查通过" if ok else "问题仍存在"}
        if st == "inspected":
            if case.inspection_result == "pass":
                return "close", {"note": "核查通过，结案"}
            return "rework", {"reason": "核查未通过，返工 the problem remains"}
        if st == "closed":
            sat = "satisfied" if r < 0.8 else "basically_satisfied" if r < 0.95 else "unsatisfied"
            return "evaluate", {"satisfaction": sat, "note": "电话回访"}
        if st == "suspended":
            return "resume", {}
        return None

    def work(self, session: Session, limit: int | None = None) -> int:
        """Move up to ``limit`` rested cases (not the seed's) one step on; returns actions taken."""
        cutoff = sla.now() - self.min_rest
        rows = session.execute(select(Case.id).where(
            Case.state.in_(WORKABLE), Case.created_by != "seed", Case.updated_at <= cutoff,
            Case.duplicate_of_id.is_(None)).order_by(func.random()).limit(limit or self.work_per_tick)).scalars().all()
        session.rollback()
        done = 0
        for cid in rows:
            case = session.get(Case, cid)
            if case is None:
                continue
            choice = self._choose(session, case)
            if choice is None:
                continue
            action, body = choice
            who = ACTOR.get(action, "shiftlead")
            principal = self.dept_principal(case.lead_department_code) if who == "dept" and case.lead_department_code \
                else self._staff.get(who, SYSTEM)
            session.rollback()
            try:
                service.act(session, principal, cid, action, schemas.ActionIn(**body))
                session.commit()  # one unit of work per simulated action
                self.stats.actions[action] = self.stats.actions.get(action, 0) + 1
                done += 1
            except CityOpsError as exc:  # a concurrent change, a guard: try another case next tick
                session.rollback()
                log.debug("feed: %s on case %s refused: %s", action, cid, exc)
        return done

    # -------------------------------------------------------------- loop

    def tick(self) -> None:
        with self.maker() as session:
            if not self._ready:
                self._setup(session)
                if not self._ready:
                    return
            try:
                self.arrive(session)
            except CityOpsError as exc:
                session.rollback()
                log.debug("feed: report refused: %s", exc)
            self.work(session)
        self.stats.ticks += 1

    def run(self) -> None:
        log.info("demo feed started: a report every ~%.1f s", self.interval)
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - keep the demo going; the error is logged
                self.stats.errors += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("demo feed tick failed: %s", self.stats.last_error)
            # exponential gaps around the mean interval (a Poisson stream of reports)
            self._stop.wait(min(self.interval * 4, float(self.rng.exponential(self.interval))))
        log.info("demo feed stopped after %d ticks", self.stats.ticks)

    def start(self) -> Feed:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self.run, name="cityops-demo-feed", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 15.0) -> bool:
        """Ask the loop to end and wait for the current tick to finish. True when it stopped."""
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)
            return not t.is_alive()
        return True

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


def start_background_feed(interval: float | None = None, **kw: Any) -> Feed:
    """Start the demo feed in a daemon thread of this process (``cityops demo``). The interval
    comes from ``CITYOPS_FEED_INTERVAL`` (seconds, default 2.5)."""
    if interval is None:
        interval = float(os.environ.get("CITYOPS_FEED_INTERVAL", "2.5"))
    feed = Feed(interval=interval, **kw).start()
    atexit.register(feed.stop, 5.0)
    return feed


def wait_until(cond: Any, timeout: float = 30.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False
