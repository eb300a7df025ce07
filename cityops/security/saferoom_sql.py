"""The safe room's SQL rules, checked on the parse tree (sqlglot), not with patterns.

A proposed query must be ONE plain SELECT:

* over allow-listed tables only (``allowed_tables``; accounts, credentials, the audit log and
  the safe room's own tables never are), without subqueries, CTEs, set operations, window
  functions, ``SELECT *`` or table functions;
* aggregate output: every output column is an aggregate (COUNT, SUM, AVG, MIN, MAX, TOTAL) or a
  GROUP BY key, and there is a GROUP BY and at least one COUNT;
* row-level sensitive columns (marked ``info={"sensitive": True}`` on the models: ID numbers,
  names, phones, addresses, birth dates ...) may be filtered on (WHERE) and counted
  (``COUNT(col)``, ``COUNT(DISTINCT col)``) but never output, grouped by, ordered by or fed to any
  other aggregate (MIN(id_number) would return one person's number);
* only bound parameters (``:name``), declared in the parameter schema.

The functions here are pure (tables and their sensitive columns are passed in); the safe room
(``cityops.security.saferoom``) supplies them from the models.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from cityops.errors import Problem

AGGREGATES = (exp.Count, exp.Sum, exp.Avg, exp.Min, exp.Max)
# node types that would let row-level data or side effects through
FORBIDDEN_NODES: tuple[tuple[type[exp.Expression], str], ...] = (
    (exp.Subquery, "子查询 subqueries"), (exp.With, "WITH/CTE"), (exp.Union, "UNION"),
    (exp.Intersect, "INTERSECT"), (exp.Except, "EXCEPT"), (exp.Window, "窗口函数 window functions"),
    (exp.Star, "SELECT *"), (exp.Exists, "EXISTS"), (exp.Lateral, "LATERAL"),
)


@dataclass(frozen=True)
class Checked:
    """A query that passed: its tables and its output column names."""

    tables: tuple[str, ...]
    outputs: tuple[str, ...]


def _loc() -> list[str | int]:
    return ["body", "sql"]


def check(sql: str, *, allowed_tables: Iterable[str], sensitive: Mapping[str, set[str]],
          dialect: str = "sqlite") -> tuple[Checked | None, list[Problem]]:
    """Parse and check ``sql``; ``sensitive`` maps table -> its sensitive column names."""
    problems: list[Problem] = []
    try:
        trees = [t for t in sqlglot.parse(sql, read=dialect) if t is not None]
    except (SqlglotError, RecursionError) as exc:  # parse and token errors alike
        return None, [Problem(f"SQL 无法解析 the SQL does not parse: {str(exc)[:200]}", _loc(), "parse")]
    if len(trees) != 1:
        return None, [Problem("只允许一条语句 exactly one statement is allowed", _loc(), "multiple_statements")]
    tree = trees[0]
    if not isinstance(tree, exp.Select):
        return None, [Problem("只允许 SELECT 查询 only a SELECT is allowed", _loc(), "not_select")]
    for node_type, label in FORBIDDEN_NODES:
        found = [n for n in tree.find_all(node_type)
                 if not (isinstance(n, exp.Star) and isinstance(n.parent, exp.Count))]  # count(*) is fine
        if found:
            problems.append(Problem(f"安全屋查询不得使用 {label} not allowed in the safe room", _loc(), "forbidden"))
    if tree.args.get("into") is not None or tree.find(exp.Into) is not None:
        problems.append(Problem("不得使用 INTO no SELECT ... INTO", _loc(), "forbidden"))

    allowed = set(allowed_tables)
    aliases: dict[str, str] = {}
    tables: list[str] = []
    for t in tree.find_all(exp.Table):
        name = t.name
        if not name or t.args.get("db") or t.args.get("catalog"):
            problems.append(Problem("只能查询本库的表 only plain table names", _loc(), "forbidden_table"))
            continue
        if name not in allowed:
            problems.append(Problem(f"安全屋不得访问表 {name} the safe room may not read {name!r}", _loc(),
                                    "forbidden_table"))
        tables.append(name)
        aliases[t.alias_or_name] = name
    if not tables:
        problems.append(Problem("须从允许的表中查询 a FROM over allowed tables is required", _loc(), "no_table"))

    def is_sensitive(col: exp.Column) -> bool:
        name = col.name
        if col.table:
            return name in sensitive.get(aliases.get(col.table, col.table), set())
        return any(name in sensitive.get(t, set()) for t in tables)  # unqualified: any table it may be

    def sensitive_in(node: exp.Expression | None) -> list[str]:
        if node is None:
            return []
        return sorted({c.sql() for c in node.find_all(exp.Column) if is_sensitive(c)})

    group = tree.args.get("group")
    keys = list(group.expressions) if group is not None else []
    if not keys:
        problems.append(Problem("须为聚合查询：含 GROUP BY（不得返回明细行） GROUP BY is required (no row-level results)",
                                _loc(), "not_aggregate"))
    key_sql = {k.sql() for k in keys}
    for k in keys:
        for c in sensitive_in(k):
            problems.append(Problem(f"不得按敏感字段 {c} 分组 may not group by the sensitive column {c}", _loc(),
                                    "sensitive_key"))
    outputs: list[str] = []
    has_count = False
    for i, e in enumerate(tree.expressions):
        name = e.alias_or_name
        outputs.append(name)
        inner = e.this if isinstance(e, exp.Alias) else e
        aggs = list(inner.find_all(*AGGREGATES))
        if any(isinstance(a, exp.Count) for a in aggs):
            has_count = True
        if aggs:
            for a in aggs:
                if not isinstance(a, exp.Count):
                    for c in sensitive_in(a):
                        problems.append(Problem(f"输出列 {name}: 敏感字段 {c} 只能计数 the sensitive column {c} may only be "
                                                f"counted", ["body", "sql", "select", i], "sensitive_output"))
            # outside its aggregates an output may only use group keys
            stripped = _without(inner, AGGREGATES)
            loose = [c.sql() for c in stripped.find_all(exp.Column) if c.sql() not in key_sql]
            for c in loose:
                problems.append(Problem(f"输出列 {name} 含非分组字段 {c} column {c} is neither aggregated nor a GROUP BY key",
                                        ["body", "sql", "select", i], "not_aggregate"))
            continue
        for c in sensitive_in(inner):
            problems.append(Problem(f"不得输出敏感字段 {c} may not output the sensitive column {c}",
                                    ["body", "sql", "select", i], "sensitive_output"))
        if inner.sql() not in key_sql and any(True for _ in inner.find_all(exp.Column)):
            problems.append(Problem(f"输出列 {name} 须为聚合或分组键 output {name} must be an aggregate or a GROUP BY key",
                                    ["body", "sql", "select", i], "not_aggregate"))
    if not has_count:
        problems.append(Problem("须含 count(...) a count(...) column is required", _loc(), "not_aggregate"))
    for clause in ("order", "having"):
        node = tree.args.get(clause)
        if node is None:
            continue
        for c in sensitive_in(_without(node, (exp.Count,))):
            problems.append(Problem(f"{clause.upper()} 不得使用敏感字段 {c} may not use the sensitive column {c}",
                                    _loc(), "sensitive_output"))
    return (Checked(tuple(tables), tuple(outputs)) if not problems else None), problems


def _without(node: exp.Expression, kinds: tuple[type[exp.Expression], ...]) -> exp.Expression:
    """A copy of ``node`` with every ``kinds`` sub-expression replaced by a literal."""
    return node.copy().transform(lambda n: exp.Literal.number(0) if isinstance(n, kinds) else n)


def placeholders(sql: str, dialect: str = "sqlite") -> set[str]:
    """The names of the bound parameters (``:name``) of a query."""
    try:
        trees = sqlglot.parse(sql, read=dialect)
    except (SqlglotError, RecursionError):
        return set()
    return {p.name for t in trees if t is not None for p in t.find_all(exp.Placeholder) if p.name}


__all__ = ["check", "placeholders", "Checked"]
