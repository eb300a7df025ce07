"""The data safe room (数据安全屋, "可用不可见").

Analysts reach sensitive tables only through named, parameterised aggregate queries stored as
rows. A query is proposed (``saferoom.query``) and checked on its parse tree
(``cityops.security.saferoom_sql``: one SELECT over allow-listed tables, aggregate output only,
sensitive columns never output or grouped by, bound parameters only); decided by a 安全管理员
(``saferoom.approve``) other than its proposer, only while it is pending (a lifecycle table:
``data/saferoom_lifecycle.json``); then run by analysts with typed parameters. A run checks the
query again, and every group whose size (the first count column) is below k
(``settings.safe_room_k``) is dropped whole, keys included; the answer says how many groups were
dropped and, when that is at least k, how many rows they held. Each run is audited with its
parameters. The query runs in a read-only transaction.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.orm import Session

from cityops import clock
from cityops.errors import Conflict, Forbidden, InvalidInput, NotFound, Problem
from cityops.lifecycle import Context, Machine
from cityops.lifecycle import service as lifecycle
from cityops.models import load_all
from cityops.security import audit, saferoom_sql
from cityops.security.models import SafeRoomQuery
from cityops.security.principal import Principal

MAX_ROWS = 5000
# Never readable in the safe room, whatever the allow-list says.
FORBIDDEN_TABLES = frozenset({"account", "account_role", "auth_session", "api_key", "password_history", "audit_log",
                              "export_request", "saferoom_query", "role_permission", "role", "permission"})
PARAM_TYPES = {"string", "integer", "number", "date", "boolean"}
DATA = Path(__file__).resolve().parent / "data"

# Tables the safe room may read: base data, cases, areas; other domains add theirs with ``allow_table``.
_allowed: dict[str, set[str]] = {}  # table -> extra sensitive columns beyond the models' marks
_DEFAULT_TABLES = ("registry_building", "registry_household", "registry_person", "registry_facility",
                   "registry_organisation", "registry_place", "case_file", "area")


def allow_table(name: str, sensitive: set[str] | None = None) -> None:
    """Let the safe room read ``name``; ``sensitive`` adds columns to the models' own marks."""
    if name in FORBIDDEN_TABLES:
        raise ValueError(f"{name} may never be read in the safe room")
    _allowed.setdefault(name, set()).update(sensitive or set())


for _t in _DEFAULT_TABLES:
    allow_table(_t)


def sensitive_columns() -> dict[str, set[str]]:
    """table -> sensitive columns: the models' ``info={"sensitive": True}`` marks plus ``allow_table``'s."""
    out: dict[str, set[str]] = {t: set(extra) for t, extra in _allowed.items()}
    for table in load_all().metadata.tables.values():
        marked = {c.name for c in table.columns if c.info.get("sensitive")}
        if marked:
            out.setdefault(table.name, set()).update(marked)
    return out


def placeholders(sql: str) -> set[str]:
    return saferoom_sql.placeholders(sql)


def check_sql(sql: str, params_schema: dict[str, Any], count_columns: list[str],
              measure_columns: list[str] | None = None, dialect: str = "sqlite") -> list[Problem]:
    """The rules (``saferoom_sql.check``) plus the declared parameters and columns; every problem
    names the field."""
    checked, problems = saferoom_sql.check(sql, allowed_tables=set(_allowed) - FORBIDDEN_TABLES,
                                           sensitive=sensitive_columns(), dialect=dialect)
    used = placeholders(sql)
    for name in sorted(used - set(params_schema)):
        problems.append(Problem(f"参数 :{name} 未在参数说明中声明 parameter :{name} is not declared",
                                ["body", "params_schema"], "undeclared"))
    for name, spec in params_schema.items():
        if not isinstance(spec, dict) or spec.get("type") not in PARAM_TYPES:
            problems.append(Problem(f"参数 {name} 类型须为 {sorted(PARAM_TYPES)} parameter type must be one of "
                                    f"{sorted(PARAM_TYPES)}", ["body", "params_schema", name], "type"))
        if name not in used:
            problems.append(Problem(f"参数 {name} 未在 SQL 中使用 parameter {name} not used in the SQL",
                                    ["body", "params_schema", name], "unused"))
    outputs = set(checked.outputs) if checked else None
    for field_name, cols in (("count_columns", count_columns), ("measure_columns", measure_columns or [])):
        for i, c in enumerate(cols):
            if not re.fullmatch(r"[A-Za-z_]\w*", c):
                problems.append(Problem(f"列名无效 bad column name {c!r}", ["body", field_name, i], "pattern"))
            elif outputs is not None and c not in outputs:
                problems.append(Problem(f"查询没有输出列 {c} the query has no output column {c!r}",
                                        ["body", field_name, i], "unknown_column"))
    return problems


def _dialect(session: Session) -> str:
    return "postgres" if session.get_bind().dialect.name == "postgresql" else "sqlite"


# ---------------------------------------------------------------------------------------------- lifecycle


