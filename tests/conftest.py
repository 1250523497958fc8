"""Shared fixtures: a fresh migrated database per test (SQLite file or PostgreSQL), a fixed clock.

HUITOU_TEST_DATABASE_URL (set by scripts/test for its PostgreSQL pass) switches every
database fixture to PostgreSQL; otherwise each test gets its own SQLite file.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlmodel import SQLModel

from app.bot.context import capture_side_output
from app.channels.local import deliver_as_owner
from app.clock import FixedClock
from app.config import PROJECT_ROOT, Settings
from app.db import make_engine, read_session, upgrade
from app.demo.load import load_demo
from app.shops.models import Shop
from app.shops.service import get_shop

# A fixed "today" for every test: Wednesday 2026-06-17, 10:00 in Shanghai.
TEST_TODAY = date(2026, 6, 17)
PG_URL = os.environ.get("HUITOU_TEST_DATABASE_URL", "")
REQUIRE_TOOLS = os.environ.get("HUITOU_REQUIRE_TOOLS") == "1"


def missing_tool(reason: str) -> None:
    """Skip loudly when a tool is absent locally; fail under CI (HUITOU_REQUIRE_TOOLS=1)."""
    if REQUIRE_TOOLS:
        pytest.fail(f"required tool missing under CI: {reason}")
    pytest.skip(f"NOT RUN: {reason}")


def pytest_report_header() -> str:
    return f"huitou database: {'PostgreSQL ' + PG_URL if PG_URL else 'SQLite (file per test)'}"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock.at_local(TEST_TODAY, hour=10)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url="",
        templates_dir=PROJECT_ROOT / "message_templates",
        # Tests that need the digest scheduler start their own; others must not get one.
        scheduler_enabled=False,
    )


def _truncate_all(engine: Engine) -> None:
    tables = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(scope="session")
def _pg_engine() -> Iterator[Engine]:
    engine = make_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrate once; each test copies the file (a fresh database in about a millisecond)."""
    path = tmp_path_factory.mktemp("template") / "migrated.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a fresh, migrated, empty database for this test."""
    if PG_URL:
        _truncate_all(request.getfixturevalue("_pg_engine"))
        return PG_URL
    template: Path = request.getfixturevalue("_sqlite_template")
    path = tmp_path / "huitou.db"
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def _sqlite_demo_template(_sqlite_template: Path) -> Path:
    """The migrated template with the demo shop loaded as of TEST_TODAY (loaded once)."""
    path = _sqlite_template.with_name("demo.db")
    shutil.copyfile(_sqlite_template, path)
    engine = make_engine(f"sqlite:///{path}")
    load_demo(engine=engine, clock=FixedClock.at_local(TEST_TODAY, hour=10))
    engine.dispose()  # the last connection's close checkpoints the WAL into the file
    return path


@pytest.fixture
def demo_shop(request: pytest.FixtureRequest, engine: Engine, clock: FixedClock) -> Shop:
    if PG_URL:
        shop, created = load_demo(engine=engine, clock=clock)
        assert created
        return shop
    # Nothing has connected to this test's fresh file yet: replace it with the demo copy.
    engine.dispose()
    assert engine.url.database is not None
    shutil.copyfile(request.getfixturevalue("_sqlite_demo_template"), engine.url.database)
    with read_session(engine) as session:
        return get_shop(session=session, ref="demo")


@dataclass
class ChatDriver:
    """Talk to the bot as a shop's owner, the way errbot's testbot does."""

    engine: Engine
    settings: Settings
    clock: FixedClock
    shop_ref: str
    _counter: int = 0

    def send(self, text: str, *, msg_id: str | None = None) -> list[str]:
        self._counter += 1
        # Lent as the web chat lends them: links in replies are signed with these settings.
        with capture_side_output(self.settings):
            result = deliver_as_owner(
                engine=self.engine,
                settings=self.settings,
                clock=self.clock,
                shop_ref=self.shop_ref,
                channel="test",
                text=text,
                client_msg_id=msg_id or f"test-{self._counter:06d}",
            )
        return result.replies

    def say(self, text: str) -> str:
        """Send and return the replies joined by a blank line."""
        return "\n\n".join(self.send(text))


@pytest.fixture
def chat(engine: Engine, settings: Settings, clock: FixedClock, demo_shop: Shop) -> ChatDriver:
    return ChatDriver(engine=engine, settings=settings, clock=clock, shop_ref=demo_shop.slug)
