"""Area code validation: length, digits, parent prefix, GB/T 10114 type digit."""

from __future__ import annotations

import pytest

from cityops.geo.demo import STREETS
from cityops.geo.service import street_kind, validate_area_code


@pytest.mark.parametrize("code,level,parent,kind", [
    ("310117", "district", None, None),
    ("310117001", "street", "310117", "subdistrict"),
    ("310117121", "street", "310117", "town"),
    ("310117501", "street", "310117", "special_zone"),
    ("310117001001", "community", "310117001", None),
    ("310117001001007", "grid", "310117001001", None),
])
def test_valid_codes(code, level, parent, kind):
    assert validate_area_code(code, level, parent, kind) == []


@pytest.mark.parametrize("code,level,parent,kind,needle", [
    ("31011", "district", None, None, "6 digits"),
    ("3101170", "district", None, None, "6 digits"),
    ("31O117", "district", None, None, "digits"),
    ("３１０１１７", "district", None, None, "digits"),  # full-width digits are not ASCII digits
    ("990117", "district", None, None, "province"),
    ("310017", "district", None, None, "cannot be 00"),
    ("310100", "district", None, None, "cannot be 00"),
    ("31011700", "street", "310117", None, "9 digits"),
    ("310118001", "street", "310117", None, "parent's code 310117"),
    ("310117901", "street", "310117", None, "type digit 9"),
    ("310117000", "street", "310117", None, "reserved"),
    ("310117102", "street", "310117", "subdistrict", "means town"),
    ("310117002", "street", "310117", "town", "means subdistrict"),
    ("310117001001", "community", "310117", None, "9 digits"),
    ("310117001000", "community", "310117001", None, "reserved"),
    ("310117001001000", "grid", "310117001001", None, "reserved"),
    ("310117001002007", "grid", "310117001001", None, "parent's code"),
    ("310117001001007", "unit", None, None, "unknown level"),
])
def test_invalid_codes(code, level, parent, kind, needle):
    errs = validate_area_code(code, level, parent, kind)
    assert errs and any(needle in e for e in errs), errs


def test_demo_street_codes_are_valid_and_typed():
    for code, _name, kind, *_ in STREETS:
        assert validate_area_code(code, "street", "310117", kind) == []
        assert street_kind(code) == kind
    assert street_kind("310117") is None


def test_every_seeded_area_code_is_valid(session):
    from sqlalchemy import select

    from cityops.geo.models import Area

    rows = session.execute(select(Area.code, Area.level, Area.parent_code, Area.kind)).all()
    assert len(rows) > 100
    for r in rows:
        kind = r.kind if r.level == "street" else None
        assert validate_area_code(r.code, r.level, r.parent_code, kind) == [], r
