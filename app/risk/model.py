"""The churn model: each customer's own rhythm, shrunk toward the shop's, plus a chance of leaving.

A customer's gaps between purchase days (in seasonally adjusted days) are log-normal with
their own centre and spread. Few orders borrow strength from the shop's customers
(normal-normal shrinkage of the centre, a pooled prior for the spread), so a second order
already gives a usable rhythm and a regular weekly customer is told apart from an erratic
one. After each purchase a customer may leave for good with probability p (fitted per shop
by maximum likelihood, raised by warning signals). Then, t days into the current gap:

    P(alive)               = (1-p) S(t) / (p + (1-p) S(t))
    P(no order within h)   = (p + (1-p) S(t+h)) / (p + (1-p) S(t))

where S is the survival function of the customer's gap. A very regular customer who is
late has a tiny S(t) and is flagged quickly; an erratic one is given time. p itself varies
between customers (Beta-distributed); one who stayed through many purchases is trusted more.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.special import betaln, expit, logit, ndtr, ndtri, stdtr, stdtrit

from app.risk.history import CustomerFigures

F64 = npt.NDArray[np.float64]

PRIOR_DF = 2.0  # how many gaps' worth of weight the shop's spread carries for one customer
MIN_SIGMA2 = (
    0.0225  # spread floor (sd 0.15): nobody orders to the day, a trip or a busy week happens
)
MIN_FIT_CUSTOMERS = 10
FIT_SAMPLE = 50_000
PRIOR_LOGIT_DROPOUT = math.log(0.05 / 0.95)  # a weak prior: 5 % leave after a purchase
PRIOR_LOG_K = math.log(10.0)


@dataclass(frozen=True)
class ShopPriors:
    """What the shop's customers as a whole say; stored per shop, used for every customer."""

    @property
    def dropout(self) -> float:
        """Mean per-purchase probability of leaving across the shop's customers."""
        return self.dropout_a / (self.dropout_a + self.dropout_b)

    mu0: float  # mean log gap across customers
    tau2: float  # between-customer variance of the log-gap centre
    sigma2: float  # typical within-customer variance of log gaps
    dropout_a: float  # Beta(a, b) prior on the per-purchase probability of leaving
    dropout_b: float
    aov: float  # shop-wide mean value of a purchase day
    summer_rate: float = 1.0
    festival_rate: float = 1.0
    n_customers: int = 0
    # Recalibration logit(p') = calib_a + calib_b logit(p) + calib_c log(purchase days),
    # fitted on the shop's own past. Priors stored before calib_c existed load with 0.
    calib_a: float = 0.0
    calib_b: float = 1.0
    calib_c: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShopPriors:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def fit_rhythm_priors(
    fig: CustomerFigures, default_interval_days: float
) -> tuple[float, float, float]:
    """(mu0, tau2, sigma2) by the method of moments.

    The within-customer spread comes from customers with 3+ gaps (enough to measure it);
    the centre and the between-customer spread from everyone with a gap, so that frequent
    buyers alone do not make the shop's typical rhythm look faster than it is.
    """
    rich = fig.gap_count >= 3
    some = fig.gap_count >= 1
    if int(rich.sum()) < MIN_FIT_CUSTOMERS:
        return math.log(default_interval_days), 0.25, 0.25
    sigma2 = max(float(np.median(fig.log_gap_var[rich])), MIN_SIGMA2)
    means = fig.log_gap_mean[some]
    counts = fig.gap_count[some].astype(np.float64)
    mu0 = float(np.median(means))
    # Spread of customer centres minus what sampling noise alone would give.
    tau2 = max(float(np.var(means) - np.mean(sigma2 / counts)), 0.02)
    return mu0, tau2, sigma2


@dataclass(frozen=True)
class Rhythm:
    """Per-customer posterior rhythm (arrays)."""

    mu: F64  # posterior mean log gap
    sigma2: F64  # within-customer variance
    predictive_sd: F64  # sd of the next log gap: spread plus uncertainty about the centre
    mean_gap: F64  # expected gap, effective days
    # Degrees of freedom of the predictive log gap (Student t: the customer's spread is itself
    # only estimated, from PRIOR_DF prior gaps plus their own); None means normal.
    df: F64 | None = None


