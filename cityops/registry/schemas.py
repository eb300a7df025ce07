"""Pydantic I/O of the base data. Personal fields are strings because they come masked."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field


class Version(BaseModel):
    id: int = Field(description="记录编号（各版本相同） record id, the same for all versions")
    version_id: int = Field(description="版本编号 id of this version")
    valid_from: dt.datetime = Field(description="版本生效时间（UTC） version valid from (UTC)")
    valid_to: dt.datetime | None = Field(None, description="版本失效时间，空为当前版本 valid until; null = current")
    grid_code: str
    community_code: str
    street_code: str
    synthetic: bool = False
    source: str | None = None


class Positioned(BaseModel):
    lon: float | None = None
    lat: float | None = None
    has_footprint: bool = False


class BuildingOut(Version, Positioned):
    code: str
    name: str | None = None
    address: str
    kind: str
    kind_label: str
    compound: str | None = None
    floors: int | None = None


class HouseholdMember(BaseModel):
    id: int
    name: str | None = None
    gender: str | None = None
    gender_label: str | None = None
    birth_date: dt.date | str | None = None
    relation: str | None = None
    registered: bool | None = None
    resident: bool | None = None


class HouseholdOut(Version):
    code: str
    building_code: str
    room: str | None = None
    address: str | None = Field(None, description="住址（脱敏至社区） address, masked to community level")
    kind: str
    kind_label: str
    member_count: int | None = None
    members: list[HouseholdMember] | None = Field(None, description="成员（脱敏；需 person.read） members, masked")


class PersonOut(Version):
    name: str | None = None
    id_number: str | None = None
    gender: str
    gender_label: str
    birth_date: dt.date | str | None = None
    phone: str | None = None
    household_code: str | None = None
    relation: str | None = None
    address: str | None = None
    registered: bool
    resident: bool
    masked: bool = Field(True, description="是否已脱敏 whether personal fields are masked")


class FacilityOut(Version, Positioned):
    code: str
    standard_ref: str
    major_code: str
    minor_code: str
    type_code: str
    name: str
    status: str
    status_label: str
    accuracy_class: str
    accuracy_m: float | None = None
    competent_dept: str | None = None
    competent_code: str | None = None
    owner_unit: str | None = None
    owner_code: str | None = None
    maintenance_unit: str | None = None
    maintenance_code: str | None = None
    initial_date: dt.date | None = None
    data_source: str | None = None
    note: str | None = None


class OrganisationOut(Version, Positioned):
    credit_code: str
    name: str
    org_kind: str
    org_kind_label: str
    address: str | None = None
    industry: str | None = None
    legal_rep: str | None = None
    phone: str | None = None
    employees: int | None = None


class PlaceOut(Version, Positioned):
    code: str
    kind: str
    kind_label: str
    name: str
    address: str | None = None
    capacity: int | None = None
    responsible_unit: str | None = None
    phone: str | None = None


class Page(BaseModel):
    total: int
    page: int
    page_size: int


class BuildingPage(Page):
    items: list[BuildingOut]


class HouseholdPage(Page):
    items: list[HouseholdOut]


class PersonPage(Page):
    items: list[PersonOut]


class FacilityPage(Page):
    items: list[FacilityOut]


class OrganisationPage(Page):
    items: list[OrganisationOut]


class PlacePage(Page):
    items: list[PlaceOut]


OUT: dict[str, type[BaseModel]] = {"buildings": BuildingOut, "households": HouseholdOut, "persons": PersonOut,
                                   "facilities": FacilityOut, "organisations": OrganisationOut, "places": PlaceOut}
PAGES: dict[str, type[BaseModel]] = {"buildings": BuildingPage, "households": HouseholdPage, "persons": PersonPage,
                                     "facilities": FacilityPage, "organisations": OrganisationPage,
                                     "places": PlacePage}


class FeatureCollection(BaseModel):
    type: str = "FeatureCollection"
    features: list[dict[str, Any]]
    total: int
    page: int
    page_size: int


class ImportReportOut(BaseModel):
    kind: str
    filename: str
    format: str
    rows: int = Field(description="读取的记录数 records read")
    created: int
    updated: int = Field(description="有变化、新建版本的记录数 records that changed (new version)")
    unchanged: int
    cascaded: dict[str, int] = Field(default_factory=dict,
                                     description="随之更新的下级记录（户随建筑、人随户） dependants moved along")
    dry_run: bool = False
    at: dt.datetime | None = None


class RetiredOut(BaseModel):
    id: int
    kind: str
    valid_to: dt.datetime


class ColumnOut(BaseModel):
    field: str
    label: str
    aliases: list[str]
    required: bool


class KindInfo(BaseModel):
    kind: str
    label: str
    label_en: str
    key: str
    spatial: bool
    permission: str
    filters: dict[str, str]
    columns: list[ColumnOut]
