"""``python -m bench ingest``: readings/s with every rule evaluated, 100,000 devices.

Paths, side by side: batch HTTP (NDJSON, 5,000 readings a request) on SQLite and on PostgreSQL,
the Python API (in-process: ``service.ingest_readings``, then the evaluator), MQTT (a
``cityops ingest mqtt`` process behind a real Mosquitto; messages of 500 readings, QoS 1, acked
after commit). A phase's clock runs from the first request until the last batch is EVALUATED
(rules, warnings, rollup buffer) — not just stored. Then reading→warning latency at a steady
10,000 readings/s over HTTP: each batch carries one reading that raises a warning, and a poller
sees the warning row committed. Peak memory: the server's high-water RSS (VmHWM).

Devices: the full demo district (3,055 grids), 100,000 devices, a quarter each of rain gauges,
ponding monitors, gas monitors and crowd cameras (all 60-s intervals); every reading goes through
the rainstorm (720-slot windows), ponding, gas, crowding, silence and composite rules. Simulated
time: one round = one minute for every device.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench.common import emit, machine, peak_rss_mb, seed_district, use_database

ROOT = Path(__file__).resolve().parent.parent
INDS = ("rainfall", "ponding_depth", "gas_pressure", "crowd_density")
NORMAL = {"rainfall": 0.0, "ponding_depth": 0.4, "gas_pressure": 2.4, "crowd_density": 0.6}
BATCH = 5000


def setup(url: str, n_devices: int, seed: int = 20210220) -> dict[str, Any]:
    """District, catalogue, ``n_devices`` devices + the latency probes; returns codes and series ids."""
    from sqlalchemy import select

    from cityops.db import session_scope
    from cityops.geo import demo
    from cityops.indicators import catalogue, devices
    from cityops.indicators.models import Device, Series
    from cityops.security.principal import SYSTEM

    seed_district(url, seed)
    district = demo.generate(seed=seed, small=False)
    grids = [(a.code, a.geom.representative_point()) for a in district.areas if a.level == "grid"]
    rng = np.random.default_rng(1)
    t0 = time.perf_counter()
    with session_scope() as s:
        catalogue.ensure_default(s, SYSTEM)
        rows = []
        for i in range(n_devices):
            g, p = grids[i % len(grids)]
            rows.append({"code": f"B{i:06d}", "indicators": [INDS[i % 4]], "lon": p.x + float(rng.normal(0, 1e-5)),
                         "lat": p.y + float(rng.normal(0, 1e-5)), "owner_department_code": "sw"})
        for j, (_g, p) in enumerate(grids[:600]):  # latency probes: one gas monitor per grid
            rows.append({"code": f"P{j:04d}", "indicators": ["gas_pressure"], "lon": p.x, "lat": p.y})
        for k in range(0, len(rows), 20_000):
            devices.upsert_many(s, SYSTEM, rows[k:k + 20_000], [["b", i] for i in range(k, min(k + 20_000, len(rows)))])
            s.commit()
        ids = dict(s.execute(select(Device.code, Series.id).join(Series, Series.device_id == Device.id)).all())
    return {"codes": [f"B{i:06d}" for i in range(n_devices)], "probes": [f"P{j:04d}" for j in range(600)],
            "sid": ids, "setup_s": time.perf_counter() - t0}


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone(dt.timedelta(hours=8))).isoformat()


def bodies(codes: list[str], rounds: int, t0_ms: int, batch: int = BATCH) -> list[bytes]:
    """NDJSON bodies of ``batch`` readings: every device once per round (one minute)."""
    rng = np.random.default_rng(2)
    out = []
    for r in range(rounds):
        ts = _iso(t0_ms + r * 60_000)
        lines = []
        for i, c in enumerate(codes):
            ind = INDS[i % 4]
            v = round(NORMAL[ind] + float(rng.normal(0, 0.05)) * (ind != "rainfall"), 3)
            lines.append(b'{"device":"%s","indicator":"%s","ts":"%s","value":%r}' % (c.encode(), ind.encode(),
                                                                                      ts.encode(), v))
            if len(lines) == batch:
                out.append(b"\n".join(lines))
                lines = []
        if lines:
            out.append(b"\n".join(lines))
    return out


def _wait_evaluated(url: str, timeout: float = 900) -> float:
    """Until no batch is left unevaluated; returns the time it happened."""
    from sqlalchemy import create_engine, text

    eng = create_engine(url)
    try:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with eng.connect() as c:
                n = c.execute(text("SELECT count(*) FROM indicator_batch WHERE status = 'stored'")).scalar()
            if not n:
                return time.perf_counter()
            time.sleep(0.05)
        raise RuntimeError("the evaluator did not catch up")
    finally:
        eng.dispose()


def _key(url: str) -> str:
    from cityops.db import session_scope
    from cityops.security.principal import SYSTEM
    from cityops.security.service import create_api_key

    use_database(url)
    with session_scope() as s:
        _k, clear = create_api_key(s, SYSTEM, f"bench-{uuid.uuid4().hex[:6]}", ["reading.ingest"])
    return clear


def _vmhwm(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def http_phase(url: str, data: list[bytes], key: str, port: int, clients: int = 2) -> dict[str, Any]:
    import httpx

    from cityops import devserver

    log = Path(tempfile.gettempdir()) / f"bench-ingest-{port}.log"
    proc = devserver.start_api(url, port, logfile=log, timeout=120)
    try:
        base = f"http://127.0.0.1:{port}"
        h = {"X-API-Key": key, "Content-Type": "application/x-ndjson"}
        # warm up: the registry, the engine's start, the first series
        with httpx.Client(timeout=120) as c:
            assert c.post(base + "/api/v1/readings", content=data[0], headers=h).status_code == 202
        _wait_evaluated(url)
        work = data[1:]
        n = sum(b.count(b"\n") + 1 for b in work)
        errors: list[str] = []
        lock = threading.Lock()
        it = iter(work)

        def worker() -> None:
            with httpx.Client(timeout=120) as c:
                while True:
                    with lock:
                        b = next(it, None)
                    if b is None:
                        return
                    r = c.post(base + "/api/v1/readings", content=b, headers=h)
                    if r.status_code != 202:
                        errors.append(f"{r.status_code} {r.text[:200]}")

        t0 = time.perf_counter()
        ths = [threading.Thread(target=worker) for _ in range(clients)]
        for th in ths:
            th.start()
        for th in ths:
            th.join()
        t_posted = time.perf_counter()
        t_done = _wait_evaluated(url)
        if errors:
            raise RuntimeError(f"{len(errors)} requests failed: {errors[:3]}")
        return {"readings": n, "seconds": t_done - t0, "readings_per_s": n / (t_done - t0),
                "stored_per_s": n / (t_posted - t0), "server_peak_rss_mb": _vmhwm(proc.pid)}
    finally:
        devserver.stop(proc)


def python_phase(url: str, codes: list[str], rounds: int, t0_ms: int) -> dict[str, Any]:
    """In-process: parse-free readings (dicts) through validate -> store -> commit -> evaluate, timed
    step by step (where the time goes)."""
    from cityops.db import get_sessionmaker
    from cityops.indicators import ingest, service
    from cityops.indicators.evaluator import pipeline
    from cityops.security.principal import SYSTEM

    use_database(url)
    maker = get_sessionmaker()
    rng = np.random.default_rng(3)
    parts = {"validate": 0.0, "store": 0.0, "commit": 0.0, "evaluate": 0.0}
    pipe = pipeline()
    pipe.cycle()  # lease + engine start outside the clock
    n = 0
    t_all = time.perf_counter()
    for r in range(rounds):
        ts = _iso(t0_ms + r * 60_000)
        rows = [{"device": c, "indicator": INDS[i % 4], "ts": ts,
                 "value": round(NORMAL[INDS[i % 4]] + float(rng.normal(0, 0.05)) * (i % 4 != 0), 3)}
                for i, c in enumerate(codes)]
        for k in range(0, len(rows), BATCH):
            items = list(enumerate(rows[k:k + BATCH], start=1))
            with maker() as s:
                a = time.perf_counter()
                parsed = ingest.validate(s, items)
                b = time.perf_counter()
                stored = ingest.store(s, SYSTEM, parsed, "bench")
                service._hand_over(s, stored)
                c = time.perf_counter()
                s.commit()
                d = time.perf_counter()
            pipe.cycle()
            e = time.perf_counter()
            parts["validate"] += b - a
            parts["store"] += c - b
            parts["commit"] += d - c
            parts["evaluate"] += e - d
            n += len(items)
    pipe.cycle(flush=True)
    total = time.perf_counter() - t_all
    pipe.stop()
    return {"readings": n, "seconds": total, "readings_per_s": n / total,
            "parts_s": {k: round(v, 2) for k, v in parts.items()}}


def mqtt_phase(url: str, codes: list[str], rounds: int, t0_ms: int, msg_size: int = 500) -> dict[str, Any]:
    from cityops import devserver
    from cityops.indicators.mqtt import publisher

    port = devserver.free_ports(1)[0]
    env = {**os.environ, "CITYOPS_MQTT_PORT": str(port)}
    out = subprocess.run(["bash", str(ROOT / "scripts" / "mqtt.sh"), "start"], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        return {"skipped": out.stderr[-300:]}
    ing = None
    try:
        exe = Path(sys.executable).parent / "cityops"
        log = open(Path(tempfile.gettempdir()) / "bench-ingest-mqtt.log", "w")  # noqa: SIM115
        ing = subprocess.Popen([str(exe), "ingest", "mqtt", "--host", "127.0.0.1", "--port", str(port), "--client-id",
                                f"bench-{uuid.uuid4().hex[:6]}"], env={**os.environ, "CITYOPS_DATABASE_URL": url,
                                                                      "CITYOPS_LOG_LEVEL": "WARNING"},
                               stdout=log, stderr=subprocess.STDOUT)
        time.sleep(4.0)  # connect + subscribe
        # warm up (outside the clock, as for HTTP): the ingest process's registry and evaluator start
        warm = publisher("127.0.0.1", port)
        ts_w = _iso(t0_ms - 60_000)
        warm.publish("cityops/readings/bench/w", orjson.dumps([{"device": codes[0], "indicator": INDS[0], "ts": ts_w,
                                                               "value": 0.0}]), qos=1).wait_for_publish(30)
        warm.loop_stop()
        warm.disconnect()
        from sqlalchemy import create_engine as _ce
        from sqlalchemy import text as _t

        _e = _ce(url)
        end_w = time.monotonic() + 300
        while time.monotonic() < end_w:
            with _e.connect() as c:
                if c.execute(_t("SELECT count(*) FROM indicator_batch WHERE source = 'mqtt' AND status <> 'stored'"))\
                        .scalar():
                    break
            time.sleep(0.2)
        _e.dispose()
        rng = np.random.default_rng(4)
        msgs = []
        for r in range(rounds):
            ts = _iso(t0_ms + r * 60_000)
            for k in range(0, len(codes), msg_size):
                msgs.append(orjson.dumps([{"device": c, "indicator": INDS[(k + j) % 4], "ts": ts,
                                           "value": round(NORMAL[INDS[(k + j) % 4]] + float(rng.normal(0, 0.05))
                                                          * ((k + j) % 4 != 0), 3)}
                                          for j, c in enumerate(codes[k:k + msg_size])]))
        pub = publisher("127.0.0.1", port)
        n = len(codes) * rounds
        t0 = time.perf_counter()
        infos = [pub.publish(f"cityops/readings/bench/{i % 16}", m, qos=1) for i, m in enumerate(msgs)]
        for info in infos:
            info.wait_for_publish(300)
        t_pub = time.perf_counter()
        # every reading stored and evaluated
        from sqlalchemy import create_engine, text

        eng = create_engine(url)
        end = time.monotonic() + 900
        got = 0
        while time.monotonic() < end:
            with eng.connect() as c:
                got = int(c.execute(text("SELECT coalesce(sum(n), 0) FROM indicator_batch WHERE source = 'mqtt'"))
                          .scalar() or 0) - 1  # the warm-up reading
            if got >= n:
                break
            time.sleep(0.05)
        eng.dispose()
        t_done = _wait_evaluated(url)
        pub.loop_stop()
        pub.disconnect()
        return {"readings": n, "stored": got, "seconds": t_done - t0, "readings_per_s": n / (t_done - t0),
                "publish_s": t_pub - t0, "ingest_peak_rss_mb": _vmhwm(ing.pid)}
    finally:
        if ing is not None:
            ing.terminate()
            try:
                ing.wait(30)
            except subprocess.TimeoutExpired:
                ing.kill()
        subprocess.run(["bash", str(ROOT / "scripts" / "mqtt.sh"), "stop"], env=env, capture_output=True)


def latency_phase(url: str, codes: list[str], probes: list[str], key: str, port: int, t0_ms: int,
                  rate: float = 10_000.0, seconds: float = 40.0) -> dict[str, Any]:
    """Steady ``rate`` readings/s over HTTP (2 batches of 5,000 a second); each batch carries one
    probe reading (gas pressure 5.0 kPa: red at once, a rule without an auto-case) in a grid of its
    own; the poller sees the warning row committed."""
    import httpx
    from sqlalchemy import create_engine, text

    from cityops import devserver

    log = Path(tempfile.gettempdir()) / f"bench-latency-{port}.log"
    proc = devserver.start_api(url, port, logfile=log, timeout=120)
    eng = create_engine(url)
    seen: dict[str, float] = {}
    stop = threading.Event()

    def poll() -> None:
        last = 0
        with eng.connect() as c:
            last = int(c.execute(text("SELECT coalesce(max(id), 0) FROM indicator_warning")).scalar() or 0)
        while not stop.is_set():
            with eng.connect() as c:
                rows = c.execute(text("SELECT id, subjects FROM indicator_warning WHERE id > :i AND rule_code = 'gas_pressure_low'"),
                                 {"i": last}).all()
            now = time.perf_counter()
            for wid, subj in rows:
                last = max(last, int(wid))
                d = subj if isinstance(subj, dict) else orjson.loads(subj)
                for dev in d:
                    seen.setdefault(dev, now)
            time.sleep(0.005)

    sent: dict[str, float] = {}
    try:
        base = f"http://127.0.0.1:{port}"
        h = {"X-API-Key": key, "Content-Type": "application/x-ndjson"}
        rng = np.random.default_rng(5)
        th = threading.Thread(target=poll, daemon=True)
        th.start()
        period = BATCH / rate
        n_batches = int(seconds * rate / BATCH)
        per_round = max(1, len(codes) // BATCH)
        t_start = time.perf_counter()
        with httpx.Client(timeout=60) as c:
            for b in range(n_batches):
                r_idx, part = divmod(b, per_round)
                ts = _iso(t0_ms + r_idx * 60_000)
                chunk = codes[part * BATCH:(part + 1) * BATCH]
                lines = [b'{"device":"%s","indicator":"%s","ts":"%s","value":%r}' % (
                    cd.encode(), INDS[(part * BATCH + i) % 4].encode(), ts.encode(),
                    round(NORMAL[INDS[(part * BATCH + i) % 4]] + float(rng.normal(0, 0.05)) * (i % 4 != 0), 3))
                    for i, cd in enumerate(chunk[:-1])]
                probe = probes[b % len(probes)]
                lines.append(b'{"device":"%s","indicator":"gas_pressure","ts":"%s","value":5.0}' % (
                    probe.encode(), ts.encode()))
                due = t_start + b * period
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                sent.setdefault(probe, time.perf_counter())
                r = c.post(base + "/api/v1/readings", content=b"\n".join(lines), headers=h)
                if r.status_code != 202:
                    raise RuntimeError(r.text[:300])
        achieved = n_batches * BATCH / (time.perf_counter() - t_start)
        end = time.monotonic() + 30
        while time.monotonic() < end and len([p for p in sent if p in seen]) < len(sent):
            time.sleep(0.05)
        stop.set()
        lat = np.array([seen[p] - sent[p] for p in sent if p in seen])
        return {"samples": len(lat), "missing": len(sent) - len(lat), "rate": achieved,
                "p50_s": float(np.percentile(lat, 50)) if len(lat) else None,
                "p99_s": float(np.percentile(lat, 99)) if len(lat) else None,
                "server_peak_rss_mb": _vmhwm(proc.pid)}
    finally:
        stop.set()
        devserver.stop(proc)
        eng.dispose()


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench ingest")
    ap.add_argument("--devices", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=6, help="minutes of readings per throughput phase")
    ap.add_argument("--no-pg", action="store_true")
    ap.add_argument("--latency-seconds", type=float, default=40.0)
    args = ap.parse_args(argv)
    from cityops import devserver

    out: dict[str, Any] = {"devices": args.devices, "batch": BATCH, "machine": machine()}
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    url = f"sqlite:///{tmp / 'ingest.db'}"
    world = setup(url, args.devices)
    out["setup_s"] = round(world["setup_s"], 1)
    key = _key(url)
    now_ms = int(time.time() * 1000) // 60_000 * 60_000
    t0 = now_ms - 20 * 86_400_000  # 20 days ago: every phase in its own minutes
    port = devserver.free_ports(1)[0]
    data = bodies(world["codes"], args.rounds + 1, t0)
    http = http_phase(url, data, key, port)
    print(f"http sqlite: {http}", flush=True)
    py = python_phase(url, world["codes"], max(2, args.rounds // 2), t0 + 86_400_000)
    print(f"python api: {py}", flush=True)
    mq = mqtt_phase(url, world["codes"], max(2, args.rounds // 2), t0 + 2 * 86_400_000)
    print(f"mqtt: {mq}", flush=True)
    lat = latency_phase(url, world["codes"], world["probes"], key, port, t0 + 3 * 86_400_000,
                        seconds=args.latency_seconds)
    print(f"latency: {lat}", flush=True)
    pg: dict[str, Any] = {}
    pg_server = os.environ.get("CITYOPS_BENCH_PG", "postgresql+psycopg://cityops@127.0.0.1:54329/cityops")
    if not args.no_pg:
        from cityops.db import create_postgis_database, drop_database

        name = f"bench_ingest_{uuid.uuid4().hex[:6]}"
        try:
            pg_url = create_postgis_database(pg_server, name)
        except Exception as exc:  # noqa: BLE001 - no server: reported, not failed
            pg = {"skipped": str(exc)[:200]}
        else:
            try:
                w2 = setup(pg_url, args.devices)
                key2 = _key(pg_url)
                pg = http_phase(pg_url, bodies(w2["codes"], args.rounds + 1, t0), key2, devserver.free_ports(1)[0])
                print(f"http postgresql: {pg}", flush=True)
            finally:
                from cityops.db import reset_engine

                reset_engine()
                drop_database(pg_server, name)
    out.update({
        "http_readings_per_s": round(http["readings_per_s"]), "http_stored_per_s": round(http["stored_per_s"]),
        "python_api_readings_per_s": round(py["readings_per_s"]), "python_api_parts_s": py["parts_s"],
        "mqtt_readings_per_s": round(mq.get("readings_per_s", 0)),
        "pg_http_readings_per_s": round(pg.get("readings_per_s", 0)),
        "warning_latency_p50_s": lat["p50_s"], "warning_latency_p99_s": lat["p99_s"],
        "latency_rate_readings_per_s": round(lat["rate"]), "latency_samples": lat["samples"],
        "peak_rss_mb": round(max(http["server_peak_rss_mb"], lat["server_peak_rss_mb"],
                                 mq.get("ingest_peak_rss_mb", 0), pg.get("server_peak_rss_mb", 0)), 1),
        "bench_process_rss_mb": round(peak_rss_mb(), 1),
        "targets": {"http_readings_per_s": 100_000, "mqtt_readings_per_s": 50_000, "warning_latency_p99_s": 1.0,
                    "peak_rss_mb": 1024},
    })
    emit(out)
    return 0
