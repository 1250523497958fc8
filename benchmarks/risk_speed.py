"""Speed benchmark: score a large order export with the engine's CSV path vs pandas + lifetimes.

    python -m benchmarks.risk_speed [--customers 1000000] [--orders-per-customer 15] [--quick]

1. Generates (once, cached under /tmp/huitou_bench keyed by the parameters) a synthetic
   export ``customer_id,date,quantity,amount`` in date order, vectorised with numpy and
   written with pyarrow.csv in chunks.
2. Runs, in the same process tree and one after the other, each bounded by a timeout:
   (a) ``huitou score ORDERS --as-of D -o OUT.csv`` (the engine's CSV path),
   (b) ``python -m benchmarks.bgnbd_baseline`` (pandas read, lifetimes summary, BG/NBD fit).
   Wall time and peak RSS come from ``os.wait4`` on each child (its own ru_maxrss).
3. Prints both, the ratio, and the issue's targets (< 30 s, < 2 GB for 1M customers / 15M
   orders; faster than the baseline).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from benchmarks.datasets import to_day

CACHE_DIR = Path("/tmp/huitou_bench")
AS_OF = date(2025, 6, 30)
DATA_VERSION = 1
REPO = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 30.0
TARGET_BYTES = 2 * 1024**3


# --- data ------------------------------------------------------------------------------------


def generate_orders(
    n_customers: int, orders_per_customer: float, seed: int = 42
) -> dict[str, np.ndarray]:
    """Synthetic orders sorted by date: regular and irregular customers, some gone quiet."""
    rng = np.random.default_rng(seed)
    n_orders = 1 + rng.poisson(max(orders_per_customer - 1.0, 0.0), n_customers)
    total = int(n_orders.sum())
    cust = np.repeat(np.arange(n_customers, dtype=np.int64), n_orders)
    mean_interval = rng.gamma(2.0, 10.0, n_customers) + 3.0  # ~23 days on average
    cv = np.where(rng.random(n_customers) < 0.6, 0.15, 0.8)  # regular / irregular
    shape = 1.0 / cv**2
    gaps = rng.gamma(shape[cust], (mean_interval * cv**2)[cust])
    gaps = np.maximum(1, np.rint(gaps)).astype(np.int64)
    starts = np.cumsum(n_orders) - n_orders
    gaps[starts] = 0  # the first order of each customer
    cs = np.cumsum(gaps)
    rel = cs - cs[starts][cust]  # days since the customer's first order
    span = rel[starts + n_orders - 1]
    # Days between the last order and the export: short for most, long for the quiet ones.
    gone = rng.random(n_customers) < 0.3
    tail = np.where(
        gone,
        rng.integers(60, 400, n_customers),
        rng.integers(0, 1 + np.ceil(mean_interval).astype(np.int64)),
    )
    day = to_day(AS_OF) - tail[cust] - (span[cust] - rel)
    quantity = rng.choice(np.array([1, 2, 2, 3, 5]), total).astype(np.int64)
    unit = np.where(rng.random(n_customers) < 0.85, 18.0, 20.0)
    amount = quantity * unit[cust]
    order = np.argsort(day, kind="stable")
    return {
        "customer": cust[order],
        "day": day[order].astype(np.int32),
        "quantity": quantity[order],
        "amount": amount[order],
    }


def csv_path(n_customers: int, orders_per_customer: float, seed: int) -> Path:
    return CACHE_DIR / f"orders_c{n_customers}_o{orders_per_customer:g}_s{seed}_v{DATA_VERSION}.csv"


def ensure_csv(n_customers: int, orders_per_customer: float, seed: int = 42) -> tuple[Path, int]:
    """Write the synthetic export unless cached; returns (path, number of rows)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    path = csv_path(n_customers, orders_per_customer, seed)
    rows_file = path.with_suffix(".rows")
    if path.exists() and rows_file.exists():
        return path, int(rows_file.read_text())
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    data = generate_orders(n_customers, orders_per_customer, seed)
    n = len(data["customer"])
    schema = pa.schema(
        [
            ("customer_id", pa.int64()),
            ("date", pa.date32()),
            ("quantity", pa.int64()),
            ("amount", pa.float64()),
        ]
    )
    tmp = path.with_suffix(".tmp")
    # Phone-number-like customer ids, as small shops key customers by mobile number.
    with pacsv.CSVWriter(
        str(tmp), schema, write_options=pacsv.WriteOptions(quoting_style="none")
    ) as w:
        chunk = 1_000_000
        for i in range(0, n, chunk):
            sl = slice(i, i + chunk)
            w.write_table(
                pa.table(
                    {
                        "customer_id": pa.array(13_800_000_000 + data["customer"][sl] * 7),
                        "date": pa.array(data["day"][sl], type=pa.int32()).cast(pa.date32()),
                        "quantity": pa.array(data["quantity"][sl]),
                        "amount": pa.array(data["amount"][sl]),
                    },
                    schema=schema,
                )
            )
    tmp.rename(path)
    rows_file.write_text(str(n))
    return path, n


# --- measured subprocesses ---------------------------------------------------------------------


@dataclass
class Run:
    label: str
    wall: float
    max_rss_bytes: int
    returncode: int | None
    timed_out: bool
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return not self.timed_out and self.returncode == 0


