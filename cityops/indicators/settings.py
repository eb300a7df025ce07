"""Settings of the vital-signs domain (environment, prefix ``CITYOPS_INDICATORS_``)."""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class IndicatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CITYOPS_INDICATORS_", env_file=None, extra="ignore")

    # raw readings are kept this long (days); older readings are refused at ingest
    raw_retention_days: int = 30
    # a reading may be at most this far in the future (clock skew of devices), seconds
    future_tolerance_s: int = 600
    # largest batch accepted in one request / message
    max_batch: int = 100_000
    # the evaluator's lease (one evaluator per database), seconds
    lease_seconds: float = 15.0
    # how often a non-holder looks whether the lease is free, and the holder polls for batches other
    # processes stored, seconds
    poll_seconds: float = 0.5
    # MQTT broker of `cityops ingest mqtt`
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_topic: str = "cityops/readings/#"
    mqtt_share_group: str = "cityops"


@lru_cache
def get_indicator_settings() -> IndicatorSettings:
    return IndicatorSettings()
