"""Smart dispatch services: classify a complaint (category candidates, place), store the
proposal with a case, record dispatchers' corrections as labelled examples. Model versions
(train / evaluate / promote / rollback) are in ``cityops.ai.models_service``.

Other domains are reached through their service functions only: the catalogue and routing rule
(``cityops.cases.reference``), area names (``cityops.geo.service``), place names of the base data
(``cityops.registry.service``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.ai import classify as clf
from cityops.ai import models_service
from cityops.ai import place as pl
from cityops.ai.examples import _version_code
from cityops.ai.models import AiExample, AiProposal
from cityops.ai.models_service import active_model
from cityops.cases import reference as ref
from cityops.cases import service as cases
from cityops.db import database_key, utcnow
from cityops.errors import InvalidInput, NotFound, Problem
from cityops.geo import service as geo
from cityops.jobs import service as jobs
from cityops.registry import service as registry
from cityops.security import audit
from cityops.security.principal import Principal
from cityops.security.ratelimit import check_rate

REVIEW_THRESHOLD = 0.6  # top candidate's calibrated probability below this -> a person decides
PLACE_THRESHOLD = 0.5
TOP_K = 5
GAZETTEER_TTL = 300.0

_gaz: dict[str, tuple[float, pl.Gazetteer]] = {}
_gaz_lock = threading.Lock()


def gazetteer(session: Session) -> pl.Gazetteer:
    """The place-name gazetteer of this database (areas + base data), cached per process."""
    key = database_key(session)
    hit = _gaz.get(key)
    if hit is not None and time.monotonic() - hit[0] < GAZETTEER_TTL:
        return hit[1]
    g = pl.build(geo.area_names(session), registry.place_names(session))
    with _gaz_lock:
        _gaz[key] = (time.monotonic(), g)
    return g


def drop_gazetteer() -> None:
    with _gaz_lock:
        _gaz.clear()


def _department(session: Session, cat: ref.CategoryInfo, place: dict[str, Any] | None) -> str | None:
    if place and place.get("street_code"):
        p = ref.propose_route(session, cat, place.get("grid_code") or place["street_code"], place["street_code"])
        if p.department_code:
            return p.department_code
    return cat.default_department_code or (cat.co_department_codes[0] if cat.co_department_codes else None)


def classify_many(session: Session, texts: list[str], channels: list[str | None] | None = None,
                  *, with_place: bool = True) -> list[dict[str, Any]]:
    """The proposal for each text: ``{"candidates": [...top 5...], "place": {...}, "model_version",
    "needs_review"}``. Raises InvalidInput when no model has been trained yet."""
    version, model = active_model(session)
    if model is None:
        raise InvalidInput([Problem("尚无分类模型，请先训练 no classifier model yet: run `cityops classify train`",
                                    ["model"], "no_model")])
    idx, prob = clf.rank(model, texts, k=TOP_K)
    active = ref.catalogue(session)
    cats = active.by_version.get(active.active_id or -1, {})
    g = gazetteer(session) if with_place else None
    out: list[dict[str, Any]] = []
    for n, text in enumerate(texts):
        place = pl.locate_text(g, text) if g is not None else None
        cands: list[dict[str, Any]] = []
        for j, p in zip(idx[n], prob[n], strict=True):
            code = str(model.labels[j])
            info = cats.get(code)
            if info is None:
                try:
                    info = ref.resolve_category(session, code)
                except InvalidInput:
                    continue
            cands.append({"category_code": info.code, "name_zh": info.name_zh,
                          "department_code": _department(session, info, place), "score": round(float(p), 4)})
        top = float(cands[0]["score"]) if cands else 0.0
        out.append({"candidates": cands, "place": place, "model_version": version,
                    "needs_review": bool(top < REVIEW_THRESHOLD)})
    return out


def classify(session: Session, text: str, channel: str | None = None) -> dict[str, Any]:
    return classify_many(session, [text], [channel])[0]


# ---------------------------------------------------------------- proposals stored with cases


def store_proposals(session: Session, items: Sequence[tuple[int, str | None, dict[str, Any]]]) -> None:
    """Store ``(case_id, channel, proposal)`` rows (one per case; a case that has one keeps it)."""
    if not items:
        return
    have = set(session.scalars(select(AiProposal.case_id).where(AiProposal.case_id.in_([c for c, _, _ in items]))))
    for case_id, channel, p in items:
        if case_id in have:
            continue
        have.add(case_id)
        top = p["candidates"][0] if p["candidates"] else {}
        session.add(AiProposal(case_id=case_id, model_version=p.get("model_version"), channel=channel,
                               category_code=top.get("category_code"), score=float(top.get("score", 0.0)),
                               needs_review=bool(p.get("needs_review", True)), candidates=p["candidates"],
                               place=p.get("place"), created_at=utcnow()))
    session.flush()


def proposal_of(session: Session, case_id: int) -> dict[str, Any] | None:
    """The stored proposal of a case (for the console's case detail), or None."""
    r = session.scalar(select(AiProposal).where(AiProposal.case_id == case_id))
    if r is None:
        return None
    return {"case_id": r.case_id, "model_version": r.model_version, "channel": r.channel, "category_code": r.category_code,
            "score": r.score, "needs_review": r.needs_review, "candidates": r.candidates, "place": r.place,
            "decision": r.decision, "decided_at": r.decided_at, "decided_by": r.decided_by, "created_at": r.created_at}


# ---------------------------------------------------------------- corrections -> labelled examples


def record_correction(session: Session, principal: Principal, case_id: int, *, category_code: str | None = None,
                      department_code: str | None = None, street_code: str | None = None,
                      community_code: str | None = None, grid_code: str | None = None,
                      note: str | None = None) -> dict[str, Any]:
    """A dispatcher's decision on a case's proposal: the category, department and place they chose.
    Recorded as a labelled example (what differs from the proposal is listed in ``fields``); the
    proposal is marked accepted or corrected. A new category is applied to the case through
    ``cityops.cases.service.change_category``. Does not commit."""
    case = cases.case_text(session, principal, case_id)  # scoped: 404 outside the principal's area
    probs: list[Problem] = []
    cat = None
    if category_code is not None:
        try:
            cat = ref.resolve_category(session, category_code, ["body", "category_code"])
        except InvalidInput as exc:
            probs += exc.problems
    if department_code is not None and department_code not in ref.departments(session):
        probs.append(Problem(f"未知部门 unknown department {department_code!r}", ["body", "department_code"]))
    for name, code, n in (("street_code", street_code, 9), ("community_code", community_code, 12), ("grid_code", grid_code, 15)):
        if code is not None and (not code.isdigit() or len(code) != n):
            probs.append(Problem(f"{name} must be {n} digits", ["body", name]))
    if probs:
        raise InvalidInput(probs)
    prop = session.scalar(select(AiProposal).where(AiProposal.case_id == case_id))
    top = (prop.candidates[0] if prop is not None and prop.candidates else {}) or {}
    place = (prop.place if prop is not None else None) or {}
    fields = []
    chosen_cat = cat.code if cat is not None else case["category_code"]
    if chosen_cat != (top.get("category_code") or case["category_code"]):
        fields.append("category")
    if department_code is not None and department_code != top.get("department_code"):
        fields.append("department")
    for k, v in (("street_code", street_code), ("community_code", community_code), ("grid_code", grid_code)):
        if v is not None and v != place.get(k):
            fields.append(k.replace("_code", ""))
    ex = AiExample(source="correction" if fields else "confirmation", case_id=case_id, text=case["text"],
                   channel=case["channel"], category_code=chosen_cat,
                   catalogue_version=_version_code(session), department_code=department_code,
                   street_code=street_code or case["street_code"], community_code=community_code or case["community_code"],
                   grid_code=grid_code or case["grid_code"], fields=fields, actor=principal.username, note=note)
    session.add(ex)
    if cat is not None and cat.code != case["category_code"]:
        cases.change_category(session, principal, case_id, cat.code, reason=note or "智能派单纠正 proposal corrected")
    if prop is not None:
        prop.decision = "corrected" if fields else "accepted"
        prop.decided_at = utcnow()
        prop.decided_by = principal.username
    session.flush()
    audit.record(session, principal, "classify.correction", "case", str(case_id),
                 detail={"example_id": ex.id, "fields": fields, "category_code": chosen_cat})
    return {"example_id": ex.id, "case_id": case_id, "source": ex.source, "fields": fields, "category_code": chosen_cat}


def get_example(session: Session, example_id: int) -> AiExample:
    e = session.get(AiExample, example_id)
    if e is None:
        raise NotFound([Problem(f"no example {example_id}", ["path", "example_id"], "not_found")])
    return e


# ---------------------------------------------------------------- what the routes call

PUBLIC_PER_MINUTE = 60.0  # suggestions while typing (debounced in the page): a bucket per address
PUBLIC_MAX_CHARS = 500


def public_classify(session: Session, text: str, *, source_ip: str | None) -> dict[str, Any]:
    """The category suggestion of the phone report page: rate-limited per source address, text
    cut to ``PUBLIC_MAX_CHARS``; the place is not looked up (the citizen's pin gives it)."""
    per_minute = float(ref.policy(session).get("public_classify_per_minute", PUBLIC_PER_MINUTE))
    check_rate(f"classify-public:{source_ip or '-'}", per_minute, what="suggestions")
    return classify_many(session, [text[:PUBLIC_MAX_CHARS]], ["public"], with_place=False)[0]


def case_proposal(session: Session, principal: Principal, case_id: int) -> dict[str, Any]:
    cases.case_text(session, principal, case_id)  # scoped: 404 outside the principal's area
    p = proposal_of(session, case_id)
    if p is None:
        raise NotFound([Problem(f"case {case_id} has no stored proposal", ["path", "case_id"], "not_found")])
    return p


def submit_correction(session: Session, principal: Principal, body: Any) -> dict[str, Any]:
    out = record_correction(session, principal, body.case_id, category_code=body.category_code,
                            department_code=body.department_code, street_code=body.street_code,
                            community_code=body.community_code, grid_code=body.grid_code, note=body.note)
    return out


def queue_retrain(session: Session, principal: Principal) -> dict[str, Any]:
    jobs.enqueue(session, RETRAIN_TOPIC, {"requested_by": principal.username, "at": utcnow()},
                 dedupe_key=f"{RETRAIN_TOPIC}:{int(time.time() // 60)}")
    audit.record(session, principal, "classify.retrain.queue", "ai_model", None)
    return {"queued": True, "topic": RETRAIN_TOPIC}


def promote_version(session: Session, principal: Principal, version: int, force: bool) -> dict[str, Any]:
    out = models_service.promote(session, principal, version, force=force)
    return out


def rollback_version(session: Session, principal: Principal) -> dict[str, Any]:
    out = models_service.rollback(session, principal)
    return out


RETRAIN_TOPIC = "classify.retrain"
