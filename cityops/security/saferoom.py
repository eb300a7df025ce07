"""The data safe room (数据安全屋, "可用不可见").

Analysts reach sensitive tables only through named, parameterised aggregate queries stored as
rows. A query is proposed (``saferoom.query``), checked (one read-only SELECT, bound parameters
only, an aggregate ``count(...)`` and GROUP BY, no account/credential/audit tables), approved by a
安全管理员 (``saferoom.approve``; not by its proposer), and then run by analysts with typed
parameters. Every count cell below k (``settings.safe_room_k``) comes back null and flagged, and
a small group's other aggregates (``measure_columns``) with it; a result without the declared
count columns is refused (so row-level data never leaves). Each run is audited with its
parameters. The query runs in a read-only transaction.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.orm import Session

from cityops.errors import Conflict, Forbidden, InvalidInput, NotFound, Problem
from cityops.security import audit, clock
from cityops.security.models import SafeRoomQuery
from cityops.security.principal import Principal

MAX_ROWS = 5000
FORBIDDEN_WORDS = ("insert", "update", "delete", "drop", "alter", "create", "attach", "detach", "pragma", "copy",
                   "grant", "revoke", "truncate", "vacuum", "into", "exec", "execute", "call", "lock", "listen",
                   "notify", "load_extension", "pg_sleep", "pg_read_file", "pg_read_binary_file", "dblink",
                   "lo_import", "lo_export", "set_config", "returning")
FORBIDDEN_TABLES = ("account", "account_role", "auth_session", "api_key", "password_history", "audit_log",
                    "export_request", "saferoom_query", "role_permission", "pg_shadow", "pg_authid",
                    "sqlite_master", "sqlite_schema")
PARAM_TYPES = {"string", "integer", "number", "date", "boolean"}
_PARAM_RE = re.compile(r"(?<![:\w\\]):([A-Za-z_]\w*)(?!:)")


def placeholders(sql: str) -> set[str]:
    return set(_PARAM_RE.findall(sql))


def check_sql(sql: str, params_schema: dict[str, Any], count_columns: list[str]) -> list[Problem]:
    """Static checks of a proposed query; every problem names the field."""
    problems: list[Problem] = []
    body = sql.strip().rstrip(";").strip()
    low = body.lower()
    loc: list[str | int] = ["body", "sql"]
    if not re.match(r"^(select|with)\b", low):
        problems.append(Problem("只允许 SELECT 查询 only a SELECT (or WITH ... SELECT) is allowed", loc, "not_select"))
    if ";" in body:
        problems.append(Problem("只允许一条语句 one statement only", loc, "multiple_statements"))
    if "--" in body or "/*" in body:
        problems.append(Problem("不允许注释 no comments", loc, "comment"))
    for w in FORBIDDEN_WORDS:
        if re.search(rf"\b{w}\b", low):
            problems.append(Problem(f"不允许的关键字 forbidden keyword {w!r}", loc, "forbidden_keyword"))
    for t in FORBIDDEN_TABLES:
        if re.search(rf"\b{t}\b", low):
            problems.append(Problem(f"安全屋不得访问表 {t} the safe room may not read {t!r}", loc, "forbidden_table"))
    if not re.search(r"\bcount\s*\(", low) or not re.search(r"\bgroup\s+by\b", low):
        problems.append(Problem("须为聚合查询：含 count(...) 与 GROUP BY（不得返回明细行） an aggregate query with "
                                "count(...) and GROUP BY is required (no row-level results)", loc, "not_aggregate"))
    used = placeholders(body)
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
    for i, c in enumerate(count_columns):
        if not re.fullmatch(r"[A-Za-z_]\w*", c):
            problems.append(Problem(f"列名无效 bad column name {c!r}", ["body", "count_columns", i], "pattern"))
    return problems


def propose(session: Session, principal: Principal, name: str, title: str, sql: str,
            params_schema: dict[str, Any], count_columns: list[str],
            measure_columns: list[str] | None = None) -> SafeRoomQuery:
    if session.scalar(select(SafeRoomQuery.id).where(SafeRoomQuery.name == name)) is not None:
        raise Conflict([Problem(f"查询名已存在 query {name!r} exists", ["body", "name"], "exists")])
    problems = check_sql(sql, params_schema, count_columns)
    if problems:
        raise InvalidInput(problems)
    row = SafeRoomQuery(name=name, title=title, sql=sql.strip().rstrip(";"), params_schema=params_schema,
                        count_columns=count_columns, measure_columns=measure_columns or [], status="proposed",
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
    row = _get(session, name)
    if row.proposed_by == principal.username:
        raise Forbidden([Problem("不得审批本人提交的查询 you may not approve your own query", ["path", "name"],
                                 "separation_of_duties")])
    if approve:
        problems = check_sql(row.sql, row.params_schema, row.count_columns)
        if problems:
            raise InvalidInput(problems)
    row.status = "approved" if approve else "rejected"
    row.approved_by = principal.username if approve else None
    row.approved_at = clock.now() if approve else None
    audit.record(session, principal, "saferoom.approve" if approve else "saferoom.reject", "saferoom_query", name,
                 detail={"sql": row.sql})
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
    try:
        cols, data = _execute_read_only(session, row.sql, values)
    except Exception as exc:  # noqa: BLE001 - a DB error of an approved query: report, audit, no data
        audit.record(session, principal, "saferoom.run", "saferoom_query", name, result="error",
                     detail={"params": values, "error": type(exc).__name__})
        raise InvalidInput([Problem(f"查询执行失败 query failed: {type(exc).__name__}", ["path", "name"], "db_error")],
                           persist=True)
    missing = [c for c in row.count_columns if c not in cols]
    problems = [Problem(f"结果缺少计数列 {c}（拒绝返回） result lacks count column {c!r}: refused", ["path", "name"],
                        "shape") for c in missing]
    if len(data) > MAX_ROWS:
        problems.append(Problem(f"结果超过 {MAX_ROWS} 行 more than {MAX_ROWS} groups: refused", ["path", "name"], "shape"))
    if not problems:
        for r in data:
            for c in row.count_columns:
                v = r[cols.index(c)]
                if v is not None and not isinstance(v, int):
                    problems.append(Problem(f"计数列 {c} 不是整数 count column {c!r} is not an integer: refused",
                                            ["path", "name"], "shape"))
                    break
            if problems:
                break
    if problems:
        audit.record(session, principal, "saferoom.run", "saferoom_query", name, result="refused",
                     detail={"params": values, "reason": problems[0].msg})
        raise InvalidInput(problems, persist=True)
    size_col = row.count_columns[0]
    suppressed = 0
    out_rows: list[dict[str, Any]] = []
    for r in data:
        rec = dict(zip(cols, r, strict=True))
        flags: list[str] = []
        small_group = rec[size_col] is not None and 0 < rec[size_col] < k
        for c in row.count_columns:
            if rec[c] is not None and 0 < rec[c] < k:
                rec[c] = None
                flags.append(c)
        if small_group:
            for c in row.measure_columns:
                if c in rec and rec[c] is not None:
                    rec[c] = None
                    flags.append(c)
        suppressed += len(flags)
        rec["_suppressed"] = flags
        out_rows.append({key: _jsonable(v) for key, v in rec.items()})
    audit.record(session, principal, "saferoom.run", "saferoom_query", name,
                 detail={"params": values, "groups": len(out_rows), "suppressed_cells": suppressed, "k": k})
    return {"name": name, "k": k, "columns": cols, "rows": out_rows, "suppressed_cells": suppressed,
            "note": f"计数小于 {k} 的单元格已抑制（null，见 _suppressed） cells with a count below {k} are "
                    "suppressed (null, listed in _suppressed)"}
