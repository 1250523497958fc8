"""Import speed and memory: 50,000 order rows (about 2,000 customers) into a fresh SQLite DB.

    python -m benchmarks.import_bench [--rows 50000] [--quick] [--no-xlsx]

1. Generates a water station's order export (seeded): 客户, 电话, 地址, 日期, 数量, 金额, one
   row per order in date order, about 25 orders per customer, as .csv (UTF-8) and .xlsx.
2. Runs each measurement in its own process on a freshly migrated SQLite file (wall time and
   that process's own peak RSS from os.wait4, as risk_speed does):
   - baseline: plain csv.reader + a bare executemany of the same customers and orders
     (no checks, no matching, no summaries): the floor for getting these rows in;
   - huitou: `import_file` (read, check every cell, match customers, create them, bulk
     insert, refresh the summaries / rescore the shop, log the import) in one transaction;
   - the same import at 1/5 of the size, and once more under tracemalloc, to show memory
     stays flat: the file is streamed, rows are kept as compact arrays.
3. Prints the figures, huitou/baseline, 50k/10k memory ratios and the target (< 20 s).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sqlite3
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.risk_speed import Run, run_measured

TODAY = date(2026, 6, 17)
TARGET_SECONDS = 20.0
ROWS_PER_CUSTOMER = 25
HEADER = ["客户", "电话", "地址", "日期", "数量", "金额"]
REPO = Path(__file__).resolve().parent.parent

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from app.clock import FixedClock
    from app.shops.models import Shop


def generate_rows(n_rows: int, seed: int = 7) -> list[list[object]]:
    """An export of n_rows orders in date order; every customer's days are distinct."""
    rng = random.Random(seed)
    n_customers = max(1, n_rows // ROWS_PER_CUSTOMER)
    start = TODAY - timedelta(days=720)
    rows: list[tuple[date, int, list[object]]] = []
    for c in range(n_customers):
        name = f"客户{c:05d}"
        phone = f"138{c:08d}"
        address = f"幸福小区{c % 40 + 1}栋{c % 6 + 1}单元" if c % 3 else ""
        day = start + timedelta(days=rng.randint(0, 60))
        quantity = rng.choice((1, 2, 2, 3))
        while day < TODAY:
            rows.append((day, c, [name, phone, address, day.isoformat(), quantity, quantity * 18]))
            day += timedelta(days=rng.randint(3, 50))
    rows.sort(key=lambda r: (r[0], r[1]))
    return [r[2] for r in rows[:n_rows]]


def write_files(rows: list[list[object]], directory: Path, stem: str) -> tuple[Path, Path]:
    csv_path = directory / f"{stem}.csv"
    with csv_path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("订单")
    sheet.append(HEADER)
    for row in rows:
        sheet.append(row)
    xlsx_path = directory / f"{stem}.xlsx"
    workbook.save(xlsx_path)
    return csv_path, xlsx_path


# --- children: one measurement each, in a fresh process -------------------------------------


def _fresh_database(directory: Path) -> tuple[Engine, FixedClock, Shop]:
    from app.clock import FixedClock
    from app.db import make_engine, upgrade, write_session
    from app.shops.service import create_shop

    engine = make_engine(f"sqlite:///{directory / 'bench.db'}")
    upgrade(engine)
    clock = FixedClock.at_local(TODAY)
    with write_session(engine) as session:
        shop = create_shop(session=session, name="基准水站", industry="water", clock=clock)
    return engine, clock, shop


def child_import(path: Path, trace: bool) -> dict[str, Any]:
    from app.dataio.imports import import_file
    from app.dataio.read import Source
    from app.db import write_session

    with tempfile.TemporaryDirectory() as tmp:
        engine, clock, shop = _fresh_database(Path(tmp))
        if trace:
            tracemalloc.start()
        t0 = time.perf_counter()
        with write_session(engine) as session:
            result = import_file(session=session, shop=shop, source=Source.of(path), clock=clock)
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1] if trace else None
        if trace:
            tracemalloc.stop()
        assert result.written, result.plan.rejected or result.plan.issues[:3]
        return {
            "seconds": seconds,
            "orders": result.orders_added,
            "customers": result.customers_added,
            "tracemalloc_peak": peak,
        }


def child_baseline(path: Path) -> dict[str, Any]:
    """csv.reader + executemany of the same rows into the same tables, nothing else."""
    with tempfile.TemporaryDirectory() as tmp:
        engine, _, shop = _fresh_database(Path(tmp))
        engine.dispose()
        shop_id = shop.id
        t0 = time.perf_counter()
        conn = sqlite3.connect(Path(tmp) / "bench.db", isolation_level=None)
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("BEGIN IMMEDIATE")
        now = "2026-06-17 02:00:00"
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            next(reader)
            rows = list(reader)
        names = sorted({(r[0], r[1], r[2]) for r in rows})
        conn.executemany(
            "INSERT INTO customer (shop_id, name, aliases, phone, address, kind, value_class,"
            " tags, status, created_at, match_tag) VALUES (?, ?, '[]', ?, ?, 'household', 'C',"
            " '[]', 'active', ?, 0)",
            [(shop_id, n, p, a, now) for n, p, a in names],
        )
        ids = dict(conn.execute("SELECT name, id FROM customer WHERE shop_id = ?", (shop_id,)))
        conn.executemany(
            "INSERT INTO orders (shop_id, customer_id, ordered_at, order_date, quantity, unit,"
            " amount_cents, source, created_at) VALUES (?, ?, ?, ?, ?, '桶', ?, 'import', ?)",
            [
                (shop_id, ids[r[0]], r[3] + " 04:00:00", r[3], int(r[4]), int(r[5]) * 100, now)
                for r in rows
            ],
        )
        conn.execute("COMMIT")
        conn.close()
        return {"seconds": time.perf_counter() - t0, "orders": len(rows), "customers": len(ids)}


