"""One customer, scored in plain Python: the online path's fast twin of `batch.score_arrays`.

`score_arrays` is written for a million customers; for the one customer reassessed after
every order its ~150 numpy calls on length-1 arrays cost about a millisecond of pure call
overhead. This module repeats the same formulas, step by step and in the same order, on
Python floats, so the results are the same numbers, not merely close ones:

- sums that numpy takes with `np.add.reduceat` (per-day and per-customer totals) use numpy's
  own pairwise summation order (`_reduceat_sum`); sums it takes with `np.bincount` are plain
  left-to-right sums, as bincount adds;
- the special functions (normal and Student t tails and their inverses, expit, logit) are
  the very scipy ufuncs the batch calls, on scalars;
- `tests/risk/test_single_agrees.py` checks every output against `score_arrays` on
  thousands of random histories and event records.

Any change to the model's maths must be made in both places; that test will say so.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import expit, logit, ndtr, ndtri, stdtr, stdtrit

from app.risk.batch import STAGE_CODE, STAGES
from app.risk.config import RiskConfig
from app.risk.events import CustomerFacts
from app.risk.history import LOG_GAP_CLIP
from app.risk.model import MIN_SIGMA2, NORMAL_DF, PRIOR_DF, ShopPriors
from app.risk.season import THRESHOLD_MARGIN, EffectiveClock
from app.risk.signals import (
    EVENT_SIGNAL_MASK,
    FREQUENCY_DROP_RATIO,
    LOW_SATISFACTION,
    SIGNALS,
    SIZE_DROP_RATIO,
    TICKET_DROP_RATIO,
    Level,
)

NAN = math.nan
_EVENT_MASK = int(EVENT_SIGNAL_MASK)
_BIT = {s.code: 1 << s.bit for s in SIGNALS}


def _pairwise(a: list[float], lo: int, n: int) -> float:
    """numpy's pairwise_sum of a[lo:lo+n] (8 accumulators, blocks of 128), bit for bit."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    if n <= 128:
        r = a[lo : lo + 8]
        i = 8
        end = n - (n % 8)
        while i < end:
            base = lo + i
            r[0] += a[base]
            r[1] += a[base + 1]
            r[2] += a[base + 2]
            r[3] += a[base + 3]
            r[4] += a[base + 4]
            r[5] += a[base + 5]
            r[6] += a[base + 6]
            r[7] += a[base + 7]
            i += 8
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        while i < n:
            res += a[lo + i]
            i += 1
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return _pairwise(a, lo, n2) + _pairwise(a, lo + n2, n - n2)


def _reduceat_sum(a: list[float]) -> float:
    """What np.add.reduceat gives for one segment: the first element + the pairwise rest."""
    if not a:
        return 0.0
    return a[0] + _pairwise(a, 1, len(a) - 1)


def _running_sum(a: list[float]) -> float:
    """What np.bincount(weights=...) gives for one bin: left to right from 0."""
    total = 0.0
    for value in a:
        total += value
    return total


def _min(a: float, b: float) -> float:
    """np.minimum: nan if either is nan."""
    if a != a or b != b:
        return NAN
    return a if a <= b else b


def _max(a: float, b: float) -> float:
    """np.maximum: nan if either is nan."""
    if a != a or b != b:
        return NAN
    return a if a >= b else b


def _clip(x: float, lo: float, hi: float) -> float:
    """np.clip for a float that is not nan."""
    return _min(_max(x, lo), hi)


class _Clock:
    """Scalar reads of an EffectiveClock (the same cumulative table, as Python floats)."""

    __slots__ = ("cumulative", "first_day", "top")

    def __init__(self, clock: EffectiveClock) -> None:
        self.cumulative: list[float] = clock.cumulative_list()
        self.first_day = clock.first_day
        self.top = len(self.cumulative) - 1

    def at(self, day: int) -> float:
        index = day - self.first_day
        return self.cumulative[0 if index < 0 else self.top if index > self.top else index]

    def elapsed(self, start: int, end: int) -> float:
        return self.at(end) - self.at(start)

    def day_after(self, start: int, effective: float) -> int:
        index = bisect_right(self.cumulative, self.at(start) + effective + THRESHOLD_MARGIN)
        return min(index, self.top) + self.first_day


def _student_sf(df: float, z: float) -> float:
    tail = float(ndtr(-z))
    if df < NORMAL_DF:
        tail = float(stdtr(df, -z))
    return tail