def run_measured(label: str, cmd: list[str], timeout: float, cwd: Path = REPO) -> Run:
    """Run ``cmd``; wall time and the child's own peak RSS (os.wait4), killed at ``timeout``."""
    out_path = CACHE_DIR / f"{label}.stdout"
    err_path = CACHE_DIR / f"{label}.stderr"
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with out_path.open("wb") as out, err_path.open("wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=cwd, start_new_session=True)
        timed_out = False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                break
            if time.perf_counter() - t0 > timeout:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)  # the group we started for this child
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped by wait4
    return Run(
        label=label,
        wall=wall,
        max_rss_bytes=int(usage.ru_maxrss) * 1024,  # Linux reports kilobytes
        returncode=None if timed_out else proc.returncode,
        timed_out=timed_out,
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
    )


def huitou_command() -> list[str] | None:
    """The `huitou` console script, if it has a `score` command."""
    exe = REPO / ".venv" / "bin" / "huitou"
    if not exe.exists():
        found = shutil.which("huitou")
        if found is None:
            return None
        exe = Path(found)
    probe = subprocess.run(
        [str(exe), "score", "--help"], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    return [str(exe)] if probe.returncode == 0 else None


def describe(run: Run) -> str:
    if run.timed_out:
        return f"{run.label}: timed out after {run.wall:.0f} s"
    status = "ok" if run.ok else f"FAILED (exit {run.returncode})"
    return (
        f"{run.label}: {status}, wall {run.wall:.1f} s, "
        f"peak RSS {run.max_rss_bytes / 1024**2:.0f} MB"
    )


def _tail(text: str, lines: int = 8) -> str:
    return "\n".join("      " + line for line in text.strip().splitlines()[-lines:])


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--orders-per-customer", type=float, default=15.0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--timeout", type=float, default=600.0, help="per subprocess, seconds")
    ap.add_argument(
        "--summary",
        choices=("lifetimes", "groupby"),
        default="lifetimes",
        help="baseline RFM summary: lifetimes' function or a pandas groupby",
    )
    ap.add_argument("--quick", action="store_true", help="20,000 customers (smoke run)")
    ap.add_argument("--no-engine", action="store_true", help="baseline only")
    ap.add_argument("--no-baseline", action="store_true", help="engine only")
    args = ap.parse_args(argv)
    n_customers = 20_000 if args.quick else args.customers

    t0 = time.perf_counter()
    path, n_rows = ensure_csv(n_customers, args.orders_per_customer, args.seed)
    size_mb = path.stat().st_size / 1024**2
    print(
        f"data: {path} ({n_customers:,} customers, {n_rows:,} orders, {size_mb:.0f} MB; "
        f"ready in {time.perf_counter() - t0:.1f} s), as of {AS_OF}"
    )
    print(f"machine: {os.cpu_count()} CPUs; timeout per run {args.timeout:.0f} s")

    engine_run: Run | None = None
    if not args.no_engine:
        cmd = huitou_command()
        if cmd is None:
            print("engine: `huitou score` not available in this tree - not measured")
        else:
            out = CACHE_DIR / f"scores_{path.stem}.csv"
            engine_run = run_measured(
                "huitou_score",
                [*cmd, "score", str(path), "--as-of", AS_OF.isoformat(), "-o", str(out)],
                args.timeout,
            )
            print(describe(engine_run))
            if engine_run.ok and out.exists():
                with out.open() as f:
                    lines = sum(1 for _ in f) - 1
                print(f"      output rows: {lines:,} (expected {n_customers:,})")
            elif not engine_run.timed_out:
                print(_tail(engine_run.stderr))

    base_run: Run | None = None
    if not args.no_baseline:
        out = CACHE_DIR / f"bgnbd_{path.stem}.csv"
        base_run = run_measured(
            "bgnbd_baseline",
            [
                sys.executable,
                "-m",
                "benchmarks.bgnbd_baseline",
                str(path),
                "--as-of",
                AS_OF.isoformat(),
                "-o",
                str(out),
                "--summary",
                args.summary,
            ],
            args.timeout,
        )
        print(describe(base_run) + f"  [summary via {args.summary}]")
        steps = ("read", "summary", "fit", "params", "predict")
        print(_tail("\n".join(x for x in base_run.stdout.splitlines() if x.startswith(steps))))
        if not base_run.ok and not base_run.timed_out:
            print(_tail(base_run.stderr))

    print()
    if engine_run is not None and engine_run.ok:
        mem_gb = engine_run.max_rss_bytes / 1024**3
        scale = 1_000_000 / n_customers
        print(
            f"engine target (1M customers / 15M orders: < {TARGET_SECONDS:.0f} s, < 2 GB): "
            f"{'time ok' if engine_run.wall < TARGET_SECONDS else 'TIME MISSED'}, "
            f"{'memory ok' if engine_run.max_rss_bytes < TARGET_BYTES else 'MEMORY MISSED'}"
            f" ({engine_run.wall:.1f} s, {mem_gb:.2f} GB"
            + (f"; this run is 1/{scale:g} of the target size" if scale != 1 else "")
            + ")"
        )
    if engine_run is not None and base_run is not None:
        if engine_run.ok and base_run.ok:
            print(
                f"ratio baseline/engine: wall x{base_run.wall / engine_run.wall:.1f}, "
                f"peak RSS x{base_run.max_rss_bytes / engine_run.max_rss_bytes:.1f}"
            )
        elif engine_run.ok and base_run.timed_out:
            print(
                f"ratio baseline/engine: wall > x{base_run.wall / engine_run.wall:.1f} "
                "(baseline timed out)"
            )
    return 0 if (engine_run is None or engine_run.ok) else 1


if __name__ == "__main__":
    sys.exit(main())
