"""Demo accounts and integration keys.

Every role exists at the level it works at (district, street/town, community, department);
area-scoped roles also exist for two streets (岳阳街道 310117001, 佘山镇 310117103) and the first
community of 岳阳街道. Passwords and keys are derived from the seed (deterministic) and exist only
here; ``cityops demo-accounts`` prints them. Never use these in production.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.security import service
from cityops.security.models import Account, ApiKey, install_audit_guard
from cityops.security.principal import SYSTEM

DEFAULT_SEED = 20210220
DISTRICT = "310117"
YUEYANG = "310117001"
SHESHAN = "310117103"
YUEYANG_C1 = "310117001001"  # the first community of 岳阳街道 (also in the small demo district)


@dataclass(frozen=True)
class DemoAccount:
    username: str
    role: str
    area_code: str | None
    department: str | None
    display_name: str


DEMO_ACCOUNTS: list[DemoAccount] = [
    # 三权分立: three separate administrators
    DemoAccount("sysadmin", "sys_admin", DISTRICT, None, "系统管理员（演示）"),
    DemoAccount("secadmin", "sec_admin", DISTRICT, None, "安全管理员（演示）"),
    DemoAccount("auditor", "audit_admin", DISTRICT, None, "审计管理员（演示）"),
    # district centre
    DemoAccount("commander", "district_commander", DISTRICT, None, "区城运中心指挥长"),
    DemoAccount("shiftlead", "shift_lead", DISTRICT, None, "区城运中心值班长"),
    DemoAccount("dispatcher", "dispatcher", DISTRICT, None, "区城运中心派遣员"),
    DemoAccount("intake", "intake_operator", DISTRICT, None, "区城运中心受理员（12345）"),
    DemoAccount("supervisor", "supervisor", DISTRICT, None, "区级监督员"),
    DemoAccount("emergency", "emergency_commander", DISTRICT, None, "区应急指挥长"),
    DemoAccount("cdc", "cdc_analyst", DISTRICT, None, "区疾控分析员"),
    # streets / towns
    DemoAccount("yy_street", "street_operator", YUEYANG, None, "岳阳街道城运中心操作员"),
    DemoAccount("yy_dispatcher", "dispatcher", YUEYANG, None, "岳阳街道城运中心派遣员"),
    DemoAccount("yy_supervisor", "supervisor", YUEYANG, None, "岳阳街道监督员"),
    DemoAccount("ss_street", "street_operator", SHESHAN, None, "佘山镇城运中心操作员"),
    DemoAccount("ss_supervisor", "supervisor", SHESHAN, None, "佘山镇监督员"),
    # community workstation and its grid worker
    DemoAccount("yy1_community", "community_operator", YUEYANG_C1, None, "岳阳街道第一居委城运工作站"),
    DemoAccount("yy1_grid", "supervisor", YUEYANG_C1, None, "岳阳街道第一居委网格员"),
    # departments (codes of cityops/cases/data/departments.json)
    DemoAccount("cgzf_handler", "dept_handler", DISTRICT, "cgzf", "区城管执法局处置人员"),
    DemoAccount("cgzf_leader", "dept_leader", DISTRICT, "cgzf", "区城管执法局负责人"),
    DemoAccount("lhsr_handler", "dept_handler", DISTRICT, "lhsr", "区绿化市容局处置人员"),
    DemoAccount("sw_handler", "dept_handler", DISTRICT, "sw", "区水务局处置人员"),
    DemoAccount("yy_centre_handler", "dept_handler", YUEYANG, "jz310117001", "岳阳街道城运中心处置人员"),
]

# name, permissions, description
DEMO_KEYS: list[tuple[str, list[str], str]] = [
    ("demo-open311", ["open311.post", "catalogue.read"], "Open311 客户端（演示） Open311 client"),
    ("demo-sensor", ["signal.ingest", "reading.ingest"], "物联感知接入（演示） sensor / video-AI signals and readings"),
    ("demo-hotline", ["hotline.import", "case.report", "catalogue.read"], "12345 工单导入（演示） hotline import"),
]


def _digest(rng_seed: int, what: str) -> str:
    return hashlib.sha256(f"cityops-demo|{rng_seed}|{what}".encode()).hexdigest()


def demo_password(username: str, rng_seed: int = DEFAULT_SEED) -> str:
    """Deterministic demo password (meets the complexity rules)."""
    return "Cy#" + _digest(rng_seed, username)[:8] + "9z"


def demo_key(name: str, rng_seed: int = DEFAULT_SEED) -> str:
    return "cok_demo_" + _digest(rng_seed, "key:" + name)[:32]


def seed_demo(session: Session, district: Any = None, *, small: bool = False, rng_seed: int = DEFAULT_SEED,
              progress: Callable[[str, int, int], None] | None = None) -> None:
    tick = progress or (lambda _s, _d, _t: None)
    service.ensure_catalog(session)
    install_audit_guard(session.connection())
    have_areas = None
    if district is not None:
        have_areas = {a.code for a in district.areas}
    total = len(DEMO_ACCOUNTS) + len(DEMO_KEYS)
    done = 0
    for a in DEMO_ACCOUNTS:
        done += 1
        if have_areas is not None and a.area_code is not None and a.area_code not in have_areas:
            continue
        if session.scalar(select(Account.id).where(Account.username == a.username)) is None:
            service.create_account(session, SYSTEM, a.username, demo_password(a.username, rng_seed), roles=[a.role],
                                   area_code=a.area_code, department_code=a.department, display_name=a.display_name,
                                   expiry_exempt=True)
        tick("账号 demo accounts", done, total)
    for name, perms, desc in DEMO_KEYS:
        done += 1
        if session.scalar(select(ApiKey.id).where(ApiKey.name == name)) is None:
            service.create_api_key(session, SYSTEM, name, perms, description=desc, key=demo_key(name, rng_seed))
        tick("账号 demo accounts", done, total)
    session.flush()
    if not small:  # the small test district does not (job tests run every due timer)
        from cityops.security import anchors

        anchors.arm(session)


def demo_logins(session: Session | None = None, rng_seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """The demo credentials (from the seed), flagged with whether each exists in the database."""
    present: set[str] = set()
    keys_present: set[str] = set()
    if session is not None:
        present = set(session.scalars(select(Account.username)))
        keys_present = set(session.scalars(select(ApiKey.name).where(ApiKey.revoked_at.is_(None))))
    labels = {code: zh for code, (zh, *_r) in __import__("cityops.security.catalog", fromlist=["ROLES"]).ROLES.items()}
    return {
        "accounts": [{"username": a.username, "password": demo_password(a.username, rng_seed), "role": a.role,
                      "role_label": labels.get(a.role, a.role), "area_code": a.area_code, "department": a.department,
                      "display_name": a.display_name, "present": a.username in present if session else None}
                     for a in DEMO_ACCOUNTS],
        "api_keys": [{"name": n, "key": demo_key(n, rng_seed), "permissions": p, "description": d,
                      "header": service.API_KEY_HEADER, "present": n in keys_present if session else None}
                     for n, p, d in DEMO_KEYS],
    }
