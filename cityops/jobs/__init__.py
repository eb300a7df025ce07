"""Durable side effects: an outbox, timers, webhooks and the in-app inbox, run by ``cityops worker``.

Everything that must happen later or elsewhere is a row written in the caller's transaction and
claimed by workers (``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL), so a restart loses nothing.
Public API: ``from cityops.jobs import service as jobs`` (see docs/jobs.md).
"""
