"""Threshold days do not depend on where a clock's table starts (shop vs one customer)."""

from __future__ import annotations

from datetime import date

import numpy as np

from app.risk.batch import online_clock
from app.risk.config import RiskConfig
from app.risk.model import ShopPriors
from app.risk.season import WATER_DEFAULT, EffectiveClock, epoch_day

SPAN_END = epoch_day(date(2026, 12, 31))


def test_a_threshold_on_a_whole_day_gives_the_same_day_whatever_the_clock_start() -> None:
    # A shop's clock starts at its first order; one customer's at theirs; the one the engine
    # builds for a customer scored alone online ten years back. Summed from different first
    # days, the cumulative tables differ in the last bits, and a threshold that lands exactly
    # on a whole day (1.5 x 10 days) used to fall on either side of it.
    shop = EffectiveClock(WATER_DEFAULT, epoch_day(date(2023, 1, 1)), SPAN_END)
    customer = EffectiveClock(WATER_DEFAULT, epoch_day(date(2025, 3, 1)), SPAN_END)
    priors = ShopPriors(
        mu0=2.3, tau2=0.2, sigma2=0.2, dropout_a=0.5, dropout_b=10.0, aov=20.0,
        summer_rate=WATER_DEFAULT.summer_rate, festival_rate=WATER_DEFAULT.festival_rate,
    )  # fmt: skip
    alone = online_clock(
        priors, epoch_day(date(2025, 3, 1)), epoch_day(date(2026, 6, 17)), RiskConfig()
    )
    starts = np.arange(epoch_day(date(2025, 3, 1)), epoch_day(date(2026, 6, 1)))
    checked = 0
    for effective in (3.0, 5.0, 7.0, 10.0, 15.0, 20.0, 30.0):
        # One customer reads the clock with a length-1 array, the batch with all at once.
        all_at_once = shop.day_after(starts, np.full(starts.size, effective))
        for start, batch_day in zip(starts.tolist(), all_at_once.tolist(), strict=True):
            day = int(shop.day_after(start, effective)[0])
            assert int(customer.day_after(start, effective)[0]) == day, (start, effective)
            assert int(alone.day_after(np.array([start]), np.array([effective]))[0]) == day
            assert batch_day == day
            checked += 1
    assert checked == 3199


def test_the_threshold_day_is_the_first_day_strictly_past_it() -> None:
    clock = EffectiveClock(WATER_DEFAULT, epoch_day(date(2024, 1, 1)), SPAN_END)
    start = epoch_day(date(2025, 10, 10))  # ordinary days: one effective day per day
    assert int(clock.day_after(start, 10.0)[0]) == start + 11
    assert int(clock.day_after(start, 10.5)[0]) == start + 11
    assert int(clock.day_after(start, 9.99)[0]) == start + 10
