"""Scoring metrics in plain numpy: ROC-AUC, precision in the top k %, Brier, reliability, ECE.

Conventions: ``y`` is 1 for the positive class (churned: no order in the horizon), ``score``
is higher for "more likely positive".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``x`` with ties given their average rank."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    # Start index of each run of equal values.
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], n]  # exclusive
    avg = (starts + ends + 1) / 2.0  # mean of ranks starts+1..ends
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U; tied scores count one half)."""
    y = np.asarray(y).astype(bool)
    score = np.asarray(score, dtype=np.float64)
    if np.isnan(score).any():
        raise ValueError("scores contain NaN")
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = average_ranks(score)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def precision_at(y: np.ndarray, score: np.ndarray, fraction: float = 0.10) -> float:
    """Share of positives among the top ``fraction`` of customers by score.

    k = ceil(fraction * n). When tied scores straddle the k-th place, the tied group
    contributes its positive rate for the places it fills (the expected precision under a
    random tie-break), so a scorer with many ties (e.g. whole-day recency) is neither
    favoured nor penalised by the order of the input.
    """
    y = np.asarray(y).astype(np.float64)
    score = np.asarray(score, dtype=np.float64)
    n = len(y)
    if n == 0:
        return float("nan")
    k = max(1, int(np.ceil(fraction * n - 1e-9)))
    threshold = np.sort(score)[::-1][k - 1]
    above = score > threshold
    tied = score == threshold
    n_above = int(above.sum())
    hits = y[above].sum() + (k - n_above) * y[tied].mean()
    return float(hits / k)


def brier(y: np.ndarray, p: np.ndarray) -> float:
    """Mean squared error of probabilities ``p`` against outcomes ``y`` in {0, 1}."""
    y = np.asarray(y).astype(np.float64)
    p = np.asarray(p, dtype=np.float64)
    return float(np.mean((p - y) ** 2))


@dataclass(frozen=True)
class ReliabilityBin:
    """One bin of a reliability table."""

    low: float
    high: float
    count: int
    mean_predicted: float
    observed_rate: float


def reliability_table(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> list[ReliabilityBin]:
    """Equal-width bins [low, high) on [0, 1] (the last includes 1.0); empty bins have NaN means."""
    y = np.asarray(y).astype(np.float64)
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    sum_p = np.bincount(which, weights=p, minlength=n_bins)
    sum_y = np.bincount(which, weights=y, minlength=n_bins)
    bins = []
    for b in range(n_bins):
        c = int(count[b])
        bins.append(
            ReliabilityBin(
                low=float(edges[b]),
                high=float(edges[b + 1]),
                count=c,
                mean_predicted=float(sum_p[b] / c) if c else float("nan"),
                observed_rate=float(sum_y[b] / c) if c else float("nan"),
            )
        )
    return bins


def expected_calibration_error(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> float:
    """Sum over bins of (bin share) x |mean predicted - observed rate| (equal-width bins)."""
    bins = reliability_table(y, p, n_bins)
    n = sum(b.count for b in bins)
    if n == 0:
        return float("nan")
    return float(
        sum(b.count / n * abs(b.mean_predicted - b.observed_rate) for b in bins if b.count)
    )


def flag_precision_recall(y: np.ndarray, flag: np.ndarray) -> tuple[float, float, float]:
    """(precision, recall, share flagged) of a binary alert ``flag``."""
    y = np.asarray(y).astype(bool)
    flag = np.asarray(flag).astype(bool)
    n_flag = int(flag.sum())
    precision = float((y & flag).sum() / n_flag) if n_flag else float("nan")
    recall = float((y & flag).sum() / y.sum()) if y.sum() else float("nan")
    return precision, recall, float(n_flag / len(y)) if len(y) else float("nan")