# --- the parent: data, runs, figures -----------------------------------------------------------


def _measure(label: str, args: list[str], timeout: float) -> tuple[Run, dict[str, Any]]:
    run = run_measured(
        label, [sys.executable, "-m", "benchmarks.import_bench", *args], timeout, cwd=REPO
    )
    if not run.ok:
        raise SystemExit(f"{label} failed:\n{run.stderr[-2000:]}")
    return run, json.loads(run.stdout.strip().splitlines()[-1])


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--quick", action="store_true", help="2,000 rows (smoke run)")
    ap.add_argument("--no-xlsx", action="store_true", help="CSV only")
    ap.add_argument("--timeout", type=float, default=300.0, help="per subprocess, seconds")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--mode", choices=("import", "trace", "baseline"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child is not None:
        if args.mode == "baseline":
            out = child_baseline(args.child)
        else:
            out = child_import(args.child, trace=args.mode == "trace")
        print(json.dumps(out))
        return 0

    n_rows = 2_000 if args.quick else args.rows
    small_rows = n_rows // 5
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        t0 = time.perf_counter()
        big_csv, big_xlsx = write_files(generate_rows(n_rows), directory, "big")
        small_csv, _ = write_files(generate_rows(small_rows), directory, "small")
        print(
            f"data: {n_rows:,} rows / {n_rows // ROWS_PER_CUSTOMER:,} customers "
            f"(csv {big_csv.stat().st_size / 1024**2:.1f} MB, "
            f"xlsx {big_xlsx.stat().st_size / 1024**2:.1f} MB) and {small_rows:,} rows; "
            f"written in {time.perf_counter() - t0:.1f} s"
        )
        plan = [
            ("baseline csv.reader+executemany", big_csv, "baseline", n_rows),
            ("huitou import csv", small_csv, "import", small_rows),
            ("huitou import csv", big_csv, "import", n_rows),
        ]
        if not args.no_xlsx:
            plan.append(("huitou import xlsx", big_xlsx, "import", n_rows))
        plan += [
            ("huitou import csv (tracemalloc)", small_csv, "trace", small_rows),
            ("huitou import csv (tracemalloc)", big_csv, "trace", n_rows),
        ]
        results: dict[tuple[str, int], tuple[Run, dict[str, Any]]] = {}
        print(
            f"{'':34}{'rows':>8}{'import s':>10}{'process s':>11}{'peak RSS':>10}"
            f"{'tracemalloc':>13}"
        )
        for label, path, mode, rows in plan:
            run, out = _measure(
                f"import_bench_{mode}_{rows}", ["--child", str(path), "--mode", mode], args.timeout
            )
            results[(label, rows)] = (run, out)
            peak = out.get("tracemalloc_peak")
            print(
                f"{label:34}{rows:>8,}{out['seconds']:>10.2f}{run.wall:>11.1f}"
                f"{run.max_rss_bytes / 1024**2:>8.0f}MB"
                + (f"{peak / 1024**2:>11.1f}MB" if peak is not None else "")
            )
    base = results[("baseline csv.reader+executemany", n_rows)][1]["seconds"]
    ours = results[("huitou import csv", n_rows)][1]["seconds"]
    print()
    print(f"ratio huitou/baseline (csv, {n_rows:,} rows): x{ours / base:.1f} "
          f"({ours:.2f} s vs {base:.2f} s)")  # fmt: skip
    big_run = results[("huitou import csv", n_rows)][0]
    small_run = results[("huitou import csv", small_rows)][0]
    big_trace = results[("huitou import csv (tracemalloc)", n_rows)][1]["tracemalloc_peak"]
    small_trace = results[("huitou import csv (tracemalloc)", small_rows)][1]["tracemalloc_peak"]
    print(
        f"memory {n_rows:,} vs {small_rows:,} rows (5x the rows): peak RSS "
        f"x{big_run.max_rss_bytes / small_run.max_rss_bytes:.2f}, tracemalloc peak "
        f"x{big_trace / small_trace:.2f}"
    )
    slowest = max(
        out["seconds"]
        for (label, rows), (_, out) in results.items()
        if rows == n_rows and label.startswith("huitou import") and "tracemalloc" not in label
    )
    verdict = "ok" if slowest < TARGET_SECONDS else "MISSED"
    print(f"target (< {TARGET_SECONDS:.0f} s for {n_rows:,} rows): {verdict} ({slowest:.2f} s)")
    return 0 if slowest < TARGET_SECONDS or n_rows != 50_000 else 1


if __name__ == "__main__":
    sys.exit(main())
