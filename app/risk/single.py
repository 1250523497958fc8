"""One customer, scored in plain Python: the online path's fast twin of `batch.score_arrays`.

`score_arrays` is written for a million customers; for the one customer reassessed after
every order its ~150 numpy calls on length-1 arrays cost about a millisecond of pure call
overhead. This module repeats the same formulas, step by step and in the same order, on
Python floats, so the results are the same numbers, not merely close ones:

- sums that numpy takes with `np.add.reduceat` (per-day and per-customer totals) use numpy's
  own pairwise summation order (`_reduceat_sum`); sums it takes with `np.bincount` are plain
  left-to-right sums, as bincount adds (whole-day gaps add up exactly: their sum is the span);
- the special functions (normal and Student t tails and their inverses, expit, logit) are
  the very scipy ufuncs the batch calls, on scalars (memoised where arguments recur: a hit
  is the value the call gave);
- `tests/risk/test_single_agrees.py` checks every output against `score_arrays` on
  thousands of random histories and event records.

Any change to the model's maths must be made in both places; that test will say so.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from functools import reduce
from operator import add, lt, sub
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
_YELLOW, _RED, _LOST_LEVEL = int(Level.YELLOW), int(Level.RED), int(Level.LOST)
# Signals by level, highest first: a mask's level is that of its highest-level signal.
_LEVEL_MASKS = tuple(
    (int(level), sum(1 << s.bit for s in SIGNALS if s.level == level))
    for level in sorted(Level, reverse=True)
)
_INTERVAL_STRETCH = _BIT["interval_stretch"]
_INTERVAL_STRETCH_RED = _BIT["interval_stretch_red"]
_SIZE_DROP = _BIT["size_drop"]
_FREQUENCY_DROP = _BIT["frequency_drop"]
_TICKET_DROP = _BIT["ticket_drop"]
_IGNORED_2 = _BIT["ignored_2"]
_IGNORED_4 = _BIT["ignored_4"]
_COLD_REPLY = _BIT["cold_reply"]
_LOW_SATISFACTION = _BIT["low_satisfaction"]
_TICKETS_RUNNING_OUT = _BIT["tickets_running_out"]
_TICKETS_NOT_RENEWED = _BIT["tickets_not_renewed"]
_COMPLAINT_OPEN = _BIT["complaint_open"]
_CONTACT_DELETED = _BIT["contact_deleted"]
_DEPOSIT_REFUNDED = _BIT["deposit_refunded"]
_MOVED_CLOSED = _BIT["moved_closed"]
_RECENTLY_RECALLED = _BIT["recently_recalled"]
_NEW, _ACTIVE, _QUIET, _AT_RISK, _LOST, _RECOVERED = (
    STAGE_CODE[name] for name in ("new", "active", "quiet", "at_risk", "lost", "recovered")
)

# Memos of pure scalar special-function results. Their arguments repeat across customers
# (one shop's priors, a handful of purchase counts and signal sets), the values are the
# ufuncs' own, so a hit returns exactly what the call would. Cleared when full.
_MEMO_SIZE = 4096
_ISF_MEMO: dict[tuple[float, float], float] = {}
_DROPOUT_MEMO: dict[tuple[float, float], float] = {}
_LOG_COUNT_MEMO: dict[int, float] = {}


def _level(mask: int) -> int:
    """The highest level among the signals in `mask` (0 when none)."""
    for level, bits in _LEVEL_MASKS:
        if mask & bits:
            return level
    return 0


def _remember(memo: dict[Any, float], key: Any, value: float) -> float:
    if len(memo) >= _MEMO_SIZE:
        memo.clear()
    memo[key] = value
    return value


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
    # Not sum(): from Python 3.12 on it compensates rounding errors, bincount does not.
    return reduce(add, a, 0.0)


def _single_orders(values: Sequence[float]) -> list[float]:
    """Per-day totals of days with one order each: what a one-element reduceat gives, x + 0.0.

    That only turns -0.0 into 0.0 (any other x + 0.0 is x), so lists without a zero are
    taken as they are.
    """
    result = list(map(float, values))
    if 0.0 in result:  # 0.0 == -0.0
        result = [x + 0.0 for x in result]
    return result


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
        return self.day_past(self.at(start), effective)

    def day_past(self, at_start: float, effective: float) -> int:
        """day_after(start, effective) for a start day whose E(start) is `at_start`."""
        index = bisect_right(self.cumulative, at_start + effective + THRESHOLD_MARGIN)
        return min(index, self.top) + self.first_day


def _student_sf(df: float, z: float) -> float:
    # Only the tail the batch keeps is computed (it takes ndtr everywhere, then overwrites
    # the small-df entries with stdtr).
    if df < NORMAL_DF:
        return float(stdtr(df, -z))
    return float(ndtr(-z))


def _student_isf(df: float, q: float) -> float:
    if not q > 0.0:  # 0, -0.0 and nan are not memoised (0.0 == -0.0 as keys)
        return float(-stdtrit(df, q)) if df < NORMAL_DF else float(-ndtri(q))
    key = (df, q)
    z = _ISF_MEMO.get(key)
    if z is None:
        z = float(-stdtrit(df, q)) if df < NORMAL_DF else float(-ndtri(q))
        _remember(_ISF_MEMO, key, z)
    return z


def _survival(t: float, mu: float, sd: float, df: float) -> float:
    if t <= 0:
        return 1.0
    z = (math.log(_max(t, 1e-9)) - mu) / sd
    return _student_sf(df, z)


def _threshold_t(mu: float, sd: float, df: float, odds: float, gone: float) -> float:
    target = odds * (1 - gone) / gone
    if target >= 1.0:
        return 0.0
    # min(target, 1.0) is target here (below 1, or nan: a nan threshold ends up as nan).
    try:
        return math.exp(mu + sd * _student_isf(df, target))
    except OverflowError:
        return math.inf


def _dropout(a: float, b: float, n_days: int, offset: float) -> float:
    """Per-purchase dropout after n_days purchases, with the signals' log-odds `offset`."""
    share = a / (a + b + float(n_days))
    # offset is never -0.0 (a sum started at 0.0); a zero share is not memoised.
    key = (share, offset)
    p = _DROPOUT_MEMO.get(key) if share != 0.0 else None
    if p is None:
        p = _clip(float(expit(float(logit(share)) + offset)), 1e-6, 0.999)
        if share != 0.0:
            _remember(_DROPOUT_MEMO, key, p)
    return p


