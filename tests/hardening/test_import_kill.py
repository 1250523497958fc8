"""kill -9 during an import: afterwards the import is there whole or not at all, nothing that
was stored before is touched, and running it again lands it exactly once. Real processes,
on the test database (an SQLite file, or PostgreSQL under CI)."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, text
from sqlmodel import select

from app.config import Settings
from app.db import read_session
from app.orders.models import Order
from app.shops.models import Shop
from tests.dataio.conftest import fingerprint

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ROWS = 40_000


def _write_file(path: Path) -> None:
    start = date(2024, 1, 1)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["客户", "电话", "日期", "数量", "金额"])
        for i in range(ROWS):
            customer = i % 2_000
            day = start + timedelta(days=(i // 2_000) * 20 + customer % 17)
            writer.writerow([f"导入客户{customer}", f"139{customer:08d}", day.isoformat(), 2, 36])


def _env(engine: Engine, settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUITOU_")}
    env.update(
        HUITOU_DATABASE_URL=engine.url.render_as_string(hide_password=False),
        HUITOU_DATA_DIR=str(settings.data_dir),
        HUITOU_TODAY="2026-06-17",
        HUITOU_SCHEDULER_ENABLED="0",
        HUITOU_DEMO_ON_EMPTY="0",
    )
    return env


def _writing(engine: Engine, wal: Path | None, wal_before: int) -> bool:
    """Whether the import's transaction has started writing rows."""
    if wal is not None:  # SQLite: its uncommitted pages pile up in the WAL
        return wal.exists() and wal.stat().st_size > wal_before + 512 * 1024
    with engine.connect() as conn:  # PostgreSQL: a backend with a transaction id has written
        return bool(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()"
                )
            ).scalar()
        )


@pytest.mark.slow
def test_an_import_killed_mid_write_leaves_nothing_and_the_rerun_lands_it_once(
    engine: Engine, demo_shop: Shop, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "orders.csv"
    _write_file(path)
    before = fingerprint(engine)
    huitou = str(PROJECT_ROOT / ".venv" / "bin" / "huitou")
    cmd = [huitou, "import", str(path), "--shop", demo_shop.slug, "--yes"]
    env = _env(engine, settings)
    wal = None
    wal_before = 0
    if engine.dialect.name == "sqlite":
        assert engine.url.database is not None
        wal = Path(engine.url.database + "-wal")
        wal_before = wal.stat().st_size if wal.exists() else 0

    proc = subprocess.Popen(
        cmd, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while not _writing(engine, wal, wal_before):
        assert proc.poll() is None, "the import finished before it could be killed"
        assert time.monotonic() < deadline, "the import never started writing"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL

    # Nothing of it landed, and nothing stored before changed.
    assert fingerprint(engine) == before

    done = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    again = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, timeout=300)
    assert again.returncode == 0, again.stderr.decode()
    with read_session(engine) as session:
        imported = session.exec(
            select(func.count()).select_from(Order).where(Order.source == "import")
        ).one()
        total = session.exec(select(func.count()).select_from(Order)).one()
    assert imported == ROWS
    assert total == before["orders"] + ROWS
