"""Schema history: a database made by the first version upgrades on start, data intact."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

import app.models  # noqa: F401
from app.db import current_revision, head_revision, make_engine, upgrade
from tests.conftest import PG_URL


@pytest.fixture
def blank_url(tmp_path: Path) -> str:
    """An empty, never-migrated database."""
    if PG_URL:
        engine = make_engine(PG_URL)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS mig CASCADE"))
            conn.execute(text("CREATE SCHEMA mig"))
        engine.dispose()
        sep = "&" if "?" in PG_URL else "?"
        return f"{PG_URL}{sep}options=-csearch_path%3Dmig"
    return f"sqlite:///{tmp_path / 'blank.db'}"


def test_models_and_migrations_describe_the_same_schema(blank_url: str) -> None:
    engine = make_engine(blank_url)
    upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata
        )
    assert diff == []


def test_upgrade_from_first_schema_keeps_every_row(blank_url: str) -> None:
    engine = make_engine(blank_url)
    upgrade(engine, "0001")
    assert current_revision(engine) == "0001"
    assert not inspect(engine).has_table("inbox_message")
    # Rows as the first version wrote them, in its own columns.
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO shop (id, slug, name, industry, timezone, settings, created_at) "
                "VALUES (1, 'old', '老店', 'water', 'Asia/Shanghai', '{}', '2025-01-01 00:00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO customer (id, shop_id, name, aliases, kind, value_class, tags, "
                "status, created_at) VALUES (1, 1, '王姐', '[]', 'household', 'C', '[]', "
                "'active', '2025-01-01 00:00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO orders (id, shop_id, customer_id, ordered_at, order_date, quantity, "
                "unit, amount_cents, source, created_at) VALUES (1, 1, 1, "
                "'2025-01-02 02:00:00', '2025-01-02', 2, '桶', 3600, 'chat', "
                "'2025-01-02 02:00:00')"
            )
        )
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT customer_id, quantity, amount_cents, inbox_id FROM orders")
        ).one()
        assert tuple(row) == (1, 2, 3600, None)
        assert conn.execute(text("SELECT name FROM customer")).scalar_one() == "王姐"
        assert inspect(conn).has_table("inbox_message")
        columns = {c["name"] for c in inspect(conn).get_columns("orders")}
        assert "inbox_id" in columns
    upgrade(engine)  # a second start changes nothing
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_sqlite_connections_use_wal_foreign_keys_and_busy_timeout(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'p.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL (WAL)
    engine.dispose()
    durable = make_engine(f"sqlite:///{tmp_path / 'p.db'}", synchronous="FULL")
    with durable.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL, when asked
