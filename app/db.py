"""Engine, sessions and migrations, the same code for SQLite (default) and PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, event, inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlmodel import Session, create_engine

from app.config import PROJECT_ROOT

log = logging.getLogger(__name__)

MIGRATIONS_DIR = PROJECT_ROOT / "app" / "migrations"
# Ask a write transaction to take SQLite's write lock at BEGIN, so two writers can never
# both hold read locks and deadlock when upgrading to write (SQLITE_BUSY mid-transaction).
WRITE_OPTION = "huitou_write"


def make_engine(
    url: str,
    *,
    echo: bool = False,
    busy_timeout_seconds: float = 30.0,
    synchronous: str | None = None,
) -> Engine:
    """Build an engine; for SQLite: WAL, foreign keys, busy timeout, explicit BEGIN.

    `busy_timeout_seconds`: how long a SQLite statement waits for a lock before "database
    is locked" (tests of the callback spool make it short). `synchronous`: NORMAL or FULL,
    by default HUITOU_SQLITE_SYNCHRONOUS (NORMAL).
    """
    if synchronous is None:
        from app.config import get_settings

        synchronous = get_settings().sqlite_synchronous
    if synchronous not in ("NORMAL", "FULL"):
        raise ValueError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, echo=echo, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        echo=echo,
        connect_args={"check_same_thread": False, "timeout": busy_timeout_seconds},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own is lazy and wrong).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_seconds * 1000)}")
        # NORMAL under WAL: a commit is in the WAL (the OS has it) before it returns, so it
        # survives a killed or crashed process (tests/faults kill -9 the server mid-burst);
        # only an OS crash or power cut may take back the last commits since a checkpoint,
        # and the database stays consistent. FULL adds an fsync to every commit: measured
        # here 3.9 ms against 0.4 ms per write transaction, paid while holding SQLite's one
        # write lock (docs/channels.md). Unanswered messages are redelivered by WeChat.
        # HUITOU_SQLITE_SYNCHRONOUS=FULL for an fsync per commit (durable through power loss).
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = "IMMEDIATE" if conn.get_execution_options().get(WRITE_OPTION) else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def insert_for(dialect: str) -> type[sqlite.Insert] | type[postgresql.Insert]:
    """The dialect's INSERT construct, which has ON CONFLICT (SQLite and PostgreSQL alike)."""
    return postgresql.Insert if dialect == "postgresql" else sqlite.Insert


@lru_cache(maxsize=16)
def with_option(engine: Engine, option: str) -> Engine:
    """`engine` with execution option `option` set to True: one view per engine and option,
    built once (it shares the engine's pool; building one per transaction cost ~50 µs)."""
    return engine.execution_options(**{option: True})


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A session whose transaction commits on success and rolls back on any error."""
    # expire_on_commit=False: callers read what they wrote after the commit, outside it.
    with Session(with_option(engine, WRITE_OPTION), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def write_connection(engine: Engine) -> AbstractContextManager[Connection]:
    """A Core connection in a write transaction (BEGIN IMMEDIATE on SQLite), committed on
    success: for hot paths where a Session's bookkeeping costs more than the statements."""
    return with_option(engine, WRITE_OPTION).begin()


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A session for reading; nothing is committed."""
    with Session(engine) as session:
        yield session


def alembic_config(url: str) -> Any:
    """Alembic configuration pointing at our migrations and the given database."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Create or upgrade the schema to `revision` (idempotent)."""
    from alembic import command

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def head_revision() -> str:
    """The newest revision in the migration history (what `upgrade` brings a database to)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The schema revision stored in the database, None when it was never migrated."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return MigrationContext.configure(conn).get_current_revision()
