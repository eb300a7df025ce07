"""The default permission and role catalogue.

Roles are DATA: this catalogue is what ``cityops seed`` / the first migration loads into the
``role`` and ``role_permission`` tables; a 安全管理员 may change them afterwards. Code only refers
to permission names (``require("case.read")``), never to roles.
"""

from __future__ import annotations

# permission -> (zh label, en label)
PERMISSIONS: dict[str, tuple[str, str]] = {
    # grid base
    "layer.read": ("查看网格图层", "read grid layers"),
    "layer.write": ("导入网格图层", "import grid layers"),
    "area.write": ("维护行政区划与网格", "edit areas and grids"),
    # base data
    "registry.read": ("查看基础数据", "read base data"),
    "registry.write": ("导入维护基础数据", "import and edit base data"),
    "registry.export": ("导出基础数据", "export base data"),
    "person.read": ("查看人口信息（脱敏）", "read persons (masked)"),
    "person.unmask": ("查看明文个人信息（需事由）", "unmask personal data (with a reason)"),
    # cases
    "case.report": ("上报问题", "report a problem"),
    "case.read": ("查看案件", "read cases"),
    "case.act": ("办理案件", "act on cases (per transition table)"),
    "case.export": ("导出案件", "export cases"),
    "catalogue.read": ("查看部件事件目录", "read catalogue"),
    "catalogue.write": ("维护目录、时限与日历", "edit catalogue, limits and calendar"),
    "evaluation.read": ("查看绩效评价", "read evaluations"),
    "hotline.import": ("导入12345工单", "import 12345 work orders"),
    "signal.ingest": ("接入感知信号", "ingest sensor / video-AI signals"),
    "open311.post": ("Open311 提交诉求", "post Open311 requests"),
    "notification.read": ("查看消息", "read own notifications"),
    "webhook.manage": ("管理推送订阅", "manage webhooks"),
    # smart dispatch
    "classify.use": ("使用智能派单建议", "use smart-dispatch suggestions"),
    "classify.correct": ("确认/纠正智能派单建议", "confirm or correct smart-dispatch proposals"),
    "classify.manage": ("训练与发布分类模型", "train, promote and roll back classifier models"),
    # emergency planning
    "emergency.plan": ("编制物资调度、疏散与覆盖方案", "plan supply dispatch, evacuation and coverage"),
    # vital signs and early warning
    "indicator.read": ("查看城市体征与预警", "read vital signs, devices and warnings"),
    "indicator.manage": ("维护指标目录与设备", "manage the indicator catalogue and devices"),
    "reading.ingest": ("上报感知读数", "ingest sensor readings"),
    "warning.act": ("处置预警（签收、处置、解除）", "act on warnings (acknowledge, handle, lift)"),
    # public-health surveillance
    "health.read": ("查看公共卫生监测与预警信号", "read public-health surveillance and signals"),
    "health.report": ("上报哨点监测数据与传染病报告", "report sentinel counts and case reports"),
    "health.analyse": ("运行暴发探测与时空扫描", "run outbreak detection and space-time scans"),
    "health.manage": ("维护哨点", "manage sentinel sites"),
    "signal.act": ("处置预警信号（核实、调查、判定）", "act on signals (verify, investigate, conclude)"),
    # console
    "console.view": ("使用城运驾驶舱", "use the console"),
    # emergency command
    "incident.read": ("查看突发事件、应急任务与报告时效", "read incidents, emergency tasks and reporting figures"),
    "incident.report": ("接报突发事件、记录信息报告", "report incidents, record information reports"),
    "incident.act": ("应急指挥（启动响应、调整级别、启动预案）", "command incidents (response, levels, plans)"),
    "task.act": ("办理应急任务", "act on emergency tasks"),
    "plan.read": ("查看预案库", "read the plan library"),
    "plan.manage": ("导入修订预案、记录演练", "import and revise plans, record drills"),
    "warning.read": ("查看预警信息", "read public warnings"),
    "warning.draft": ("起草、发布预警信息", "draft and publish public warnings"),
    "warning.approve": ("审核、调整、解除预警信息", "approve, update and cancel public warnings"),
    "mobilisation.ack": ("确认动员", "acknowledge mobilisation call-ups"),
    # outbreak command (战时疫情处置)
    "outbreak.read": ("查看疫情处置（病例、密接、管控区，脱敏）", "read outbreak cases, contacts and zones (masked)"),
    "outbreak.act": ("疫情处置（登记病例与流调、划定管控区、保供、随访）",
                     "act in an outbreak (cases, exposures, zones, supplies, follow-up)"),
    "outbreak.command": ("启用/关闭战时疫情模式", "switch outbreak mode on and off"),
    # emergency resources (issue 13)
    "resource.read": ("查看应急资源、调运与征用", "read the resource database, shipments and requisitions"),
    "resource.manage": ("维护应急资源信息库", "maintain warehouses, teams, experts, equipment and shelters"),
    "stock.manage": ("物资入库与盘点", "receive and adjust stock"),
    "supply.request": ("提出物资需求", "raise supply requests"),
    "supply.dispatch": ("物资调度与调运", "plan, commit and dispatch shipments"),
    "requisition.manage": ("办理征用（登记、归还、补偿）", "register requisitions, returns and compensation"),
    # security administration (三权分立)
    "account.manage": ("账号管理", "manage accounts"),
    "apikey.manage": ("接口密钥管理", "manage API keys"),
    "role.manage": ("角色权限与安全策略", "manage roles, permissions, policies"),
    "audit.read": ("查看审计日志", "read the audit log"),
    "saferoom.query": ("数据安全屋查询", "run safe-room queries"),
    "saferoom.approve": ("审批数据安全屋查询", "approve safe-room queries"),
    "export.approve": ("审批明文导出", "approve unmasked exports"),
}

