"""The one-customer scalar path (app/risk/single.py) gives the batch engine's numbers.

Random histories (same-day orders, far-past returns, orders after the assessment date,
unpriced orders), random owner records, random shop priors (seasons, Platt maps) and random
settings: every output of `score_one` must equal `score_arrays`' — the customer scored
alone and inside a batch of others — discrete outputs exactly, numbers to 1e-9.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.risk.assess import (
    OrderFact,
    assess_customer,
    assess_customer_arrays,
)
from app.risk.batch import STAGES, ScoreArrays, online_clock, score_arrays
from app.risk.config import DEFAULT_SIGNAL_WEIGHTS, RiskConfig
from app.risk.events import CustomerFacts, EventPoint, facts_array
from app.risk.history import OrderArrays
from app.risk.model import ShopPriors
from app.risk.season import epoch_day
from app.risk.single import _reduceat_sum, score_one

AS_OF = date(2026, 6, 17)
TODAY = epoch_day(AS_OF)
INTS = {"stage", "n_orders", "first_day", "last_day", "signals", "check_day", "red_day"}
INTS |= {"lost_day", "ignored_streak", "recalled_day"}


def reference(scores: ScoreArrays, i: int) -> dict[str, Any]:
    """Customer i of a batch in score_one's keys."""
    fig, facts = scores.figures, scores.facts
    arrays = {
        "n_orders": scores.n_orders,
        "first_day": scores.first_day,
        "last_day": scores.last_day,
        "days_since_last": scores.days_since_last,
        "expected_interval_days": scores.expected_interval_days,
        "mean_gap_days": scores.mean_gap_days,
        "overdue_ratio": scores.overdue_ratio,
        "churn_probability": scores.churn_probability,
        "p_alive": scores.p_alive,
        "dropout": scores.dropout,
        "retained_value": scores.retained_value,
        "clv": scores.clv,
        "value_at_risk": scores.value_at_risk,
        "total_amount": scores.total_amount,
        "total_quantity": scores.total_quantity,
        "signals": scores.signals,
        "check_day": scores.check_day,
        "red_day": scores.red_day,
        "lost_day": scores.lost_day,
        "last_quantity": fig.last_quantity,
        "recent_quantity": fig.recent_quantity,
        "earlier_quantity": fig.earlier_quantity,
        "last_gap_days": fig.last_gap_days,
        "earlier_gap_mean": fig.earlier_gap_mean,
        "recent_amount": fig.recent_amount,
        "earlier_amount": fig.earlier_amount,
        "ignored_streak": facts.ignored_streak,
        "satisfaction": facts.satisfaction,
        "ticket_balance": facts.ticket_balance,
        "recalled_day": facts.recalled_day,
    }
    row: dict[str, Any] = {k: v[i].item() for k, v in arrays.items()}
    row["stage"] = STAGES[int(scores.stage[i])]
    return row


def assert_same(got: dict[str, Any], want: dict[str, Any], label: object) -> None:
    assert got.keys() == want.keys()
    for key, value in want.items():
        other = got[key]
        if key in INTS:
            assert other == value, (label, key, other, value)
        elif math.isnan(value):
            assert math.isnan(other), (label, key, other)
        else:
            assert other == pytest.approx(value, rel=1e-9, abs=1e-12), (label, key, other, value)


def random_history(rng: random.Random) -> list[tuple[int, float, float]]:
    """(epoch day, quantity, amount) rows, any order."""
    shape = rng.random()
    n = 0 if shape < 0.05 else rng.randint(1, 3) if shape < 0.3 else rng.randint(4, 160)
    interval = rng.uniform(3, 60)
    day = TODAY - rng.randint(0, 900) - int(interval * n)
    rows = []
    for _ in range(n):
        quantity = float(rng.choice([1, 1, 2, 2, 3, 5, 12]))
        amount = rng.choice([0.0, quantity * 18, rng.randint(0, 99999) / 100])
        rows.append((day, quantity, amount))
        if rng.random() < 0.15:  # same-day orders
            for _ in range(rng.randint(1, 4)):
                rows.append((day, float(rng.randint(1, 4)), rng.randint(0, 9999) / 100))
        gap = rng.lognormvariate(math.log(interval), rng.uniform(0.05, 1.2))
        if rng.random() < 0.03:
            gap += rng.randint(400, 1500)  # left and came back
        day += max(1, round(gap))
    if rng.random() < 0.1:
        rows.append((TODAY + rng.randint(1, 30), 1.0, 18.0))  # after as_of: ignored
    if rng.random() < 0.05 and rows:
        rows.append((TODAY - 5000, 1.0, 18.0))  # beyond the canonical ten-year span
    rng.shuffle(rows)
    return rows


