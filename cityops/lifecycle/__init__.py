"""Lifecycles as validated tables (state x action -> state, roles, guards, effects) and the
timeline every change writes. Used by the case workflow and by every other lifecycle."""

from cityops.lifecycle.machine import Context, Machine, Table, Transition

__all__ = ["Context", "Machine", "Table", "Transition"]
