"""``cityops ingest mqtt``: readings from an MQTT broker (paho-mqtt 2.x, MQTT 5).

Subscribes to ``$share/<group>/cityops/readings/#`` with QoS 1, so that several ingest processes
split one stream (MQTT 5 shared subscriptions). A message is one reading or an array of them
(JSON). Messages are collected for a few milliseconds, validated and stored in one transaction
(each message's bad rows are dropped and logged: a message that can never be stored must not be
redelivered forever), and only after the COMMIT are they acknowledged to the broker (manual
acks): a process killed before its commit leaves its messages unacknowledged, and the broker
delivers them again — to this client id when it reconnects (persistent session), or to another
member of the group; (device, indicator, ts) idempotency makes a repeat a duplicate, never a
second row. The committed batches go to this process's evaluator (see ``evaluator``).
"""

from __future__ import annotations

import os
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from cityops.indicators.settings import get_indicator_settings
from cityops.logging import log
from cityops.security.principal import SYSTEM, Principal


@dataclass
class IngestStats:
    messages: int = 0
    readings: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    commits: int = 0
    errors: int = 0
    started: float = field(default_factory=time.monotonic)


class MqttIngest:
    def __init__(self, host: str | None = None, port: int | None = None, *, client_id: str | None = None,
                 topic: str | None = None, group: str | None = None, principal: Principal = SYSTEM,
                 batch_ms: float = 50.0, max_readings: int = 20_000, session_expiry_s: int = 3600) -> None:
        s = get_indicator_settings()
        self.host, self.port = host or s.mqtt_host, int(port or s.mqtt_port)
        self.client_id = client_id or f"cityops-ingest-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.topic = topic or s.mqtt_topic
        self.group = group or s.mqtt_share_group
        self.principal = principal
        self.batch_s = batch_ms / 1000.0
        self.max_readings = max_readings
        self.expiry = session_expiry_s
        self.inbox: queue.Queue[Any] = queue.Queue()
        self.stats = IngestStats()
        self.stop_event = threading.Event()
        self.connected = threading.Event()
        self.client: Any = None

    # ------------------------------------------------------------------ broker side

    def _client(self) -> Any:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=self.client_id,
                        protocol=MQTTProtocolVersion.MQTTv5, manual_ack=True)
        c.max_inflight_messages_set(1000)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.expiry
        props.ReceiveMaximum = 1000
        self._props = props

        def on_connect(client: Any, _u: Any, _flags: Any, reason: Any, _p: Any) -> None:
            if reason.is_failure:
                log.warning("mqtt: connect refused: %s", reason)
                return
            client.subscribe(f"$share/{self.group}/{self.topic}", qos=1)
            self.connected.set()
            log.info("mqtt: %s subscribed to $share/%s/%s", self.client_id, self.group, self.topic)

        def on_message(_client: Any, _u: Any, msg: Any) -> None:
            self.inbox.put(msg)

        def on_disconnect(_client: Any, _u: Any, _flags: Any, reason: Any, _p: Any) -> None:
            self.connected.clear()
            log.info("mqtt: disconnected (%s)", reason)

        c.on_connect, c.on_message, c.on_disconnect = on_connect, on_message, on_disconnect
        return c

    def start(self) -> MqttIngest:
        self.client = self._client()
        self.client.connect(self.host, self.port, keepalive=30, clean_start=False, properties=self._props)
        self.client.loop_start()
        self.writer = threading.Thread(target=self._write_loop, name="cityops-mqtt-writer", daemon=True)
        self.writer.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        self.writer.join(timeout)
        if self.client is not None:
            # a graceful stop ends the session (expiry 0): the broker stops giving this member its share
            # of the group's messages. A killed process keeps its session, so that it finds its
            # unacknowledged messages again when it restarts with the same client id.
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            props = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 0
            self.client.disconnect(properties=props)
            self.client.loop_stop()

    # ------------------------------------------------------------------ writer

    def _write_loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                first = self.inbox.get(timeout=0.2)
            except queue.Empty:
                continue
            msgs = [first]
            n = _count(first)
            end = time.monotonic() + self.batch_s
            while n < self.max_readings:
                left = end - time.monotonic()
                if left <= 0:
                    break
                try:
                    m = self.inbox.get(timeout=left)
                except queue.Empty:
                    break
                msgs.append(m)
                n += _count(m)
            try:
                self.write(msgs)
            except Exception as exc:  # noqa: BLE001 - not acknowledged: the broker delivers them again
                self.stats.errors += 1
                log.warning("mqtt: batch of %d messages not stored (%s); the broker will redeliver", len(msgs), exc)
                time.sleep(0.5)
                self._reconnect()

    def _reconnect(self) -> None:
        """Unacknowledged messages come back only with a new connection."""
        try:
            self.client.reconnect()
        except Exception as exc:  # noqa: BLE001
            log.warning("mqtt: reconnect failed: %s", exc)

    def write(self, msgs: list[Any]) -> dict[str, Any]:
        """Store the readings of ``msgs`` in one transaction, then acknowledge them."""
        from cityops.db import get_sessionmaker
        from cityops.indicators import ingest as _ingest
        from cityops.indicators import service

        items: list[tuple[int, Any]] = []
        bad_msgs = 0
        for m in msgs:
            try:
                doc = orjson.loads(m.payload)
            except orjson.JSONDecodeError:
                bad_msgs += 1
                continue
            for r in (doc if isinstance(doc, list) else [doc]):
                items.append((len(items) + 1, r))
        with get_sessionmaker()() as s:
            parsed = _ingest.validate(s, items)
            stored = _ingest.store(s, self.principal, parsed, "mqtt")
            service._hand_over(s, stored)
            s.commit()
        for m in msgs:  # only now: the readings are committed
            self.client.ack(m.mid, m.qos)
        self.stats.messages += len(msgs)
        self.stats.readings += len(items)
        self.stats.accepted += stored.accepted
        self.stats.duplicates += stored.duplicates
        self.stats.rejected += len(parsed.rejected) + bad_msgs
        self.stats.commits += 1
        if parsed.rejected or bad_msgs:
            log.warning("mqtt: %d readings rejected (first: %s), %d messages not JSON", len(parsed.rejected),
                        parsed.rejected[0].out() if parsed.rejected else None, bad_msgs)
        return stored.answer(parsed.rejected)


def _count(msg: Any) -> int:
    p = msg.payload
    return max(1, p.count(b'"device"')) if isinstance(p, bytes | bytearray) else 1


def publisher(host: str, port: int, client_id: str | None = None) -> Any:
    """A QoS-1 publisher (tests, benchmark, demo tools)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                    client_id=client_id or f"cityops-pub-{uuid.uuid4().hex[:8]}", protocol=MQTTProtocolVersion.MQTTv5)
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.connect(host, port, keepalive=30)
    c.loop_start()
    return c


def run(host: str | None, port: int | None, client_id: str | None, duration: float | None = None) -> IngestStats:
    """Run an ingest process until SIGTERM/SIGINT (or ``duration`` seconds)."""
    import signal

    from cityops.indicators.evaluator import pipeline

    ing = MqttIngest(host, port, client_id=client_id).start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_a: stop.set())
    pipeline().ensure_thread()
    stop.wait(duration)
    ing.stop()
    pipeline().stop()
    return ing.stats