def _log_count(n_days: int) -> float:
    """numpy's log of the purchase-day count, as the batch takes it (libm's may differ)."""
    n = max(n_days, 1)
    value = _LOG_COUNT_MEMO.get(n)
    if value is None:
        value = _remember(_LOG_COUNT_MEMO, n, float(np.log(float(n))))
    return value


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
    n_rows = len(days)
    if (
        n_rows == len(quantities) == len(amounts)
        and (not n_rows or days[-1] <= today)
        and all(map(lt, days, days[1:]))
    ):
        # Purchase days in order, one order each, none after today (the usual case): the
        # rows are the purchase days as they come.
        p_day: list[int] = list(days)
        p_qty: list[float] = _single_orders(quantities)
        p_amt: list[float] = _single_orders(amounts)
    else:
        rows = [i for i in range(n_rows) if days[i] <= today]
        n_orders = len(rows)
        p_day = []
        p_qty = []
        p_amt = []
        if len({days[i] for i in rows}) == n_orders:
            # One order per day: nothing to add up. (x + 0.0 is what a one-element reduceat
            # gives: it turns -0.0 into 0.0.)
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

    # Effective days of the (ascending) purchase days; inside the clock's span, no clipping.
    cumulative, base = ck.cumulative, ck.first_day
    if bought and first_day >= base and last_day - base <= ck.top:
        effective = [cumulative[d - base] for d in p_day]
    else:
        effective = [ck.at(d) for d in p_day]
    eff_gap = list(map(sub, effective[1:], effective))
    all_gap_count = len(eff_gap)
    max_rhythm_gap = max(365.0, 4 * config.default_interval_days)
    # (Effective days are finite: sums of rates a SeasonProfile checked.)
    if not eff_gap or (min(eff_gap) >= 0.5 and max(eff_gap) <= max_rhythm_gap):
        log_gap = list(map(math.log, eff_gap))  # none dropped, none floored
    else:
        # (g <= max_rhythm_gap drops nan, so the 0.5 floor is _max(g, 0.5) on what is left.)
        log_gap = [math.log(g if g >= 0.5 else 0.5) for g in eff_gap if g <= max_rhythm_gap]
    gap_count = len(log_gap)
    if gap_count:
        centre = _running_sum(log_gap) / gap_count
        lo, hi = centre - LOG_GAP_CLIP, centre + LOG_GAP_CLIP
        if min(log_gap) < lo or max(log_gap) > hi:  # no nan here
            log_gap = [lo if x < lo else hi if x > hi else x for x in log_gap]
            log_mean = _running_sum(log_gap) / gap_count
        else:
            log_mean = centre  # nothing clipped: the same list, the same sum
        if gap_count >= 2:
            squares = [(x - log_mean) * (x - log_mean) for x in log_gap]
            log_var = _running_sum(squares) / (gap_count - 1)
        else:
            log_var = NAN
    else:
        log_mean = log_var = NAN
    # Calendar gaps are whole days: their running sum is exact, the first-to-last span.
    gap_total = float(last_day - first_day) if all_gap_count else 0.0
    mean_gap_days = gap_total / all_gap_count if all_gap_count else NAN

    last_gap = earlier_gap = NAN
    if all_gap_count:
        last_gap = float(last_day - p_day[-2])
        prev = float(p_day[-2] - p_day[-3]) if all_gap_count >= 2 else 0.0
        if all_gap_count >= 4:
            earlier_gap = (gap_total - last_gap - prev) / (all_gap_count - 2)
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
    at_today, at_last = ck.at(today), ck.at(last)  # elapsed(x, y) is at(y) - at(x)
    paused = float(facts.paused_days)
    t_now = _max(at_today - at_last - paused, 0.0)
    days_since = float(today - last_day) if bought else NAN
    ratio = t_now / g if bought else NAN
    usual_quantity = total_quantity / max(n_days, 1) if bought else 0.0

    mask = 0
    size_drop = recent_q <= SIZE_DROP_RATIO * earlier_q
    if size_drop:
        mask |= _SIZE_DROP
    if last_gap >= FREQUENCY_DROP_RATIO * earlier_gap:
        mask |= _FREQUENCY_DROP
    if recent_a <= TICKET_DROP_RATIO * earlier_a and earlier_a > 0 and not size_drop:
        mask |= _TICKET_DROP
    streak = int(facts.ignored_streak)
    balance = float(facts.ticket_balance)
    recalled_day = int(facts.recalled_day)
    satisfaction = float(facts.satisfaction)
    moved = bool(facts.moved_closed)
    if streak >= 4:
        mask |= _IGNORED_4
    elif streak >= 2:
        mask |= _IGNORED_2
    if facts.cold_reply:
        mask |= _COLD_REPLY
    if satisfaction < LOW_SATISFACTION:
        mask |= _LOW_SATISFACTION
    if balance > 0 and balance <= _max(usual_quantity, 1.0):
        mask |= _TICKETS_RUNNING_OUT
    if facts.had_tickets and balance <= 0:
        mask |= _TICKETS_NOT_RENEWED
    if facts.complaint_open:
        mask |= _COMPLAINT_OPEN
    if facts.contact_deleted:
        mask |= _CONTACT_DELETED
    if facts.deposit_refunded:
        mask |= _DEPOSIT_REFUNDED
    if moved:
        mask |= _MOVED_CLOSED
    if recalled_day >= 0 and today - recalled_day <= config.recalled_watch_days:
        mask |= _RECENTLY_RECALLED
    # The batch adds every weight, 0.0 for a signal that did not fire; skipping those
    # additions gives the same sum (it starts at 0.0, so it is never -0.0).
    offset = 0.0
    if mask:
        for code, weight in config.signal_weights.items():
            if mask & _BIT[code]:
                offset += weight

    # --- probabilities --------------------------------------------------------------------
    a, b = priors.dropout_a, priors.dropout_b
    odds = a / (b + float(max(n_days - 1, 0))) * math.exp(offset)
    # Per-purchase dropout from here on: the posterior mean after n purchases, with signals.
    p = _dropout(a, b, n_days, offset)

    horizon = ck.at(today + config.horizon_days) - at_today
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
            z = z + calib_c * _log_count(n_days)
        churn = float(expit(z))
    churn = 1.0 if moved else (churn if bought else NAN)
    p_alive = 0.0 if moved else (p_alive if bought else NAN)

    # --- threshold dates and stage --------------------------------------------------------
    strict = 0.8 if mask & _RECENTLY_RECALLED else 1.0

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
        ratio_t(config.lost_ratio, config.lost_extra_days),
        _threshold_t(mu, sd, df, odds, config.lost_probability),
    )
    check_day = ck.day_past(at_last, yellow_t + paused)
    red_day = ck.day_past(at_last, red_t + paused)
    lost_day = max(ck.day_past(at_last, lost_t + paused), last + config.lost_min_days + 1)

    if bought and today >= check_day:
        mask |= _INTERVAL_STRETCH
    if bought and today >= red_day:
        mask |= _INTERVAL_STRETCH_RED
    events = mask & _EVENT_MASK
    if events:
        level = _level(events)
        if level >= _YELLOW:
            check_day = min(check_day, today)
        if level >= _RED:
            red_day = min(red_day, today)
        if level >= _LOST_LEVEL:
            lost_day = min(lost_day, today)

    stage = _ACTIVE
    if today >= check_day:
        stage = _QUIET
    if today >= red_day:
        stage = _AT_RISK
    if today >= lost_day:
        stage = _LOST
    came_back = mask & _RECENTLY_RECALLED and last_day >= recalled_day
    if came_back and stage == _ACTIVE:
        stage = _RECOVERED
    if not bought:
        stage = _NEW

    # --- value ----------------------------------------------------------------------------
    aov_c = (total_amount + priors.aov) / (n_days + 1)
    clv_horizon = ck.at(today + config.clv_horizon_days) - at_today
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
        "satisfaction": satisfaction,
        "ticket_balance": balance,
        "recalled_day": recalled_day,
    }
