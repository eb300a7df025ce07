"""Model versions of smart dispatch: train on the corpus + corrections, evaluate on the fixed
held-out split, promote only if not worse, roll back; the active model loaded lazily and cached
per process (a promotion elsewhere is seen within ``CHECK_S`` seconds).

The model is stored as a zlib-compressed pickle in ``ai_model.blob`` with its SHA-256; it is only
ever read back from this table, written by this module (pickle must not load untrusted bytes).
"""

from __future__ import annotations

import hashlib
import json
import pickle
import threading
import time
import zlib
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cityops.ai import classify as clf
from cityops.ai.examples import harvest_overrides
from cityops.ai.models import AiExample, AiModel
from cityops.cases import reference as ref
from cityops.db import database_key, utcnow
from cityops.errors import Conflict, InvalidInput, NotFound, Problem
from cityops.security import audit
from cityops.security.principal import Principal

DATA = Path(__file__).resolve().parent / "data"
CORPUS_VERSION = "corpus-v1"
CHECK_S = 5.0
CORRECTION_WEIGHT = 4.0
TOLERANCE = 0.0  # a candidate is promoted when its held-out top-1 >= the active one's - TOLERANCE

Progress = Callable[[str, float], None]


# ---------------------------------------------------------------- versioned data


@lru_cache(maxsize=4)
def corpus(version: str = CORPUS_VERSION) -> tuple[dict[str, Any], ...]:
    with open(DATA / f"{version}.jsonl", encoding="utf-8") as fh:
        return tuple(json.loads(line) for line in fh if line.strip())


@lru_cache(maxsize=4)
def holdout(version: str = CORPUS_VERSION) -> frozenset[str]:
    doc = json.loads((DATA / f"split-{version.split('-')[-1]}.json").read_text(encoding="utf-8"))
    return frozenset(doc["holdout"])


@lru_cache(maxsize=2)
def traps() -> tuple[dict[str, Any], ...]:
    with open(DATA / "traps-v1.jsonl", encoding="utf-8") as fh:
        return tuple(json.loads(line) for line in fh if line.strip())


@lru_cache(maxsize=2)
def kinds() -> tuple[dict[str, Any], ...]:
    return tuple(json.loads((DATA / "kinds-v1.json").read_text(encoding="utf-8"))["kinds"])


def baseline() -> dict[str, Any]:
    return dict(json.loads((DATA / "baseline-v1.json").read_text(encoding="utf-8")))


def label_codes(session: Session) -> dict[str, str]:
    """Corpus label (a category name) -> the code of that category in the active catalogue."""
    cat = ref.catalogue(session)
    if cat.active_id is None:
        raise InvalidInput([Problem("no published catalogue: import one first (cityops cases seed-reference)", ["catalogue"])])
    return {c.name_zh: c.code for c in cat.by_version.get(cat.active_id, {}).values() if c.enabled}


