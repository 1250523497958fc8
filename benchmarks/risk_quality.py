"""Risk quality benchmark: Huitou vs the 1.5x rule, recency and BG/NBD, on CDNOW and simulated
water stations.

    python -m benchmarks.risk_quality [--quick] [--only cdnow|water]

For every cutoff C: eligible customers have >= 2 distinct purchase days on or before C; the
label is 1 when they buy nothing in (C, C + 90]; models see only orders on or before C.
Reports ROC-AUC, precision in the top 10 %, and for probabilistic models Brier score and
expected calibration error (10 equal-width bins), per cutoff and pooled over cutoffs; then
reliability tables and a verdict per dataset. All figures are measured in this run.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np

from benchmarks.baselines import (
    FIT_LOG,
    RFM,
    BGNBDParams,
    Family,
    bgnbd_family,
    fit_bgnbd,
    huitou_available,
    huitou_family,
    rfm,
    simple_family,
)
from benchmarks.datasets import (
    CDNOW_CUTOFFS,
    Orders,
    load_cdnow,
    make_labels,
    simulated_water_stations,
    truncate,
)
from benchmarks.metrics import (
    brier,
    expected_calibration_error,
    flag_precision_recall,
    precision_at,
    reliability_table,
    roc_auc,
)

HUITOU = "huitou"
PROBABILISTIC = (
    "huitou",
    "huitou_noseason",
    "bgnbd_p_no_purchase_90",
    "bgnbd_pooled_p_no_purchase_90",
)
FLAG = "rule_1.5x_flag"
BASELINE_ORDER = (
    "rule_1.5x",
    "recency",
    "bgnbd_p_dead",
    "bgnbd_p_no_purchase_90",
    "bgnbd_pooled_p_dead",
    "bgnbd_pooled_p_no_purchase_90",
)


@dataclass
class Group:
    """One scoring unit: a shop (or the whole CDNOW base) at one cutoff."""

    orders: Orders  # already truncated to the cutoff
    cutoff: date
    eligible: np.ndarray
    label: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # per-customer attributes


@dataclass
class Collected:
    """Scores and labels of eligible customers, concatenated over groups."""

    label: list[np.ndarray] = field(default_factory=list)
    scores: dict[str, list[np.ndarray]] = field(default_factory=dict)
    extra: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def add(self, g: Group, scores: dict[str, np.ndarray]) -> None:
        self.label.append(g.label[g.eligible])
        for name, s in scores.items():
            self.scores.setdefault(name, []).append(np.asarray(s)[g.eligible])
        for name, v in g.extra.items():
            self.extra.setdefault(name, []).append(v[g.eligible])

    def y(self) -> np.ndarray:
        return np.concatenate(self.label) if self.label else np.zeros(0, dtype=bool)

    def score(self, name: str) -> np.ndarray:
        return np.concatenate(self.scores[name])

    def attr(self, name: str) -> np.ndarray:
        return np.concatenate(self.extra[name])

    def merge(self, other: Collected) -> None:
        self.label += other.label
        for k, v in other.scores.items():
            self.scores.setdefault(k, []).extend(v)
        for k, v in other.extra.items():
            self.extra.setdefault(k, []).extend(v)


@dataclass
class ModelMetrics:
    auc: float
    p10: float
    brier: float | None
    ece: float | None


def model_metrics(y: np.ndarray, s: np.ndarray, probabilistic: bool) -> ModelMetrics:
    return ModelMetrics(
        auc=roc_auc(y, s),
        p10=precision_at(y, s, 0.10),
        brier=brier(y, s) if probabilistic else None,
        ece=expected_calibration_error(y, s) if probabilistic else None,
    )


@dataclass
class DatasetResult:
    name: str
    per_cutoff: list[tuple[str, Collected]]
    pooled: Collected
    timings: dict[str, float]
    fits: list[float] = field(default_factory=list)  # penalizer of each BG/NBD fit


def _model_names(c: Collected) -> list[str]:
    names = [n for n in c.scores if n != FLAG]
    order = [HUITOU, "huitou_noseason", *BASELINE_ORDER]
    return sorted(names, key=lambda n: order.index(n) if n in order else len(order))


def run_families(
    families: dict[str, Family], g: Group, timings: dict[str, float]
) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for fam_name, fam in families.items():
        t0 = time.perf_counter()
        out.update(fam(g.orders, g.cutoff))
        timings[fam_name] = timings.get(fam_name, 0.0) + time.perf_counter() - t0
    return out


def base_families(with_huitou: bool, variants: bool = True) -> dict[str, Family]:
    """Baselines, and Huitou (seasonality 'auto'; with ``variants`` also 'none')."""
    fams: dict[str, Family] = {"rule+recency": simple_family, "bgnbd": bgnbd_family()}
    if with_huitou:
        fams["huitou"] = huitou_family("auto", HUITOU)
        if variants:
            fams["huitou_noseason"] = huitou_family("none", "huitou_noseason")
    return fams


# --- datasets --------------------------------------------------------------------------------


def evaluate_cdnow(
    cutoffs: Sequence[date], with_huitou: bool, variants: bool = True
) -> DatasetResult:
    FIT_LOG.clear()
    orders = load_cdnow()
    fams = base_families(with_huitou, variants)
    timings: dict[str, float] = {}
    per_cutoff: list[tuple[str, Collected]] = []
    pooled = Collected()
    for c in cutoffs:
        eligible, label = make_labels(orders, c)
        seen = truncate(orders, c)
        s = rfm(seen, c)
        g = Group(seen, c, eligible, label, {"n_days": s.n_days})
        col = Collected()
        col.add(g, run_families(fams, g, timings))
        per_cutoff.append((c.isoformat(), col))
        pooled.merge(col)
    fits = list(FIT_LOG)
    FIT_LOG.clear()
    return DatasetResult("CDNOW (real, lifetimes package)", per_cutoff, pooled, timings, fits)


def _concat_rfm(parts: list[RFM]) -> RFM:
    return RFM(
        n_days=np.concatenate([p.n_days for p in parts]),
        first=np.concatenate([p.first for p in parts]),
        last=np.concatenate([p.last for p in parts]),
        as_of=np.concatenate([p.as_of for p in parts]),
    )


def evaluate_simulated(
    n_shops: int,
    customers_per_shop: int,
    n_cutoffs: int,
    with_huitou: bool,
    seed: int = 2024,
    variants: bool = True,
) -> DatasetResult:
    FIT_LOG.clear()
    shops = simulated_water_stations(
        n_shops=n_shops, customers_per_shop=customers_per_shop, seed=seed
    )
    fams = base_families(with_huitou, variants)
    timings: dict[str, float] = {}
    per_cutoff: list[tuple[str, Collected]] = []
    pooled = Collected()
    for k in range(n_cutoffs):
        groups: list[Group] = []
        for s in range(shops.n_shops):
            sub, idx = shops.shop_orders(s)
            c = shops.cutoffs(s, n_cutoffs)[k]
            eligible, label = make_labels(sub, c)
            seen = truncate(sub, c)
            churned = shops.churned_on[idx]
            # Ground truth: the simulator's churn date lies on or before the window's end.
            truly_gone = (churned >= 0) & (churned <= (c - date(1970, 1, 1)).days + 90)
            groups.append(
                Group(
                    seen,
                    c,
                    eligible,
                    label,
                    {
                        "kind": shops.kind[idx],
                        "archetype": shops.archetype[idx],
                        "truly_gone": truly_gone,
                        "n_days": rfm(seen, c).n_days,
                    },
                )
            )
        t0 = time.perf_counter()
        pooled_params: BGNBDParams = fit_bgnbd(
            _concat_rfm([rfm(g.orders, g.cutoff) for g in groups])
        )
        timings["bgnbd_pooled"] = timings.get("bgnbd_pooled", 0.0) + time.perf_counter() - t0
        fams_k = {**fams, "bgnbd_pooled": bgnbd_family(pooled_params, prefix="bgnbd_pooled")}
        col = Collected()
        for g in groups:
            col.add(g, run_families(fams_k, g, timings))
        lo = min(g.cutoff for g in groups)
        hi = max(g.cutoff for g in groups)
        per_cutoff.append((f"k={k} ({lo.isoformat()}..{hi.isoformat()}, {len(groups)} shops)", col))
        pooled.merge(col)
    name = f"Simulated water stations ({n_shops} shops x {customers_per_shop} customers)"
    fits = list(FIT_LOG)
    FIT_LOG.clear()
    return DatasetResult(name, per_cutoff, pooled, timings, fits)


# --- printing --------------------------------------------------------------------------------


def _fmt(x: float | None, width: int = 7, digits: int = 3) -> str:
    if x is None:
        return " " * (width - 1) + "-"
    if math.isnan(x):
        return " " * (width - 3) + "nan"
    return f"{x:{width}.{digits}f}"


def print_table(title: str, c: Collected) -> dict[str, ModelMetrics]:
    y = c.y()
    print(f"  {title}: n={len(y)}  base rate (no order in 90 d)={y.mean():.3f}")
    print(f"    {'model':32s} {'AUC':>7s} {'P@10%':>7s} {'Brier':>7s} {'ECE':>7s}")
    out: dict[str, ModelMetrics] = {}
    for name in _model_names(c):
        m = model_metrics(y, c.score(name), name in PROBABILISTIC)
        out[name] = m
        print(f"    {name:32s} {_fmt(m.auc)} {_fmt(m.p10)} {_fmt(m.brier)} {_fmt(m.ece)}")
    if FLAG in c.scores:
        prec, rec, share = flag_precision_recall(y, c.score(FLAG))
        print(
            f"    {'rule_1.5x flag (>1.5, binary)':32s} precision={prec:.3f} recall={rec:.3f}"
            f" flagged={share:.1%}"
        )
    return out


def print_reliability(c: Collected, names: list[str]) -> None:
    y = c.y()
    tables = {n: reliability_table(y, c.score(n)) for n in names}
    head = "    bin       " + "".join(f"| {n[:30]:>30s} " for n in names)
    print(head)
    print("              " + "".join(f"| {'n':>8s} {'pred':>10s} {'obs':>10s} " for _ in names))
    for b in range(10):
        row = f"    {b / 10:.1f}-{(b + 1) / 10:.1f}   "
        for n in names:
            t = tables[n][b]
            row += f"| {t.count:8d} {_fmt(t.mean_predicted, 10)} {_fmt(t.observed_rate, 10)} "
        print(row)


def _best(
    metrics: dict[str, ModelMetrics], names: list[str], key: str, higher: bool
) -> tuple[str, float]:
    vals = [(n, getattr(metrics[n], key)) for n in names if n in metrics]
    vals = [(n, v) for n, v in vals if v is not None and not math.isnan(v)]
    return (max if higher else min)(vals, key=lambda t: t[1])


def verdict(name: str, metrics: dict[str, ModelMetrics]) -> str:
    """One line: is Huitou ahead of the best baseline on AUC, P@10% and Brier (vs BG/NBD)?"""
    if HUITOU not in metrics:
        return f"VERDICT {name}: Huitou engine not available (app.risk.batch) - baselines only."
    h = metrics[HUITOU]
    baselines = [n for n in BASELINE_ORDER if n in metrics]
    probs = [n for n in baselines if n.endswith("p_no_purchase_90")]
    bn, bv = _best(metrics, baselines, "auc", True)
    pn, pv = _best(metrics, baselines, "p10", True)
    rn, rv = _best(metrics, probs, "brier", False)
    hb = h.brier if h.brier is not None else float("nan")
    ok_auc, ok_p10, ok_brier = h.auc > bv, h.p10 > pv, hb < rv

    def mark(ok: bool) -> str:
        return "ok" if ok else "BEHIND"

    parts = [
        f"AUC {h.auc:.3f} vs best {bn} {bv:.3f} ({h.auc - bv:+.3f}) {mark(ok_auc)}",
        f"P@10% {h.p10:.3f} vs best {pn} {pv:.3f} (x{h.p10 / pv:.3f}) {mark(ok_p10)}",
        f"Brier {hb:.4f} vs best {rn} {rv:.4f} (x{hb / rv:.3f}) {mark(ok_brier)}",
    ]
    overall = "AHEAD of every baseline" if ok_auc and ok_p10 and ok_brier else "NOT ahead on all"
    return f"VERDICT {name}: {overall}: " + "; ".join(parts)


SHORT = {
    "huitou": "huitou",
    "huitou_noseason": "huitou_nosea",
    "rule_1.5x": "rule_1.5x",
    "recency": "recency",
    "bgnbd_p_dead": "bg_p_dead",
    "bgnbd_p_no_purchase_90": "bg_p_none90",
    "bgnbd_pooled_p_dead": "bgPool_dead",
    "bgnbd_pooled_p_no_purchase_90": "bgPool_none90",
}


def print_breakdown(c: Collected, attr: str, title: str, groups: dict[str, np.ndarray]) -> None:
    """AUC per subgroup (e.g. household / office, or number of purchase days)."""
    y = c.y()
    names = _model_names(c)
    print(f"  AUC by {title} (pooled):")
    print(
        f"    {'group':16s} {'n':>7s} {'base':>6s} "
        + " ".join(f"{SHORT.get(n, n)[:14]:>14s}" for n in names)
    )
    for gname, mask in groups.items():
        if mask.sum() == 0:
            continue
        cells = " ".join(f"{roc_auc(y[mask], c.score(n)[mask]):14.3f}" for n in names)
        print(f"    {gname:16s} {int(mask.sum()):7d} {y[mask].mean():6.3f} {cells}")


def report(res: DatasetResult) -> str:
    print(f"\n=== {res.name} ===")
    if res.fits:
        clean = sum(1 for p in res.fits if p == 0)
        boundary = sum(1 for p in res.fits if p < 0)
        print(
            f"  BG/NBD fits: {len(res.fits)}: {clean} converged in lifetimes, {boundary} at the"
            " boundary optimum (lifetimes' 'precision loss', accepted unpenalised),"
            f" {len(res.fits) - clean - boundary} with a penalizer"
        )
    for label, c in res.per_cutoff:
        print_table(f"cutoff {label}", c)
    pooled = print_table("POOLED over cutoffs", res.pooled)
    n_days = res.pooled.attr("n_days")
    print_breakdown(
        res.pooled,
        "n_days",
        "purchase days before the cutoff",
        {"2 days": n_days == 2, "3-4 days": (n_days >= 3) & (n_days <= 4), "5+ days": n_days >= 5},
    )
    if "kind" in res.pooled.extra:
        kind = res.pooled.attr("kind")
        print_breakdown(
            res.pooled,
            "kind",
            "customer kind",
            {"household": kind == "household", "office": kind == "office"},
        )
        y = res.pooled.y()
        gone = res.pooled.attr("truly_gone")
        print(
            "  labels vs simulator ground truth: label=1 & churned by window end "
            f"{int((y & gone).sum())}, label=1 & not churned (a gap) {int((y & ~gone).sum())}, "
            f"label=0 & churned {int((~y & gone).sum())}"
        )
    rel = [
        n
        for n in (HUITOU, "bgnbd_p_no_purchase_90", "bgnbd_pooled_p_no_purchase_90")
        if n in pooled
    ]
    print("  Reliability (pooled; 10 equal-width bins of predicted P(no order in 90 d)):")
    print_reliability(res.pooled, rel)
    print(
        "  time spent per model family (s): "
        + ", ".join(f"{k} {v:.1f}" for k, v in res.timings.items())
    )
    line = verdict(res.name.split(" (")[0], pooled)
    print(line)
    return line


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="fewer cutoffs and shops (smoke run)")
    ap.add_argument("--no-huitou", action="store_true", help="baselines only")
    ap.add_argument(
        "--only", choices=("cdnow", "water"), help="one dataset (CDNOW is deterministic)"
    )
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    with_huitou = huitou_available() and not args.no_huitou
    if not with_huitou:
        print("NOTE: Huitou engine not scored (app.risk.batch not importable or --no-huitou).")
    lines = []
    if args.only != "water":
        if args.quick:
            cdnow = evaluate_cdnow(CDNOW_CUTOFFS[:1], with_huitou, variants=False)
        else:
            cdnow = evaluate_cdnow(CDNOW_CUTOFFS, with_huitou)
        lines.append(report(cdnow))
    if args.only != "cdnow":
        if args.quick:
            sim = evaluate_simulated(2, 120, 2, with_huitou, variants=False)
        else:
            sim = evaluate_simulated(8, 400, 5, with_huitou)
        lines.append(report(sim))
    print("\n=== Summary ===")
    for line in lines:
        print(line)
    print(f"(total {time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