def _student_isf(df: float, q: float) -> float:
    z = float(-ndtri(q))
    if df < NORMAL_DF:
        z = float(-stdtrit(df, q))
    return z


def _survival(t: float, mu: float, sd: float, df: float) -> float:
    z = (math.log(_max(t, 1e-9)) - mu) / sd
    return 1.0 if t <= 0 else _student_sf(df, z)


def _threshold_t(mu: float, sd: float, df: float, odds: float, gone: float) -> float:
    target = odds * (1 - gone) / gone
    if target >= 1.0:
        return 0.0
    try:
        return math.exp(mu + sd * _student_isf(df, _min(target, 1.0)))
    except OverflowError:
        return math.inf


def score_one(
    days: Sequence[int],
    quantities: Sequence[float],
    amounts: Sequence[float],
    facts: CustomerFacts,
    *,
    today: int,
    config: RiskConfig,
    priors: ShopPriors,
    clock: EffectiveClock,
) -> dict[str, Any]:
    """`score_arrays(...)` for one customer with stored priors, as a dict of its row.

    `days` are epoch days (any order, may include days after `today`), `clock` the one
    `score_arrays` would build (`batch.online_clock`). Keys are ScoreArrays' field names
    plus the CustomerFigures and EventFacts entries findings need.
    """
    ck = _Clock(clock)
    # --- reduce_history -------------------------------------------------------------------
    rows = [i for i in range(len(days)) if days[i] <= today]
    n_orders = len(rows)
    p_day: list[int] = []
    p_qty: list[float] = []
    p_amt: list[float] = []
    if len({days[i] for i in rows}) == n_orders:
        # One order per day (the usual case): nothing to add up. (x + 0.0 is what a
        # one-element reduceat gives: it turns -0.0 into 0.0.)
        rows.sort(key=days.__getitem__)
        p_day = [days[i] for i in rows]
        p_qty = [float(quantities[i]) + 0.0 for i in rows]
        p_amt = [float(amounts[i]) + 0.0 for i in rows]
    else:
        # Same-day orders: sum them in the order numpy's (unstable) argsort puts them.
        key = np.array([days[i] for i in rows], dtype=np.int64) - np.int64(-(1 << 31))
        rows = [rows[int(j)] for j in np.argsort(key)]
        k = 0
        while k < n_orders:
            day = days[rows[k]]
            end = k + 1
            while end < n_orders and days[rows[end]] == day:
                end += 1
            p_day.append(day)
            p_qty.append(_reduceat_sum([float(quantities[rows[j]]) for j in range(k, end)]))
            p_amt.append(_reduceat_sum([float(amounts[rows[j]]) for j in range(k, end)]))
            k = end
    n_days = len(p_day)
    bought = n_days > 0
    first_day = p_day[0] if bought else -1
    last_day = p_day[-1] if bought else -1
    total_quantity = _reduceat_sum(p_qty) if bought else 0.0
    total_amount = _reduceat_sum(p_amt) if bought else 0.0

    cal_gap = [float(p_day[i + 1] - p_day[i]) for i in range(n_days - 1)]
    effective = [ck.at(d) for d in p_day]
    eff_gap = [effective[i + 1] - effective[i] for i in range(n_days - 1)]
    all_gap_count = len(cal_gap)
    max_rhythm_gap = max(365.0, 4 * config.default_interval_days)
    log_gap = [math.log(_max(g, 0.5)) for g in eff_gap if g <= max_rhythm_gap]
    gap_count = len(log_gap)
    if gap_count:
        centre = _running_sum(log_gap) / gap_count
        lo, hi = centre - LOG_GAP_CLIP, centre + LOG_GAP_CLIP
        log_gap = [lo if x < lo else hi if x > hi else x for x in log_gap]  # no nan here
        log_mean = _running_sum(log_gap) / gap_count
        squares = [(x - log_mean) * (x - log_mean) for x in log_gap]
        log_var = _running_sum(squares) / (gap_count - 1) if gap_count >= 2 else NAN
    else:
        log_mean = log_var = NAN
    mean_gap_days = _running_sum(cal_gap) / all_gap_count if all_gap_count else NAN

    last_gap = earlier_gap = NAN
    if all_gap_count:
        last_gap = cal_gap[-1]
        prev = cal_gap[-2] if all_gap_count >= 2 else 0.0
        if all_gap_count >= 4:
            earlier_gap = (_running_sum(cal_gap) - last_gap - prev) / (all_gap_count - 2)
    last_quantity = recent_q = earlier_q = recent_a = earlier_a = NAN
    if bought:
        last_quantity = p_qty[-1]
        if n_days >= 4:
            last_q, last_a, prev_q, prev_a = p_qty[-1], p_amt[-1], p_qty[-2], p_amt[-2]
            recent_q = (last_q + prev_q) / 2
            recent_a = (last_a + prev_a) / 2
            earlier_q = (total_quantity - last_q - prev_q) / (n_days - 2)
            earlier_a = (total_amount - last_a - prev_a) / (n_days - 2)

    # --- posterior_rhythm -----------------------------------------------------------------
    mu0, tau2, sigma2 = priors.mu0, priors.tau2, priors.sigma2
    n = float(gap_count)
    own_var = sigma2 if log_var != log_var else log_var
    dof = _max(n - 1.0, 0.0)
    s2 = _max((PRIOR_DF * sigma2 + dof * own_var) / (PRIOR_DF + dof), MIN_SIGMA2)
    own_mean = log_mean if n > 0 else 0.0
    precision = 1.0 / tau2 + n / s2
    mu = (mu0 / tau2 + n * own_mean / s2) / precision
    sd = math.sqrt(s2 + 1.0 / precision)
    g = math.exp(mu + sd * sd / 2)
    df = PRIOR_DF + dof

    # --- signals --------------------------------------------------------------------------
    last = last_day if bought else today
    paused = float(facts.paused_days)
    t_now = _max(ck.elapsed(last, today) - paused, 0.0)
    days_since = float(today - last_day) if bought else NAN
    ratio = t_now / g if bought else NAN
    usual_quantity = total_quantity / max(n_days, 1) if bought else 0.0

    mask = 0
    size_drop = recent_q <= SIZE_DROP_RATIO * earlier_q
    if size_drop:
        mask |= _BIT["size_drop"]
    if last_gap >= FREQUENCY_DROP_RATIO * earlier_gap:
        mask |= _BIT["frequency_drop"]
    if recent_a <= TICKET_DROP_RATIO * earlier_a and earlier_a > 0 and not size_drop:
        mask |= _BIT["ticket_drop"]
    streak = int(facts.ignored_streak)
    balance = float(facts.ticket_balance)
    recalled_day = int(facts.recalled_day)
    for code, fired in (
        ("ignored_4", streak >= 4),
        ("ignored_2", 2 <= streak < 4),
        ("cold_reply", bool(facts.cold_reply)),
        ("low_satisfaction", float(facts.satisfaction) < LOW_SATISFACTION),
        ("tickets_running_out", balance > 0 and balance <= _max(usual_quantity, 1.0)),
        ("tickets_not_renewed", bool(facts.had_tickets) and balance <= 0),
        ("complaint_open", bool(facts.complaint_open)),
        ("contact_deleted", bool(facts.contact_deleted)),
        ("deposit_refunded", bool(facts.deposit_refunded)),
        ("moved_closed", bool(facts.moved_closed)),
        (
            "recently_recalled",
            recalled_day >= 0 and today - recalled_day <= config.recalled_watch_days,
        ),
    ):
        if fired:
            mask |= _BIT[code]
    offset = 0.0
    for code, weight in config.signal_weights.items():
        offset += weight if mask & _BIT[code] else 0.0

    # --- probabilities --------------------------------------------------------------------
    a, b = priors.dropout_a, priors.dropout_b
    odds = a / (b + float(max(n_days - 1, 0))) * math.exp(offset)
    # Per-purchase dropout from here on: the posterior mean after n purchases, with signals.
    p = _clip(float(expit(float(logit(a / (a + b + float(n_days)))) + offset)), 1e-6, 0.999)

    horizon = ck.elapsed(today, today + config.horizon_days)
    s_now = _survival(t_now, mu, sd, df)
    s_later = _survival(t_now + horizon, mu, sd, df)
    denominator = odds + s_now
    p_alive = _clip(s_now / denominator, 0.0, 1.0)
    churn = _clip((odds + s_later) / denominator, 0.0, 1.0)
    calib_c = priors.calib_c
    if not (priors.calib_a == 0.0 and priors.calib_b == 1.0 and calib_c == 0.0):
        clipped = _clip(churn, 1e-9, 1 - 1e-9)
        z = priors.calib_a + priors.calib_b * float(logit(clipped))
        if calib_c != 0.0:
            # numpy's log, as the batch takes it (libm's may differ in the last bit)
            z = z + calib_c * float(np.log(float(max(n_days, 1))))
        churn = float(expit(z))
    moved = bool(facts.moved_closed)
    churn = 1.0 if moved else (churn if bought else NAN)
    p_alive = 0.0 if moved else (p_alive if bought else NAN)

    # --- threshold dates and stage --------------------------------------------------------
    strict = 0.8 if mask & _BIT["recently_recalled"] else 1.0

    def ratio_t(multiple: float, extra_days: int) -> float:
        t = multiple * g
        if extra_days:
            t = _min(t, g + extra_days)
        return t * strict

    yellow_t = _min(
        ratio_t(config.quiet_ratio, config.quiet_extra_days),
        _threshold_t(mu, sd, df, odds, config.quiet_probability),
    )
    red_t = _min(
        ratio_t(config.at_risk_ratio, config.at_risk_extra_days),
        _threshold_t(mu, sd, df, odds, config.at_risk_probability),
    )
    lost_t = _min(
        ratio_t(config.lost_ratio, 0), _threshold_t(mu, sd, df, odds, config.lost_probability)
    )
    check_day = ck.day_after(last, yellow_t + paused)
    red_day = ck.day_after(last, red_t + paused)
    lost_day = max(ck.day_after(last, lost_t + paused), last + config.lost_min_days + 1)

    if bought and today >= check_day:
        mask |= _BIT["interval_stretch"]
    if bought and today >= red_day:
        mask |= _BIT["interval_stretch_red"]
    events = mask & _EVENT_MASK
    level = max((int(s.level) for s in SIGNALS if events & (1 << s.bit)), default=0)
    if level >= Level.YELLOW:
        check_day = min(check_day, today)
    if level >= Level.RED:
        red_day = min(red_day, today)
    if level >= Level.LOST:
        lost_day = min(lost_day, today)

    stage = STAGE_CODE["active"]
    if today >= check_day:
        stage = STAGE_CODE["quiet"]
    if today >= red_day:
        stage = STAGE_CODE["at_risk"]
    if today >= lost_day:
        stage = STAGE_CODE["lost"]
    came_back = mask & _BIT["recently_recalled"] and last_day >= recalled_day
    if came_back and stage == STAGE_CODE["active"]:
        stage = STAGE_CODE["recovered"]
    if not bought:
        stage = STAGE_CODE["new"]

    # --- value ----------------------------------------------------------------------------
    aov_c = (total_amount + priors.aov) / (n_days + 1)
    clv_horizon = ck.elapsed(today, today + config.clv_horizon_days)
    if moved:
        retained = 0.0
    else:
        cycles = clv_horizon / g
        expected = cycles if p < 1e-9 else (1 - math.pow(1 - p, cycles)) / p
        retained = expected * aov_c
    clv = retained * p_alive if bought else 0.0
    value_at_risk = retained * churn if bought else 0.0
    if not bought:
        check_day = red_day = lost_day = -1

    return {
        "stage": STAGES[stage],
        "n_orders": n_days,
        "first_day": first_day,
        "last_day": last_day,
        "days_since_last": days_since,
        "expected_interval_days": g if bought else math.exp(mu0),
        "mean_gap_days": mean_gap_days,
        "overdue_ratio": ratio,
        "churn_probability": churn,
        "p_alive": p_alive,
        "dropout": p,
        "retained_value": retained,
        "clv": clv,
        "value_at_risk": value_at_risk,
        "total_amount": total_amount,
        "total_quantity": total_quantity,
        "signals": mask,
        "check_day": check_day,
        "red_day": red_day,
        "lost_day": lost_day,
        "last_quantity": last_quantity,
        "recent_quantity": recent_q,
        "earlier_quantity": earlier_q,
        "last_gap_days": last_gap,
        "earlier_gap_mean": earlier_gap,
        "recent_amount": recent_a,
        "earlier_amount": earlier_a,
        "ignored_streak": streak,
        "satisfaction": float(facts.satisfaction),
        "ticket_balance": balance,
        "recalled_day": recalled_day,
    }
