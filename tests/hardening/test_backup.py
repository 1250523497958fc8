"""`huitou backup` / `huitou restore`: consistent copies taken while the service writes."""

from __future__ import annotations

import random
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlmodel import select
from typer.testing import CliRunner

from app.cli import cli
from app.clock import FixedClock
from app.config import Settings
from app.customers.models import Customer
from app.db import make_engine, write_session
from app.flows import record_order
from app.ops.backup import BackupError, backup_database, count_rows, pg_tool, restore_database
from app.shops.models import Shop
from tests.conftest import PG_URL, ChatDriver, missing_tool
from tests.hardening.conftest import table_rows

runner = CliRunner()

# Per customer, the summary's total quantity equals the sum over its orders: both are
# written in the same transaction (app/flows.record_order), so a copy that is not
# one moment of the database breaks this.
INVARIANT_BROKEN = text(
    """
    SELECT s.customer_id, s.total_quantity, sum(o.quantity)
    FROM customer_summary s JOIN orders o ON o.customer_id = s.customer_id
    GROUP BY s.customer_id, s.total_quantity
    HAVING s.total_quantity <> sum(o.quantity)
    """
)


class OrderWriter(threading.Thread):
    """Records orders for random customers of a shop, one transaction each, until stopped."""

    def __init__(self, engine: Engine, clock: FixedClock, shop: Shop, customer_ids: list[int]):
        super().__init__(daemon=True)
        self.engine, self.clock, self.shop = engine, clock, shop
        self.customer_ids = customer_ids
        self.stop = threading.Event()
        self.written = 0
        self.error: BaseException | None = None
        self.started_writing = threading.Event()

    def run(self) -> None:
        rng = random.Random(8)
        try:
            while not self.stop.is_set():
                with write_session(self.engine) as session:
                    shop = session.get(Shop, self.shop.id)
                    customer = session.get(Customer, rng.choice(self.customer_ids))
                    assert shop is not None and customer is not None
                    quantity = rng.randint(1, 3)
                    record_order(session=session, shop=shop, customer=customer,
                                 quantity=quantity, clock=self.clock, source="api")  # fmt: skip
                self.written += 1
                if self.written >= 3:
                    self.started_writing.set()
        except BaseException as exc:  # surfaced by the test, not lost in the thread
            self.error = exc
            self.started_writing.set()


def order_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM orders")).scalar_one())


@pytest.fixture
def writer(engine: Engine, clock: FixedClock, demo_shop: Shop) -> Iterator[OrderWriter]:
    with write_session(engine) as session:
        ids = [c.id for c in session.exec(select(Customer).where(Customer.shop_id == demo_shop.id))]
    thread = OrderWriter(engine, clock, demo_shop, [i for i in ids if i is not None][:40])
    yield thread
    thread.stop.set()
    if thread.is_alive():
        thread.join(timeout=30)


def sqlite_file(engine: Engine) -> Path:
    assert engine.url.database is not None
    return Path(engine.url.database)


@pytest.mark.skipif(bool(PG_URL), reason="SQLite backup API; the PostgreSQL variant is below")
def test_backup_while_orders_are_written_is_one_consistent_snapshot(
    engine: Engine, writer: OrderWriter, tmp_path: Path
) -> None:
    with engine.connect() as conn:
        assert conn.execute(INVARIANT_BROKEN).all() == []
    writer.start()
    assert writer.started_writing.wait(timeout=30)
    copies = []
    for i in range(3):
        before = order_count(engine)
        result = backup_database(url=str(engine.url), dest=tmp_path / f"live-{i}.db")
        after = order_count(engine)
        copies.append((result.path, before, after))
    written_during = writer.written
    writer.stop.set()
    writer.join(timeout=30)
    assert writer.error is None, writer.error
    assert written_during > 3

    for path, before, after in copies:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            # One self-contained file: no WAL left behind that the copy depends on.
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
            assert not Path(f"{path}-wal").exists()
            copied = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
            assert before <= copied <= after
            assert conn.execute(str(INVARIANT_BROKEN)).fetchall() == []
        finally:
            conn.close()

    # With the writer stopped, a copy holds exactly the rows of every table.
    quiet = backup_database(url=str(engine.url), dest=tmp_path / "quiet.db")
    copy_engine = make_engine(f"sqlite:///{quiet.path}")
    try:
        assert table_rows(copy_engine) == table_rows(engine)
    finally:
        copy_engine.dispose()


