"""Churn scorers compared in the benchmarks; each returns one score per customer.

Common signature: ``model(orders, as_of) -> np.ndarray`` of length ``orders.n_customers``,
higher = more likely to churn. Only orders with day <= as_of are used (models truncate
themselves, so passing untruncated orders is safe). Customers without any order on or
before as_of get score 0 (they are never eligible for evaluation).

- ``rule_1_5x``: the practitioners' rule, days since last order / mean interval
  (``rule_1_5x_flag``: the binary "需关注" alert, ratio > 1.5);
- ``recency``: days since last order;
- ``bgnbd_p_dead``: 1 - P(alive) under BG/NBD (lifetimes' BetaGeoFitter);
- ``bgnbd_p_no_purchase_90``: P(no purchase in the next 90 days | history) under BG/NBD
  = (1 - P(alive)) + P(alive) * ((alpha + T) / (alpha + T + t)) ** (r + x);
- ``huitou``: the engine (``app.risk.batch.score_arrays``), imported lazily.

BG/NBD works in weeks (days / 7), as in Fader, Hardie & Lee (2005) and lifetimes' CDNOW
example; the fit is invariant to the unit, weeks only help the optimiser.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import numpy as np
from scipy.special import expit

from benchmarks.datasets import HORIZON_DAYS, Orders, to_day

Family = Callable[[Orders, date], dict[str, np.ndarray]]

DEFAULT_INTERVAL_DAYS = 20.0  # the rule's interval for a customer with one purchase day
WEEK = 7.0


# --- RFM -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RFM:
    """Per-customer summary in days: distinct purchase days, first/last day, age at as_of."""

    n_days: np.ndarray  # distinct purchase days (0: no order yet)
    first: np.ndarray  # day number of the first purchase (undefined where n_days == 0)
    last: np.ndarray
    as_of: np.ndarray  # day number of the as_of (per customer, to allow pooled fits)

    @property
    def frequency(self) -> np.ndarray:
        """Repeat purchase days (lifetimes' ``frequency``)."""
        return np.maximum(self.n_days - 1, 0)

    @property
    def recency_days(self) -> np.ndarray:
        return (self.last - self.first).astype(np.float64)

    @property
    def age_days(self) -> np.ndarray:
        return (self.as_of - self.first).astype(np.float64)

    @property
    def days_since_last(self) -> np.ndarray:
        return np.where(self.n_days > 0, self.as_of - self.last, 0).astype(np.float64)


def rfm(orders: Orders, as_of: date | np.ndarray) -> RFM:
    """Summarise orders on or before ``as_of`` (a date, or a day number per customer)."""
    n = orders.n_customers
    cutoff = (
        np.full(n, to_day(as_of), dtype=np.int64)
        if isinstance(as_of, date)
        else np.asarray(as_of, dtype=np.int64)
    )
    keep = orders.day <= cutoff[orders.customer]
    cust = orders.customer[keep]
    day = orders.day[keep].astype(np.int64)
    first = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    last = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    np.minimum.at(first, cust, day)
    np.maximum.at(last, cust, day)
    if len(cust):
        key = np.unique(cust * 200_000 + (day + 50_000))
        n_days = np.bincount(key // 200_000, minlength=n)
    else:
        n_days = np.zeros(n, dtype=np.int64)
    none = n_days == 0
    first[none] = cutoff[none]
    last[none] = cutoff[none]
    return RFM(n_days=n_days, first=first, last=last, as_of=cutoff)


# --- the 1.5x rule and recency ---------------------------------------------------------------


def interval_ratio(orders: Orders, as_of: date) -> np.ndarray:
    """days_since_last / mean interval ((last - first) / (distinct days - 1))."""
    s = rfm(orders, as_of)
    mean_interval = np.where(
        s.n_days >= 2, s.recency_days / np.maximum(s.n_days - 1, 1), DEFAULT_INTERVAL_DAYS
    )
    return s.days_since_last / np.maximum(mean_interval, 1.0)


def rule_1_5x(orders: Orders, as_of: date) -> np.ndarray:
    """The practitioners' rule as a continuous score: days since last / mean interval."""
    return interval_ratio(orders, as_of)


def rule_1_5x_flag(orders: Orders, as_of: date, threshold: float = 1.5) -> np.ndarray:
    """The rule's binary alert (需关注): ratio above ``threshold``."""
    return interval_ratio(orders, as_of) > threshold


def recency(orders: Orders, as_of: date) -> np.ndarray:
    """Days since the last purchase."""
    return rfm(orders, as_of).days_since_last


def simple_family(orders: Orders, as_of: date) -> dict[str, np.ndarray]:
    """The rule (score and flag) and recency in one pass."""
    s = rfm(orders, as_of)
    mean_interval = np.where(
        s.n_days >= 2, s.recency_days / np.maximum(s.n_days - 1, 1), DEFAULT_INTERVAL_DAYS
    )
    ratio = s.days_since_last / np.maximum(mean_interval, 1.0)
    return {"rule_1.5x": ratio, "recency": s.days_since_last, "rule_1.5x_flag": ratio > 1.5}


# --- BG/NBD ----------------------------------------------------------------------------------


# Penalizer used by each BG/NBD fit of this process (0.0 = converged unpenalised).
FIT_LOG: list[float] = []


@dataclass(frozen=True)
class BGNBDParams:
    """BG/NBD parameters (time unit: weeks)."""

    r: float
    alpha: float
    a: float
    b: float


def _unpenalised_mle(
    x: np.ndarray, tx: np.ndarray, age: np.ndarray, weights: np.ndarray
) -> BGNBDParams | None:
    """Minimise lifetimes' own BG/NBD likelihood with scipy, accepting 'precision loss'.

    lifetimes raises ConvergenceError whenever BFGS reports status 2 ("desired error not
    necessarily achieved due to precision loss"), which happens when the optimum lies on
    the boundary (a, b -> infinity with a/b fixed: every customer has the same small dropout
    probability). The point reached is still the maximum-likelihood fit; retrying with a
    penalizer, as lifetimes suggests, shrinks a and b and would handicap BG/NBD. Accepted
    when the gradient is ~0.
    """
    from autograd import value_and_grad
    from lifetimes import BetaGeoFitter
    from scipy.optimize import minimize

    scale = 10.0 / float(age.max())  # the same time scaling lifetimes applies
    fun = value_and_grad(BetaGeoFitter._negative_log_likelihood)
    args = (x.astype(np.float64), tx * scale, age * scale, weights.astype(np.float64), 0.0)
    res = minimize(fun, x0=0.1 * np.ones(4), jac=True, args=args, tol=1e-7)
    if not np.all(np.isfinite(res.x)) or np.max(np.abs(res.jac)) > 1e-3:
        return None
    r, alpha, a, b = np.exp(res.x)
    return BGNBDParams(float(r), float(alpha / scale), float(a), float(b))


def fit_bgnbd(summary: RFM, penalizers: tuple[float, ...] = (1e-3, 1e-2)) -> BGNBDParams:
    """Fit BG/NBD (lifetimes' BetaGeoFitter) on every customer with at least one purchase.

    Identical (x, t_x, T) rows are collapsed into weights (an exact rewrite of the
    likelihood that makes the fit fast). Order of attempts, recorded in ``FIT_LOG``:
    lifetimes unpenalised (0.0); the unpenalised optimum reached with precision loss
    (-1.0, see ``_unpenalised_mle``); a penalizer from ``penalizers`` (its value).
    """
    from lifetimes import BetaGeoFitter

    has = summary.n_days > 0
    x = summary.frequency[has].astype(np.int64)
    tx = (summary.last - summary.first)[has].astype(np.int64)
    age = (summary.as_of - summary.first)[has].astype(np.int64)
    rows, weights = np.unique(np.stack([x, tx, age], axis=1), axis=0, return_counts=True)
    fx, ftx, fage = rows[:, 0], rows[:, 1] / WEEK, rows[:, 2] / WEEK
    last_error: Exception | None = None
    for penalizer in (0.0, -1.0, *penalizers):
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                if penalizer == -1.0:
                    params = _unpenalised_mle(fx, ftx, fage, weights)
                    if params is None:
                        continue
                    FIT_LOG.append(penalizer)
                    return params
                fitter = BetaGeoFitter(penalizer_coef=penalizer)
                fitter.fit(fx, ftx, fage, weights=weights)
            p = fitter.params_
            FIT_LOG.append(penalizer)
            return BGNBDParams(float(p["r"]), float(p["alpha"]), float(p["a"]), float(p["b"]))
        except Exception as exc:  # lifetimes raises ConvergenceError among others
            last_error = exc
    raise RuntimeError(f"BG/NBD fit failed: {last_error}")


def bgnbd_predict(
    params: BGNBDParams, summary: RFM, horizon_days: float = HORIZON_DAYS
) -> tuple[np.ndarray, np.ndarray]:
    """(P(alive), P(no purchase in the next horizon)) per customer, weeks as the unit."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x = summary.frequency.astype(np.float64)
    tx = summary.recency_days / WEEK
    age = summary.age_days / WEEK
    t = horizon_days / WEEK
    log_div = (r + x) * np.log((alpha + age) / (alpha + tx)) + np.log(
        a / (b + np.maximum(x, 1.0) - 1.0)
    )
    p_alive = np.where(x == 0, 1.0, expit(-log_div))
    p_quiet_if_alive = np.exp((r + x) * np.log((alpha + age) / (alpha + age + t)))
    p_no_purchase = (1.0 - p_alive) + p_alive * p_quiet_if_alive
    none = summary.n_days == 0
    return np.where(none, 1.0, p_alive), np.where(none, 0.0, p_no_purchase)


def bgnbd_family(params: BGNBDParams | None = None, prefix: str = "bgnbd") -> Family:
    """BG/NBD scores; fitted on the orders given (per shop / per cutoff) unless ``params``."""

    def run(orders: Orders, as_of: date) -> dict[str, np.ndarray]:
        s = rfm(orders, as_of)
        fitted = params if params is not None else fit_bgnbd(s)
        p_alive, p_none = bgnbd_predict(fitted, s)
        return {f"{prefix}_p_dead": 1.0 - p_alive, f"{prefix}_p_no_purchase_90": p_none}

    return run


def bgnbd_p_dead(orders: Orders, as_of: date) -> np.ndarray:
    """1 - P(alive), BG/NBD fitted on ``orders`` up to ``as_of``."""
    return bgnbd_family()(orders, as_of)["bgnbd_p_dead"]


def bgnbd_p_no_purchase_90(orders: Orders, as_of: date) -> np.ndarray:
    """P(no purchase in the next 90 days), BG/NBD fitted on ``orders`` up to ``as_of``."""
    return bgnbd_family()(orders, as_of)["bgnbd_p_no_purchase_90"]


# --- Huitou ----------------------------------------------------------------------------------


def huitou_available() -> bool:
    """Whether the engine's batch module exists in this tree."""
    try:
        return importlib.util.find_spec("app.risk.batch") is not None
    except ModuleNotFoundError:
        return False


def huitou_family(seasonality: str = "auto", name: str = "huitou") -> Family:
    """The Huitou engine's churn_probability (horizon 90 days)."""

    def run(orders: Orders, as_of: date) -> dict[str, np.ndarray]:
        from app.risk.batch import OrderArrays, score_arrays
        from app.risk.config import RiskConfig

        arrays = OrderArrays(
            customer=orders.customer,
            day=orders.day.astype(np.int64),
            quantity=orders.quantity,
            amount=orders.amount,
            n_customers=orders.n_customers,
        )
        scores = score_arrays(
            arrays,
            as_of=as_of,
            config=RiskConfig(horizon_days=HORIZON_DAYS, seasonality=seasonality),
        )
        return {name: np.asarray(scores.churn_probability, dtype=np.float64)}

    return run


def huitou(orders: Orders, as_of: date) -> np.ndarray:
    """The engine's P(no order in the next 90 days), seasonality 'auto'."""
    return huitou_family()(orders, as_of)["huitou"]


# Models that output probabilities (Brier / calibration are reported for these).
PROBABILISTIC_PREFIXES = ("huitou", "bgnbd_p_no_purchase", "bgnbd_pooled_p_no_purchase")
