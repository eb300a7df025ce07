"""Demo data of the resource database: warehouses of the four reserve modes with stock (GB/T 38565
shaped item codes — illustrative, see ``ITEMS``), teams, experts, equipment, shelters in the
district's grids; a supply request for the demo storm incident with committed and dispatched
shipments; a requisitioned truck in use and a closed requisition with its full record."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops import clock
from cityops.lifecycle import service as lifecycle
from cityops.resources import ledger, machines, requisitions, schemas, shipments
from cityops.resources.models import Equipment, Expert, Shelter, Stock, SupplyRequest, Team, Warehouse
from cityops.security.principal import SYSTEM

# (code, name, unit, min stock, typical stock) — the codes have the shape of GB/T 38565-2020
# (major 1 basic living / 2 equipment / 3 engineering, then three groups 01-99); illustrative only
ITEMS = [("1010101", "饮用水", "箱", 200, 1500), ("1010201", "方便食品", "箱", 150, 1000),
         ("1020101", "棉被", "床", 100, 600), ("1020301", "折叠床", "张", 50, 300),
         ("1030101", "救灾帐篷", "顶", 20, 120), ("2010101", "救生衣", "件", 50, 400),
         ("2020201", "排水泵", "台", 5, 30), ("3010101", "防汛沙袋", "只", 2000, 12000),
         ("2030101", "应急照明灯", "盏", 20, 150), ("2040101", "医用防护口罩", "盒", 100, 800)]
WH_KINDS = ["government", "government", "enterprise", "logistics", "capacity"]
TEAM_KINDS = [("professional", ["防汛抢险", "水上救援"]), ("professional", ["危化品处置"]),
              ("social", ["医疗救护"]), ("volunteer", ["物资搬运", "群众转移"])]
GRADES = ["county", "township", "township", "community", "community"]


def _points(district: Any, n: int, rng: np.random.Generator) -> list[tuple[str, float, float]]:
    """n random points, each inside a random unit grid (its code, lon, lat)."""
    from shapely.geometry import Point

    grids = [(a.code, a.geom) for a in district.areas if a.level == "grid"]
    out = []
    for _ in range(n):
        code, g = grids[int(rng.integers(0, len(grids)))]
        minx, miny, maxx, maxy = g.bounds
        p = g.representative_point()
        for _try in range(30):
            x, y = float(rng.uniform(minx, maxx)), float(rng.uniform(miny, maxy))
            if g.contains(Point(x, y)):
                p = Point(x, y)
                break
        out.append((str(code), float(p.x), float(p.y)))
    return out


def _place(code: str, lon: float, lat: float) -> dict[str, Any]:
    return {"lon": round(lon, 6), "lat": round(lat, 6), "grid_code": code, "community_code": code[:12],
            "street_code": code[:9]}


def seed_demo(session: Session, district: Any = None, *, small: bool = False, rng_seed: int = 20210220,
              progress: Callable[[str, int, int], None] | None = None) -> None:
    if district is None or session.scalar(select(Warehouse.id).limit(1)) is not None:
        return
    tick = progress or (lambda _s, _d, _t: None)
    rng = np.random.default_rng(rng_seed + 13)
    k = 1 if small else 4
    n_wh, n_team, n_exp, n_eq, n_sh = 6 * k, 8 * k, 4 * k, 8 * k, 10 * k
    tick("应急资源 resources", 0, 1)
    whs = []
    for i, (g, lon, lat) in enumerate(_points(district, n_wh, rng), start=1):
        kind = WH_KINDS[(i - 1) % len(WH_KINDS)]
        label = {"government": "区应急物资储备库", "enterprise": "企业协议储备点", "logistics": "物流企业仓",
                 "capacity": "产能储备企业"}[kind]
        w = Warehouse(code=f"WH-{i:03d}", name=f"{label}{i:02d}", kind=kind, managing_unit="区应急管理局"
                      if kind == "government" else f"协议企业{i:02d}", contact=f"021-5778{i:04d}",
                      handling=None if kind == "government" else int(rng.integers(800, 3000)), status="active",
                      updated_at=clock.now(), **_place(g, lon, lat))
        session.add(w)
        whs.append(w)
    session.flush()
    today = clock.now().date()
    for w in whs:
        for code, name, unit, low, typical in ITEMS:
            if rng.random() < 0.25:
                continue
            qty = int(typical * rng.uniform(0.2, 1.3)) if w.kind != "capacity" else int(typical * 0.3)
            exp = today + dt.timedelta(days=int(rng.integers(20, 900))) if code.startswith("10") else None
            s = Stock(warehouse_id=w.id, item_code=code, item_name=name, unit=unit, batch=f"B{today:%Y}01",
                      expires_on=exp, on_hand=0, reserved=0, min_stock=low)
            session.add(s)
            session.flush()
            ledger.move(session, SYSTEM, s.id, "receive", qty, note="演示初始库存 demo opening stock")
    for i, (g, lon, lat) in enumerate(_points(district, n_team, rng), start=1):
        kind, skills = TEAM_KINDS[(i - 1) % len(TEAM_KINDS)]
        session.add(Team(code=f"TM-{i:03d}", name=f"{'、'.join(skills)}队{i:02d}", kind=kind, skills=skills,
                         headcount=int(rng.integers(12, 80)), equipment=["冲锋舟", "排水泵"] if "防汛抢险" in skills else [],
                         readiness="ready" if i % 5 else "standby", leader=f"队长{i:02d}", phone=f"1391600{i:04d}",
                         **_place(g, lon, lat)))
    specs = ["防汛防台", "危险化学品", "公共卫生", "建筑结构", "地质灾害"]
    for i, (g, lon, lat) in enumerate(_points(district, n_exp, rng), start=1):
        session.add(Expert(code=f"EX-{i:03d}", name=f"专家{i:02d}", specialty=specs[(i - 1) % len(specs)],
                           title="高级工程师", organisation="松江区应急专家库", phone=f"1381700{i:04d}",
                           **_place(g, lon, lat)))
    eq_kinds = [("vehicle", "应急指挥车"), ("pump", "大流量排水车"), ("boat", "冲锋舟"), ("generator", "移动发电机"),
                ("machinery", "挖掘机"), ("vehicle", "物资运输车")]
    for i, (g, lon, lat) in enumerate(_points(district, n_eq, rng), start=1):
        kind, name = eq_kinds[(i - 1) % len(eq_kinds)]
        session.add(Equipment(code=f"EQ-{i:03d}", name=f"{name}{i:02d}", kind=kind, quantity=int(rng.integers(1, 4)),
                              plate=f"沪A{i:05d}" if kind == "vehicle" else None,
                              owner_kind="logistics" if i % 4 == 0 else "government", status="available",
                              warehouse_id=whs[(i - 1) % len(whs)].id, **_place(g, lon, lat)))
    for i, (g, lon, lat) in enumerate(_points(district, n_sh, rng), start=1):
        grade = GRADES[(i - 1) % len(GRADES)]
        site = i % 2 == 0
        session.add(Shelter(code=f"SH-{i:03d}", name=f"{'公园绿地' if site else '学校体育馆'}避难场所{i:02d}", grade=grade,
                            space_type="site" if site else "building", functions=["综合"] if grade == "county" else [],
                            capacity=int(rng.integers(300, 5000)), occupancy=0,
                            effective_area_m2=float(rng.integers(2000, 40000)), service_radius_m=1000.0 if site else 500.0,
                            facilities=["应急供水", "应急照明", "应急厕所"], status="standby",
                            managing_unit="区应急管理局", **_place(g, lon, lat)))
    session.flush()
    _demo_flows(session, whs)
    tick("应急资源 resources", 1, 1)


def _demo_flows(session: Session, whs: list[Warehouse]) -> None:
    """A request for the demo storm (if the incident is there), shipments, two requisitions."""
    from cityops.emergency.models_command import Incident

    inc = session.scalar(select(Incident).where(Incident.exercise.is_(False)).order_by(Incident.id).limit(1))
    w0 = whs[0]
    r = SupplyRequest(code=shipments.new_code("RQ"), incident_id=inc.id if inc else None,
                      demand_name="岳阳街道临时安置点" if inc else "演示需求点", priority=3.0, state="open",
                      requested_by="demo", created_at=clock.now(), lon=w0.lon + 0.004, lat=w0.lat + 0.003,
                      street_code=w0.street_code, community_code=w0.community_code, grid_code=w0.grid_code)
    if inc is not None and inc.lon is not None and inc.lat is not None and inc.grid_code:
        r.lon, r.lat, r.grid_code = inc.lon, inc.lat, inc.grid_code
        r.community_code, r.street_code = inc.grid_code[:12], inc.grid_code[:9]
    session.add(r)
    session.flush()
    from cityops.resources.models import RequestLine

    for code, qty in (("1010101", 300), ("3010101", 2000), ("1020101", 80)):
        session.add(RequestLine(request_id=r.id, item_code=code, quantity=qty, committed=0, received=0))
    session.flush()
    table = machines.shipment_table()
    for code, qty in (("1010101", 120), ("3010101", 800)):
        w = next((w for w in whs if any(s.on_hand - s.reserved >= qty for s in ledger.batches(session, w.id, code))), None)
        if w is None:
            continue
        for sh in shipments.commit(session, SYSTEM, r, w, code, qty):
            if code == "1010101":
                lifecycle.perform(session, SYSTEM, table, sh, "dispatch", {}, at=clock.now())
    g = whs[-1]
    base: dict[str, Any] = {"lon": g.lon, "lat": g.lat, "authority": "松江区人民政府", "authority_level": "county",
            "legal_basis": "《中华人民共和国突发事件应对法》第十二条；《上海市实施〈突发事件应对法〉办法》",
            "owner_kind": "organisation", "item": "厢式货车", "quantity": 2,
            "condition_before": "车况良好，里程 52,300 km，无外观损伤（第三方评估）", "appraiser": "上海某机动车评估公司"}
    a = requisitions.register(session, SYSTEM, schemas.RequisitionIn(
        **base, notice_no="松应征〔2026〕1号", owner_name="上海某物流有限公司", identifiers={"plate": "沪B12345"},
        purpose="防汛物资转运", incident=inc.id if inc else None))
    requisitions.act(session, SYSTEM, str(a["id"]), "take", {})
    b = requisitions.register(session, SYSTEM, schemas.RequisitionIn(
        **{**base, "item": "移动发电机", "quantity": 1}, notice_no="松应征〔2026〕2号", owner_name="松江某建筑公司"))
    requisitions.act(session, SYSTEM, str(b["id"]), "take", {})
    now = clock.now()
    requisitions.act(session, SYSTEM, str(b["id"]), "record_return",
                     {"returned_at": now, "condition_after": "完好，运行 36 小时"})
    requisitions.act(session, SYSTEM, str(b["id"]), "record_compensation",
                     {"amount": 4320.0, "basis": "按市场租赁价 120 元/小时 × 36 小时"})
    requisitions.act(session, SYSTEM, str(b["id"]), "record_payment", {"paid_at": now, "payment_ref": "演示凭证001"})
    requisitions.act(session, SYSTEM, str(b["id"]), "close", {})
