"""`huitou score` on the files Huitou writes itself, and a stage an owner can make sense of."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from app.cli import cli
from app.dataio.exports import export_shop
from app.dataio.orders_file import read_orders
from app.db import read_session
from app.shops.models import Shop
from tests.conftest import TEST_TODAY
from tests.risk.test_score_cli import shop_rows, write_csv

runner = CliRunner()
ALERTED = {"quiet", "at_risk", "lost"}


@pytest.fixture
def scored(engine: Engine, demo_shop: Shop, tmp_path: Path) -> tuple[str, list[dict[str, str]]]:
    """The demo's own orders.csv export, scored: (printed summary, output rows)."""
    with read_session(engine) as s:
        export_shop(session=s, shop=demo_shop, out_dir=tmp_path, today=TEST_TODAY)
    out = tmp_path / "scores.csv"
    result = runner.invoke(cli, ["score", str(tmp_path / "orders.csv"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8-sig", newline="") as handle:
        return result.output, list(csv.DictReader(handle))


def test_scoring_huitous_own_orders_export_finds_the_money(
    scored: tuple[str, list[dict[str, str]]],
) -> None:
    output, rows = scored
    alerted = [r for r in rows if r["stage"] in ("quiet", "at_risk")]
    assert alerted, "the demo has customers to follow up"
    assert all(float(r["value_at_risk"]) > 0 for r in alerted)
    assert sum(float(r["clv"]) for r in rows) > 0
    assert "风险金额合计 0 元" not in output and "风险金额合计" in output


def test_every_alerted_stage_says_why_next_to_its_probability(
    scored: tuple[str, list[dict[str, str]]],
) -> None:
    output, rows = scored
    alerted = [r for r in rows if r["stage"] in ALERTED]
    assert any(r["stage"] == "lost" for r in alerted)
    for row in alerted:
        reason = row["stage_reason_zh"]
        assert reason.startswith(f"{row['days_since_last']}天没订,平时约"), row
        assert "超过" in reason or "还在买的可能约" in reason, row
    assert all(r["stage_reason_zh"] == "" for r in rows if r["stage"] == "active")
    # The summary says what each figure is, so 已流失 beside 0.3 is not a contradiction.
    assert "3 倍(且至少 60 天)算已流失" in output
    assert "流失概率是“接下来 90 天都不再下单”的可能" in output


def test_a_stage_reached_by_the_model_says_so_with_its_own_figure(tmp_path: Path) -> None:
    # A 10-day regular 20 days silent: red by the rhythm model before the 2x rule.
    orders = write_csv(tmp_path / "orders.csv", shop_rows())
    out = tmp_path / "scores.csv"
    result = runner.invoke(cli, ["score", str(orders), "-o", str(out), "--seasonality", "none"])
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8-sig", newline="") as handle:
        late = next(r for r in csv.DictReader(handle) if r["customer_id"] == "overdue")
    assert late["stage_zh"] == "有流失风险" and float(late["overdue_ratio"]) < 2
    alive = round(100 * float(late["p_alive"]))
    assert (
        late["stage_reason_zh"]
        == f"20天没订,平时约10天一次,按他的规律已很反常,还在买的可能约{alive}%"
    )


@pytest.mark.parametrize(
    ("header", "cell", "yuan"),
    [
        ("金额(元)", "36", 36.0),
        ("金额(元)", "36", 36.0),
        ("实收(元)", "¥36", 36.0),
        ("实收金额", "36", 36.0),
        ("金额(分)", "3600", 36.0),
        ("amount_cents", "3600", 36.0),
    ],
)
def test_amount_headers_and_their_units_are_read(
    tmp_path: Path, header: str, cell: str, yuan: float
) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(f"客户,日期,{header}\n王姐,2025-03-01,{cell}\n", encoding="utf-8")
    loaded = read_orders(path)
    assert loaded.columns["amount"] == header
    assert loaded.orders.amount.tolist() == [yuan]