def _not_proposer(ctx: Context) -> str | None:
    if ctx.obj.proposed_by == ctx.principal.username:
        return "不得审批本人提交的查询 you may not decide on your own query (separation of duties)"
    return None


def _approved(ctx: Context) -> None:
    problems = check_sql(ctx.obj.sql, ctx.obj.params_schema, ctx.obj.count_columns, ctx.obj.measure_columns,
                         _dialect(ctx.session))
    if problems:
        raise InvalidInput(problems)
    ctx.obj.approved_by = ctx.principal.username
    ctx.obj.approved_at = clock.now()


MACHINE = Machine(
    name="saferoom_query",
    states={"pending": {"zh": "待审批", "en": "pending"}, "approved": {"zh": "已批准", "en": "approved"},
            "rejected": {"zh": "已驳回", "en": "rejected"}, "retired": {"zh": "已停用", "en": "retired"}},
    actions={"approve": {"zh": "批准", "en": "approve"}, "reject": {"zh": "驳回", "en": "reject"},
             "retire": {"zh": "停用", "en": "retire"}},
    default_permission="saferoom.approve",
    effects={"approved": _approved},
    actor_check=_not_proposer,
    state_attr="status")
TABLE = MACHINE.load_file(DATA / "saferoom_lifecycle.json")


def propose(session: Session, principal: Principal, name: str, title: str, sql: str,
            params_schema: dict[str, Any], count_columns: list[str],
            measure_columns: list[str] | None = None) -> SafeRoomQuery:
    if session.scalar(select(SafeRoomQuery.id).where(SafeRoomQuery.name == name)) is not None:
        raise Conflict([Problem(f"查询名已存在 query {name!r} exists", ["body", "name"], "exists")])
    problems = check_sql(sql, params_schema, count_columns, measure_columns, _dialect(session))
    if problems:
        raise InvalidInput(problems)
    row = SafeRoomQuery(name=name, title=title, sql=sql.strip().rstrip(";"), params_schema=params_schema,
                        count_columns=count_columns, measure_columns=measure_columns or [], status="pending",
                        proposed_by=principal.username, created_at=clock.now())
    session.add(row)
    session.flush()
    audit.record(session, principal, "saferoom.propose", "saferoom_query", name, detail={"sql": row.sql})
    return row


def _get(session: Session, name: str) -> SafeRoomQuery:
    row = session.scalar(select(SafeRoomQuery).where(SafeRoomQuery.name == name))
    if row is None:
        raise NotFound([Problem(f"查询不存在 no safe-room query {name!r}", ["path", "name"], "not_found")])
    return row


def decide(session: Session, principal: Principal, name: str, approve: bool) -> SafeRoomQuery:
    """Approve or reject a pending query (409 once decided; 403 for its proposer)."""
    row = _get(session, name)
    lifecycle.perform(session, principal, TABLE, row, "approve" if approve else "reject",
                      audit_detail={"sql": row.sql})
    return row


def list_queries(session: Session) -> list[SafeRoomQuery]:
    return list(session.scalars(select(SafeRoomQuery).order_by(SafeRoomQuery.name)))


def query_out(q: SafeRoomQuery) -> dict[str, Any]:
    return {"id": q.id, "name": q.name, "title": q.title, "sql": q.sql, "params_schema": q.params_schema,
            "count_columns": q.count_columns, "measure_columns": q.measure_columns, "status": q.status,
            "proposed_by": q.proposed_by, "approved_by": q.approved_by, "approved_at": q.approved_at}


def _coerce(params_schema: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    problems: list[Problem] = []
    for name in params:
        if name not in params_schema:
            problems.append(Problem(f"未知参数 unknown parameter {name!r}", ["body", name], "unknown"))
    for name, spec in params_schema.items():
        loc: list[str | int] = ["body", name]
        if name not in params or params[name] is None:
            if "default" in spec:
                out[name] = spec["default"]
            elif spec.get("required", True):
                problems.append(Problem(f"缺少参数 missing parameter {name!r}", loc, "missing"))
            else:
                out[name] = None
            continue
        v = params[name]
        t = spec["type"]
        try:
            if t == "integer":
                if isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()):
                    raise ValueError
                v = int(v)
            elif t == "number":
                v = float(v)
            elif t == "boolean":
                if not isinstance(v, bool):
                    raise ValueError
            elif t == "date":
                v = dt.date.fromisoformat(str(v))
            else:
                v = str(v)
        except (TypeError, ValueError):
            problems.append(Problem(f"参数 {name} 应为 {t} parameter {name} must be a {t}", loc, "type"))
            continue
        if t == "string":
            if "max_length" in spec and len(v) > int(spec["max_length"]):
                problems.append(Problem(f"参数 {name} 过长 too long (max {spec['max_length']})", loc, "too_long"))
            if "pattern" in spec and not re.fullmatch(spec["pattern"], v):
                problems.append(Problem(f"参数 {name} 格式不符 does not match {spec['pattern']}", loc, "pattern"))
        if "enum" in spec and v not in spec["enum"]:
            problems.append(Problem(f"参数 {name} 须为 {spec['enum']} must be one of {spec['enum']}", loc, "enum"))
        if t in ("integer", "number"):
            if "minimum" in spec and v < spec["minimum"]:
                problems.append(Problem(f"参数 {name} 不得小于 {spec['minimum']} below minimum", loc, "minimum"))
            if "maximum" in spec and v > spec["maximum"]:
                problems.append(Problem(f"参数 {name} 不得大于 {spec['maximum']} above maximum", loc, "maximum"))
        out[name] = v
    if problems:
        raise InvalidInput(problems)
    return out


