"""`huitou backtest` on a simulated water station, and proof that it never peeks ahead."""

from __future__ import annotations

import csv
import itertools
import math
import re
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.dataio.orders_file import read_orders
from app.demo.simulator import simulate_water_station
from app.risk.backtest import (
    MAX_CUTOFFS,
    MIN_HISTORY_DAYS,
    PRECISION_FLOOR,
    BacktestError,
    BacktestReport,
    assess,
    plan_cutoffs,
    run_backtest,
)
from app.risk.config import RiskConfig
from app.risk.history import OrderArrays
from app.risk.season import epoch_day

runner = CliRunner()
AS_OF = date(2026, 6, 1)


@pytest.fixture(scope="module")
def shop_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = simulate_water_station(as_of=AS_OF, seed=3, n_customers=300)
    path = tmp_path_factory.mktemp("shop") / "orders.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["客户", "日期", "桶数", "金额"])
        for o in data.orders:
            writer.writerow(
                [o.customer_key, o.order_date.isoformat(), o.quantity, o.amount_cents / 100]
            )
    return path


@pytest.fixture(scope="module")
def orders(shop_csv: Path) -> OrderArrays:
    return read_orders(shop_csv).orders


@pytest.fixture(scope="module")
def report(orders: OrderArrays) -> BacktestReport:
    return run_backtest(orders)


def test_report_has_sane_figures(report: BacktestReport) -> None:
    assert 5 <= len(report.cutoffs) <= MAX_CUTOFFS
    assert report.evaluated > 1000 and 0 < report.churned < report.evaluated
    for stats in report.alerts:
        assert 0.0 <= stats.precision <= 1.0, stats
        assert 0.0 <= stats.recall <= 1.0, stats
        assert stats.false_alarms_per_week >= 0
    alert = report.alert("alert")
    assert alert.alerts > 0 and alert.true_alerts > 0
    # at_risk is the stricter subset of the alert list.
    assert report.alert("at_risk").alerts <= alert.alerts
    assert 0.6 < report.auc <= 1.0
    assert 0.0 <= report.brier < 0.25
    assert report.lead.customers > 0
    assert np.all(report.lead.lost_after_last >= report.lead.alert_after_last)


def test_cutoffs_leave_history_before_and_outcomes_after(
    report: BacktestReport, orders: OrderArrays
) -> None:
    first, last = int(orders.day.min()), int(orders.day.max())
    days = [epoch_day(c) for c in report.cutoffs]
    assert days[0] - first >= MIN_HISTORY_DAYS
    assert days[-1] == last - report.horizon
    assert all(b - a == report.step for a, b in itertools.pairwise(days))


def test_scan_at_the_default_thresholds_reproduces_the_engine(report: BacktestReport) -> None:
    config = report.config
    scanned = report.grid[(config.quiet_ratio, config.quiet_probability)]
    engine = report.alert("alert")
    assert (scanned.true_alerts, scanned.false_alarms, scanned.missed) == (
        engine.true_alerts,
        engine.false_alarms,
        engine.missed,
    )


def test_suggestion_is_the_best_of_the_grid(report: BacktestReport) -> None:
    assert report.best_f1 is not None
    best = max(s.f1 for s in report.grid.values())
    assert math.isclose(report.best_f1.stats.f1, best)
    if report.best_recall is not None:
        assert report.best_recall.stats.precision >= PRECISION_FLOOR
    suggestion = report.suggestion
    assert suggestion is not None
    settings = suggestion.settings(report.config)
    RiskConfig.from_settings(settings)  # the suggested keys make a valid config