def served_views(engine: Engine, settings: Settings, clock: FixedClock) -> list[str]:
    """What the owner reads: a customer's card, the follow-up list, the month's figures."""
    chat = ChatDriver(engine=engine, settings=settings, clock=clock, shop_ref="demo")
    return [chat.say(q) for q in ("王姐", "今天该跟进谁", "上月统计", "3号楼李会计")]


@pytest.mark.skipif(bool(PG_URL), reason="SQLite file restore; the PostgreSQL variant is below")
def test_restore_into_a_fresh_database_serves_the_same_data(
    engine: Engine, demo_shop: Shop, settings: Settings, clock: FixedClock, tmp_path: Path
) -> None:
    backup = backup_database(url=str(engine.url), dest=tmp_path / "demo.db")
    fresh_url = f"sqlite:///{tmp_path / 'restored' / 'huitou.db'}"
    assert restore_database(url=fresh_url, source=backup.path).replaced_rows == 0
    restored = make_engine(fresh_url)
    try:
        assert table_rows(restored) == table_rows(engine)
        # Read-only questions first (they must not change what the other side answers).
        assert served_views(restored, settings, clock) == served_views(engine, settings, clock)
    finally:
        restored.dispose()


@pytest.mark.skipif(bool(PG_URL), reason="SQLite files")
def test_restore_refuses_a_database_with_data_unless_forced(
    engine: Engine, demo_shop: Shop, clock: FixedClock, tmp_path: Path
) -> None:
    backup = backup_database(url=str(engine.url), dest=tmp_path / "demo.db")
    target = tmp_path / "other.db"
    other = make_engine(f"sqlite:///{target}")
    from app.db import upgrade
    from tests.factories import make_customer, make_shop

    upgrade(other)
    shop = make_shop(other, clock, slug="other-shop")
    make_customer(other, clock, shop, "只在目标库里的客户")
    other.dispose()
    url = f"sqlite:///{target}"
    with pytest.raises(BackupError, match="--force"):
        restore_database(url=url, source=backup.path)
    assert count_rows(url) > 0 and "只在目标库里的客户" in str(table_rows(make_engine(url)))
    result = restore_database(url=url, source=backup.path, force=True)
    assert result.replaced_rows > 0
    restored = make_engine(url)
    try:
        assert table_rows(restored) == table_rows(engine)
    finally:
        restored.dispose()


@pytest.mark.skipif(bool(PG_URL), reason="SQLite files")
def test_backup_and_restore_refuse_bad_paths(engine: Engine, tmp_path: Path) -> None:
    taken = backup_database(url=str(engine.url), dest=tmp_path / "a.db")
    with pytest.raises(BackupError, match="已经存在"):
        backup_database(url=str(engine.url), dest=taken.path)
    with pytest.raises(BackupError, match="找不到数据库文件"):
        backup_database(url=f"sqlite:///{tmp_path / 'missing.db'}", dest=tmp_path / "b.db")
    assert not (tmp_path / "missing.db").exists()  # not created as a side effect
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 100)
    with pytest.raises(BackupError, match="不是可用的 SQLite 备份"):
        restore_database(url=fresh, source=garbage)
    foreign = tmp_path / "foreign.db"
    sqlite3.connect(foreign).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(BackupError, match="不是回头客的数据库"):
        restore_database(url=fresh, source=foreign)
    with pytest.raises(BackupError, match="找不到备份文件"):
        restore_database(url=fresh, source=tmp_path / "nope.db")
    # A damaged copy is refused before anything is written.
    damaged = tmp_path / "damaged.db"
    data = bytearray(taken.path.read_bytes())
    data[4096 * 3 : 4096 * 3 + 512] = b"\xff" * 512
    damaged.write_bytes(bytes(data))
    with pytest.raises(BackupError):
        restore_database(url=fresh, source=damaged)
    assert count_rows(fresh) == 0