def _fetch(conn: Connection, sql: str, params: dict[str, Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
    res = conn.execute(text(sql), params)
    cols = [str(c) for c in res.keys()]
    rows = [tuple(r) for r in res.fetchmany(MAX_ROWS + 1)]
    return cols, rows


def _execute_read_only(session: Session, sql: str, params: dict[str, Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run on a separate connection in a read-only transaction that is always rolled back."""
    engine = cast(Engine, session.get_bind())
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.info["write"] = False
            try:
                conn.exec_driver_sql("PRAGMA query_only = ON")
                try:
                    return _fetch(conn, sql, params)
                finally:
                    conn.rollback()
                    conn.exec_driver_sql("PRAGMA query_only = OFF")
                    conn.rollback()
            finally:
                conn.info["write"] = True
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        conn.exec_driver_sql("SET LOCAL statement_timeout = 30000")
        try:
            return _fetch(conn, sql, params)
        finally:
            conn.rollback()


def _jsonable(v: Any) -> Any:
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, dt.date | dt.datetime):
        return v.isoformat()
    return v


def run(session: Session, principal: Principal, name: str, params: dict[str, Any], k: int) -> dict[str, Any]:
    row = _get(session, name)
    if row.status != "approved":
        raise Forbidden([Problem(f"查询未获安全管理员批准 query {name!r} is {row.status}, not approved", ["path", "name"],
                                 "not_approved")])
    values = _coerce(row.params_schema, params)
    problems = check_sql(row.sql, row.params_schema, row.count_columns, row.measure_columns, _dialect(session))
    if problems:  # approved under older rules: it must be proposed again
        audit.record(session, principal, "saferoom.run", "saferoom_query", name, result="refused",
                     detail={"params": values, "reason": problems[0].msg})
        raise Conflict([Problem(f"查询不符合现行安全屋规则，须重新提交 the query no longer passes the safe-room rules "
                                f"and must be proposed again: {problems[0].msg}", ["path", "name"], "stale_rules")],
                       persist=True)
    try:
        cols, data = _execute_read_only(session, row.sql, values)
    except Exception as exc:  # noqa: BLE001 - a DB error of an approved query: report, audit, no data
        audit.record(session, principal, "saferoom.run", "saferoom_query", name, result="error",
                     detail={"params": values, "error": type(exc).__name__})
        raise InvalidInput([Problem(f"查询执行失败 query failed: {type(exc).__name__}", ["path", "name"], "db_error")],
                           persist=True)
    problems = [Problem(f"结果缺少计数列 {c}（拒绝返回） result lacks count column {c!r}: refused", ["path", "name"],
                        "shape") for c in row.count_columns if c not in cols]
    if len(data) > MAX_ROWS:
        problems.append(Problem(f"结果超过 {MAX_ROWS} 行 more than {MAX_ROWS} groups: refused", ["path", "name"], "shape"))
    if not problems:
        idx = [cols.index(c) for c in row.count_columns]
        if any(r[i] is not None and (isinstance(r[i], bool) or not isinstance(r[i], int)) for r in data for i in idx):
            problems.append(Problem("计数列不是整数（拒绝返回） a count column is not an integer: refused",
                                    ["path", "name"], "shape"))
    if problems:
        audit.record(session, principal, "saferoom.run", "saferoom_query", name, result="refused",
                     detail={"params": values, "reason": problems[0].msg})
        raise InvalidInput(problems, persist=True)
    size = cols.index(row.count_columns[0])
    kept: list[dict[str, Any]] = []
    dropped_groups = dropped_rows = 0
    for r in data:
        n = r[size] or 0
        if 0 < n < k:  # the whole group goes: its keys would identify its few members
            dropped_groups += 1
            dropped_rows += n
            continue
        kept.append({key: _jsonable(v) for key, v in zip(cols, r, strict=True)})
    reported_rows = dropped_rows if dropped_rows >= k else None
    audit.record(session, principal, "saferoom.run", "saferoom_query", name,
                 detail={"params": values, "groups": len(kept), "suppressed_groups": dropped_groups, "k": k})
    return {"name": name, "k": k, "columns": cols, "rows": kept, "suppressed_groups": dropped_groups,
            "suppressed_rows": reported_rows,
            "note": f"人数少于 {k} 的分组已整组删除（{dropped_groups} 组"
                    + (f"，共 {dropped_rows} 人" if reported_rows is not None else f"，合计少于 {k} 人")
                    + f"） groups with fewer than {k} persons are dropped whole ({dropped_groups} groups"
                    + (f", {dropped_rows} persons)" if reported_rows is not None else f", fewer than {k} persons in all)")}
