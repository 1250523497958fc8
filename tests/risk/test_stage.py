"""Hand-computed cases for the first stage rule (days since last order vs 1.5x / 2x interval)."""

from datetime import date, timedelta

import pytest

from app.risk.stage import (
    OrderPoint,
    Stage,
    StageRule,
    overdue_ratio,
    stage_on,
    summarize_history,
    usual_quantity,
)

RULE = StageRule()
START = date(2026, 1, 1)


def every(days: int, count: int, start: date = START) -> list[OrderPoint]:
    return [OrderPoint(start + timedelta(days=days * i), 2, 3600) for i in range(count)]


def stage_after(points: list[OrderPoint], days_since_last: int, rule: StageRule = RULE) -> Stage:
    s = summarize_history(points, rule)
    assert s.last_order_on is not None
    today = s.last_order_on + timedelta(days=days_since_last)
    return stage_on(check_on=s.check_on, red_on=s.red_on, lost_on=s.lost_on, today=today)


def test_regular_25_day_customer_has_25_day_interval_and_totals() -> None:
    s = summarize_history(every(25, 10), RULE)
    assert s.order_count == 10
    assert s.total_quantity == 20
    assert s.total_amount_cents == 36000
    assert s.mean_interval_days == 25.0
    assert s.median_interval_days == 25.0
    assert s.expected_interval_days == 25.0
    assert s.first_order_on == START
    assert s.last_order_on == START + timedelta(days=225)


@pytest.mark.parametrize(
    ("days_since", "expected"),
    [
        (0, Stage.ACTIVE),
        (25, Stage.ACTIVE),
        (37, Stage.ACTIVE),  # 37 <= 37.5
        (38, Stage.QUIET),  # 38 > 1.5 x 25: 王姐 in the demo
        (50, Stage.QUIET),  # 50 = 2 x 25 is not yet "more than 2x"
        (51, Stage.AT_RISK),
        (75, Stage.AT_RISK),  # lost needs more than 3 x 25 = 75
        (76, Stage.LOST),
    ],
)
def test_stage_thresholds_for_a_25_day_customer(days_since: int, expected: Stage) -> None:
    assert stage_after(every(25, 10), days_since) is expected


def test_short_rhythm_customer_is_not_lost_before_the_minimum() -> None:
    # 7-day rhythm: 3 x 7 = 21 days, but nobody is called lost before 60 days.
    assert stage_after(every(7, 20), 22) is Stage.AT_RISK
    assert stage_after(every(7, 20), 60) is Stage.AT_RISK
    assert stage_after(every(7, 20), 61) is Stage.LOST


def test_single_order_uses_the_shop_default_interval() -> None:
    rule = StageRule(default_interval_days=20)
    s = summarize_history([OrderPoint(START, 1)], rule)
    assert s.mean_interval_days is None
    assert s.expected_interval_days == 20
    assert s.check_on == START + timedelta(days=31)  # first day with > 30 days
    assert s.red_on == START + timedelta(days=41)


def test_same_day_orders_count_as_one_purchase_occasion() -> None:
    points = [OrderPoint(START, 1), OrderPoint(START, 2), OrderPoint(START + timedelta(days=10), 1)]
    s = summarize_history(points, RULE)
    assert s.order_count == 3
    assert s.mean_interval_days == 10.0
    assert s.last_quantity == 1


def test_order_of_input_does_not_matter() -> None:
    points = every(12, 6)
    assert summarize_history(points, RULE) == summarize_history(list(reversed(points)), RULE)


def test_mean_and_median_differ_on_an_outlier_gap() -> None:
    days = [0, 10, 20, 30, 100]
    s = summarize_history([OrderPoint(START + timedelta(days=d)) for d in days], RULE)
    assert s.mean_interval_days == 25.0
    assert s.median_interval_days == 10.0


def test_no_orders_is_new() -> None:
    s = summarize_history([], RULE)
    assert s.order_count == 0 and s.check_on is None
    assert stage_on(check_on=None, red_on=None, lost_on=None, today=START) is Stage.NEW


def test_overdue_ratio_is_days_over_interval() -> None:
    assert overdue_ratio(
        last_order_on=START, expected_interval_days=25, today=START + timedelta(days=38)
    ) == pytest.approx(1.52)


def test_usual_quantity_prefers_the_most_common_then_larger() -> None:
    assert usual_quantity([2, 2, 1, 3]) == 2
    assert usual_quantity([1, 3]) == 3
    assert usual_quantity([]) is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"quiet_ratio": 2.0, "at_risk_ratio": 1.5},
        {"quiet_ratio": 0.5},
        {"default_interval_days": 0},
        {"lost_min_days": -1},
    ],
)
def test_invalid_rules_are_refused_when_built(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        StageRule(**kwargs)  # type: ignore[arg-type]


def test_rule_from_shop_settings_ignores_unrelated_keys() -> None:
    rule = StageRule.from_settings({"quiet_ratio": 1.3, "unit": "桶", "default_interval_days": 14})
    assert rule.quiet_ratio == 1.3
    assert rule.default_interval_days == 14