@pytest.mark.skipif(bool(PG_URL), reason="SQLite files")
def test_cli_backup_then_restore_into_a_new_data_dir(
    cli_env: str, demo_shop: Shop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = runner.invoke(cli, ["backup", "-o", str(tmp_path / "cli.db")])
    assert out.exit_code == 0, out.output
    assert "已备份到" in out.output and (tmp_path / "cli.db").is_file()
    again = runner.invoke(cli, ["backup", "-o", str(tmp_path / "cli.db")])
    assert again.exit_code == 1 and "已经存在" in again.output
    # Restoring over the live database is refused without --force.
    refused = runner.invoke(cli, ["restore", str(tmp_path / "cli.db")])
    assert refused.exit_code == 1 and "--force" in refused.output

    from app.config import get_settings

    new_db = tmp_path / "elsewhere" / "huitou.db"
    monkeypatch.setenv("HUITOU_DATABASE_URL", f"sqlite:///{new_db}")
    get_settings.cache_clear()
    done = runner.invoke(cli, ["restore", str(tmp_path / "cli.db")])
    assert done.exit_code == 0, done.output
    listed = runner.invoke(cli, ["shop", "list"])
    assert "demo" in listed.output and "清泉送水站" in listed.output
    default = runner.invoke(cli, ["backup"])
    assert default.exit_code == 0, default.output
    assert list((tmp_path / "cli-data" / "backups").glob("huitou-20260617-*.db"))


# -- PostgreSQL -----------------------------------------------------------------------------


@pytest.fixture
def pg_scratch_url() -> Iterator[str]:
    """A second, empty database on the test server, dropped afterwards."""
    admin = make_engine(PG_URL).execution_options(isolation_level="AUTOCOMMIT")
    name = f"huitou_restore_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.postgres
def test_postgres_backup_while_writing_and_restore(
    writer: OrderWriter, engine: Engine, settings: Settings, clock: FixedClock, tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    if not PG_URL:
        pytest.skip("runs in the PostgreSQL pass of scripts/test (HUITOU_TEST_DATABASE_URL)")
    try:
        pg_tool("pg_dump")
        pg_tool("pg_restore")
    except BackupError as exc:
        missing_tool(str(exc))
    writer.start()
    assert writer.started_writing.wait(timeout=30)
    before = order_count(engine)
    live = backup_database(url=PG_URL, dest=tmp_path / "live.dump")
    after = order_count(engine)
    writer.stop.set()
    writer.join(timeout=30)
    assert writer.error is None, writer.error

    scratch: str = request.getfixturevalue("pg_scratch_url")
    assert restore_database(url=scratch, source=live.path).replaced_rows == 0
    restored = make_engine(scratch)
    try:
        with restored.connect() as conn:
            copied = int(conn.execute(text("SELECT count(*) FROM orders")).scalar_one())
            assert conn.execute(INVARIANT_BROKEN).all() == []
        assert before <= copied <= after
        # Taken when nothing writes: the restored database holds exactly the same rows, and
        # the service reads the same from it.
        quiet = backup_database(url=PG_URL, dest=tmp_path / "quiet.dump")
        with pytest.raises(BackupError, match="--force"):
            restore_database(url=scratch, source=quiet.path)
        restore_database(url=scratch, source=quiet.path, force=True)
        assert table_rows(restored) == table_rows(engine)
        assert served_views(restored, settings, clock) == served_views(engine, settings, clock)
    finally:
        restored.dispose()
