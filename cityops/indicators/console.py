"""The board's console strings (zh-CN first, English) and its nav entry, registered with the
console when the routes are loaded (no edit of the console's own catalogue needed)."""

from __future__ import annotations

MESSAGES: dict[str, tuple[str, str]] = {
    "nav.vitals": ("城市体征", "Vital signs"),
    "vitals.title": ("城市运行体征与预警", "City vital signs and early warning"),
    "vitals.category": ("类别", "Category"),
    "vitals.all": ("全部类别", "All categories"),
    "vitals.map": ("各街镇当前预警级别", "Current level per street"),
    "vitals.legend": ("图例", "Legend"),
    "vitals.by_category": ("分类体征", "By category"),
    "vitals.street": ("街镇", "Street / town"),
    "vitals.trends": ("近6小时趋势", "Last 6 hours"),
    "vitals.warnings": ("预警列表", "Warnings"),
    "vitals.silent": ("离线设备", "Silent devices"),
    "vitals.none_silent": ("没有离线设备", "No silent devices"),
    "vitals.quiet": ("暂无预警", "No open warnings"),
    "vitals.no_data": ("暂无数据", "no data"),
    "vitals.updated": ("更新于 {at}", "updated {at}"),
    "vitals.done": ("已处理", "Done"),
    "vitals.prompt.note": ("处置情况", "What was done"),
    "vitals.prompt.reason": ("解除原因", "Reason for lifting"),
    "vitals.col.level": ("级别", "Level"),
    "vitals.col.warning": ("预警", "Warning"),
    "vitals.col.raised": ("发布时间", "Raised"),
    "vitals.col.state": ("状态", "State"),
    "vitals.col.case": ("案件", "Case"),
    "vitals.col.actions": ("操作", "Actions"),
    "vitals.level.none": ("无预警", "none"),
    "vitals.level.blue": ("蓝色", "blue"),
    "vitals.level.yellow": ("黄色", "yellow"),
    "vitals.level.orange": ("橙色", "orange"),
    "vitals.level.red": ("红色", "red"),
    "vitals.state.raised": ("已发布", "raised"),
    "vitals.state.acknowledged": ("已签收", "acknowledged"),
    "vitals.state.handled": ("已处置", "handled"),
    "vitals.state.lifted": ("已解除", "lifted"),
}


def install() -> None:
    from cityops.console import i18n

    for k, v in MESSAGES.items():
        i18n.MESSAGES.setdefault(k, v)
