"""Columns added to the records tables since a store was created, added in place.

`create_all` makes missing tables but never alters one that exists, so a store made by an older
ragbot lacks the newer columns. Each is nullable, so ALTER TABLE ADD COLUMN is enough on SQLite
and PostgreSQL alike, and older rows read as NULL.
"""

from __future__ import annotations

import sqlalchemy as sa


def add_missing_columns(engine: sa.Engine, metadata: sa.MetaData) -> list[str]:
    """Add every nullable column of `metadata` that an existing table lacks; `table.column` added."""
    added: list[str] = []
    inspector = sa.inspect(engine)
    existing_tables = set(inspector.get_table_names())
    for table in metadata.sorted_tables:
        if table.name not in existing_tables:
            continue
        have = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in have:
                continue
            if not column.nullable:
                raise RuntimeError(f"{table.name}.{column.name} is NOT NULL: it needs a migration")
            kind = column.type.compile(dialect=engine.dialect)
            preparer = engine.dialect.identifier_preparer
            statement = (
                f"ALTER TABLE {preparer.quote(table.name)} "
                f"ADD COLUMN {preparer.quote(column.name)} {kind}"
            )
            with engine.begin() as conn:
                conn.execute(sa.text(statement))
            added.append(f"{table.name}.{column.name}")
    return added