def random_facts(rng: random.Random) -> CustomerFacts:
    facts = CustomerFacts()
    if rng.random() < 0.5:
        return facts
    facts.ignored_streak = rng.choice([0, 0, 1, 2, 3, 4, 6])
    facts.cold_reply = rng.random() < 0.2
    facts.satisfaction = rng.choice([math.nan, 3.0, 7.5, 8.0, 10.0])
    facts.complaint_open = rng.random() < 0.15
    facts.contact_deleted = rng.random() < 0.1
    facts.had_tickets = rng.random() < 0.3
    facts.ticket_balance = float(rng.randint(-2, 20)) if facts.had_tickets else math.nan
    facts.deposit_refunded = rng.random() < 0.05
    facts.moved_closed = rng.random() < 0.05
    facts.recalled_day = TODAY - rng.randint(0, 200) if rng.random() < 0.2 else -1
    facts.paused_days = float(rng.choice([0, 0, 3, 10, 40]))
    return facts


def random_priors(rng: random.Random) -> ShopPriors:
    mu0 = math.log(rng.uniform(5, 60))
    # The count term comes from a side stream, so the histories drawn after stay as they were.
    side = random.Random(mu0)
    return ShopPriors(
        mu0=mu0,
        tau2=rng.uniform(0.02, 0.6),
        sigma2=rng.uniform(0.0225, 0.8),
        dropout_a=rng.uniform(0.05, 3),
        dropout_b=rng.uniform(1, 60),
        aov=rng.uniform(0, 200),
        summer_rate=rng.choice([1.0, 1.3, rng.uniform(0.5, 2)]),
        festival_rate=rng.choice([1.0, 0.4, rng.uniform(0.1, 1)]),
        calib_a=rng.choice([0.0, rng.uniform(-1, 1)]),
        calib_b=rng.choice([1.0, rng.uniform(0.3, 2)]),
        calib_c=side.choice([0.0, side.uniform(-1.5, 0)]),
    )


def random_config(rng: random.Random) -> RiskConfig:
    car = rng.random() < 0.25
    weights = {k: rng.uniform(0, 3) for k in DEFAULT_SIGNAL_WEIGHTS} if rng.random() < 0.2 else {}
    return RiskConfig(
        horizon_days=rng.choice([30, 90, 180]),
        quiet_extra_days=30 if car else 0,
        at_risk_extra_days=90 if car else 0,
        lost_extra_days=180 if car else 0,
        lost_min_days=rng.choice([0, 60]),
        default_interval_days=rng.choice([20.0, 7.0, 120.0]),
        recalled_watch_days=rng.choice([30, 90]),
        signal_weights={**DEFAULT_SIGNAL_WEIGHTS, **weights},
    )


def scalar(rows: list[tuple[int, float, float]], facts: CustomerFacts, **kw: Any) -> Any:
    days = [r[0] for r in rows]
    known = [d for d in days if d <= TODAY]
    clock = online_clock(kw["priors"], min(known) if known else None, TODAY, kw["config"])
    return score_one(
        days, [r[1] for r in rows], [r[2] for r in rows], facts, today=TODAY, clock=clock, **kw
    )


def batch(customers: list[list[tuple[int, float, float]]], facts: list[CustomerFacts], **kw: Any):  # type: ignore[no-untyped-def]
    flat = [(i, *row) for i, rows in enumerate(customers) for row in rows]
    orders = OrderArrays.from_lists(
        [r[0] for r in flat],
        [r[1] for r in flat],
        [r[2] for r in flat],
        [r[3] for r in flat],
        n_customers=len(customers),
    )
    return score_arrays(orders, as_of=AS_OF, facts=facts_array(facts), **kw)


