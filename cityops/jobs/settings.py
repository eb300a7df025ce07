"""Settings of the job machinery (environment variables ``CITYOPS_JOBS_*``)."""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class JobSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CITYOPS_JOBS_", env_file=None, extra="ignore")

    # a claimed item is another worker's again after this long (worker died mid-item)
    lease_seconds: float = 120.0
    # outbox items and timers: attempts before the dead-letter state, backoff base and cap
    max_attempts: int = 10
    backoff_base_seconds: float = 5.0
    backoff_cap_seconds: float = 3600.0
    # webhooks
    webhook_max_attempts: int = 8
    webhook_backoff_base_seconds: float = 10.0
    webhook_backoff_cap_seconds: float = 6 * 3600.0
    webhook_timeout_seconds: float = 10.0
    # more modules of @handler functions, comma-separated (a deployment's own timer kinds and
    # topics; the tests' crash handlers), imported after ``registry.HANDLER_MODULES``
    extra_handler_modules: str = ""
    # worker loop
    poll_seconds: float = 0.5
    batch: int = 20
    # live event stream: an id gap older than this is taken as a rolled-back transaction
    event_gap_grace_seconds: float = 60.0


@lru_cache
def get_job_settings() -> JobSettings:
    return JobSettings()
