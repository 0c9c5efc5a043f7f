"""Foreign-key columns with no index: joins from the parent, and every parent delete, scan the child."""

from __future__ import annotations

from collections.abc import Iterator

from d1bench.linter.context import Finding, LintContext

__all__ = ["RULE", "check"]

RULE = "foreign_key_without_index"


def check(ctx: LintContext) -> Iterator[Finding]:
    from d1bench.sql.catalog import Key
    from d1bench.sql.naming import index_name

    for fk in ctx.catalog.foreign_keys:
        if any(i.keys and i.keys[0].expr.lower() == fk.column.lower()
               for i in ctx.indexes_on(fk.table)):
            continue
        users = [name for name, info in ctx.infos.items()
                 if any((info.refs[p.ref].name == fk.table and p.key == fk.column) or
                        (p.other_ref is not None and info.refs[p.other_ref].name == fk.table
                         and p.other_key == fk.column)
                        for p in info.preds if 0 <= p.ref < len(info.refs))]
        n = ctx.stats.row_count(fk.table)
        sql = f"CREATE INDEX {index_name(fk.table, [Key(fk.column)])} ON {fk.table} ({fk.column});"
        fix = (f"{fk.table}.{fk.column} references {fk.ref_table} but has no index: every lookup "
               f"by it, and every delete from {fk.ref_table} (D1 enforces foreign keys), scans "
               f"{fk.table}")
        extra = f"{fk.table} has {n:,} rows; used by {', '.join(users) if users else 'no template'}"
        if users:
            # one finding per key, on the template that reads the most rows because of it
            name = max(users, key=lambda u: ctx.rows_read(u)[0] or 0.0)
            yield Finding(name, RULE, ctx.severity(name, "medium"), ctx.evidence(name, extra),
                          fix, sql)
        else:
            yield Finding("(schema)", RULE, "low", extra, fix, sql)
