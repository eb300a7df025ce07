"""Console strings of the public-health page (zh-CN first, English)."""

from __future__ import annotations

MESSAGES: dict[str, tuple[str, str]] = {
    "nav.health": ("公共卫生监测", "Public health"),
    "health.title": ("公共卫生监测预警", "Public-health surveillance and early warning"),
    "health.curves": ("流行曲线（区级，观察值与上限）", "Epidemic curves (district, observed and upper bound)"),
    "health.signals": ("预警信号队列", "Signal queue"),
    "health.kpis": ("响应指标", "Response KPIs"),
    "health.kpi.response_rate": ("信号响应率", "Response rate"),
    "health.kpi.response_rate_24h": ("24小时响应率", "24-hour response rate"),
    "health.kpi.median_response_hours": ("响应时间中位数（小时）", "Median response time (h)"),
    "health.kpi.suspected_event_rate": ("疑似事件率", "Suspected-event rate"),
    "health.col.signal": ("信号", "Signal"),
    "health.col.area": ("地区", "Area"),
    "health.col.observed": ("观察值/阈值", "Observed / threshold"),
    "health.col.status": ("状态", "Status"),
    "health.col.due": ("核实时限", "Verify by"),
    "health.col.actions": ("操作", "Actions"),
    "health.none": ("暂无信号", "No signals"),
    "health.escalated": ("已超时上报", "escalated"),
    "health.prompt.note": ("核实或调查情况", "Note"),
}


def install() -> None:
    from cityops.console import i18n

    for k, v in MESSAGES.items():
        i18n.MESSAGES.setdefault(k, v)
