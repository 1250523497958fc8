"""Engine, sessions and migrations, the same code for SQLite (default) and PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Select, bindparam, event, inspect, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import configure_mappers
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.base import instance_state
from sqlmodel import Session, SQLModel, create_engine

from app import lean
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


Model = TypeVar("Model", bound=SQLModel)


def adopt(session: Session, model: type[Model], row: Mapping[Any, Any]) -> Model:
    """The session's object for a row read (or just written) on its connection with Core.

    `row` holds every column of `model` as the database has it. The result is what a query
    through the ORM would give: the object already in the session's identity map if there
    is one, else a new one made the way the ORM makes loaded objects (no validation and no
    defaults: the values are the row's), persistent in `session`, so a later change to it is
    flushed as an UPDATE. A Core read plus this costs a third of the same read through the
    ORM, on paths every message takes. Flush the session before such a read, as the ORM's
    autoflush would.
    """
    mapper = inspect(model)
    if not mapper.configured:  # attributes are instrumented once the mappers are configured
        configure_mappers()  # (a query does it; a process may adopt before any query)
    key = mapper.identity_key_from_primary_key([row[c.key] for c in mapper.primary_key])
    existing = session.identity_map.get(key)
    if existing is not None:
        return existing
    instance = mapper.class_manager.new_instance()
    instance.__dict__.update(row)
    # As sqlalchemy.orm.loading attaches an instance it loaded (make_transient_to_detached
    # and Session.add, the public way, cost four times as much): the state gets its key and
    # session and joins the identity map, unmodified. Columns the row lacks are expired, so
    # reading one loads it, as make_transient_to_detached would have them.
    state = instance_state(instance)
    state.key = key
    state.identity_token = key[2]
    state.session_id = session.hash_key
    session.identity_map._add_unpresent(state, key)
    unloaded = state.unloaded
    if unloaded:
        state._expire_attributes(state.dict, unloaded)
    return instance


def insert(
    session: Session, model: type[Model], statement: Any, values: dict[str, Any], **params: Any
) -> tuple[Model, Any]:
    """INSERT one row of `model` in the session's transaction, with a prebuilt Core
    `statement` RETURNING the new key first (then anything else it reads, from `params`);
    return the row as the session's object (adopt) and the returned row. The ORM's flush of
    one new object cost several times the INSERT, on paths every message takes."""
    session.flush()  # rows the new one refers to (a customer just created) go first
    row = lean.run(session.connection(), statement, {**values, **params}).one()
    (key,) = inspect(model).primary_key
    return adopt(session, model, {key.key: row[0], **values}), row


@lru_cache(maxsize=32)
def _by_key(model: type[SQLModel]) -> Select[Any]:
    mapper = inspect(model)
    (key,) = mapper.primary_key
    return select(*mapper.local_table.columns).where(key == bindparam("pk"))


def load(session: Session, model: type[Model], pk: Any) -> Model | None:
    """`session.get(model, pk)` (one-column keys), with the read in Core: on a miss it costs
    a third of the ORM's load. An object the session holds already comes from session.get.
    """
    mapper = inspect(model)
    if session.identity_map.get(mapper.identity_key_from_primary_key([pk])) is not None:
        return session.get(model, pk)
    row = lean.run(session.connection(), _by_key(model), {"pk": pk}).mappings().first()
    return None if row is None else adopt(session, model, row)


@lru_cache(maxsize=64)
def _update_by_key(model: type[SQLModel], columns: tuple[str, ...]) -> Any:
    table = inspect(model).local_table
    (key,) = inspect(model).primary_key
    return (
        table.update()
        .where(key == bindparam("pk"))
        .values({c: bindparam(f"v_{c}", type_=table.c[c].type) for c in columns})
    )


def update(session: Session, instance: SQLModel, **values: Any) -> None:
    """Set these columns of persistent `instance` in the database now, in one UPDATE by
    its key, and on the object as its stored values (nothing left for a flush to write).
    The ORM's flush of one changed object cost several times the statement, on commands
    every owner sends (暂停, 已挽回, 流失). Other unflushed changes to it stay pending."""
    mapper = inspect(type(instance))
    (pk,) = mapper.primary_key_from_instance(instance)
    params = {"pk": pk, **{f"v_{name}": value for name, value in values.items()}}
    statement = _update_by_key(type(instance), tuple(values))
    if lean.run(session.connection(), statement, params).rowcount != 1:
        raise LookupError(f"{type(instance).__name__} {pk} is not in the database")
    for name, value in values.items():
        set_committed_value(instance, name, value)


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
