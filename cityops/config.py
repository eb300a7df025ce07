"""Settings from the environment (prefix ``CITYOPS_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CITYOPS_", env_file=None, extra="ignore")

    database_url: str = f"sqlite:///{ROOT / 'var' / 'cityops.db'}"
    # SQLite: how long a writer waits for the write lock before its request is retried (cityops.uow)
    sqlite_busy_timeout_ms: int = 10000
    # PostgreSQL: statement timeout of interactive (request) transactions, 0 = none
    pg_statement_timeout_ms: int = 20000
    # the live console's 30-day 按期结案率 is re-evaluated at most this often (seconds; 0 = every poll)
    console_ontime_ttl_s: float = 60.0
    district_code: str = "310117"
    timezone: str = "Asia/Shanghai"
    secret_key: str = "change-me-in-production-cityops"
    log_level: str = "INFO"
    log_json: bool = False
    # security policy (see cityops.security)
    lockout_threshold: int = 5
    lockout_minutes: int = 15
    session_idle_minutes: int = 30
    # a checked sign-in is trusted this long per process before the database is asked again
    auth_cache_seconds: float = 1.0
    session_absolute_hours: int = 12
    password_max_age_days: int = 90
    single_session: bool = False
    token_minutes: int = 60
    safe_room_k: int = 5
    login_rate_per_minute: int = 30
    intake_rate_per_minute: int = 600
    # audit chain (cityops.security.audit / anchors): the HMAC key lives outside the database —
    # CITYOPS_AUDIT_KEY (hex or text) or a key file (created 0600 on first use when missing)
    audit_key: str = ""
    audit_key_file: str = ""  # default: var/audit.key
    # where anchors of the chain head are appended (default: beside a SQLite file, else var/audit-anchors)
    audit_anchor_dir: str = ""
    audit_anchor_minutes: int = 5
    # sign-in throttling per source address: failures within lockout_minutes before new sign-ins
    # from that address are refused for lockout_minutes
    source_lockout_threshold: int = 20
    # grid topology tolerance (m) for slivers
    topology_tolerance_m: float = 0.5
    sliver_min_area_m2: float = 1.0


@lru_cache
def get_settings() -> Settings:
    return Settings()