def test_backtest_command_prints_a_table_and_a_suggestion(shop_csv: Path) -> None:
    result = runner.invoke(cli, ["backtest", str(shop_csv), "--step", "28"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "准确率" in out and "抓到率" in out and "AUC" in out
    assert "1.5倍经验规则" in out and "能提前多久" in out
    # The suggestion is something the owner can do: a chat command, not engine settings.
    assert re.search(r"在聊天里发:设置 提醒倍数 \d(\.\d)?$|提醒倍数 1\.5 就合适", out, re.M)
    assert "RiskConfig" not in out and "precision" not in out and "recall" not in out
    # A file is not a shop: nothing to change, so nothing is asked.
    assert "[y/N]" not in out and "已改" not in out


def test_backtest_refuses_a_short_history(tmp_path: Path) -> None:
    path = tmp_path / "short.csv"
    start = date(2026, 1, 1)
    rows = [f"c{i % 20},{(start + timedelta(days=i)).isoformat()}" for i in range(100)]
    path.write_text("customer_id,date\n" + "\n".join(rows) + "\n", encoding="utf-8")
    result = runner.invoke(cli, ["backtest", str(path)])
    assert result.exit_code == 1
    assert "180" in result.output and "Traceback" not in result.output


def test_plan_cutoffs_is_bounded_and_ends_at_the_last_known_outcome() -> None:
    cutoffs, step, notes = plan_cutoffs(0, 3000, horizon=90, step=1)
    assert len(cutoffs) <= MAX_CUTOFFS and step > 1 and notes
    assert cutoffs[-1] == 3000 - 90 and cutoffs[0] >= MIN_HISTORY_DAYS
    with pytest.raises(BacktestError):
        plan_cutoffs(0, 200, horizon=90, step=14)
    few, _, _ = plan_cutoffs(0, 1000, horizon=90, step=14, start=date(1970, 12, 1), end=None)
    assert few[0] >= epoch_day(date(1970, 12, 1))


def test_scores_at_a_cutoff_ignore_everything_after_it(orders: OrderArrays) -> None:
    cutoff = date(2025, 11, 1)
    day = epoch_day(cutoff)
    config = RiskConfig()
    before = assess(orders, cutoff, config)

    # Alter the future: drop half of it, move the rest, change sizes, add a flood of orders.
    rng = np.random.default_rng(0)
    future = orders.day > day
    keep = ~future | (rng.random(orders.day.size) < 0.5)
    moved_day = np.where(future, orders.day + rng.integers(0, 30, orders.day.size), orders.day)
    extra = 5000
    altered = OrderArrays(
        customer=np.concatenate(
            [orders.customer[keep], rng.integers(0, orders.n_customers, extra)]
        ),
        day=np.concatenate([moved_day[keep], day + rng.integers(1, 200, extra)]),
        quantity=np.concatenate([np.where(future, 9.0, orders.quantity)[keep], np.ones(extra)]),
        amount=np.concatenate([np.where(future, 999.0, orders.amount)[keep], np.ones(extra)]),
        n_customers=orders.n_customers,
    )
    past_only = OrderArrays(
        customer=orders.customer[~future],
        day=orders.day[~future],
        quantity=orders.quantity[~future],
        amount=orders.amount[~future],
        n_customers=orders.n_customers,
    )
    for other in (assess(altered, cutoff, config), assess(past_only, cutoff, config)):
        assert other.priors == before.priors
        for name in (
            "churn_probability", "p_alive", "overdue_ratio", "clv", "value_at_risk",
            "stage", "signals", "check_day", "red_day", "lost_day",
        ):  # fmt: skip
            np.testing.assert_array_equal(getattr(other, name), getattr(before, name), name)


def test_backtest_results_do_not_depend_on_orders_after_the_last_outcome_window(
    orders: OrderArrays,
) -> None:
    # Everything the report uses for cutoffs up to --to lies before to + horizon + 1.
    to = date(2025, 12, 1)
    limit = epoch_day(to) + 90
    base = run_backtest(orders, end=to)
    late = orders.day > limit
    shifted = replace(orders, day=np.where(late, orders.day + 7, orders.day))
    again = run_backtest(shifted, end=to)
    assert again.cutoffs == base.cutoffs
    for a, b in zip(again.alerts, base.alerts, strict=True):
        assert (a.true_alerts, a.false_alarms, a.missed) == (
            b.true_alerts,
            b.false_alarms,
            b.missed,
        )
    assert again.auc == base.auc and again.brier == base.brier
