"""Hardening fixtures: the CLI pointed at a test database, table snapshots."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, inspect, text

from app.config import get_settings
from tests.conftest import TEST_TODAY


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Any) -> Iterator[str]:
    """Point the CLI's settings at this test's database, with today frozen."""
    monkeypatch.setenv("HUITOU_DATABASE_URL", database_url)
    monkeypatch.setenv("HUITOU_DATA_DIR", str(tmp_path / "cli-data"))
    monkeypatch.setenv("HUITOU_TODAY", TEST_TODAY.isoformat())
    get_settings.cache_clear()
    yield database_url
    get_settings.cache_clear()


def table_rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order, for comparing two databases."""
    snapshot: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in sorted(inspect(conn).get_table_names()):
            quoted = conn.dialect.identifier_preparer.quote(table)
            rows = conn.execute(text(f"SELECT * FROM {quoted}")).all()
            snapshot[table] = sorted((tuple(r) for r in rows), key=repr)
    return snapshot


# The channel fixtures (fake provider on loopback, WeCom / Official Account sides, settings
# with every channel configured), shared with tests/channels.
from tests.channels.conftest import (  # noqa: E402
    channel_settings,
    oa_side,
    provider,
    wecom_side,
)

__all__ = ["channel_settings", "oa_side", "provider", "table_rows", "wecom_side"]