def posterior_rhythm(fig: CustomerFigures, mu0: float, tau2: float, sigma2: float) -> Rhythm:
    """Shrink each customer's log-gap centre and spread toward the shop's."""
    n = fig.gap_count.astype(np.float64)
    own_var = np.where(np.isnan(fig.log_gap_var), sigma2, fig.log_gap_var)
    dof = np.maximum(n - 1.0, 0.0)
    s2 = np.maximum((PRIOR_DF * sigma2 + dof * own_var) / (PRIOR_DF + dof), MIN_SIGMA2)
    own_mean = np.where(n > 0, fig.log_gap_mean, 0.0)
    precision = 1.0 / tau2 + n / s2
    mu = (mu0 / tau2 + n * own_mean / s2) / precision
    predictive_sd = np.sqrt(s2 + 1.0 / precision)
    mean_gap = np.exp(mu + predictive_sd**2 / 2)
    return Rhythm(
        mu=mu, sigma2=s2, predictive_sd=predictive_sd, mean_gap=mean_gap, df=PRIOR_DF + dof
    )


def survival(t: F64, rhythm: Rhythm) -> F64:
    """P(gap > t) for effective days t (1 for t <= 0).

    The log gap's predictive law is Student t: with the spread estimated from a few gaps, a
    long silence is less surprising than a normal with that spread plugged in would say.
    """
    with np.errstate(divide="ignore"):
        z = (np.log(np.maximum(t, 1e-9)) - rhythm.mu) / rhythm.predictive_sd
    result: F64 = np.where(t <= 0, 1.0, student_sf(rhythm.df, z))
    return result


# Beyond this many degrees of freedom Student t and the normal survival functions differ by
# under 0.004, and ndtr is several times cheaper than stdtr at a million customers.
NORMAL_DF = 30.0


def student_sf(df: F64 | None, z: F64) -> F64:
    """P(T > z) for Student t with `df` (None or large df: the normal)."""
    tail: F64 = ndtr(-z)
    if df is None:
        return tail
    df = np.broadcast_to(df, z.shape)
    small = df < NORMAL_DF
    if small.any():
        tail[small] = stdtr(df[small], -z[small])
    return tail


def student_isf(df: F64 | None, q: F64) -> F64:
    """z with P(T > z) = q (the inverse of student_sf)."""
    z: F64 = -ndtri(q)
    if df is None:
        return z
    df = np.broadcast_to(df, q.shape)
    small = df < NORMAL_DF
    if small.any():
        z[small] = -stdtrit(df[small], q[small])
    return z


def leave_odds(a: float, b: float, n_days: npt.NDArray[np.int64], offset: F64) -> F64:
    """Odds that the customer left after the last purchase, given they stayed after n-1.

    With p ~ Beta(a, b), surviving n-1 purchases makes p's posterior Beta(a, b+n-1), and
    P(alive) = S / (a/(b+n-1) + S): loyal customers earn patience, as in BG/NBD. Warning
    signals multiply these odds.
    """
    survived = np.maximum(n_days - 1, 0).astype(np.float64)
    result: F64 = a / (b + survived) * np.exp(offset)
    return result


