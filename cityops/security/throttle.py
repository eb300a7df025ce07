"""Sign-in throttling that never ends open sessions (issue 17).

Failed sign-ins lock NEW sign-ins — per account (``CITYOPS_LOCKOUT_THRESHOLD`` failures in a row,
``Account.locked_until``) and per source address (``CITYOPS_SOURCE_LOCKOUT_THRESHOLD`` failures
within ``CITYOPS_LOCKOUT_MINUTES``, table ``signin_source``) — for ``CITYOPS_LOCKOUT_MINUTES``;
the rate limiter (``ratelimit.check_rate``) slows bursts down before that. Sessions already open
are left alone: five anonymous wrong passwords do not sign the commander out.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from cityops import clock
from cityops.config import get_settings
from cityops.security.models import SigninSource

# every failed sign-in (unknown user, wrong password, locked, inactive) answers exactly this
BAD_CREDENTIALS = ("用户名或密码错误，或尝试次数过多已暂时锁定 invalid username or password, "
                   "or too many attempts (try again later)")


def _key(source_ip: str | None) -> str:
    return (source_ip or "-")[:64]


def source_locked(session: Session, source_ip: str | None) -> bool:
    row = session.get(SigninSource, _key(source_ip))
    return row is not None and row.locked_until is not None and row.locked_until > clock.now()


def source_failed(session: Session, source_ip: str | None) -> bool:
    """Count a failed sign-in from ``source_ip``; True when this failure locks the address."""
    s = get_settings()
    now = clock.now()
    window = dt.timedelta(minutes=s.lockout_minutes)
    row = session.get(SigninSource, _key(source_ip))
    if row is None:
        row = SigninSource(source=_key(source_ip), failures=0, first_failed_at=now)
        session.add(row)
    elif now - row.first_failed_at > window and not (row.locked_until and row.locked_until > now):
        row.failures, row.first_failed_at, row.locked_until = 0, now, None
    row.failures += 1
    if row.failures >= s.source_lockout_threshold and not (row.locked_until and row.locked_until > now):
        row.locked_until = now + window
        return True
    return False
