"""The speed baseline: what a data scientist would run today with pandas + lifetimes.

    python -m benchmarks.bgnbd_baseline ORDERS.csv --as-of YYYY-MM-DD -o OUT.csv
        [--summary lifetimes|groupby]

Reads the CSV with pandas (pyarrow engine, the fastest pandas reader), builds the RFM summary
(lifetimes' ``summary_data_from_transaction_data`` with freq 'D', or an equivalent pandas
groupby when ``--summary groupby``), fits BetaGeoFitter, computes P(alive) and
P(no purchase in 90 days) per customer and writes them to a CSV. Prints the time of each
step to stdout as ``step seconds``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Sequence

import numpy as np


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("orders")
    ap.add_argument("--as-of", required=True)
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--summary", choices=("lifetimes", "groupby"), default="lifetimes")
    args = ap.parse_args(argv)

    import pandas as pd
    from lifetimes import BetaGeoFitter
    from lifetimes.utils import ConvergenceError, summary_data_from_transaction_data

    warnings.simplefilter("ignore")
    t = time.perf_counter()
    df = pd.read_csv(
        args.orders,
        engine="pyarrow",
        dtype={"customer_id": "string", "quantity": "float64", "amount": "float64"},
    )
    df["date"] = pd.to_datetime(df["date"])
    print(f"read {time.perf_counter() - t:.2f}", flush=True)

    t = time.perf_counter()
    end = pd.Timestamp(args.as_of)
    df = df[df["date"] <= end]
    if args.summary == "lifetimes":
        summary = summary_data_from_transaction_data(
            df, "customer_id", "date", observation_period_end=end, freq="D"
        )
    else:
        days = df[["customer_id", "date"]].drop_duplicates()
        g = days.groupby("customer_id")["date"]
        first, last, n = g.min(), g.max(), g.size()
        summary = pd.DataFrame(
            {
                "frequency": (n - 1).astype("float64"),
                "recency": (last - first).dt.days.astype("float64"),
                "T": (end - first).dt.days.astype("float64"),
            }
        )
    print(f"summary {time.perf_counter() - t:.2f}", flush=True)

    t = time.perf_counter()
    # lifetimes' own advice on ConvergenceError: retry with a (larger) penalizer.
    for penalizer in (0.0, 0.001, 0.01, 0.1):
        bgf = BetaGeoFitter(penalizer_coef=penalizer)
        t_try = time.perf_counter()
        try:
            bgf.fit(summary["frequency"], summary["recency"], summary["T"])
            break
        except ConvergenceError:
            took = time.perf_counter() - t_try
            print(f"fit-retry penalizer {penalizer} did not converge ({took:.2f} s)", flush=True)
    else:
        print("fit failed to converge", flush=True)
        return 1
    print(f"fit {time.perf_counter() - t:.2f} (penalizer {penalizer})", flush=True)
    print("params " + " ".join(f"{k}={v:.4g}" for k, v in bgf.params_.items()), flush=True)

    t = time.perf_counter()
    x, tx, age = summary["frequency"], summary["recency"], summary["T"]
    p_alive = bgf.conditional_probability_alive(x, tx, age)
    r, alpha = bgf.params_["r"], bgf.params_["alpha"]
    quiet = np.exp((r + x) * np.log((alpha + age) / (alpha + age + 90.0)))
    out = pd.DataFrame(
        {"p_alive": p_alive, "churn_probability": (1 - p_alive) + p_alive * quiet},
        index=summary.index,
    )
    out.to_csv(args.output)
    print(f"predict+write {time.perf_counter() - t:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
