"""`huitou import`, `huitou export` and `huitou customer forget` through typer's CliRunner."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import select
from typer.testing import CliRunner

from app.cli import cli
from app.clock import FixedClock
from app.config import get_settings
from app.customers.models import Customer
from app.db import make_engine, read_session
from app.orders.models import Order
from tests.conftest import TEST_TODAY
from tests.dataio.conftest import fingerprint
from tests.factories import make_customer, make_shop

runner = CliRunner()
ROWS = [
    ["客户", "电话", "日期", "数量", "金额"],
    ["王姐", "13800001234", "2025-3-1", "2", "36"],
    ["老李", "", "2025-3-9", "1", "18"],
]


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, database_url: str, clock: FixedClock) -> Iterator[str]:
    """The CLI pointed at this test's database, today frozen, with one empty water shop."""
    monkeypatch.setenv("HUITOU_DATABASE_URL", database_url)
    monkeypatch.setenv("HUITOU_TODAY", TEST_TODAY.isoformat())
    get_settings.cache_clear()
    engine = make_engine(database_url)
    make_shop(engine, clock, slug="water")
    engine.dispose()
    yield database_url
    get_settings.cache_clear()


def counts(url: str) -> tuple[int, int]:
    with read_session(make_engine(url)) as s:
        return (
            s.exec(select(func.count()).select_from(Customer)).one(),
            s.exec(select(func.count()).select_from(Order)).one(),
        )


def test_import_shows_the_preview_and_writes_after_yes(
    cli_env: str, write_csv: Callable[..., Path]
) -> None:
    path = write_csv(ROWS)
    result = runner.invoke(cli, ["import", str(path), "--shop", "water"], input="y\n")
    assert result.exit_code == 0, result.output
    assert "导入预览:orders.csv" in result.output
    assert "确认导入吗?" in result.output
    assert "✅ 导入完成:新增客户 2 位、订单 2 单" in result.output
    assert counts(cli_env) == (2, 2)


def test_import_answer_no_writes_nothing(cli_env: str, write_csv: Callable[..., Path]) -> None:
    result = runner.invoke(cli, ["import", str(write_csv(ROWS)), "--shop", "water"], input="n\n")
    assert result.exit_code == 0
    assert "已取消" in result.output
    assert counts(cli_env) == (0, 0)


def test_import_yes_skips_the_question_and_a_second_run_adds_nothing(
    cli_env: str, write_csv: Callable[..., Path]
) -> None:
    path = write_csv(ROWS)
    first = runner.invoke(cli, ["import", str(path), "--shop", "water", "--yes"])
    assert first.exit_code == 0 and "确认导入吗" not in first.output
    again = runner.invoke(cli, ["import", str(path), "--shop", "water", "--yes"])
    assert again.exit_code == 0
    assert "已经导入过了" in again.output
    assert counts(cli_env) == (2, 2)


def test_dry_run_only_reports(cli_env: str, write_csv: Callable[..., Path]) -> None:
    engine = make_engine(cli_env)
    before = fingerprint(engine)
    result = runner.invoke(cli, ["import", str(write_csv(ROWS)), "--shop", "water", "--dry-run"])
    assert result.exit_code == 0
    assert "导入预览" in result.output and "没有写入任何数据" in result.output
    assert fingerprint(engine) == before


def test_a_rejected_file_exits_non_zero_with_the_report(
    cli_env: str, write_csv: Callable[..., Path]
) -> None:
    bad = write_csv([["客户", "日期", "数量"], ["王姐", "2025-13-01", "2"]])
    result = runner.invoke(cli, ["import", str(bad), "--shop", "water", "--yes"])
    assert result.exit_code == 1
    assert "第2行“日期” “2025-13-01”:没有这一天" in result.output
    assert counts(cli_env) == (0, 0)
    zero = bad.with_name("zero.xlsx")
    zero.write_bytes(b"")
    result = runner.invoke(cli, ["import", str(zero), "--shop", "water", "--yes"])
    assert result.exit_code == 1 and "0 字节" in result.output


def test_import_to_an_unknown_shop(cli_env: str, write_csv: Callable[..., Path]) -> None:
    result = runner.invoke(cli, ["import", str(write_csv(ROWS)), "--shop", "nope", "--yes"])
    assert result.exit_code == 1
    assert "没有这个店铺" in result.output


def test_export_writes_the_files_with_masked_phones(cli_env: str, tmp_path: Path) -> None:
    runner.invoke(cli, ["import", str(_write(tmp_path, ROWS)), "--shop", "water", "--yes"])
    out = tmp_path / "export"
    result = runner.invoke(cli, ["export", "--shop", "water", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "客户 2 行、订单 2 行" in result.output
    for name in ("customers.csv", "orders.csv", "followups.csv", "huitou-export.xlsx"):
        assert (out / name).exists(), name
    text = (out / "customers.csv").read_text(encoding="utf-8-sig")
    assert "138****1234" in text and "13800001234" not in text
    full = runner.invoke(cli, ["export", "--shop", "water", "-o", str(out), "--with-phones"])
    assert full.exit_code == 0
    assert "13800001234" in (out / "customers.csv").read_text(encoding="utf-8-sig")


def _write(tmp_path: Path, rows: list[list[str]]) -> Path:
    path = tmp_path / "rows.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def test_customer_forget_asks_then_removes_personal_data(cli_env: str, clock: FixedClock) -> None:
    engine = make_engine(cli_env)
    with read_session(engine) as s:
        from app.shops.service import get_shop

        shop = get_shop(session=s, ref="water")
    customer = make_customer(engine, clock, shop, "王姐", phone="13800001234", address="幸福小区")
    cancelled = runner.invoke(cli, ["customer", "forget", "water", "王姐"], input="n\n")
    assert cancelled.exit_code == 0 and "已取消" in cancelled.output
    result = runner.invoke(cli, ["customer", "forget", "water", "王姐"], input="y\n")
    assert result.exit_code == 0, result.output
    assert f"已删除客户#{customer.id}" in result.output
    with read_session(engine) as s:
        gone = s.get(Customer, customer.id)
    assert gone is not None
    assert (gone.name, gone.phone, gone.address) == (f"已删除客户#{customer.id}", None, None)
    unknown = runner.invoke(cli, ["customer", "forget", "water", "王姐", "--yes"])
    assert unknown.exit_code == 1 and "没有叫“王姐”" in unknown.output
