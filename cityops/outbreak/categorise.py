"""Person categories of contact tracing and their end dates, for a whole outbreak at once (pure,
NumPy-vectorised; no database). Reference: public-health.md §4.3 (protocol version 9):

* a **密接** (close contact) is a person with an exposure to a *source* case (a class marked
  ``source``: confirmed, clinically diagnosed, asymptomatic) that ends on or after the case's
  infectious start, ``onset − lookback_days`` (asymptomatic: sampling date − lookback_days);
* a **次密接** (secondary contact) is a person, not a case nor a 密接, with an exposure to a 密接
  that ends on or after that 密接's first qualifying exposure to a case (the contact happened
  during the 密接's exposure window, i.e. after the 密接 may have been infected);
* end dates count from the day of the last qualifying exposure ``L`` (calendar days, Asia/Shanghai):
  quarantine ends on ``L + quarantine_days``, health monitoring on ``quarantine end + monitoring_days``;
  test days are ``L + d`` for each quarantine test day and ``quarantine end + d`` for each
  monitoring test day.

Recomputing from the graph makes every change consistent: a 密接 who becomes a source case turns
the people exposed to them (in the case's infectious window) into 密接, whose end dates then count
from their own last exposure to that case; their contacts become 次密接.

Days are integers (``date.toordinal()``); ``NONE`` marks "no such day".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cityops.outbreak.rules import RuleSet

NONE = np.iinfo(np.int64).max // 2  # "no day": larger than any day, so min() ignores it
NO_DAY = -1  # in max() results: "no qualifying exposure"

CAT_NONE, CAT_SECONDARY, CAT_CLOSE, CAT_CASE = 0, 1, 2, 3
CATEGORY_CODES = {CAT_NONE: None, CAT_SECONDARY: "secondary", CAT_CLOSE: "close", CAT_CASE: "case"}


@dataclass(frozen=True)
class Graph:
    """The tracing graph in arrays. Persons are 0..n-1; ``source_start[p]`` is the first infectious
    day of person p when p is a source case (``NONE`` otherwise); ``is_case[p]`` marks any case
    report (sources and suspected cases alike). Exposure k: person ``e_person[k]`` was exposed to
    ``e_source[k]`` from day ``e_start[k]`` to day ``e_end[k]``."""

    n: int
    source_start: np.ndarray  # int64 [n]
    is_case: np.ndarray  # bool [n]
    e_person: np.ndarray  # int64 [E]
    e_source: np.ndarray  # int64 [E]
    e_start: np.ndarray  # int64 [E]
    e_end: np.ndarray  # int64 [E]


@dataclass(frozen=True)
class Categories:
    """Per person: category code (CAT_*), the last qualifying exposure day, the end of quarantine and
    of health monitoring (``NO_DAY`` when not a contact)."""

    category: np.ndarray  # int8 [n]
    last_exposure: np.ndarray  # int64 [n]
    quarantine_end: np.ndarray  # int64 [n]
    monitoring_end: np.ndarray  # int64 [n]


def infectious_start(onset_day: np.ndarray, sampled_day: np.ndarray, rules: RuleSet) -> np.ndarray:
    """First infectious day of each case: onset (or, without onset, the sampling day) − lookback
    (§4.3: "from 4 days before symptom onset; asymptomatic: 4 days before sampling")."""
    base = np.where(onset_day >= 0, onset_day, sampled_day)
    return np.where(base >= 0, base - rules.lookback_days, NONE).astype(np.int64)


def categorise(g: Graph, rules: RuleSet) -> Categories:
    """Every person's category and end dates from the graph (see the module docstring)."""
    n = g.n
    is_source = g.source_start < NONE
    src = g.e_source
    per = g.e_person
    valid = (src != per) & (src >= 0) & (per >= 0)
    # 1. 密接: exposed to a source case within its infectious window, not a source case oneself
    close_e = valid & is_source[src] & (g.e_end >= g.source_start[src]) & ~is_source[per]
    close_last = np.full(n, NO_DAY, dtype=np.int64)
    np.maximum.at(close_last, per[close_e], g.e_end[close_e])
    close_first = np.full(n, NONE, dtype=np.int64)
    np.minimum.at(close_first, per[close_e], g.e_start[close_e])
    is_close = close_last > NO_DAY
    # 2. 次密接: exposed to a 密接 after that 密接's first qualifying exposure
    sec_last = np.full(n, NO_DAY, dtype=np.int64)
    if rules.secondary.enabled:
        sec_e = valid & is_close[src] & (g.e_end >= close_first[src]) & ~is_source[per] & ~is_close[per]
        np.maximum.at(sec_last, per[sec_e], g.e_end[sec_e])
    is_sec = sec_last > NO_DAY
    cat = np.zeros(n, dtype=np.int8)
    cat[is_sec] = CAT_SECONDARY
    cat[is_close] = CAT_CLOSE
    cat[g.is_case | is_source] = CAT_CASE
    last = np.where(is_close, close_last, np.where(is_sec, sec_last, NO_DAY))
    q_days = np.where(is_close, rules.close.quarantine_days, rules.secondary.quarantine_days)
    m_days = np.where(is_close, rules.close.monitoring_days, rules.secondary.monitoring_days)
    contact = (cat == CAT_CLOSE) | (cat == CAT_SECONDARY)
    q_end = np.where(contact, last + q_days, NO_DAY)
    m_end = np.where(contact, q_end + m_days, NO_DAY)
    last = np.where(contact, last, NO_DAY)
    return Categories(cat, last, q_end, m_end)


