"""The console's message catalogue: zh-CN first, English available.

The language is chosen per request: ``?lang=en|zh`` (remembered in the ``lang`` cookie), else the
cookie, else zh-CN. Templates call ``t("key")``; the browser gets the same catalogue as JSON
(``window.I18N``) so our JS modules label things in the chosen language too.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request

LANGS = ("zh", "en")
DEFAULT_LANG = "zh"
COOKIE = "lang"
TZ = ZoneInfo("Asia/Shanghai")

# key -> (zh, en)
MESSAGES: dict[str, tuple[str, str]] = {
    # chrome
    "app.title": ("松江区城市运行管理中心", "Songjiang City Operations Centre"),
    "app.short": ("城运", "CityOps"),
    "app.slogan": ("一屏观全域 · 一网管全城", "See the whole district on one screen, manage the city in one network"),
    "nav.console": ("驾驶舱", "Console"),
    "nav.inbox": ("我的待办", "My inbox"),
    "nav.mobile": ("我的任务", "My tasks"),
    "inbox.title": ("我的待办", "My inbox"),
    "inbox.empty": ("这里没有待办", "Nothing to do here"),
    "inbox.none": ("您的角色没有待办箱", "Your roles have no inbox"),
    "inbox.find": ("按案件编号查找（含已结案）", "Find by case number (closed too)"),
    "inbox.go": ("打开", "Open"),
    "inbox.overdue_by": ("超期 {t}", "overdue {t}"),
    "inbox.remaining": ("剩余 {t}", "{t} left"),
    "inbox.owner": ("责任部门", "Owner"),
    "inbox.no_owner": ("未派遣", "not dispatched"),
    "inbox.col.due": ("时限", "Deadline"),
    "inbox.col.act": ("办理", "Act"),
    "inbox.total": ("共 {n} 件待办", "{n} to do"),
    "case.missing": ("为何没有其他操作", "Why other actions are missing"),
    "overdue.title": ("超期 TOP", "Most overdue"),
    "overdue.stuck": ("卡在环节", "Stuck at step"),
    "overdue.near": ("临期在办", "Due soon"),
    "overdue.chase": ("催办", "Chase"),
    "overdue.chase_note": ("请尽快办理", "Please act soon"),
    "dur.min": ("{n}分钟", "{n} min"),
    "dur.hour": ("{h}小时{m}分", "{h} h {m} min"),
    "dur.day": ("{d}天{h}小时", "{d} d {h} h"),
    "m.title": ("我的任务", "My tasks"),
    "m.today": ("今日核实 / 核查", "Today: verify / inspect"),
    "m.report": ("上报问题", "Report a problem"),
    "m.desktop": ("电脑版", "Desktop"),
    "nav.cases": ("案件", "Cases"),
    "nav.workstation": ("工作站", "Workstation"),
    "nav.report": ("上报", "Report"),
    "nav.evaluation": ("绩效评价", "Evaluation"),
    "nav.briefing": ("城运日报", "Daily briefing"),
    "nav.skip": ("跳到正文", "Skip to content"),
    "lang.switch": ("English", "中文"),
    "lang.switch.title": ("切换到英文界面", "Switch to Chinese"),
    "auth.login": ("登录", "Sign in"),
    "auth.logout": ("退出", "Sign out"),
    "auth.username": ("用户名", "Username"),
    "auth.password": ("密码", "Password"),
    "auth.failed": ("登录失败", "Sign-in failed"),
    "auth.title": ("城运平台登录", "Sign in to CityOps"),
    "auth.hint": ("请使用分配给您的账号登录；连续输错将被临时锁定。",
                  "Use the account assigned to you; repeated failures lock it for a while."),
    "auth.forbidden": ("您的账号无权使用城运驾驶舱。", "Your account may not use the console."),
    "auth.signed_in_as": ("当前用户", "Signed in as"),
    "common.loading": ("加载中…", "Loading…"),
    "common.all": ("全部", "All"),
    "common.apply": ("应用", "Apply"),
    "common.reset": ("重置", "Reset"),
    "common.search": ("搜索", "Search"),
    "common.none": ("暂无", "None"),
    "common.close": ("关闭", "Close"),
    "common.submit": ("提交", "Submit"),
    "common.cancel": ("取消", "Cancel"),
    "common.export_csv": ("导出 CSV", "Export CSV"),
    "common.print": ("打印", "Print"),
    "common.download_pdf": ("下载 PDF", "Download PDF"),
    "common.error": ("出错了", "Something went wrong"),
    "common.updated": ("更新于", "Updated"),
    "common.live": ("实时", "Live"),
    "common.offline": ("连接中断，正在重连…", "Connection lost, reconnecting…"),
    "common.count": ("件", ""),
    "common.more": ("更多", "More"),
    "common.page": ("页", "page"),
    "common.prev": ("上一页", "Previous"),
    "common.next": ("下一页", "Next"),
    "common.not_available": ("该模块尚未接入", "This module is not connected yet"),
    # filters
    "filter.title": ("筛选", "Filters"),
    "filter.time": ("时间", "Time"),
    "filter.time.today": ("今日", "Today"),
    "filter.time.24h": ("近24小时", "Last 24 h"),
    "filter.time.7d": ("近7天", "Last 7 days"),
    "filter.time.30d": ("近30天", "Last 30 days"),
    "filter.time.open": ("全部在办", "All open"),
    "filter.time.all": ("全部时间", "Any time"),
    "filter.area": ("区域", "Area"),
    "filter.street": ("街镇", "Street / town"),
    "filter.community": ("居村", "Community"),
    "filter.category": ("类别", "Category"),
    "filter.state": ("状态", "State"),
    "filter.sla": ("时限", "SLA"),
    "filter.source": ("来源", "Source"),
    "filter.department": ("部门", "Department"),
    "filter.q": ("关键词", "Keyword"),
    "filter.category_search": ("搜索类别…", "Search categories…"),
    # SLA
    "sla.green": ("正常", "On time"),
    "sla.yellow": ("临期", "Due soon"),
    "sla.red": ("超期", "Overdue"),
    "sla.none": ("未计时", "No clock"),
    # map
    "map.title": ("全域态势", "District situation"),
    "map.layers": ("图层", "Layers"),
    "map.boundaries": ("边界", "Boundaries"),
    "map.level.street": ("街镇", "Streets / towns"),
    "map.level.community": ("居村", "Communities"),
    "map.level.grid": ("单元网格", "Unit grids"),
    "map.grid_layers": ("多格合一图层", "Grid layers"),
    "map.cases": ("案件点位", "Cases"),
    "map.choropleth": ("专题图", "Choropleth"),
    "map.choropleth.none": ("不显示", "Off"),
    "map.metric.density": ("案件密度（件/平方公里）", "Case density (per km²)"),
    "map.metric.count": ("案件数", "Case count"),
    "map.metric.overdue": ("超期数", "Overdue count"),
    "map.legend": ("图例", "Legend"),
    "map.cluster": ("聚合", "cluster"),
    "map.zoom_in": ("点击放大", "Click to zoom in"),
    "map.open_case": ("查看案件", "Open case"),
    "map.keyboard": ("地图：方向键平移，+/- 缩放", "Map: arrow keys pan, +/- zoom"),
    "map.basemap": ("底图（道路、水系、地名）", "Base map (roads, water, places)"),
    "map.search": ("搜索地名、道路、网格", "Search places, roads, grids"),
    "map.search.none": ("未找到", "Nothing found"),
    "map.search.kind.places": ("地名", "place"),
    "map.search.kind.roads": ("道路", "road"),
    "map.search.kind.water": ("水系", "water"),
    "map.search.kind.areas": ("区划/网格", "area / grid"),
    # KPIs
    "kpi.intake_today": ("今日受理", "Intake today"),
    "kpi.closed_today": ("今日结案", "Closed today"),
    "kpi.overdue": ("超期在办", "Overdue open"),
    "kpi.open": ("在办案件", "Open cases"),
    "kpi.ontime_rate": ("按期结案率", "On-time closure rate"),
    "kpi.ontime_by_street": ("各街镇按期结案率（近30天）", "On-time closure rate by street (30 days)"),
    "kpi.yellow": ("临期在办", "Due soon"),
    # panels
    "panel.events": ("实时动态", "Live feed"),
    "panel.events.empty": ("等待新的案件动态…", "Waiting for case activity…"),
    "panel.warnings": ("预警信息", "Warnings"),
    "panel.incidents": ("突发事件", "Incidents"),
    "panel.resources": ("应急资源", "Emergency resources"),
    "panel.placeholder.warnings": ("城市体征预警模块接入后，在此显示实时预警（规则触发、阈值越限）。",
                                   "Live warnings (rule triggers, thresholds) appear here once the vital-signs module is connected."),
    "panel.placeholder.incidents": ("应急事件模块接入后，在此显示突发事件及处置进展。",
                                    "Incidents and their response appear here once the emergency module is connected."),
    "panel.placeholder.resources": ("应急资源模块接入后，在此显示队伍、物资与避难场所。",
                                    "Teams, supplies and shelters appear here once the resources module is connected."),
    "panel.todo": ("今日待办", "Today's to-do"),
    "todo.to_verify": ("待核实", "To verify"),
    "todo.to_check": ("待核查", "To inspect"),
    "todo.overdue": ("已超期", "Overdue"),
    "todo.to_sign": ("待签收", "Awaiting sign-off"),
    "todo.to_register": ("待立案", "To register"),
    "todo.to_dispatch": ("待派遣", "To dispatch"),
    "todo.empty": ("暂无待办", "Nothing to do"),
    # cases
    "cases.title": ("案件列表", "Cases"),
    "cases.total": ("共 {n} 件", "{n} cases"),
    "cases.col.id": ("案件编号", "Case no."),
    "cases.col.title": ("问题描述", "Description"),
    "cases.col.category": ("类别", "Category"),
    "cases.col.area": ("所在区域", "Area"),
    "cases.col.state": ("状态", "State"),
    "cases.col.sla": ("时限", "SLA"),
    "cases.col.source": ("来源", "Source"),
    "cases.col.department": ("责任部门", "Department"),
    "cases.col.reported": ("上报时间", "Reported"),
    "cases.col.due": ("截止时间", "Due"),
    "cases.sort": ("排序", "Sort"),
    "cases.sort.newest": ("最新上报", "Newest first"),
    "cases.sort.oldest": ("最早上报", "Oldest first"),
    "cases.sort.due": ("截止时间", "Due soonest"),
    "cases.empty": ("没有符合条件的案件", "No cases match"),
    "case.detail": ("案件详情", "Case"),
    "case.location": ("位置", "Location"),
    "case.photos": ("照片", "Photos"),
    "case.timeline": ("办理过程", "Timeline"),
    "case.thread": ("会商", "Consultation"),
    "case.thread.placeholder": ("输入会商意见…", "Write a consultation note…"),
    "case.thread.send": ("发送", "Send"),
    "case.thread.empty": ("暂无会商记录", "No consultation yet"),
    "case.actions": ("可办理操作", "Available actions"),
    "case.actions.none": ("当前状态下您没有可办理的操作", "You have no action on this case in its current state"),
    "case.action.note": ("办理意见", "Note"),
    "case.action.reason": ("原因", "Reason"),
    "case.action.department": ("责任部门", "Department"),
    "case.action.co_departments": ("协办部门", "Co-handling departments"),
    "case.action.confirm": ("确认办理", "Confirm"),
    "case.action.done": ("已办理", "Done"),
    "case.reporter": ("上报人", "Reporter"),
    "case.reporters": ("关联上报", "Linked reports"),
    "case.address": ("地址", "Address"),
    "case.grid": ("单元网格", "Unit grid"),
    "case.urgency": ("紧急程度", "Urgency"),
    "case.deadline": ("当前环节时限", "Step deadline"),
    "case.no_photos": ("无照片", "No photos"),
    "case.back": ("返回列表", "Back to list"),
    "case.steps": ("环节时限", "Step deadlines"),
    "case.departments": ("处置部门", "Handling departments"),
    "case.dept.lead": ("主办", "lead"),
    "case.dept.co": ("协办", "co-handler"),
    "case.proposed": ("系统建议", "Proposed"),
    "case.smart": ("智能派单建议", "Smart-dispatch proposal"),
    "case.smart.review": ("置信度低，需人工确认", "low confidence: a person decides"),
    "case.smart.place": ("文本中的地点", "Place named in the text"),
    "case.description": ("问题描述", "Description"),
    "case.source": ("来源", "Source"),
    "case.field.result": ("结果", "Result"),
    "case.field.photos": ("照片", "Photos"),
    "case.field.satisfaction": ("满意度", "Satisfaction"),
    "case.field.extension": ("延期时长", "Extension"),
    "case.field.target_case": ("合并到案件（编号）", "Merge into case (number)"),
    "case.result.valid": ("属实（有效）", "Valid"),
    "case.result.invalid": ("不属实（无效）", "Invalid"),
    "case.result.pass": ("核查通过", "Passed"),
    "case.result.fail": ("核查不通过", "Failed"),
    "case.sat.satisfied": ("满意", "Satisfied"),
    "case.sat.basically_satisfied": ("基本满意", "Basically satisfied"),
    "case.sat.unsatisfied": ("不满意", "Unsatisfied"),
    "urgency.normal": ("一般", "normal"),
    "urgency.urgent": ("紧急", "urgent"),
    "urgency.critical": ("特急", "critical"),
    "unit.working_hour": ("工作时", "working hours"),
    "unit.working_day": ("工作日", "working days"),
    "unit.natural_hour": ("自然时", "hours"),
    "unit.natural_day": ("自然日", "days"),
    "case.updated_live": ("案件已更新", "The case was updated"),
    "case.stale": ("案件已被他人修改，已刷新，请重新确认", "Someone else changed the case; reloaded, please check again"),
    # workstation
    "ws.title": ("城运工作站", "Workstation"),
    "ws.scope": ("管辖范围", "Scope"),
    "ws.district_hint": ("您的账号为全区范围；选择街镇或居村查看工作站视图。",
                         "Your account covers the whole district; pick a street or community."),
    # report
    "report.title": ("问题上报", "Report a problem"),
    "report.location": ("位置", "Location"),
    "report.gps": ("使用当前定位", "Use my location"),
    "report.pin": ("或在地图上点选位置", "or tap the map to place the pin"),
    "report.located": ("已定位", "Located"),
    "report.outside": ("该位置不在本区范围内", "This location is outside the district"),
    "report.category": ("问题类别", "Category"),
    "report.photos": ("现场照片", "Photos"),
    "report.description": ("问题描述", "Description"),
    "report.description.placeholder": ("例如：某路口有垃圾堆放", "e.g. rubbish piled up at a crossing"),
    "report.address": ("地址（可选）", "Address (optional)"),
    "report.contact": ("联系电话（可选）", "Phone (optional)"),
    "report.submit": ("提交上报", "Submit report"),
    "report.submitted": ("已提交，案件编号 {id}", "Submitted, case {id}"),
    "report.linked": ("已与附近同类案件 {id} 合并", "Linked to the nearby case {id}"),
    "report.mine": ("我的上报", "My reports"),
    "report.mine.empty": ("还没有上报记录", "No reports yet"),
    "report.need_location": ("请先定位或在地图上选点", "Locate yourself or tap the map first"),
    "report.need_category": ("请选择问题类别", "Pick a category"),
    "report.suggest": ("根据描述建议的类别", "Suggested from your description"),
    "report.suggest.use": ("采用", "Use it"),
    "report.suggest.skip": ("跳过", "Skip"),
    "report.suggest.none": ("未选类别时由系统根据描述判断", "Without a category the system decides from your description"),
    "report.need_description": ("请填写问题描述", "Describe the problem"),
    # evaluation
    "eval.title": ("绩效评价", "Evaluation"),
    "eval.period": ("考核周期", "Period"),
    "eval.departments": ("部门排名", "Departments"),
    "eval.streets": ("街镇排名", "Streets / towns"),
    "eval.workers": ("人员排名", "Workers"),
    "eval.trend": ("按期结案率趋势", "On-time closure trend"),
    "eval.by_source": ("按来源受理量", "Intake by source"),
    "eval.by_category": ("按类别受理量", "Intake by category"),
    "eval.rank": ("名次", "Rank"),
    "eval.rate.departments": ("按时处置率", "On-time handling"),
    "eval.rate.streets": ("按期结案率", "On-time closure"),
    "eval.rate.workers": ("按时率", "On-time rate"),
    "eval.name": ("名称", "Name"),
    "eval.score": ("综合得分", "Score"),
    "eval.grade": ("等级", "Grade"),
    "eval.pending": ("评价接口尚未接入：页面已就绪，待案件模块提供 /api/v1/evaluation 后显示排名。",
                     "The evaluation API is not connected yet: this page shows rankings once /api/v1/evaluation exists."),
    # briefing
    "brief.title": ("城运日报", "Daily city-operations briefing"),
    "brief.date": ("日期", "Date"),
    "brief.summary": ("运行概况", "Summary"),
    "brief.map": ("案件分布", "Where cases arose"),
    "brief.by_street": ("各街镇情况", "By street / town"),
    "brief.by_category": ("高发类别", "Top categories"),
    "brief.by_source": ("受理来源", "Intake by source"),
    "brief.hourly": ("分时受理", "Intake by hour"),
    "brief.overdue_list": ("超期案件", "Overdue cases"),
    "brief.generated": ("生成时间", "Generated"),
    "brief.intake": ("受理", "Intake"),
    "brief.closed": ("结案", "Closed"),
    "brief.overdue": ("超期在办", "Overdue open"),
    "brief.ontime": ("按期结案率", "On-time closure"),
    "brief.archive": ("历史日报", "Archive"),
}


def pick_lang(request: Request) -> str:
    q = request.query_params.get("lang")
    if q in LANGS:
        return q
    c = request.cookies.get(COOKIE)
    if c in LANGS:
        return c
    return DEFAULT_LANG


def translate(key: str, lang: str, **kw: Any) -> str:
    pair = MESSAGES.get(key)
    if pair is None:
        text = key
    else:
        text = pair[1] if lang == "en" and pair[1] else pair[0]
    return text.format(**kw) if kw else text


def catalogue(lang: str) -> dict[str, str]:
    return {k: translate(k, lang) for k in MESSAGES}


def local_time(value: dt.datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A UTC datetime shown in Asia/Shanghai."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(TZ).strftime(fmt)


def today_local() -> dt.date:
    return dt.datetime.now(TZ).date()


def local_day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a Shanghai calendar day, in UTC."""
    start = dt.datetime.combine(day, dt.time(0), TZ)
    return start.astimezone(dt.UTC), (start + dt.timedelta(days=1)).astimezone(dt.UTC)


def period_start(period: str, now: dt.datetime) -> dt.datetime:
    """The start of a console period (today in Asia/Shanghai, or the last 24 h / 7 / 30 days)."""
    if period == "today":
        return local_day_bounds(now.astimezone(TZ).date())[0]
    hours = {"24h": 24, "7d": 24 * 7, "30d": 24 * 30}[period]
    return now - dt.timedelta(hours=hours)
