"""Scoring: order arrays (and event facts) in, one assessment per customer out.

The same function scores one customer online (n_customers=1, the shop's stored priors)
and a million from a CSV (priors fitted on the file). Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import date
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from scipy.special import expit, logit

from app.risk.config import RiskConfig
from app.risk.history import CustomerFigures, OrderArrays, reduce_history
from app.risk.model import (
    ShopPriors,
    apply_platt,
    churn_probability,
    expected_orders,
    fit_dropout,
    fit_platt,
    fit_rhythm_priors,
    leave_odds,
    posterior_rhythm,
    student_isf,
)
from app.risk.season import (
    WATER_DEFAULT,
    EffectiveClock,
    SeasonProfile,
    epoch_day,
    estimate_profile,
    from_epoch_day,
)
from app.risk.signals import (
    EVENT_SIGNAL_MASK,
    SIGNALS,
    EventFacts,
    Level,
    bit,
    event_signals,
    has,
    max_level,
    order_signals,
    signal_logit,
)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

STAGES = ("new", "active", "quiet", "at_risk", "lost", "recovered")
STAGE_CODE = {name: i for i, name in enumerate(STAGES)}
NO_DAY = -1
# How far ahead threshold dates are searched; a date beyond it means "not in sight".
LOOKAHEAD_DAYS = 3 * 365


@dataclass(frozen=True)
class ScoreArrays:
    """Per-customer results; index i is customer i of the input."""

    priors: ShopPriors
    n_orders: I64  # distinct purchase days up to as_of
    first_day: I64
    last_day: I64
    days_since_last: F64  # calendar days; nan without orders
    expected_interval_days: F64  # the customer's usual interval (seasonally adjusted days)
    mean_gap_days: F64  # plain average of calendar gaps, as a spreadsheet would compute it
    overdue_ratio: F64
    churn_probability: F64  # P(no order within horizon_days)
    p_alive: F64
    dropout: F64  # per-purchase probability of leaving, with signals
    retained_value: F64  # value over clv_horizon_days if the customer stays
    clv: F64  # expected remaining value over clv_horizon_days
    value_at_risk: F64
    total_amount: F64
    total_quantity: F64
    signals: I64  # bit mask, see app.risk.signals
    stage: npt.NDArray[np.int8]  # index into STAGES
    check_day: I64  # first day yellow, absent news (NO_DAY when no orders)
    red_day: I64
    lost_day: I64
    figures: CustomerFigures  # the history reductions behind the signals
    facts: EventFacts


@lru_cache(maxsize=64)
def _effective_clock(profile: SeasonProfile, first: int, last: int) -> EffectiveClock:
    return EffectiveClock(profile, first, last)


def _clock_for(
    profile: SeasonProfile, first_known: int | None, today: int, config: RiskConfig
) -> EffectiveClock:
    # A canonical span (ten years back, three ahead) lets one customer's online assessment
    # reuse the cached clock instead of rebuilding the calendar for every order.
    first = min(first_known - 1 if first_known is not None else today - 1, today - 3650)
    span_end = today + max(config.horizon_days, config.clv_horizon_days, LOOKAHEAD_DAYS)
    return _effective_clock(profile, first, span_end)


def online_clock(
    priors: ShopPriors, first_known: int | None, today: int, config: RiskConfig
) -> EffectiveClock:
    """The effective clock score_arrays uses for a customer scored with stored priors."""
    profile = SeasonProfile(priors.summer_rate, priors.festival_rate)
    return _clock_for(profile, first_known, today, config)


def season_profile(config: RiskConfig, order_days: I64) -> SeasonProfile:
    if config.seasonality == "none":
        return SeasonProfile()
    fallback = WATER_DEFAULT if config.seasonality == "water" else SeasonProfile()
    return estimate_profile(order_days, fallback)


def _threshold_t(rhythm_mu: F64, sd: F64, df: F64 | None, odds: F64, gone: F64) -> F64:
    """Effective days t at which P(gone) = 1 - P(alive) reaches `gone` (0 if already).

    `gone` is a column of levels: one row of results per level, one column per customer.
    """
    # odds / (odds + S) = gone  <=>  S = odds (1 - gone) / gone
    target = odds * (1 - gone) / gone
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.exp(rhythm_mu + sd * student_isf(df, np.minimum(target, 1.0)))
    result: F64 = np.where(target >= 1.0, 0.0, t)
    return result


CALIBRATION_SAMPLE = 100_000
IDENTITY_CALIBRATION = (0.0, 1.0, 0.0)
MIN_CALIBRATION_HISTORY_DAYS = 180


def _calibration(
    orders: OrderArrays, *, today: int, config: RiskConfig
) -> tuple[float, float, float]:
    """Fit the recalibration on past cutoffs whose outcome window has closed by `today`."""
    horizon = config.horizon_days
    known = orders.day <= today
    if not known.any():
        return IDENTITY_CALIBRATION
    first = int(orders.day[known].min())
    cutoffs = [today - horizon * (k + 1) for k in range(2)]
    cutoffs = [c for c in cutoffs if c - first >= MIN_CALIBRATION_HISTORY_DAYS]
    if not cutoffs:
        return IDENTITY_CALIBRATION
    sample = orders
    if orders.n_customers > CALIBRATION_SAMPLE:
        keep = np.zeros(orders.n_customers, dtype=bool)
        keep[:: orders.n_customers // CALIBRATION_SAMPLE] = True
        new_index = np.cumsum(keep) - 1
        rows = keep[orders.customer]
        sample = OrderArrays(
            customer=new_index[orders.customer[rows]],
            day=orders.day[rows],
            quantity=orders.quantity[rows],
            amount=orders.amount[rows],
            n_customers=int(keep.sum()),
        )
    raw, outcome, n_days = [], [], []
    past_config = replace(config, calibrate=False)
    for cutoff in cutoffs:
        scored = score_arrays(sample, as_of=from_epoch_day(cutoff), config=past_config)
        returned = np.zeros(sample.n_customers, dtype=bool)
        window = (sample.day > cutoff) & (sample.day <= cutoff + horizon)
        returned[sample.customer[window]] = True
        eligible = scored.n_orders >= 2
        raw.append(scored.churn_probability[eligible])
        outcome.append(~returned[eligible])
        n_days.append(scored.n_orders[eligible])
    return fit_platt(np.concatenate(raw), np.concatenate(outcome), np.concatenate(n_days))


@lru_cache(maxsize=64)
def _from_today(
    clock: EffectiveClock, today: int, horizon_days: int, clv_horizon_days: int
) -> tuple[float, float, float]:
    """E(today), and the effective days of the churn and value horizons from today.

    The same for every customer of a call and for every online call of a shop's day: read
    once (elapsed(x, y) is at(y) - at(x)).
    """
    at_today, at_horizon, at_clv = clock.at(
        [today, today + horizon_days, today + clv_horizon_days]
    ).tolist()
    return at_today, at_horizon - at_today, at_clv - at_today


_SIGNAL_BITS = {s.code: 1 << s.bit for s in SIGNALS}


def _fired_weights(mask: I64, config: RiskConfig) -> dict[str, float]:
    """The signal weights of the signals that fired for some customer.

    A signal that fired for nobody adds 0.0 to every offset: leaving it out gives the same
    sums without its pass over all customers (one customer online mostly fires none).
    """
    fired = int(np.bitwise_or.reduce(mask)) if mask.size else 0
    if not fired:
        return {}
    return {code: w for code, w in config.signal_weights.items() if fired & _SIGNAL_BITS[code]}


def score_arrays(
    orders: OrderArrays,
    *,
    as_of: date,
    config: RiskConfig | None = None,
    priors: ShopPriors | None = None,
    facts: EventFacts | None = None,
) -> ScoreArrays:
    """Assess every customer as of `as_of`; orders after it are ignored."""
    config = config or RiskConfig()
    n = orders.n_customers
    today = epoch_day(as_of)
    recorded = facts is not None
    facts = facts or EventFacts(n)
    known = orders.day[orders.day <= today]

    if priors is not None:
        profile = SeasonProfile(priors.summer_rate, priors.festival_rate)
    else:
        profile = season_profile(config, known)
    clock = _clock_for(profile, int(known.min()) if known.size else None, today, config)

    # A gap of years is a customer who left and came back, not their rhythm.
    max_rhythm_gap = max(365.0, 4 * config.default_interval_days)
    fig = reduce_history(orders, as_of_day=today, clock=clock, max_rhythm_gap=max_rhythm_gap)
    if priors is None:
        mu0, tau2, sigma2 = fit_rhythm_priors(fig, config.default_interval_days)
    else:
        mu0, tau2, sigma2 = priors.mu0, priors.tau2, priors.sigma2
    rhythm = posterior_rhythm(fig, mu0, tau2, sigma2)

    bought = fig.n_days > 0
    last = np.where(bought, fig.last_day, today)
    at_today, horizon, clv_horizon = _from_today(
        clock, today, config.horizon_days, config.clv_horizon_days
    )
    t_now = np.maximum(at_today - clock.at(last) - facts.paused_effective_days, 0.0)
    days_since = np.where(bought, (today - fig.last_day).astype(np.float64), np.nan)
    ratio = np.where(bought, t_now / rhythm.mean_gap, np.nan)

    mask = order_signals(
        recent_quantity=fig.recent_quantity,
        earlier_quantity=fig.earlier_quantity,
        last_gap_days=fig.last_gap_days,
        earlier_gap_mean=fig.earlier_gap_mean,
        recent_amount=fig.recent_amount,
        earlier_amount=fig.earlier_amount,
    )
    if recorded:  # neutral facts (none recorded) fire no event signal
        usual_quantity = np.where(bought, fig.total_quantity / np.maximum(fig.n_days, 1), 0.0)
        mask |= event_signals(
            facts, usual_quantity=usual_quantity, today=today, watch_days=config.recalled_watch_days
        )
    offset = signal_logit(mask, _fired_weights(mask, config))

    if priors is None:
        dropout_a, dropout_b = fit_dropout(fig, rhythm, t_now, offset)
        total_days = int(fig.n_days.sum())
        aov = float(fig.total_amount.sum() / total_days) if total_days else 0.0
        calib_a, calib_b, calib_c = (
            _calibration(orders, today=today, config=config)
            if config.calibrate
            else IDENTITY_CALIBRATION
        )
        priors = ShopPriors(
            mu0=mu0, tau2=tau2, sigma2=sigma2, dropout_a=dropout_a, dropout_b=dropout_b, aov=aov,
            summer_rate=profile.summer_rate, festival_rate=profile.festival_rate,
            n_customers=int(bought.sum()), calib_a=calib_a, calib_b=calib_b, calib_c=calib_c,
        )  # fmt: skip
    odds = leave_odds(priors.dropout_a, priors.dropout_b, fig.n_days, offset)
    # Per-purchase dropout from here on: the posterior mean after n purchases, with signals.
    survived = fig.n_days.astype(np.float64)
    p = np.clip(
        expit(logit(priors.dropout_a / (priors.dropout_a + priors.dropout_b + survived)) + offset),
        1e-6,
        0.999,
    )

    raw_churn, p_alive = churn_probability(t_now, np.asarray(horizon), rhythm, odds)
    churn = apply_platt(raw_churn, priors.calib_a, priors.calib_b, priors.calib_c, fig.n_days)
    moved = facts.moved_closed
    churn = np.where(moved, 1.0, np.where(bought, churn, np.nan))
    p_alive = np.where(moved, 0.0, np.where(bought, p_alive, np.nan))

    # Thresholds in effective days since the last order: the ratio rule and the probability
    # rule, whichever comes first. A recently recalled customer is watched 20 % more closely.
    g = rhythm.mean_gap
    recalled = has(mask, "recently_recalled")
    strict = np.where(recalled, 0.8, 1.0)

    def ratio_t(multiple: float, extra_days: int) -> F64:
        t = multiple * g
        if extra_days:
            t = np.minimum(t, g + extra_days)
        return t * strict

    # The three levels go through the special functions and the clock together (rows of one
    # array): a third of the calls, whose fixed cost is most of the time for one customer.
    levels = (config.quiet_probability, config.at_risk_probability, config.lost_probability)
    gone = np.array(levels).reshape(3, 1)
    yellow_p, red_p, lost_p = _threshold_t(rhythm.mu, rhythm.predictive_sd, rhythm.df, odds, gone)
    yellow_t = np.minimum(ratio_t(config.quiet_ratio, config.quiet_extra_days), yellow_p)
    red_t = np.minimum(ratio_t(config.at_risk_ratio, config.at_risk_extra_days), red_p)
    lost_t = np.minimum(ratio_t(config.lost_ratio, config.lost_extra_days), lost_p)
    paused = facts.paused_effective_days
    check_day, red_day, lost_day = clock.day_after(
        last, np.stack((yellow_t, red_t, lost_t)) + paused
    )
    lost_day = np.maximum(lost_day, last + config.lost_min_days + 1)

    # Interval stretch as signals too, so every alert lists its reason.
    mask |= np.where(bought & (today >= check_day), bit("interval_stretch"), 0)
    mask |= np.where(bought & (today >= red_day), bit("interval_stretch_red"), 0)
    # Recorded warnings (a complaint, a deleted contact) alert at once, whatever the rhythm.
    # Smaller or rarer orders only raise the probability: alone they are no reason to call
    # someone who ordered yesterday.
    warned = mask & EVENT_SIGNAL_MASK
    if warned.any():
        level = max_level(warned)
        check_day = np.where(level >= Level.YELLOW, np.minimum(check_day, today), check_day)
        red_day = np.where(level >= Level.RED, np.minimum(red_day, today), red_day)
        lost_day = np.where(level >= Level.LOST, np.minimum(lost_day, today), lost_day)

    stage = np.full(n, STAGE_CODE["active"], dtype=np.int8)
    stage[today >= check_day] = STAGE_CODE["quiet"]
    stage[today >= red_day] = STAGE_CODE["at_risk"]
    stage[today >= lost_day] = STAGE_CODE["lost"]
    came_back = recalled & (fig.last_day >= facts.recalled_day)
    stage[came_back & (stage == STAGE_CODE["active"])] = STAGE_CODE["recovered"]
    stage[~bought] = STAGE_CODE["new"]

    aov_c = (fig.total_amount + priors.aov) / (fig.n_days + 1)
    retained = np.where(moved, 0.0, expected_orders(np.asarray(clv_horizon), rhythm, p) * aov_c)
    clv = np.where(bought, retained * p_alive, 0.0)
    value_at_risk = np.where(bought, retained * churn, 0.0)

    for day_array in (check_day, red_day, lost_day):
        day_array[~bought] = NO_DAY
    return ScoreArrays(
        priors=priors,
        n_orders=fig.n_days,
        first_day=fig.first_day,
        last_day=fig.last_day,
        days_since_last=days_since,
        expected_interval_days=np.where(bought, g, math.exp(mu0)),
        mean_gap_days=fig.mean_gap_days,
        overdue_ratio=ratio,
        churn_probability=churn,
        p_alive=p_alive,
        dropout=p,
        retained_value=retained,
        clv=clv,
        value_at_risk=value_at_risk,
        total_amount=fig.total_amount,
        total_quantity=fig.total_quantity,
        signals=mask,
        stage=stage,
        check_day=check_day.astype(np.int64),
        red_day=red_day.astype(np.int64),
        lost_day=lost_day.astype(np.int64),
        figures=fig,
        facts=facts,
    )