def tests_due(category: np.ndarray, last_exposure: np.ndarray, quarantine_end: np.ndarray, day: int,
                  rules: RuleSet) -> np.ndarray:
    """Persons with a test due on ``day`` (§4.3: PCR on days 1, 2, 3, 5, 7 of a 密接's quarantine and
    day 3 of home monitoring; days 1, 4, 7 for a 次密接)."""
    due = np.zeros(len(category), dtype=bool)
    for code, rule in ((CAT_CLOSE, rules.close), (CAT_SECONDARY, rules.secondary)):
        m = category == code
        for d in rule.test_days:
            due |= m & (last_exposure + d == day)
        for d in rule.monitoring_test_days:
            due |= m & (quarantine_end + d == day)
    return due


def under_management(category: np.ndarray, last_exposure: np.ndarray, monitoring_end: np.ndarray,
                     day: int) -> np.ndarray:
    """Contacts still in quarantine or health monitoring on ``day`` (a daily check is due)."""
    contact = (category == CAT_CLOSE) | (category == CAT_SECONDARY)
    out: np.ndarray = contact & (last_exposure <= day) & (day <= monitoring_end)
    return out


def pack(c: Categories) -> np.ndarray:
    """The category and the three days of each person in one int64 (category << 60 | last << 40 |
    quarantine end << 20 | monitoring end; days are < 2**20, none is 0): one column to diff."""
    def d(v: np.ndarray) -> np.ndarray:
        return np.where(v > 0, v, 0).astype(np.int64)

    out: np.ndarray = (c.category.astype(np.int64) << 60) | (d(c.last_exposure) << 40) | \
        (d(c.quarantine_end) << 20) | d(c.monitoring_end)
    return out


def unpack(key: np.ndarray) -> Categories:
    """The inverse of ``pack`` (a day of 0 back to ``NO_DAY``)."""
    k = np.asarray(key, dtype=np.int64)
    mask = np.int64((1 << 20) - 1)

    def d(v: np.ndarray) -> np.ndarray:
        return np.where(v > 0, v, NO_DAY)

    return Categories((k >> 60).astype(np.int8), d((k >> 40) & mask), d((k >> 20) & mask), d(k & mask))
