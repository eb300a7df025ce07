"""Support for the jobs tests: a database of their own and a real local webhook receiver."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import delete


def own_database(tmp_root: Any, tag: str) -> tuple[str, str | None]:
    """A new migrated database selected through the environment; returns (url, previous url)."""
    from tests.conftest import _new_database, migrate, use_database

    url = _new_database(tmp_root, tag)
    migrate(url)
    prev = os.environ.get("CITYOPS_DATABASE_URL")
    use_database(url)
    return url, prev


def clear_job_tables() -> None:
    from cityops.db import session_scope
    from cityops.jobs.models import (
        Notification,
        OutboxItem,
        Timer,
        WebhookDelivery,
        WebhookSubscription,
    )

    with session_scope() as s:
        for model in (WebhookDelivery, WebhookSubscription, OutboxItem, Timer, Notification):
            s.execute(delete(model))


def verify_standard_webhook(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Check a request against the Standard Webhooks spec, written from the spec (not the library):
    HMAC-SHA256 over ``{webhook-id}.{webhook-timestamp}.{body}`` with the base64 key after ``whsec_``."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(sig == f"v1,{expected}" for sig in headers["webhook-signature"].split(" "))


class Receiver:
    """A threaded HTTP server on 127.0.0.1 (ephemeral port) recording every POST.

    ``fail_first``: answer ``fail_status`` to the first N attempts of each delivery id."""

    def __init__(self, fail_first: int = 0, fail_status: int = 500, secret: str | None = None) -> None:
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.secret = secret
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.attempts: Counter[str] = Counter()
        self.bad_signatures = 0
        self.truncated = 0  # requests whose body ended before its content-length
        self.ok = 0
        self.done = threading.Condition(self.lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self) -> None:  # noqa: N802
                want = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(want)
                headers = {k.lower(): v for k, v in self.headers.items()}
                if len(body) < want:  # the sender died mid-request (kill -9): not a delivery
                    with receiver.lock:
                        receiver.truncated += 1
                    self.send_response(400)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                with receiver.lock:
                    uid = headers.get("webhook-id", "")
                    receiver.attempts[uid] += 1
                    fail = receiver.attempts[uid] <= receiver.fail_first
                    ok_sig = receiver.secret is None or verify_standard_webhook(receiver.secret, headers, body)
                    if not ok_sig:
                        receiver.bad_signatures += 1
                    receiver.ok += 0 if fail else 1
                    receiver.requests.append({"headers": headers, "body": json.loads(body), "raw": body, "status":
                                              receiver.fail_status if fail else 200})
                    receiver.done.notify_all()
                status = receiver.fail_status if fail else 200
                out = b'{"ok":true}' if status == 200 else b'{"error":"try later"}'
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hook"

    def successes(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["status"] == 200]

    def wait_for(self, n_ok: int, timeout: float) -> bool:
        with self.lock:
            return self.done.wait_for(lambda: self.ok >= n_ok, timeout=timeout)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
