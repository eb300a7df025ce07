"""The outbreak command view's strings (zh-CN first, English), registered with the console when the
routes load."""

from __future__ import annotations

MESSAGES: dict[str, tuple[str, str]] = {
    "nav.outbreak": ("疫情指挥", "Outbreak command"),
    "ob.title": ("战时疫情指挥", "Outbreak command"),
    "ob.pick": ("疫情", "Outbreak"),
    "ob.none": ("当前没有启用战时模式的疫情", "No outbreak is active"),
    "ob.map": ("管控区域、病例与暴露场所", "Zones, cases and exposure places"),
    "ob.zones": ("管控区域", "Zones"),
    "ob.cases": ("病例", "Cases"),
    "ob.contacts": ("密接 / 次密接", "Contacts"),
    "ob.graph": ("传播链", "Transmission chain"),
    "ob.graph.pick": ("点击病例查看其密接关系", "Pick a case to see its contacts"),
    "ob.followup": ("今日随访（分居村）", "Today's follow-up per community"),
    "ob.report": ("疫情日报", "Daily report"),
    "ob.supplies": ("保供", "Supplies"),
    "ob.col.zone": ("区域", "Zone"),
    "ob.col.level": ("等级", "Level"),
    "ob.col.households": ("户数", "Households"),
    "ob.col.residents": ("人口", "Residents"),
    "ob.col.elderly": ("独居老人", "Elderly alone"),
    "ob.col.cases": ("病例", "Cases"),
    "ob.col.close": ("密接", "Close"),
    "ob.col.due": ("预计降级", "Downgrade due"),
    "ob.col.code": ("编号", "Code"),
    "ob.col.name": ("姓名", "Name"),
    "ob.col.class": ("分类", "Class"),
    "ob.col.onset": ("发病日期", "Onset"),
    "ob.col.street": ("街镇", "Street"),
    "ob.col.id": ("身份证号", "ID number"),
    "ob.col.phone": ("电话", "Phone"),
    "ob.col.category": ("类别", "Category"),
    "ob.col.q_end": ("隔离期满", "Quarantine ends"),
    "ob.col.m_end": ("监测期满", "Monitoring ends"),
    "ob.col.todo": ("待办", "To do"),
    "ob.legend.case": ("病例", "case"),
    "ob.legend.place": ("暴露场所", "exposure place"),
    "ob.due.check": ("健康监测", "daily check"),
    "ob.due.test": ("核酸检测", "test"),
    "ob.summary.cases": ("累计病例", "Cases"),
    "ob.summary.close": ("在管密接", "Close contacts"),
    "ob.summary.secondary": ("在管次密接", "Secondary contacts"),
    "ob.summary.zones": ("管控区域", "Zones"),
    "ob.masked": ("个人信息已脱敏", "personal data masked"),
}


def install() -> None:
    from cityops.console import i18n

    for k, v in MESSAGES.items():
        i18n.MESSAGES.setdefault(k, v)
