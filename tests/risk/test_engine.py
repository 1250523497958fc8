"""The risk engine: hand-computed figures, each signal, the formulas, properties, batch = online."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import date, timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.risk.assess import Assessment, OrderFact, assess_customer, assessment_at
from app.risk.batch import STAGES, score_arrays
from app.risk.config import RiskConfig
from app.risk.events import EventPoint, customer_facts, facts_array
from app.risk.history import OrderArrays, reduce_history
from app.risk.model import Rhythm, ShopPriors, apply_platt, churn_probability, fit_platt
from app.risk.season import (
    EffectiveClock,
    SeasonProfile,
    epoch_day,
    estimate_profile,
    spring_festival,
)
from app.risk.signals import EventFacts, codes

AS_OF = date(2026, 6, 17)
FLAT = RiskConfig(seasonality="none", calibrate=False)
# Priors of a shop whose customers order every ~20 days, leave rarely.
PRIORS = ShopPriors(
    mu0=math.log(20), tau2=0.1, sigma2=0.02, dropout_a=0.5, dropout_b=20.0, aov=36.0
)
# The same shop with a fitted recalibration, count term included (as CDNOW's past gives).
RECALIBRATED = replace(PRIORS, calib_a=0.9, calib_b=0.45, calib_c=-0.7)


def regular(days_between: int, count: int, last: date, quantity: float = 2.0) -> list[OrderFact]:
    """`count` orders every `days_between` days, the last on `last`."""
    return [
        OrderFact(
            day=last - timedelta(days=days_between * k), quantity=quantity, amount=18 * quantity
        )
        for k in reversed(range(count))
    ]


def assess(
    orders: list[OrderFact],
    events: list[EventPoint] | None = None,
    as_of: date = AS_OF,
    config: RiskConfig = FLAT,
    priors: ShopPriors = PRIORS,
) -> Assessment:
    return assess_customer(orders, events or [], priors=priors, config=config, as_of=as_of)


def arrays(orders_by_customer: list[list[OrderFact]]) -> OrderArrays:
    customer, day, quantity, amount = [], [], [], []
    for i, orders in enumerate(orders_by_customer):
        for o in orders:
            customer.append(i)
            day.append(epoch_day(o.day))
            quantity.append(o.quantity)
            amount.append(o.amount)
    return OrderArrays.from_lists(customer, day, quantity, amount, len(orders_by_customer))


# --- history reductions, by hand -------------------------------------------------------


def test_history_figures_for_a_small_hand_made_history() -> None:
    d0 = date(2026, 1, 1)
    orders = [
        OrderFact(d0, 2, 36), OrderFact(d0, 1, 18),  # same day: one purchase day of 3
        OrderFact(d0 + timedelta(days=10), 2, 36),
        OrderFact(d0 + timedelta(days=30), 2, 36),
        OrderFact(d0 + timedelta(days=40), 1, 18),
        OrderFact(d0 + timedelta(days=80), 1, 18),
    ]  # fmt: skip
    clock = EffectiveClock(SeasonProfile(), epoch_day(d0) - 1, epoch_day(AS_OF) + 10)
    fig = reduce_history(arrays([orders]), as_of_day=epoch_day(AS_OF), clock=clock)
    assert fig.n_days[0] == 5 and fig.n_orders[0] == 6
    assert fig.total_quantity[0] == 9 and fig.total_amount[0] == 162
    assert fig.gap_count[0] == 4
    assert fig.mean_gap_days[0] == pytest.approx((10 + 20 + 10 + 40) / 4)
    assert fig.last_gap_days[0] == 40
    assert fig.earlier_gap_mean[0] == pytest.approx((10 + 20) / 2)  # gaps before the last two
    assert fig.last_quantity[0] == 1
    assert fig.recent_quantity[0] == pytest.approx(1.0)  # last two days: 1 and 1
    assert fig.earlier_quantity[0] == pytest.approx((3 + 2 + 2) / 3)
    assert fig.first_day[0] == epoch_day(d0) and fig.last_day[0] == epoch_day(
        d0 + timedelta(days=80)
    )


def test_orders_after_as_of_are_ignored() -> None:
    history = regular(20, 10, AS_OF - timedelta(days=30))
    future = [OrderFact(AS_OF + timedelta(days=1), 2, 36)]
    assert assess(history) == assess(history + future)


# --- the formulas ---------------------------------------------------------------------


def test_churn_probability_matches_the_closed_form_by_hand() -> None:
    mu, sd, odds, t, h = math.log(25), 0.2, 0.05, 38.0, 90.0
    rhythm = Rhythm(mu=np.array([mu]), sigma2=np.array([sd**2]), predictive_sd=np.array([sd]),
                    mean_gap=np.array([math.exp(mu + sd**2 / 2)]))  # fmt: skip

    def s(x: float) -> float:
        return 0.5 * math.erfc((math.log(x) - mu) / sd / math.sqrt(2))

    churn, alive = churn_probability(np.array([t]), np.array([h]), rhythm, np.array([odds]))
    assert alive[0] == pytest.approx(s(t) / (odds + s(t)))
    assert churn[0] == pytest.approx((odds + s(t + h)) / (odds + s(t)))


def test_platt_fit_recovers_a_known_miscalibration() -> None:
    rng = np.random.default_rng(1)
    raw = rng.uniform(0.01, 0.99, 20_000)
    truth = apply_platt(raw, -0.5, 0.6)
    outcome = rng.uniform(size=raw.size) < truth
    a, b, c = fit_platt(raw, outcome)
    assert a == pytest.approx(-0.5, abs=0.1) and b == pytest.approx(0.6, abs=0.1) and c == 0.0
    # Already calibrated data keeps (about) the identity.
    a, b, c = fit_platt(raw, rng.uniform(size=raw.size) < raw)
    assert a == pytest.approx(0.0, abs=0.1) and b == pytest.approx(1.0, abs=0.1) and c == 0.0


def test_recalibration_with_a_count_term_by_hand() -> None:
    # logit(p') = a + b logit(p) + c log(n): 0.2 + 0.8 logit(0.6) - 0.5 log 4
    raw, n_days = np.array([0.6, 0.6, 0.6]), np.array([1, 4, 0])
    got = apply_platt(raw, 0.2, 0.8, -0.5, n_days)
    z4 = 0.2 + 0.8 * math.log(0.6 / 0.4) - 0.5 * math.log(4)
    z1 = 0.2 + 0.8 * math.log(0.6 / 0.4)  # log 1 = 0; no purchase days counts as one
    assert got[1] == pytest.approx(1 / (1 + math.exp(-z4)), rel=1e-12)
    assert got[0] == pytest.approx(1 / (1 + math.exp(-z1)), rel=1e-12) == got[2]
    assert got[1] < got[0]  # more purchase days, less likely to leave (c < 0)
    # Without a count term n_days is not needed, and the identity returns the input itself.
    assert apply_platt(raw, 0.0, 1.0) is raw
    with pytest.raises(ValueError):
        apply_platt(raw, 0.2, 0.8, -0.5)


def _count_offset_data(size: int, c: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    raw = rng.uniform(0.02, 0.98, size)
    n_days = rng.integers(2, 40, size)
    truth = apply_platt(raw, 0.3, 0.7, c, n_days)
    return raw, rng.uniform(size=size) < truth, n_days


def test_recalibration_learns_a_count_offset_from_a_large_past() -> None:
    raw, outcome, n_days = _count_offset_data(40_000, -0.8, 2)
    a, b, c = fit_platt(raw, outcome, n_days)
    assert c == pytest.approx(-0.8, abs=0.1)
    assert a == pytest.approx(0.3, abs=0.25) and b == pytest.approx(0.7, abs=0.1)


def test_a_small_shop_keeps_about_the_plain_map() -> None:
    # 50 customers scored at two past cutoffs: the count term barely moves from 0.
    raw, outcome, n_days = _count_offset_data(100, -0.8, 3)
    _, _, c = fit_platt(raw, outcome, n_days)
    assert -0.25 < c <= 0.0
    # Too little past: no map at all.
    assert fit_platt(raw[:40], outcome[:40], n_days[:40]) == (0.0, 1.0, 0.0)


def test_the_count_term_never_makes_more_purchases_look_riskier() -> None:
    raw, outcome, n_days = _count_offset_data(40_000, +0.8, 4)
    _, _, c = fit_platt(raw, outcome, n_days)
    assert c == 0.0


def test_priors_stored_without_the_count_term_load_with_none() -> None:
    stored = replace(PRIORS, calib_a=0.3, calib_b=0.7).to_dict()
    del stored["calib_c"]
    loaded = ShopPriors.from_dict(stored)
    assert loaded.calib_c == 0.0 and loaded == replace(PRIORS, calib_a=0.3, calib_b=0.7)
    assert ShopPriors.from_dict(RECALIBRATED.to_dict()) == RECALIBRATED


# --- stages and the interval rule -----------------------------------------------------


def test_a_regular_customer_moves_through_the_stages_in_order() -> None:
    order = ["active", "quiet", "at_risk", "lost"]
    stages = [
        assess(regular(20, 12, AS_OF - timedelta(days=20 + late))).stage
        for late in (0, 3, 8, 15, 30, 60, 120, 400)
    ]
    assert stages[0] == "active" and stages[-1] == "lost"
    assert [order.index(s) for s in stages] == sorted(order.index(s) for s in stages)
    assert "at_risk" in stages  # it is not a jump from fine to gone


def test_stage_dates_follow_the_ratio_rule_for_an_erratic_customer() -> None:
    erratic = [AS_OF - timedelta(days=d) for d in (400, 370, 300, 290, 200, 150, 140, 60)]
    a = assess([OrderFact(d, 2, 36) for d in erratic])
    last = erratic[-1]
    interval = a.expected_interval_days
    assert a.check_on is not None and a.red_on is not None and a.lost_on is not None
    assert last < a.check_on <= last + timedelta(days=math.floor(1.5 * interval) + 1)
    assert a.check_on <= a.red_on <= a.lost_on


def test_interval_stretch_explains_itself_with_its_figures() -> None:
    a = assess(regular(25, 15, AS_OF - timedelta(days=38)))
    found = {f.code: f for f in a.findings}
    assert "interval_stretch" in found
    figures = found["interval_stretch"].figures
    assert figures["days_since_last"] == 38
    assert figures["interval"] == pytest.approx(25, abs=1)
    assert figures["ratio"] == pytest.approx(38 / a.expected_interval_days, abs=0.01)


def test_car_pack_extra_days_bring_the_yellow_date_forward() -> None:
    car = replace(FLAT, quiet_extra_days=30, at_risk_extra_days=90, default_interval_days=120)
    history = regular(120, 6, AS_OF - timedelta(days=10))
    plain, cycle = assess(history), assess(history, config=car)
    assert cycle.check_on is not None and plain.check_on is not None
    assert cycle.check_on <= plain.check_on


# --- each signal, hand-made -----------------------------------------------------------


def test_size_drop_fires_when_two_buckets_become_one() -> None:
    orders = regular(20, 6, AS_OF - timedelta(days=40), quantity=2)
    orders += [OrderFact(AS_OF - timedelta(days=20), 1, 18), OrderFact(AS_OF, 1, 18)]
    assert "size_drop" in {f.code for f in assess(orders).findings}


def test_frequency_drop_fires_when_the_last_gap_doubles() -> None:
    orders = [*regular(10, 8, AS_OF - timedelta(days=25)), OrderFact(AS_OF, 2, 36)]
    assert "frequency_drop" in {f.code for f in assess(orders).findings}


def test_ticket_drop_fires_on_a_smaller_bill_at_the_same_quantity() -> None:
    orders = [OrderFact(AS_OF - timedelta(days=100 - 20 * k), 1, 1500) for k in range(4)]
    orders += [OrderFact(AS_OF - timedelta(days=20), 1, 800), OrderFact(AS_OF, 1, 800)]
    found = {f.code for f in assess(orders).findings}
    assert "ticket_drop" in found and "size_drop" not in found


def test_no_signal_fires_for_a_steady_customer_who_just_ordered() -> None:
    a = assess(regular(20, 12, AS_OF))
    assert a.findings == ()
    assert a.stage == "active"


def event(i: int, kind: str, days_ago: int, **data: object) -> EventPoint:
    return EventPoint(id=i, kind=kind, day=AS_OF - timedelta(days=days_ago), data=dict(data))


STEADY = regular(20, 12, AS_OF - timedelta(days=5))


@pytest.mark.parametrize(
    ("events", "code", "stage"),
    [
        ([event(1, "outreach", 3), event(2, "outreach", 2)], "ignored_2", "quiet"),
        ([event(i, "outreach", 4 - i) for i in range(4)], "ignored_4", "at_risk"),
        ([event(1, "interaction", 2, reaction="cold")], "cold_reply", "quiet"),
        ([event(1, "satisfaction", 2, score=6)], "low_satisfaction", "quiet"),
        ([event(1, "complaint", 2, text="送水慢")], "complaint_open", "at_risk"),
        ([event(1, "contact_deleted", 1)], "contact_deleted", "at_risk"),
        ([event(1, "tickets", 60, change=20), event(2, "tickets", 2, change=-19)],
         "tickets_running_out", "quiet"),
        ([event(1, "tickets", 60, change=10), event(2, "tickets", 2, change=-10)],
         "tickets_not_renewed", "quiet"),
        ([event(1, "deposit", 300, change=2), event(2, "deposit", 1, change=-2)],
         "deposit_refunded", "at_risk"),
        ([event(1, "outcome", 1, outcome="lost", reason="搬家/倒闭")], "moved_closed", "lost"),
    ],
)  # fmt: skip
def test_each_recorded_warning_fires_its_signal_and_stage(
    events: list[EventPoint], code: str, stage: str
) -> None:
    calm = assess(STEADY)
    warned = assess(STEADY, events)
    assert code in {f.code for f in warned.findings}
    assert warned.stage == stage
    assert warned.churn_probability is not None and calm.churn_probability is not None
    assert warned.churn_probability >= calm.churn_probability


def test_moved_away_is_certain_and_worth_nothing_more() -> None:
    a = assess(STEADY, [event(1, "outcome", 1, outcome="lost", reason="搬家/倒闭")])
    assert a.churn_probability == 1.0 and a.p_alive == 0.0 and a.retained_value == 0.0


def test_a_warm_reply_resets_the_ignored_streak() -> None:
    events = [
        event(1, "outreach", 4),
        event(2, "outreach", 3),
        event(3, "interaction", 2, reaction="warm"),
    ]
    assert "ignored_2" not in {f.code for f in assess(STEADY, events).findings}


def test_a_resolved_complaint_no_longer_counts() -> None:
    events = [event(1, "complaint", 3), event(2, "complaint_resolved", 1, complaint_ids=[1])]
    assert "complaint_open" not in {f.code for f in assess(STEADY, events).findings}


def test_an_undone_event_is_ignored() -> None:
    events = [event(1, "complaint", 3), event(2, "undo", 1, event_ids=[1])]
    assert assess(STEADY, events) == assess(STEADY)


def test_a_recalled_customer_who_orders_again_is_recovered() -> None:
    back = regular(20, 12, AS_OF - timedelta(days=1))
    a = assess(back, [event(1, "outcome", 10, outcome="recovered")])
    assert a.stage == "recovered"
    assert "recently_recalled" in {f.code for f in a.findings}


def test_a_reported_pause_moves_the_check_date_later() -> None:
    history = regular(20, 12, AS_OF - timedelta(days=25))
    paused = assess(history, [event(1, "pause", 24, until=(AS_OF - timedelta(days=4)).isoformat())])
    plain = assess(history)
    assert plain.check_on is not None and paused.check_on is not None
    assert paused.check_on > plain.check_on


# --- seasons ----------------------------------------------------------------------------


def test_the_spring_festival_counts_for_less_than_ordinary_days() -> None:
    festival = spring_festival(2026)
    profile = SeasonProfile(summer_rate=1.3, festival_rate=0.4)
    clock = EffectiveClock(profile, epoch_day(date(2025, 1, 1)), epoch_day(date(2027, 1, 1)))
    around = clock.elapsed(
        epoch_day(festival - timedelta(days=10)), epoch_day(festival + timedelta(days=10))
    )
    ordinary = clock.elapsed(epoch_day(date(2026, 4, 1)), epoch_day(date(2026, 4, 21)))
    summer = clock.elapsed(epoch_day(date(2026, 7, 1)), epoch_day(date(2026, 7, 21)))
    assert around.item() < ordinary.item() == 20.0 < summer.item()


def test_season_rates_are_measured_from_a_shops_orders() -> None:
    rng = np.random.default_rng(3)
    truth = SeasonProfile(summer_rate=1.4, festival_rate=0.3)
    first, last = epoch_day(date(2024, 1, 1)), epoch_day(date(2026, 6, 1))
    rates = truth.rates(first, last)
    counts = rng.poisson(20 * rates)
    days = np.repeat(np.arange(first, last + 1), counts)
    found = estimate_profile(days, SeasonProfile())
    assert found.summer_rate == pytest.approx(1.4, abs=0.1)
    assert found.festival_rate == pytest.approx(0.3, abs=0.1)


# --- properties -------------------------------------------------------------------------

histories = st.tuples(
    st.integers(min_value=5, max_value=60),  # usual interval
    st.integers(min_value=2, max_value=25),  # orders so far
    st.integers(min_value=1, max_value=5),  # usual quantity
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories, st.integers(min_value=0, max_value=400))
def test_probabilities_stay_between_zero_and_one(history: tuple[int, int, int], late: int) -> None:
    interval, count, quantity = history
    for priors in (PRIORS, RECALIBRATED):
        a = assess(regular(interval, count, AS_OF - timedelta(days=late), quantity), priors=priors)
        for p in (a.churn_probability, a.p_alive):
            assert p is not None and 0.0 <= p <= 1.0
        assert a.value_at_risk >= 0 and a.clv >= 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories)
def test_an_order_at_the_usual_size_and_rhythm_never_raises_churn(
    history: tuple[int, int, int],
) -> None:
    interval, count, quantity = history
    before = regular(interval, count, AS_OF - timedelta(days=interval), quantity)
    after = [*before, OrderFact(AS_OF, quantity, 18 * quantity)]
    for priors in (PRIORS, RECALIBRATED):
        p_before = assess(before, priors=priors).churn_probability
        p_after = assess(after, priors=priors).churn_probability
        assert p_before is not None and p_after is not None
        assert p_after <= p_before + 1e-12


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories, st.integers(min_value=0, max_value=60))
def test_adding_a_far_past_order_changes_little(history: tuple[int, int, int], late: int) -> None:
    interval, count, quantity = history
    orders = regular(interval, max(count, 4), AS_OF - timedelta(days=late), quantity)
    ancient = OrderFact(orders[0].day - timedelta(days=3 * 365), quantity, 18 * quantity)
    p, q = assess(orders).churn_probability, assess([ancient, *orders]).churn_probability
    assert p is not None and q is not None
    assert abs(p - q) <= 0.1


def test_no_orders_means_no_probability_and_stage_new() -> None:
    a = assess([])
    assert a.stage == "new" and a.churn_probability is None and a.check_on is None


# --- one code path: batch equals online -------------------------------------------------


@pytest.mark.parametrize("priors", [PRIORS, RECALIBRATED], ids=["plain", "recalibrated"])
def test_batch_and_online_give_the_same_numbers(priors: ShopPriors) -> None:
    rng = np.random.default_rng(5)
    customers = []
    for i in range(40):
        interval = int(rng.integers(7, 40))
        count = int(rng.integers(1, 15))
        late = int(rng.integers(0, 120))
        customers.append(regular(interval, count, AS_OF - timedelta(days=late), 1 + i % 3))
    events = {3: [event(1, "complaint", 2)], 7: [event(2, "outreach", 3), event(3, "outreach", 1)]}
    last_orders = [max(o.day for o in c) for c in customers]
    facts = facts_array(
        [
            customer_facts(events.get(i, []), last_order=last_orders[i], today=AS_OF)
            for i in range(40)
        ]
    )
    batch = score_arrays(arrays(customers), as_of=AS_OF, config=FLAT, priors=priors, facts=facts)
    for i, orders in enumerate(customers):
        online = assess(orders, events.get(i, []), priors=priors)
        offline = assessment_at(batch, i)
        assert online.stage == offline.stage == STAGES[int(batch.stage[i])]
        assert online.check_on == offline.check_on and online.findings == offline.findings
        for name in (
            "churn_probability",
            "p_alive",
            "clv",
            "value_at_risk",
            "expected_interval_days",
        ):
            assert getattr(online, name) == pytest.approx(getattr(offline, name), rel=1e-9), (
                i,
                name,
            )


def test_fitting_on_a_file_stores_priors_that_reproduce_its_scores() -> None:
    rng = np.random.default_rng(8)
    customers = [
        regular(
            int(rng.integers(7, 30)),
            int(rng.integers(2, 20)),
            AS_OF - timedelta(days=int(rng.integers(0, 90))),
        )
        for _ in range(300)
    ]
    fitted = score_arrays(arrays(customers), as_of=AS_OF, config=RiskConfig(seasonality="none"))
    again = score_arrays(
        arrays(customers), as_of=AS_OF, config=RiskConfig(seasonality="none"), priors=fitted.priors
    )
    np.testing.assert_allclose(fitted.churn_probability, again.churn_probability, rtol=1e-12)
    assert list(fitted.stage) == list(again.stage)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"quiet_ratio": 2.5},
        {"quiet_probability": 0.9},
        {"horizon_days": 0},
        {"seasonality": "monsoon"},
        {"signal_weights": {"astrology": 1.0}},
        {"quiet_extra_days": -1},
    ],
)
def test_bad_risk_settings_are_refused_when_loaded(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RiskConfig(**kwargs)  # type: ignore[arg-type]


def test_event_facts_must_match_the_customer_count() -> None:
    with pytest.raises(ValueError):
        EventFacts(3, complaint_open=np.zeros(2, dtype=bool))


def test_signal_codes_round_trip_through_the_mask() -> None:
    a = assess(STEADY, [event(1, "complaint", 2), event(2, "satisfaction", 1, score=5)])
    assert {f.code for f in a.findings} >= {"complaint_open", "low_satisfaction"}
    assert codes(0) == []
