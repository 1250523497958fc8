"""`huitou score` end to end on small generated files."""

from __future__ import annotations

import csv
import random
from datetime import date, timedelta
from pathlib import Path

from typer.testing import CliRunner

from app.cli import cli
from app.dataio.scores_file import OUTPUT_COLUMNS

runner = CliRunner()
AS_OF = date(2025, 6, 30)


def shop_rows(seed: int = 5) -> list[list[str]]:
    """40 background customers (a quarter of them left months ago), a regular 10-day customer
    2x overdue, and one who just ordered."""
    rng = random.Random(seed)
    rows: list[list[str]] = []
    for c in range(40):
        interval = rng.choice([7, 10, 14, 21, 30])
        day = AS_OF - timedelta(days=300 - rng.randint(0, 20))
        stop = AS_OF - timedelta(days=rng.randint(60, 200)) if c % 4 == 0 else AS_OF
        while day <= stop:
            rows.append([f"bg{c:02d}", day.isoformat(), "2", "36"])
            day += timedelta(days=max(1, round(interval * rng.uniform(0.7, 1.3))))
    for name, last in (("overdue", AS_OF - timedelta(days=20)), ("fresh", AS_OF)):
        for k in range(12):
            rows.append([name, (last - timedelta(days=10 * k)).isoformat(), "2", "36"])
    return rows


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_id", "date", "quantity", "amount"])
        writer.writerows(rows)
    return path


def read_out(path: Path) -> dict[str, dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return {row["customer_id"]: row for row in csv.DictReader(handle)}


def score(*args: str) -> str:
    result = runner.invoke(cli, ["score", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_score_writes_one_row_per_customer(tmp_path: Path) -> None:
    orders = write_csv(tmp_path / "orders.csv", shop_rows())
    out = tmp_path / "out.csv"
    output = score(
        str(orders), "--as-of", AS_OF.isoformat(), "-o", str(out), "--seasonality", "none"
    )
    with out.open(encoding="utf-8-sig", newline="") as handle:
        header = next(csv.reader(handle))
    assert tuple(header) == OUTPUT_COLUMNS
    rows = read_out(out)
    assert len(rows) == 42
    for row in rows.values():
        assert row["stage"] in {"active", "quiet", "at_risk", "lost"}
        assert 0.0 <= float(row["churn_probability"]) <= 1.0
        assert 0.0 <= float(row["p_alive"]) <= 1.0
        assert float(row["value_at_risk"]) >= 0 and float(row["clv"]) >= 0
        assert int(row["n_orders"]) >= 1
        if row["check_on"]:
            date.fromisoformat(row["check_on"])
    assert "customers: 42" in output and "as of: 2025-06-30" in output
    assert "shop priors" in output and "usual interval" in output
    # Rows come sorted by value at risk, highest first.
    var = [float(r["value_at_risk"]) for r in rows.values()]
    assert var == sorted(var, reverse=True)


def test_regular_customer_twice_overdue_vs_one_who_just_ordered(tmp_path: Path) -> None:
    orders = write_csv(tmp_path / "orders.csv", shop_rows())
    out = tmp_path / "out.csv"
    score(str(orders), "-o", str(out), "--seasonality", "none")
    rows = read_out(out)
    late, fresh = rows["overdue"], rows["fresh"]
    assert late["stage"] in {"quiet", "at_risk"}
    assert "interval_stretch" in late["signals"].split(";")
    assert fresh["stage"] == "active" and fresh["signals"] == ""
    assert int(late["days_since_last"]) == 20 and int(fresh["days_since_last"]) == 0
    assert 1.6 < float(late["overdue_ratio"]) < 2.5
    assert float(fresh["overdue_ratio"]) == 0.0
    assert abs(float(late["expected_interval_days"]) - 10) < 1.5
    assert float(late["churn_probability"]) > float(fresh["churn_probability"]) + 0.2
    assert float(late["p_alive"]) < float(fresh["p_alive"])
    assert late["check_on"] and date.fromisoformat(late["check_on"]) <= AS_OF
    assert date.fromisoformat(fresh["check_on"]) > AS_OF


def test_orders_after_as_of_are_ignored(tmp_path: Path) -> None:
    base = shop_rows()
    future = [
        ["overdue", (AS_OF + timedelta(days=3)).isoformat(), "5", "90"],
        ["fresh", (AS_OF + timedelta(days=1)).isoformat(), "1", "18"],
        ["newcomer", (AS_OF + timedelta(days=2)).isoformat(), "1", "18"],
    ]
    without = write_csv(tmp_path / "without.csv", base)
    with_future = write_csv(tmp_path / "with.csv", base[:5] + future + base[5:])
    out_a, out_b = tmp_path / "a.csv", tmp_path / "b.csv"
    score(str(without), "--as-of", AS_OF.isoformat(), "-o", str(out_a))
    output = score(str(with_future), "--as-of", AS_OF.isoformat(), "-o", str(out_b))
    assert out_a.read_bytes() == out_b.read_bytes()
    assert "3 行晚于评估日" in output


def test_default_as_of_is_the_latest_order(tmp_path: Path) -> None:
    rows = [*shop_rows(), ["later", "2025-07-04", "1", "18"]]
    orders = write_csv(tmp_path / "orders.csv", rows)
    output = score(str(orders))
    assert "as of: 2025-07-04" in output
    assert (tmp_path / "orders_scores.csv").exists()


def test_xlsx_input(tmp_path: Path) -> None:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["客户", "日期", "桶数", "金额"])
    for name, day, qty, amount in shop_rows():
        sheet.append([name, date.fromisoformat(day), int(qty), float(amount)])
    book.save(tmp_path / "orders.xlsx")
    out = tmp_path / "out.csv"
    score(str(tmp_path / "orders.xlsx"), "-o", str(out))
    assert len(read_out(out)) == 42


def test_bad_file_exits_1_with_message_and_writes_nothing(tmp_path: Path) -> None:
    orders = tmp_path / "orders.csv"
    orders.write_text("customer_id,date\nA,2025-03-01\nB,not a date\n", encoding="utf-8")
    out = tmp_path / "out.csv"
    result = runner.invoke(cli, ["score", str(orders), "-o", str(out)])
    assert result.exit_code == 1
    assert "orders.csv" in result.output and "not a date" in result.output
    assert "第3行" in result.output and "line 3" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [orders]


def test_missing_columns_and_empty_file_exit_1(tmp_path: Path) -> None:
    for name, body in (("cols.csv", "name,when\nA,2025-03-01\n"), ("empty.csv", "")):
        path = tmp_path / name
        path.write_text(body, encoding="utf-8")
        result = runner.invoke(cli, ["score", str(path), "-o", str(tmp_path / "out.csv")])
        assert result.exit_code == 1, result.output
        assert name in result.output
    assert not (tmp_path / "out.csv").exists()


def test_nothing_on_or_before_as_of(tmp_path: Path) -> None:
    orders = write_csv(tmp_path / "orders.csv", shop_rows())
    out = tmp_path / "out.csv"
    result = runner.invoke(cli, ["score", str(orders), "--as-of", "2020-01-01", "-o", str(out)])
    assert result.exit_code == 1 and "2020-01-01" in result.output
    assert not out.exists()


def test_bad_options(tmp_path: Path) -> None:
    orders = write_csv(tmp_path / "orders.csv", shop_rows())
    for args in (["--as-of", "30/06/2025"], ["--seasonality", "winter"], ["--horizon", "0"]):
        result = runner.invoke(cli, ["score", str(orders), *args])
        assert result.exit_code == 1, (args, result.output)
        assert "Traceback" not in result.output
