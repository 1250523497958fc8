"""Backups and restores of the service's database, safe to take while the service writes.

SQLite: the online backup API (sqlite3.Connection.backup) copies a consistent snapshot page
by page while other connections keep writing (WAL: readers never block the writer); the copy
is switched to a single self-contained file and checked with `PRAGMA integrity_check` before
it replaces anything. PostgreSQL: `pg_dump --format=custom` (one repeatable-read snapshot)
and `pg_restore --single-transaction`. Restores refuse to overwrite a database that holds
any row unless forced.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import URL, make_url

# Tables that say nothing about whether a database holds an owner's data.
_BOOKKEEPING_TABLES = frozenset({"alembic_version"})
# Environment variable naming the PostgreSQL client binaries' directory (as scripts/pg-start).
PG_BINDIR_ENV = "HUITOU_PG_BINDIR"


class BackupError(RuntimeError):
    """A backup or restore that could not be done; the message says why, in Chinese."""


@dataclass(frozen=True)
class BackupResult:
    path: Path
    backend: str  # "sqlite" | "postgresql"
    size_bytes: int


@dataclass(frozen=True)
class RestoreResult:
    backend: str
    replaced_rows: int  # rows the target held before (0 unless --force was needed)


def backend_of(url: str) -> str:
    """'sqlite' or 'postgresql' for a SQLAlchemy URL; BackupError for anything else."""
    name = make_url(url).get_backend_name()
    if name not in ("sqlite", "postgresql"):
        raise BackupError(f"不支持备份这种数据库:{name}")
    return name


def default_backup_path(*, data_dir: Path, url: str, now: datetime) -> Path:
    """<data_dir>/backups/huitou-YYYYmmdd-HHMMSS.db (.dump for PostgreSQL)."""
    suffix = ".db" if backend_of(url) == "sqlite" else ".dump"
    return Path(data_dir) / "backups" / f"huitou-{now:%Y%m%d-%H%M%S}{suffix}"


def backup_database(*, url: str, dest: Path) -> BackupResult:
    """Write a consistent copy of the database at `url` to `dest` (which must not exist)."""
    backend = backend_of(url)
    dest = Path(dest)
    if dest.exists():
        raise BackupError(f"{dest} 已经存在;备份不会覆盖已有文件,请换一个文件名。")
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Write next to the destination and rename at the end: a crash never leaves a half copy
    # under the final name.
    partial = dest.with_name(f".{dest.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        if backend == "sqlite":
            _sqlite_backup(_sqlite_path(url), partial)
        else:
            _pg_dump(url, partial)
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)
    return BackupResult(path=dest, backend=backend, size_bytes=dest.stat().st_size)


def restore_database(*, url: str, source: Path, force: bool = False) -> RestoreResult:
    """Replace the database at `url` with the backup `source`; refuses a non-empty target
    unless `force`. Stop the service first: a restore is not meant to race live writes."""
    backend = backend_of(url)
    source = Path(source)
    if not source.is_file():
        raise BackupError(f"找不到备份文件:{source}")
    if backend == "sqlite":
        _check_sqlite_copy(source)
    held = count_rows(url)
    if held and not force:
        raise BackupError(
            f"目标数据库里已有 {held} 行数据,恢复会覆盖它们。确认要覆盖请加 --force"
            "(建议先 huitou backup 留一份)。"
        )
    if backend == "sqlite":
        _sqlite_restore(source, _sqlite_path(url))
    else:
        _pg_restore(url, source)
    return RestoreResult(backend=backend, replaced_rows=held)


def count_rows(url: str) -> int:
    """Rows in all tables but the migration bookkeeping; 0 for a missing SQLite file."""
    if backend_of(url) == "sqlite" and not _sqlite_path(url).exists():
        return 0
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            total = 0
            for table in inspect(conn).get_table_names():
                if table in _BOOKKEEPING_TABLES:
                    continue
                quoted = conn.dialect.identifier_preparer.quote(table)
                total += int(conn.execute(text(f"SELECT count(*) FROM {quoted}")).scalar_one())
            return total
    finally:
        engine.dispose()


# -- SQLite ---------------------------------------------------------------------------------


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        raise BackupError(
            "内存数据库没有可备份的文件;请设置 HUITOU_DATA_DIR 或 HUITOU_DATABASE_URL。"
        )
    return Path(database)


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=30, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def _sqlite_backup(source: Path, partial: Path) -> None:
    if not source.is_file():
        # sqlite3.connect would quietly create an empty database and back that up.
        raise BackupError(f"找不到数据库文件:{source}")
    src = _connect(source)
    dst = _connect(partial)
    try:
        # pages=-1: the whole database in one step, under one read transaction, so the copy
        # is one snapshot however busy the writers are (in WAL mode they are not blocked).
        src.backup(dst, pages=-1)
        # The copy inherits WAL mode; make it one self-contained file that can be moved.
        dst.execute("PRAGMA journal_mode=DELETE")
    finally:
        dst.close()
        src.close()
    _check_sqlite_copy(partial)


def _check_sqlite_copy(path: Path) -> None:
    """The file is a SQLite database that passes integrity_check and has our schema."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            result = [row[0] for row in conn.execute("PRAGMA integrity_check")]
            has_schema = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='alembic_version'"
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} 不是可用的 SQLite 备份:{exc}") from exc
    if result != ["ok"]:
        raise BackupError(f"{path} 没通过完整性检查:{'; '.join(result[:3])}")
    if not has_schema:
        raise BackupError(f"{path} 不是回头客的数据库(没有 alembic_version 表)")


