"""MQTT ingest against a real Mosquitto broker (scripts/mqtt.sh; started here when scripts/test.sh
did not): a published message reaches storage and rules; ``kill -9`` of an ingest process in the
middle of a stream loses no message the broker accepted and stores none twice (shared
subscription, QoS 1, acknowledged after the commit)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import pytest
from sqlalchemy import func, select

from cityops import devserver
from tests.indicators_helpers import drain, make_devices, minute0, reading, tag

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def broker():
    url = os.environ.get("CITYOPS_MQTT_URL")
    if url:
        host, port = url.rsplit(":", 1)
        yield host, int(port)
        return
    port = devserver.free_ports(1)[0]
    env = {**os.environ, "CITYOPS_MQTT_PORT": str(port)}
    out = subprocess.run(["bash", str(ROOT / "scripts" / "mqtt.sh"), "start"], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"no MQTT broker: {out.stderr.strip()[-300:]}")
    try:
        yield "127.0.0.1", port
    finally:
        subprocess.run(["bash", str(ROOT / "scripts" / "mqtt.sh"), "stop"], env=env, capture_output=True)


class Ingest:
    """A ``cityops ingest mqtt`` process on the test database."""

    def __init__(self, db_url: str, host: str, port: int, client_id: str) -> None:
        exe = Path(sys.executable).parent / "cityops"
        env = {**os.environ, "CITYOPS_DATABASE_URL": db_url, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([str(exe), "ingest", "mqtt", "--host", host, "--port", str(port), "--client-id",
                                      client_id], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if "subscribed" in line:
                self.ready.set()

    def wait_ready(self, timeout: float = 60) -> None:
        assert self.ready.wait(timeout), "".join(self.lines[-30:])

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _publish(host, port, messages, pause_every=0, pause=0.0, on_progress=None):
    from cityops.indicators.mqtt import publisher

    pub = publisher(host, port)
    try:
        infos = []
        for i, m in enumerate(messages):
            infos.append(pub.publish(f"cityops/readings/t/{i % 7}", orjson.dumps(m), qos=1))
            if pause_every and i % pause_every == pause_every - 1:
                time.sleep(pause)
            if on_progress:
                on_progress(i)
        for info in infos:  # the broker accepted every one (PUBACK)
            info.wait_for_publish(30)
            assert info.is_published()
    finally:
        pub.loop_stop()
        pub.disconnect()


def _stored(session, codes):
    from cityops.indicators.models import Device, Reading, Series

    n = session.scalar(select(func.count()).select_from(Reading).join(Series, Series.id == Reading.series_id)
                       .join(Device, Device.id == Series.device_id).where(Device.code.in_(codes)))
    session.rollback()
    return int(n or 0)


def _wait_stored(session, codes, want, timeout=120):
    end = time.monotonic() + timeout
    n = -1
    while time.monotonic() < end:
        n = _stored(session, codes)
        if n >= want:
            return n
        time.sleep(0.3)
    return n


def test_a_published_message_reaches_storage_and_rules(broker, db_url, session, client):
    host, port = broker
    t = tag()
    code = f"T{t}-PD"
    make_devices(session, [(code, "ponding_depth", "310117002", 1)])
    ing = Ingest(db_url, host, port, f"t-{t}")
    try:
        ing.wait_ready()
        t0 = minute0(21)
        one = reading(code, "ponding_depth", t0, 30.0)  # one reading: orange at once (no on-delay)
        many = [reading(code, "ponding_depth", t0 + dt.timedelta(minutes=m), 30.0 + m) for m in range(1, 5)]
        _publish(host, port, [one, many])
        assert _wait_stored(session, [code], 5) == 5
        drain()
        from tests.helpers import auth_headers, make_user

        u, p = make_user(session, f"mq_{t}", ["district_commander"], area_code="310117")
        ws = client.get("/api/v1/warnings", params={"rule": "ponding", "state": "all"},
                        headers=auth_headers(client, u, p)).json()["items"]
        mine = [w for w in ws if code in w["subjects"]]
        assert len(mine) == 1 and mine[0]["level"] == "orange" and mine[0]["case"] is not None
    finally:
        ing.stop()


def test_kill_9_mid_stream_loses_nothing_and_stores_nothing_twice(broker, db_url, session):
    host, port = broker
    t = tag()
    codes = [f"T{t}-K{i}" for i in range(40)]
    make_devices(session, [(c, "gas_pressure", "310117005", i) for i, c in enumerate(codes)])
    a = Ingest(db_url, host, port, f"t-{t}-a")
    b = Ingest(db_url, host, port, f"t-{t}-b")
    a.wait_ready()
    b.wait_ready()
    t0 = minute0(23)
    # 300 messages x 40 readings = 12,000 readings, every key distinct
    messages = [[reading(c, "gas_pressure", t0 + dt.timedelta(seconds=10 * k), 2.0 + (k % 10) / 100) for c in codes]
                for k in range(300)]
    killed = threading.Event()
    restarted: list[Ingest] = []

    def progress(i):
        if i == 120 and not killed.is_set():
            a.kill9()
            killed.set()
            restarted.append(Ingest(db_url, host, port, f"t-{t}-a"))  # the same client id: its session resumes

    try:
        _publish(host, port, messages, pause_every=20, pause=0.05, on_progress=progress)
        assert killed.is_set()
        restarted[0].wait_ready()
        n = _wait_stored(session, codes, 12_000)
        time.sleep(2.0)  # let any late redelivery arrive: it must be a duplicate
        logs = "".join(restarted[0].lines[-15:] + b.lines[-15:] + a.lines[-10:])
        assert _stored(session, codes) == n == 12_000, logs
        from cityops.indicators.models import Device, Reading, Series

        revs = session.scalar(select(func.count()).select_from(Reading).join(Series, Series.id == Reading.series_id)
                              .join(Device, Device.id == Series.device_id)
                              .where(Device.code.in_(codes), Reading.rev > 0))
        session.rollback()
        assert revs == 0
    finally:
        for p in (b, *restarted):
            p.stop()
        if a.proc.poll() is None:
            a.stop()
    drain()