def split_rows(session: Session, version: str = CORPUS_VERSION) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(training rows, held-out rows) of the corpus, labels mapped to active category codes."""
    codes = label_codes(session)
    missing = sorted({r["label"] for r in corpus(version)} - set(codes))
    if missing:
        raise InvalidInput([Problem(f"corpus labels not in the active catalogue: {', '.join(missing)}", ["corpus"])])
    held = holdout(version)
    train_rows: list[dict[str, Any]] = []
    test_rows: list[dict[str, Any]] = []
    for r in corpus(version):
        row = {**r, "code": codes[r["label"]]}
        (test_rows if r["id"] in held else train_rows).append(row)
    return train_rows, test_rows


def prior_documents(session: Session, labels: set[str]) -> tuple[list[str], list[str]]:
    """What the catalogue already knows, as pseudo-documents: each category's name and
    registration criteria, and the names of its dispatch kind (kinds-v1)."""
    cat = ref.catalogue(session)
    texts, ys = [], []
    for c in cat.by_version.get(cat.active_id or -1, {}).values():
        if c.code not in labels:
            continue
        texts.append(c.name_zh)
        ys.append(c.code)
        if c.registration_criteria:
            texts.append(c.registration_criteria)
            ys.append(c.code)
    codes = label_codes(session)
    for k in kinds():
        for name in k["categories"]:
            if codes.get(name) in labels:
                texts += [part for part in k["name_zh"].split("/") if part]
                ys += [codes[name]] * len([part for part in k["name_zh"].split("/") if part])
                break
    return texts, ys


def _groups(session: Session) -> dict[str, str]:
    codes = label_codes(session)
    return {codes[n]: k["code"] for k in kinds() for n in k["categories"] if n in codes}


# ---------------------------------------------------------------- training and evaluation


def corrections(session: Session) -> list[tuple[int, str, str]]:
    """(example id, text, active category code) of every labelled example with a category."""
    out = []
    for e in session.scalars(select(AiExample).where(AiExample.category_code.is_not(None)).order_by(AiExample.id)):
        try:
            code = ref.resolve_category(session, str(e.category_code)).code
        except InvalidInput:
            continue  # a category no longer in the catalogue (nor mapped to it)
        if e.text and e.text.strip():
            out.append((e.id, e.text, code))
    return out


def evaluate_model(session: Session, model: clf.Model) -> dict[str, Any]:
    """Top-1 / top-3 per category and overall on the held-out split, and on the hand-written traps."""
    _train, test = split_rows(session)
    groups = _groups(session)
    held = clf.evaluate(model, [r["text"] for r in test], [r["code"] for r in test], groups=groups)
    codes = label_codes(session)
    trap_rows = [r for r in traps() if r["label"] in codes]
    tr = clf.evaluate(model, [r["text"] for r in trap_rows], [codes[r["label"]] for r in trap_rows], groups=groups)
    by_kind: dict[str, dict[str, Any]] = {}
    for r, _ in zip(trap_rows, range(len(trap_rows)), strict=True):
        by_kind.setdefault(r.get("kind", "other"), {"n": 0})["n"] += 1
    if trap_rows:
        idx, _p = clf.rank(model, [r["text"] for r in trap_rows], k=1)
        for r, i in zip(trap_rows, idx[:, 0], strict=True):
            d = by_kind[r.get("kind", "other")]
            d["top1"] = d.get("top1", 0) + int(str(model.labels[i]) == codes[r["label"]])
        for d in by_kind.values():
            d["top1"] = d.get("top1", 0) / d["n"]
    names = {v: k for k, v in codes.items()}
    held["per_label"] = {code: {**v, "name_zh": names.get(code, code)} for code, v in held["per_label"].items()}
    return {"heldout": held, "traps": {k: v for k, v in tr.items() if k != "per_label"} | {"by_kind": by_kind}}


def train(session: Session, principal: Principal, *, progress: Progress | None = None, note: str | None = None,
          seed: int = 14) -> AiModel:
    """Train a new candidate version on the corpus' training rows + the catalogue prior + every
    labelled example so far; evaluate it; store it (status ``candidate``). Does not commit."""
    tick = progress or (lambda _stage, _f: None)
    tick("corpus", 0.05)
    train_rows, _test = split_rows(session)
    harvest_overrides(session)
    ex = corrections(session)
    texts = [r["text"] for r in train_rows] + [t for _i, t, _c in ex]
    labels = [r["code"] for r in train_rows] + [c for _i, _t, c in ex]
    weights = [1.0] * len(train_rows) + [CORRECTION_WEIGHT] * len(ex)
    prior_t, prior_y = prior_documents(session, set(labels))
    tick("fit", 0.15)
    t0 = time.perf_counter()
    model = clf.train(texts, labels, weights=weights, prior_texts=prior_t, prior_labels=prior_y, seed=seed)
    train_s = time.perf_counter() - t0
    tick("evaluate", 0.8)
    metrics = evaluate_model(session, model)
    model.info["example_ids"] = [i for i, _t, _c in ex]
    blob = zlib.compress(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL), 6)
    version = int(session.scalar(select(func.max(AiModel.version))) or 0) + 1
    row = AiModel(version=version, status="candidate", created_at=utcnow(), trained_by=principal.username,
                  corpus_version=CORPUS_VERSION, catalogue_version=ref.active_catalogue_code(session),
                  n_train=len(texts), n_corrections=len(ex), max_example_id=max((i for i, _t, _c in ex), default=0),
                  metrics=metrics, train_s=round(train_s, 3), size_bytes=len(blob),
                  sha256=hashlib.sha256(blob).hexdigest(), blob=blob, note=note)
    session.add(row)
    session.flush()
    audit.record(session, principal, "classify.train", "ai_model", str(version),
                 detail={"n_train": row.n_train, "n_corrections": row.n_corrections,
                         "top1": metrics["heldout"]["top1"], "top3": metrics["heldout"]["top3"]})
    tick("done", 1.0)
    return row


def get_version(session: Session, version: int) -> AiModel:
    row = session.scalar(select(AiModel).where(AiModel.version == version))
    if row is None:
        raise NotFound([Problem(f"no model version {version}", ["version"], "not_found")])
    return row


def active_row(session: Session) -> AiModel | None:
    return session.scalar(select(AiModel).where(AiModel.status == "active").order_by(AiModel.version.desc()).limit(1))


def promote(session: Session, principal: Principal, version: int, *, force: bool = False) -> dict[str, Any]:
    """Make ``version`` active if its held-out top-1 is not worse than the active one's (or
    ``force``). The previous active version is retired (kept for rollback). Does not commit."""
    row = get_version(session, version)
    cur = active_row(session)
    new_top1 = float(row.metrics.get("heldout", {}).get("top1", 0.0))
    if cur is not None and cur.id == row.id:
        return {"promoted": False, "version": version, "reason": "already active"}
    if cur is not None and not force:
        old_top1 = float(cur.metrics.get("heldout", {}).get("top1", 0.0))
        if new_top1 < old_top1 - TOLERANCE:
            row.status = "rejected"
            audit.record(session, principal, "classify.promote", "ai_model", str(version), result="rejected",
                         detail={"top1": new_top1, "active_top1": old_top1, "active": cur.version})
            return {"promoted": False, "version": version, "reason": f"held-out top-1 {new_top1:.4f} < active "
                    f"version {cur.version}'s {old_top1:.4f}"}
    if cur is not None:
        cur.status = "retired"
    row.status = "active"
    row.promoted_at = utcnow()
    session.flush()
    audit.record(session, principal, "classify.promote", "ai_model", str(version),
                 detail={"top1": new_top1, "previous": cur.version if cur else None, "forced": force})
    drop_cache()
    return {"promoted": True, "version": version, "previous": cur.version if cur else None}


def rollback(session: Session, principal: Principal) -> dict[str, Any]:
    """Re-activate the version that was active before the current one. Does not commit."""
    cur = active_row(session)
    if cur is None:
        raise Conflict([Problem("no active model to roll back", ["version"])])
    prev = session.scalar(select(AiModel).where(AiModel.status == "retired", AiModel.promoted_at.is_not(None),
                                                AiModel.version != cur.version)
                          .order_by(AiModel.promoted_at.desc(), AiModel.version.desc()).limit(1))
    if prev is None:
        raise Conflict([Problem(f"version {cur.version} is the only one ever promoted: nothing to roll back to", ["version"])])
    cur.status = "retired"
    cur.promoted_at = None  # a rolled-back version is not a rollback target itself
    prev.status = "active"
    prev.promoted_at = utcnow()
    session.flush()
    audit.record(session, principal, "classify.rollback", "ai_model", str(prev.version), detail={"from": cur.version})
    drop_cache()
    return {"active": prev.version, "rolled_back": cur.version}


def retrain(session: Session, principal: Principal, *, progress: Progress | None = None) -> dict[str, Any]:
    """The learning loop's job: train a candidate, promote it only if it is not worse."""
    row = train(session, principal, progress=progress, note="retrain job")
    res = promote(session, principal, row.version)
    return {"version": row.version, "n_corrections": row.n_corrections, "top1": row.metrics["heldout"]["top1"],
            "top3": row.metrics["heldout"]["top3"], **res}


