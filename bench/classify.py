"""Benchmark of smart dispatch: ``python -m bench classify [--http N]``.

Figures: training time on corpus-v1 (train split + catalogue prior), batch classification
throughput (texts/s, in-process, model only and with place lookup), one text at a time over HTTP
(``POST /api/v1/cases/classify`` on a uvicorn dev server, ``cityops.devserver``: throughput and
p50/p99 latency), model size, top-1/top-3 on the held-out split and on the hand-written traps.
The peer is the plain baseline the notes name (character 1–3-gram TF-IDF + LinearSVC, no jieba, no
discourse weighting, no prior) trained and scored on the same split in the same run.
Last line: one JSON object with ``texts_per_s``, ``http_p99_ms``, ``train_s``, ``top1``, ``top3``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import emit, seed_district

SEED = 20210220


def _peer(train_rows: list[dict[str, Any]], test_rows: list[dict[str, Any]]) -> dict[str, float]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    t0 = time.perf_counter()
    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=2)
    x = vec.fit_transform([r["text"] for r in train_rows])
    m = LinearSVC(C=0.5).fit(x, [r["code"] for r in train_rows])
    train_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    d = m.decision_function(vec.transform([r["text"] for r in test_rows]))
    pred_s = time.perf_counter() - t1
    top = m.classes_[np.argsort(-d, axis=1)[:, :3]]
    y = np.array([r["code"] for r in test_rows])
    return {"train_s": round(train_s, 2), "texts_per_s": round(len(test_rows) / pred_s),
            "top1": round(float((top[:, 0] == y).mean()), 4), "top3": round(float((top == y[:, None]).any(axis=1).mean()), 4)}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench classify")
    ap.add_argument("--http", type=int, default=2000, help="texts sent one at a time over HTTP")
    args = ap.parse_args(argv)
    import httpx

    from cityops.ai import classify as clf
    from cityops.ai import models_service as ms
    from cityops.ai import service as svc
    from cityops.db import session_scope
    from cityops.devserver import api_server, free_ports
    from cityops.security import service as security
    from cityops.security.principal import SYSTEM

    tmp = Path(tempfile.mkdtemp(prefix="bench-classify-"))
    url = f"sqlite:///{tmp / 'classify.db'}"
    print("seeding the demo district's areas and the catalogue ...", flush=True)
    seed_district(url, SEED)
    pw = "Bench#7q2Wz9xQ"
    with session_scope() as s:
        security.create_account(s, SYSTEM, "bench_disp", pw, roles=["dispatcher"], area_code="310117", commit=False,
                                expiry_exempt=True)
    with session_scope() as s:
        train_rows, test_rows = ms.split_rows(s)
        print("training ...", flush=True)
        row = ms.train(s, SYSTEM)
        ms.promote(s, SYSTEM, row.version)
        train_s, size, metrics = row.train_s, row.size_bytes, row.metrics
        model = ms.load(row)
    texts = [r["text"] for r in test_rows]
    batch = texts * max(1, 10_000 // len(texts))
    clf.predict_proba(model, batch[:100])  # warm (jieba's dictionary)
    t0 = time.perf_counter()
    clf.rank(model, batch, k=5)
    batch_tps = len(batch) / (time.perf_counter() - t0)
    with session_scope() as s:
        svc.classify_many(s, texts[:50])
        t0 = time.perf_counter()
        svc.classify_many(s, batch[:5000])
        service_tps = 5000 / (time.perf_counter() - t0)
    peer = _peer(train_rows, test_rows)
    print("HTTP, one text at a time ...", flush=True)
    port = free_ports(1)[0]
    with api_server(url, port, logfile=tmp / "server.log") as base:
        tok = httpx.post(f"{base}/api/v1/auth/token", data={"username": "bench_disp", "password": pw}, timeout=30)
        tok.raise_for_status()
        h = {"Authorization": f"Bearer {tok.json()['access_token']}"}
        lat: list[float] = []
        with httpx.Client(base_url=base, headers=h, timeout=30) as c:
            for t in texts[:50]:  # warm: model load, gazetteer
                c.post("/api/v1/cases/classify", json={"text": t, "channel": "app"}).raise_for_status()
            t_all = time.perf_counter()
            for i in range(args.http):
                t1 = time.perf_counter()
                r = c.post("/api/v1/cases/classify", json={"text": texts[i % len(texts)], "channel": "app"})
                lat.append((time.perf_counter() - t1) * 1000)
                r.raise_for_status()
            http_s = time.perf_counter() - t_all
    a = np.array(lat)
    held, traps = metrics["heldout"], metrics["traps"]
    out = {"bench": "classify", "n_train": len(train_rows), "n_heldout": len(test_rows),
           "train_s": round(train_s, 2), "model_bytes": size,
           "texts_per_s": round(batch_tps), "texts_per_s_with_place": round(service_tps),
           "http_texts_per_s": round(args.http / http_s, 1), "http_p50_ms": round(float(np.percentile(a, 50)), 2),
           "http_p99_ms": round(float(np.percentile(a, 99)), 2),
           "top1": round(held["top1"], 4), "top3": round(held["top3"], 4), "ece": round(held["ece"], 4),
           "traps_top1": round(traps["top1"], 4), "traps_top3": round(traps["top3"], 4),
           "peer_char_tfidf_svm": peer,
           "targets": {"top1": 0.9, "top3": 0.97, "texts_per_s": 2000, "http_p99_ms": 20, "train_s": 60}}
    emit(out)
    return 0