_READ = {"registry.read", "person.read", "case.read", "catalogue.read", "evaluation.read", "console.view",
         "layer.read", "notification.read", "classify.use", "indicator.read"}

# role code -> (zh label, en label, permissions, admin_triad)
ROLES: dict[str, tuple[str, str, set[str], bool]] = {
    "supervisor": ("监督员/网格员", "supervisor / grid worker", _READ | {"warning.act", "case.report", "case.act"}, False),
    "intake_operator": ("受理员", "intake operator", _READ | {"case.report", "case.act", "hotline.import",
                                                              "classify.correct"}, False),
    "shift_lead": ("值班长", "shift lead", _READ | {"warning.act", "case.report", "case.act", "case.export", "classify.correct"}, False),
    "dispatcher": ("派遣员", "dispatcher", _READ | {"warning.act", "case.report", "case.act", "case.export", "classify.correct"}, False),
    "dept_handler": ("部门处置人员", "department handler", _READ | {"warning.act", "case.act"}, False),
    "dept_leader": ("部门负责人", "department leader", _READ | {"warning.act", "case.act", "case.export"}, False),
    "street_operator": ("街镇城运中心操作员", "street/town operator",
                        _READ | {"warning.act", "case.report", "case.act", "case.export", "registry.write", "registry.export",
                                 "classify.correct"}, False),
    "community_operator": ("居村城运工作站操作员", "community workstation operator",
                           _READ | {"warning.act", "case.report", "case.act"}, False),
    "district_commander": ("区城运中心指挥长", "district commander",
                           _READ | {"warning.act", "case.report", "case.act", "case.export", "registry.export", "person.unmask",
                                    "layer.write", "catalogue.write", "webhook.manage", "classify.correct",
                                    "classify.manage", "emergency.plan", "indicator.manage"}, False),
    "cdc_analyst": ("疾控分析员", "CDC analyst", {"console.view", "case.read", "registry.read", "saferoom.query",
                                                 "evaluation.read"}, False),
    "emergency_commander": ("应急指挥长", "emergency commander",
                            _READ | {"warning.act", "case.report", "case.act", "person.unmask", "emergency.plan"},
                            False),
    "sys_admin": ("系统管理员", "system administrator",
                  {"account.manage", "apikey.manage", "catalogue.write", "layer.write", "area.write",
                   "registry.write", "webhook.manage", "classify.manage", "indicator.manage"}, True),
    # the three administrators administer the platform: none of them reads the business data (cases, console)
    "sec_admin": ("安全管理员", "security administrator",
                  {"role.manage", "saferoom.approve", "export.approve"}, True),
    "audit_admin": ("审计管理员", "audit administrator", {"audit.read"}, True),
}

