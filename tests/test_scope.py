"""The one scope rule (cityops.security.scope) rendered three ways — SQL, NumPy mask, one object —
gives the same answer for every principal over every object (a generated world), and matches the
rule written out independently here."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, insert, select

from cityops.security import scope
from cityops.security.principal import Principal
from cityops.security.scope import Located, ScopedKind

STREETS = ["310117001", "310117002", "310117103"]
DEPTS = ["cgzf", "sw", "lhsr"]


def _world(n: int = 400, seed: int = 3):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        street = STREETS[int(rng.integers(0, 3))]
        community = street + f"{int(rng.integers(1, 4)):03d}"
        grid = community + f"{int(rng.integers(1, 4)):03d}"
        depts = sorted({DEPTS[int(k)] for k in rng.integers(0, 3, size=int(rng.integers(0, 3)))})
        rows.append({"id": i + 1, "street": street, "community": community, "grid": grid, "depts": depts})
    return rows


def _principals():
    areas = [None, "310117", "310117001", "310117001002", "310117103003001"]
    out = [Principal("sys", kind="system")]
    for area, dept in itertools.product(areas, [None, *DEPTS]):
        out.append(Principal(f"p-{area}-{dept}", area_code=area, department_code=dept))
    return out


def _expected(p: Principal, row: dict, handled_kind: bool) -> bool:
    """The rule in plain words: system all; department over handled objects = handled by it, within
    its area below the district; otherwise inside its area; nothing without an area."""
    if p.kind == "system":
        return True
    below = p.area_code is not None and len(p.area_code) > 6
    inside = (not below) or row["grid"].startswith(p.area_code)
    if p.department_code and handled_kind:
        return p.department_code in row["depts"] and inside
    if p.area_code is None:
        return False
    return inside


@pytest.mark.parametrize("handled", [True, False])
def test_sql_mask_and_object_agree_with_the_rule(handled):
    world = _world()
    md = MetaData()
    t = Table("thing", md, Column("id", Integer, primary_key=True), Column("street", String), Column("community", String),
              Column("grid", String))
    h = Table("handler", md, Column("thing_id", Integer), Column("dept", String))
    eng = create_engine("sqlite://")
    md.create_all(eng)
    with eng.begin() as c:
        c.execute(insert(t), [{k: r[k] for k in ("id", "street", "community", "grid")} for r in world])
        pairs = [{"thing_id": r["id"], "dept": d} for r in world for d in r["depts"]]
        if pairs:
            c.execute(insert(h), pairs)
    kind = ScopedKind("thing", Located(street=t.c.street, community=t.c.community, grid=t.c.grid),
                      handled_by=(lambda d: t.c.id.in_(select(h.c.thing_id).where(h.c.dept == d))) if handled else None)
    ids = np.array([r["id"] for r in world])
    grids = np.array([r["grid"] for r in world])

    def within(area: str) -> np.ndarray:
        return np.char.startswith(grids.astype(str), area)

    def handled_by(dept: str) -> np.ndarray:
        return np.array([dept in r["depts"] for r in world])

    with eng.connect() as c:
        for p in _principals():
            want = {r["id"] for r in world if _expected(p, r, handled)}
            got_sql = set(c.execute(select(t.c.id).where(scope.clause(p, kind))).scalars())
            got_mask = set(ids[scope.mask(p, kind, len(world), within=within, handled_by=handled_by)].tolist())
            got_obj = {r["id"] for r in world if scope.allows(p, kind, area_code=r["grid"], departments=r["depts"])}
            assert got_sql == want, p
            assert got_mask == want, p
            assert got_obj == want, p


def test_code_column_kinds_use_the_prefix():
    md = MetaData()
    t = Table("acct", md, Column("id", Integer, primary_key=True), Column("area_code", String))
    eng = create_engine("sqlite://")
    md.create_all(eng)
    codes = ["310117", "310117001", "310117001002", "310117103", "310117103001001"]
    with eng.begin() as c:
        c.execute(insert(t), [{"id": i, "area_code": a} for i, a in enumerate(codes)])
    kind = ScopedKind("acct", Located(code=t.c.area_code))
    with eng.connect() as c:
        def ids(p):
            return sorted(c.execute(select(t.c.id).where(scope.clause(p, kind))).scalars())
        assert ids(Principal("d", area_code="310117")) == [0, 1, 2, 3, 4]
        assert ids(Principal("s", area_code="310117001")) == [1, 2]
        assert ids(Principal("n", area_code=None)) == []
        assert ids(Principal("dept", area_code=None, department_code="cgzf")) == []  # accounts: area only
