"""Identifier checks (GB 11643 ID numbers, GB 32100 credit codes, component codes) and the demo
base data built with them."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from cityops.registry.codes import (
    CodeError,
    check_component_code,
    check_credit_code,
    check_id_number,
    make_component_code,
    make_credit_code,
    make_id_number,
    standard_ref,
)


def iso7064_mod11_2(body17: str) -> str:
    """Independent reference: weights 2^(17-i) mod 11, check = (12 - sum mod 11) mod 11, 10 -> X."""
    s = sum(int(c) * (2 ** (17 - i) % 11) for i, c in enumerate(body17))
    v = (12 - s % 11) % 11
    return "X" if v == 10 else str(v)


def test_published_id_number_example_is_valid():
    info = check_id_number("11010519491231002X")
    assert info.birth_date == dt.date(1949, 12, 31)
    assert info.gender == "female"  # 17th digit 2 is even
    assert info.area_code == "110105"


@pytest.mark.parametrize("body", ["31011719900307123", "31022719650101001", "34120119880815254", "51010420100228067"])
def test_check_digit_matches_the_iso7064_reference(body):
    good = body + iso7064_mod11_2(body)
    assert check_id_number(good).number == good
    for wrong in "0123456789X":
        if wrong != good[-1]:
            with pytest.raises(CodeError, match="校验码"):
                check_id_number(body + wrong)
            break


def test_lower_case_x_and_spaces_are_normalised():
    assert check_id_number(" 11010519491231002x ").number == "11010519491231002X"


@pytest.mark.parametrize("value,reason", [
    ("110105491231002", "15位"),
    ("1101051949123100", "18位"),
    ("11010519491231002A", "17位"),
    ("110105" + "19490231" + "002", "出生日期"),
    ("999999" + "19800101" + "001", "地址码"),
    ("110105" + "21000101" + "001", "出生日期"),
])
def test_bad_id_numbers_are_rejected_with_a_reason(value, reason):
    if len(value) == 17:
        value += iso7064_mod11_2(value)
    with pytest.raises(CodeError, match=reason):
        check_id_number(value, today=dt.date(2026, 11, 27))


def test_make_id_number_is_valid_and_carries_gender():
    n = make_id_number("310117", dt.date(2001, 5, 3), 123)
    assert n[-1] == iso7064_mod11_2(n[:17])
    assert check_id_number(n).gender == "male"
    assert check_id_number(make_id_number("310117", dt.date(2001, 5, 3), 124)).gender == "female"


def test_credit_codes():
    assert check_credit_code("91110000600037341L") == ("91110000600037341L", "enterprise")
    with pytest.raises(CodeError, match="校验码"):
        check_credit_code("91110000600037341A")
    with pytest.raises(CodeError, match="非法字符"):
        check_credit_code("9111000060003734IL")
    with pytest.raises(CodeError, match="18位"):
        check_credit_code("9111000060003734")
    code = make_credit_code("52", "310117", "MA1FL3X2")
    assert check_credit_code(code) == (code, "social_organisation")


def test_component_code_length_follows_the_standard():
    ref13 = standard_ref("GB/T 30428.2-2013")
    ref26 = standard_ref("47678.5")
    assert ref26 == "GB/T 47678.5-2026"
    c = check_component_code("3101170101000001", ref13, {"310117"})
    assert (c.major, c.minor, c.serial, c.type_code) == ("01", "01", "000001", "0101")
    c = check_component_code("31011701018000001", ref26, {"310117"})
    assert (c.major, c.minor, c.type_code) == ("01", "018", "01018")
    with pytest.raises(CodeError, match="17位"):
        check_component_code("3101170101000001", ref26, {"310117"})
    with pytest.raises(CodeError, match="16位"):
        check_component_code("31011701018000001", ref13, {"310117"})
    with pytest.raises(CodeError, match="区划代码320508"):
        check_component_code("3205080101000001", ref13, {"310117"})
    with pytest.raises(CodeError, match="流水号"):
        check_component_code("3101170101000000", ref13, {"310117"})
    with pytest.raises(CodeError, match="未知的编码标准"):
        standard_ref("GB/T 9999-2020")
    assert make_component_code(ref26, "310117", "03", "5", 12) == "31011703005000012"


# ------------------------------------------------------------------ the demo base data


def test_demo_base_data_is_valid_and_consistent(session):
    from cityops.geo.models import Area
    from cityops.geo.service import grid_indices_for
    from cityops.registry.models import Building, Facility, Household, Organisation, Person, Place

    cur = Person.valid_to.is_(None)
    persons = session.execute(select(Person.id_number, Person.gender, Person.birth_date, Person.household_code,
                                     Person.grid_code, Person.registered, Person.synthetic)
                              .where(cur, Person.source == "demo")).all()
    assert 2000 <= len(persons) <= 4000  # small demo: ~2,500
    assert all(p.synthetic for p in persons)
    for p in persons:
        info = check_id_number(p.id_number)
        assert (info.gender, info.birth_date) == (p.gender, p.birth_date)
        if p.registered:
            assert p.id_number[:6] in ("310117", "310227")
    migrants = [p for p in persons if not p.registered]
    assert migrants and all(p.id_number[:2] != "31" for p in migrants)
    assert len({p.id_number for p in persons}) == len(persons)

    households = dict(session.execute(select(Household.code, Household.grid_code)
                                      .where(Household.valid_to.is_(None), Household.source == "demo")).tuples().all())
    assert 900 <= len(households) <= 1100
    assert all(households[p.household_code] == p.grid_code for p in persons)

    grids = {r.code: r.parent_code for r in session.execute(select(Area.code, Area.parent_code)
                                                             .where(Area.level.in_(("grid", "community")),
                                                                    Area.valid_to.is_(None)))}
    for model in (Building, Facility, Organisation, Place):
        rows = session.execute(select(model.lon, model.lat, model.grid_code, model.community_code, model.street_code)
                               .where(model.valid_to.is_(None), model.source == "demo")).all()
        assert rows, model.__tablename__
        import numpy as np

        located = grid_indices_for(session, np.array([r.lon for r in rows]), np.array([r.lat for r in rows]))
        assert [str(c) for c in located] == [r.grid_code for r in rows]
        for r in rows:
            assert grids[r.grid_code] == r.community_code and grids[r.community_code] == r.street_code

    refs = {"GB/T 30428.2-2013", "GB/T 47678.5-2026"}
    fac = session.execute(select(Facility.code, Facility.standard_ref, Facility.type_code)
                          .where(Facility.valid_to.is_(None))).all()
    assert {f.standard_ref for f in fac if f.code.startswith("310117")} == refs
    for f in fac:
        if f.code.startswith("310117") and len(f.code) in (16, 17):
            assert check_component_code(f.code, f.standard_ref, {"310117"}).type_code == f.type_code
    for (code,) in session.execute(select(Organisation.credit_code).where(Organisation.source == "demo")):
        check_credit_code(code)
    kinds = set(session.scalars(select(Place.kind).where(Place.source == "demo")))
    assert {"school", "hospital", "market", "construction_site"} <= kinds
    # some components have a history (完好 -> 破损)
    assert session.scalar(select(func.count()).select_from(Facility).where(Facility.valid_to.is_not(None))) > 0


def test_demo_seed_is_deterministic():
    """Same seed, same base data (generated twice into two fresh in-memory databases)."""
    from sqlalchemy.orm import Session
    from sqlalchemy.pool import StaticPool

    from cityops.db import make_engine
    from cityops.geo import demo
    from cityops.geo.seed import seed_geo
    from cityops.models import load_all
    from cityops.registry import seed
    from cityops.registry.models import Facility, Person

    district = demo.generate(seed=7, small=True)
    dumps = []
    for _ in range(2):
        eng = make_engine("sqlite://", poolclass=StaticPool)
        load_all().metadata.create_all(eng)
        with Session(eng) as s:
            seed_geo(s, district)
            seed.seed_demo(s, district, small=True, rng_seed=7)
            dumps.append((s.execute(select(Person.id_number, Person.name, Person.phone).order_by(Person.id)).all(),
                          s.execute(select(Facility.code, Facility.lon, Facility.status).order_by(Facility.id)).all()))
        eng.dispose()
    assert dumps[0] == dumps[1]
    assert len(dumps[0][0]) > 1000