def fit_dropout(
    fig: CustomerFigures, rhythm: Rhythm, t_now: F64, signal_logit: F64
) -> tuple[float, float]:
    """Maximum-likelihood Beta(a, b) for the per-purchase dropout, over the shop's buyers.

    Each buyer's likelihood, p integrated out: B(a, b+n)/B(a, b) * (odds + S(t_now)).
    """
    buyers = fig.n_days > 0
    count = int(buyers.sum())
    if count < MIN_FIT_CUSTOMERS:
        return 0.5, 10.0
    if count > FIT_SAMPLE:
        # Two parameters are pinned down by 50k customers; an even stride keeps it deterministic.
        chosen = np.flatnonzero(buyers)[:: count // FIT_SAMPLE]
        buyers = np.zeros_like(buyers)
        buyers[chosen] = True
    n = fig.n_days[buyers].astype(np.float64)
    s_now = survival(t_now[buyers], _take(rhythm, buyers))
    offset = signal_logit[buyers]

    def negative_log_posterior(params: npt.NDArray[np.float64]) -> float:
        # Mean m and concentration k instead of (a, b): with few departures the likelihood
        # is a flat ridge in (a, b); a weak prior on (logit m, log k) makes the fit unique.
        m, k = expit(params[0]), math.exp(params[1])
        a, b = m * k, (1 - m) * k
        odds = a / (b + n - 1) * np.exp(offset)
        ll = betaln(a, b + n) - betaln(a, b) + np.log(odds + s_now)
        prior = ((params[0] - PRIOR_LOGIT_DROPOUT) / 3) ** 2 + ((params[1] - PRIOR_LOG_K) / 2) ** 2
        return -float(ll.sum()) + 0.5 * prior

    best = minimize(
        negative_log_posterior, x0=np.array([PRIOR_LOGIT_DROPOUT, PRIOR_LOG_K]),
        method="L-BFGS-B", bounds=[(-9.0, 4.0), (math.log(0.05), math.log(1e5))],
    )  # fmt: skip
    m, k = expit(best.x[0]), math.exp(best.x[1])
    return float(m * k), float((1 - m) * k)


def _take(rhythm: Rhythm, mask: npt.NDArray[np.bool_]) -> Rhythm:
    return Rhythm(
        mu=rhythm.mu[mask],
        sigma2=rhythm.sigma2[mask],
        predictive_sd=rhythm.predictive_sd[mask],
        mean_gap=rhythm.mean_gap[mask],
        df=None if rhythm.df is None else rhythm.df[mask],
    )


def churn_probability(t_now: F64, horizon: F64, rhythm: Rhythm, odds: F64) -> tuple[F64, F64]:
    """(P(no order within horizon), P(alive)) at t_now effective days into the gap."""
    s_now = survival(t_now, rhythm)
    s_later = survival(t_now + horizon, rhythm)
    denominator = odds + s_now
    p_alive = s_now / denominator
    churn = (odds + s_later) / denominator
    return np.clip(churn, 0.0, 1.0), np.clip(p_alive, 0.0, 1.0)


def expected_orders(horizon: F64, rhythm: Rhythm, p: F64) -> F64:
    """Purchase days expected within `horizon` from a customer who stays at their rhythm."""
    cycles = horizon / rhythm.mean_gap
    with np.errstate(divide="ignore", invalid="ignore"):
        geometric = (1 - np.power(1 - p, cycles)) / p
    result: F64 = np.where(p < 1e-9, cycles, geometric)
    return result


# How firmly the count term of the recalibration is held at 0: a normal prior with sd 0.1 per
# unit of log(purchase days). A 50-customer shop's past moves it by next to nothing; it takes
# a past of thousands of scored customers (CDNOW) to pull it to where the data put it.
COUNT_PRIOR_PRECISION = 100.0
CALIBRATION_BOUNDS = [(-5.0, 5.0), (0.2, 5.0), (-3.0, 0.0)]


def fit_platt(
    raw: F64, outcome: npt.NDArray[np.bool_], n_days: npt.NDArray[np.int64] | None = None
) -> tuple[float, float, float]:
    """Logistic recalibration (a, b, c) of logit(raw) and log(purchase days).

    logit(p') = a + b logit(p) + c log(n): the Platt map plus a purchase-count term that
    corrects an offset the model gets wrong between customers with few and many purchase
    days, learnt from the shop's own past. Held gently toward the identity (0, 1) and firmly
    toward c = 0 (COUNT_PRIOR_PRECISION), so a small shop keeps (about) the plain map. c is
    bounded to <= 0: one purchase more never makes a customer look likelier to leave, so an
    order at the usual rhythm still never raises the churn probability. Without `n_days`
    c stays 0.
    """
    x = logit(np.clip(raw, 1e-6, 1 - 1e-6))
    y = outcome.astype(np.float64)
    if x.size < 50 or y.min() == y.max():
        return 0.0, 1.0, 0.0
    log_n = np.zeros_like(x) if n_days is None else count_feature(n_days)
    identity = np.array([0.0, 1.0, 0.0])
    weight = np.array([1.0, 1.0, COUNT_PRIOR_PRECISION])

    def penalised_nll(params: F64) -> tuple[float, F64]:
        z = params[0] + params[1] * x + params[2] * log_n
        # log(1 + e^z) - y z, computed stably
        nll = float(np.sum(np.logaddexp(0.0, z) - y * z))
        residual = expit(z) - y
        grad = np.array([residual.sum(), (residual * x).sum(), (residual * log_n).sum()])
        pull = params - identity  # a weak prior keeps tiny shops sane
        return nll + 0.5 * float(pull @ (weight * pull)), grad + weight * pull

    best = minimize(penalised_nll, identity, jac=True, method="L-BFGS-B", bounds=CALIBRATION_BOUNDS)
    return float(best.x[0]), float(best.x[1]), float(best.x[2])


def count_feature(n_days: npt.NDArray[np.int64]) -> F64:
    """log(purchase days), 0 for customers without any (their churn is not defined)."""
    result: F64 = np.log(np.maximum(n_days, 1).astype(np.float64))
    return result


def apply_platt(
    raw: F64, a: float, b: float, c: float = 0.0, n_days: npt.NDArray[np.int64] | None = None
) -> F64:
    """logit(p') = a + b logit(p) + c log(n_days) (the identity when a, b, c = 0, 1, 0)."""
    if a == 0.0 and b == 1.0 and c == 0.0:
        return raw
    z = a + b * logit(np.clip(raw, 1e-9, 1 - 1e-9))
    if c != 0.0:
        if n_days is None:
            raise ValueError("a count term needs the customers' purchase days")
        z = z + c * count_feature(n_days)
    result: F64 = expit(z)
    return result