ADMIN_TRIAD = {code for code, (*_rest, triad) in ROLES.items() if triad}

# emergency command (issue 12): grants added to the roles above
_EM_READ = {"incident.read", "plan.read", "warning.read"}
_EMERGENCY_GRANTS: dict[str, set[str]] = {
    "emergency_commander": _EM_READ | {"incident.report", "incident.act", "task.act", "plan.manage", "warning.draft",
                                       "warning.approve", "mobilisation.ack"},
    "district_commander": _EM_READ | {"incident.report", "incident.act", "task.act", "plan.manage", "warning.draft",
                                      "warning.approve", "mobilisation.ack"},
    "shift_lead": _EM_READ | {"incident.report", "warning.draft"},
    "dispatcher": _EM_READ | {"incident.report"},
    "intake_operator": _EM_READ | {"incident.report"},
    "dept_handler": _EM_READ | {"task.act", "mobilisation.ack"},
    "dept_leader": _EM_READ | {"task.act", "mobilisation.ack"},
    "street_operator": _EM_READ | {"incident.report", "task.act", "mobilisation.ack"},
    "community_operator": {"incident.read", "warning.read", "incident.report"},
    "supervisor": {"incident.read", "warning.read"},
    "cdc_analyst": _EM_READ | {"incident.report"},
}
for _code, _perms in _EMERGENCY_GRANTS.items():
    ROLES[_code][2].update(_perms)

# public-health surveillance (issue 11): grants added to the roles above
_HEALTH_GRANTS: dict[str, set[str]] = {
    "cdc_analyst": {"health.read", "health.report", "health.analyse", "health.manage", "signal.act"},
    "district_commander": {"health.read", "health.analyse", "signal.act"},
    "street_operator": {"health.read", "health.report", "signal.act"},
    "community_operator": {"health.read"},
    "emergency_commander": {"health.read", "health.analyse"},
}
for _code, _perms in _HEALTH_GRANTS.items():
    ROLES[_code][2].update(_perms)

# outbreak command (issue 15): grants added to the roles above
_OUTBREAK_GRANTS: dict[str, set[str]] = {
    "cdc_analyst": {"outbreak.read", "outbreak.act", "outbreak.command"},
    "district_commander": {"outbreak.read", "outbreak.act", "outbreak.command"},
    "emergency_commander": {"outbreak.read", "outbreak.act", "outbreak.command"},
    "shift_lead": {"outbreak.read"},
    "dispatcher": {"outbreak.read"},
    "street_operator": {"outbreak.read", "outbreak.act"},
    "community_operator": {"outbreak.read", "outbreak.act"},
    "dept_handler": {"outbreak.read"},
    "dept_leader": {"outbreak.read"},
}
for _code, _perms in _OUTBREAK_GRANTS.items():
    ROLES[_code][2].update(_perms)

# emergency resources (issue 13): grants added to the roles above
_RS_ALL = {"resource.read", "resource.manage", "stock.manage", "supply.request", "supply.dispatch", "requisition.manage"}
_RESOURCE_GRANTS: dict[str, set[str]] = {
    "emergency_commander": _RS_ALL, "district_commander": _RS_ALL,
    "street_operator": {"resource.read", "supply.request", "supply.dispatch"},
    "shift_lead": {"resource.read", "supply.request"}, "dispatcher": {"resource.read", "supply.request"},
    "dept_handler": {"resource.read"}, "dept_leader": {"resource.read", "supply.request"},
    "community_operator": {"resource.read", "supply.request"},
}
for _code, _perms in _RESOURCE_GRANTS.items():
    ROLES[_code][2].update(_perms)