def _sqlite_restore(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = _connect(target)
    try:
        # The backup API writes the target in one transaction under its write lock, and the
        # target's WAL and shared memory stay coherent (a file copy over a live WAL would not).
        src.backup(dst, pages=-1)
        dst.execute("PRAGMA journal_mode=WAL")
    finally:
        dst.close()
        src.close()


# -- PostgreSQL -----------------------------------------------------------------------------


def pg_tool(name: str) -> str:
    """Path of pg_dump / pg_restore: $HUITOU_PG_BINDIR, the newest installed server's bin
    directory (a pg_dump must not be older than the server), then PATH."""
    candidates: list[Path] = []
    if os.environ.get(PG_BINDIR_ENV):
        candidates.append(Path(os.environ[PG_BINDIR_ENV]) / name)

    def version(bindir: Path) -> tuple[int, ...]:
        digits = bindir.parent.name.split(".")
        return tuple(int(d) for d in digits if d.isdigit())

    installed = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    candidates += [bindir / name for bindir in installed]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise BackupError(
        f"找不到 {name}:请安装 PostgreSQL 客户端(Debian: apt-get install postgresql-client),"
        f"或用 {PG_BINDIR_ENV} 指向它所在的目录。"
    )


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """A libpq connection URI without the password, and the environment carrying it
    (a password on the command line is visible to every user in `ps`)."""
    parsed: URL = make_url(url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    plain = parsed.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _run(args: list[str], env: dict[str, str], what: str) -> None:
    try:
        done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise BackupError(f"{what} 启动失败:{exc}") from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise BackupError(f"{what} 失败(退出码 {done.returncode}):{' / '.join(detail)}")


def _pg_dump(url: str, partial: Path) -> None:
    dsn, env = _libpq(url)
    # --format=custom: compressed, and pg_restore can restore it in one transaction.
    _run([pg_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges",
          f"--file={partial}", f"--dbname={dsn}"], env, "pg_dump")  # fmt: skip


def _pg_restore(url: str, source: Path) -> None:
    dsn, env = _libpq(url)
    # --clean --if-exists: replace the tables the dump holds (an upgraded empty database has
    # them too); --single-transaction: all of it or none of it.
    _run([pg_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--no-privileges",
          "--single-transaction", "--exit-on-error", f"--dbname={dsn}", str(source)],
         env, "pg_restore")  # fmt: skip