def model_out(row: AiModel) -> dict[str, Any]:
    h = (row.metrics or {}).get("heldout", {})
    return {"version": row.version, "status": row.status, "created_at": row.created_at, "promoted_at": row.promoted_at,
            "trained_by": row.trained_by, "corpus_version": row.corpus_version, "catalogue_version": row.catalogue_version,
            "n_train": row.n_train, "n_corrections": row.n_corrections, "train_s": row.train_s,
            "size_bytes": row.size_bytes, "top1": h.get("top1"), "top3": h.get("top3"),
            "traps_top1": (row.metrics or {}).get("traps", {}).get("top1")}


def list_versions(session: Session) -> list[dict[str, Any]]:
    return [model_out(r) for r in session.scalars(select(AiModel).order_by(AiModel.version))]


def load(row: AiModel) -> clf.Model:
    if hashlib.sha256(row.blob).hexdigest() != row.sha256:
        raise Conflict([Problem(f"model version {row.version} is corrupt (checksum)", ["version"])])
    model = pickle.loads(zlib.decompress(row.blob))  # noqa: S301 - our own table, checksummed
    assert isinstance(model, clf.Model)
    return model


# ---------------------------------------------------------------- per-process cache

_cache: dict[str, tuple[float, int | None, clf.Model | None]] = {}
_lock = threading.Lock()


def drop_cache() -> None:
    with _lock:
        _cache.clear()


def active_model(session: Session) -> tuple[int | None, clf.Model | None]:
    """(version, model) of the active version, loaded once per process and re-checked every
    ``CHECK_S`` seconds (one indexed query) so a promotion by another process is picked up."""
    key = database_key(session)
    hit = _cache.get(key)
    now = time.monotonic()
    if hit is not None and now - hit[0] < CHECK_S:
        return hit[1], hit[2]
    version = session.scalar(select(AiModel.version).where(AiModel.status == "active")
                             .order_by(AiModel.version.desc()).limit(1))
    if hit is not None and hit[1] == version:
        with _lock:
            _cache[key] = (now, version, hit[2])
        return version, hit[2]
    model = load(get_version(session, version)) if version is not None else None
    with _lock:
        _cache[key] = (now, version, model)
    return version, model
