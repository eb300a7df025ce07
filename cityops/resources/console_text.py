"""Console texts of the resources map (zh-CN first, English), merged into the console catalogue."""

from __future__ import annotations

MESSAGES: dict[str, tuple[str, str]] = {
    "nav.resources": ("应急资源", "Resources"),
    "rs.title": ("应急资源一张图", "Emergency resources map"),
    "rs.map": ("资源分布", "Resources on the map"),
    "rs.warehouses": ("储备库与库存", "Warehouses and stock"),
    "rs.shipments": ("调运看板", "Shipments board"),
    "rs.layer.warehouses": ("储备库", "Warehouses"),
    "rs.layer.teams": ("应急队伍", "Teams"),
    "rs.layer.shelters": ("避难场所", "Shelters"),
    "rs.layer.equipment": ("装备", "Equipment"),
    "rs.layer.roads": ("道路水系底图", "Roads and rivers"),
    "rs.col.warehouse": ("储备库", "Warehouse"),
    "rs.col.kind": ("类型", "Kind"),
    "rs.col.items": ("品类", "Items"),
    "rs.col.low": ("低于下限", "Below minimum"),
    "rs.col.stock": ("主要库存（可用）", "Main stock (available)"),
    "rs.col.code": ("单号", "Code"),
    "rs.col.item": ("物资", "Item"),
    "rs.col.qty": ("数量", "Quantity"),
    "rs.col.from": ("发出", "From"),
    "rs.col.to": ("送达", "To"),
    "rs.col.state": ("状态", "State"),
    "rs.none": ("暂无", "None"),
    "rs.count": ("储备库 {w} · 队伍 {t} · 避难场所 {s} · 装备 {e}", "{w} warehouses · {t} teams · {s} shelters · {e} equipment"),
    "rs.capacity": ("容量", "Capacity"),
    "rs.headcount": ("人数", "Headcount"),
    "rs.low_stock": ("库存低于下限", "Stock below minimum"),
}