def test_scalar_equals_the_batch_on_thousands_of_random_customers() -> None:
    rng = random.Random(20261122)
    checked = 0
    for shop in range(40):
        priors, config = random_priors(rng), random_config(rng)
        customers = [random_history(rng) for _ in range(60)]
        facts = [random_facts(rng) for _ in customers]
        together = batch(customers, facts, priors=priors, config=config)
        for i, rows in enumerate(customers):
            got = scalar(rows, facts[i], priors=priors, config=config)
            alone = batch([rows], [facts[i]], priors=priors, config=config)
            assert_same(got, reference(alone, 0), (shop, i, "alone"))
            assert_same(got, reference(together, i), (shop, i, "in a batch"))
            checked += 1
    assert checked == 2400


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(TODAY - 4000, TODAY + 10),
            st.integers(1, 50).map(float),
            st.integers(0, 100_000).map(lambda c: c / 100),
        ),
        max_size=40,
    ),
    st.integers(0, 2**31 - 1),
)
def test_scalar_equals_the_batch_for_any_history(
    rows: list[tuple[int, float, float]], seed: int
) -> None:
    rng = random.Random(seed)
    priors, config, facts = random_priors(rng), random_config(rng), random_facts(rng)
    got = scalar(rows, facts, priors=priors, config=config)
    assert_same(got, reference(batch([rows], [facts], priors=priors, config=config), 0), rows)


def test_assess_customer_equals_the_batch_assessment_with_events() -> None:
    rng = random.Random(7)
    kinds = ["outreach", "interaction", "complaint", "satisfaction", "tickets", "pause"]
    for k in range(200):
        rows = random_history(rng)
        orders = [OrderFact(day=date(1970, 1, 1) + timedelta(days=d), quantity=q, amount=a)
                  for d, q, a in rows]  # fmt: skip
        events = []
        for j in range(rng.randint(0, 6)):
            kind = rng.choice(kinds)
            data: dict[str, Any] = {
                "interaction": {"reaction": rng.choice(["warm", "none", "cold"])},
                "satisfaction": {"score": rng.randint(1, 10)},
                "tickets": {"change": rng.randint(-5, 20)},
                "pause": {"until": (AS_OF + timedelta(days=rng.randint(-20, 20))).isoformat()},
            }.get(kind, {})
            events.append(EventPoint(j + 1, kind, AS_OF - timedelta(days=rng.randint(0, 90)), data))
        priors, config = random_priors(rng), random_config(rng)
        kw: dict[str, Any] = {"priors": priors, "config": config, "as_of": AS_OF}
        got = assess_customer(orders, events, **kw)
        want = assess_customer_arrays(orders, events, **kw)
        assert same_assessment(got, want), (k, got, want)


def same_assessment(a: Any, b: Any) -> bool:
    """Equal, floats to 1e-9 (findings, dates and the stage exactly)."""
    for name in a.__dataclass_fields__:
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, float) and isinstance(y, float):
            if x != pytest.approx(y, rel=1e-9, abs=1e-12):
                return False
        elif x != y:
            return False
    return True


def test_reduceat_sum_is_numpys_summation_order() -> None:
    rng = np.random.default_rng(3)
    for n in [1, 2, 3, 7, 8, 9, 15, 16, 17, 100, 128, 129, 300, 1000, 5000]:
        values = rng.integers(0, 10**7, n) / 100 * rng.choice([1e-3, 1.0, 1e4])
        assert _reduceat_sum(values.tolist()) == float(np.add.reduceat(values, [0])[0]), n


def test_assessment_with_default_config_and_no_history() -> None:
    priors = random_priors(random.Random(1))
    config = replace(RiskConfig(), seasonality="water")
    got = scalar([], CustomerFacts(), priors=priors, config=config)
    assert got["stage"] == "new" and got["check_day"] == -1
