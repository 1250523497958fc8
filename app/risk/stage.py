"""The first, plain stage rule: days since the last order against the usual interval.

Pure functions over a customer's order history. The risk-engine issue replaces the
interval estimate and adds probabilities; the interface (history in, summary out) stays.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum


class Stage(StrEnum):
    """Where a customer is on the way from active to lost."""

    NEW = "new"  # no order yet
    ACTIVE = "active"
    QUIET = "quiet"  # yellow: past 1.5x their usual interval
    AT_RISK = "at_risk"  # red: past 2x
    LOST = "lost"


STAGE_LABELS = {
    Stage.NEW: "新客户",
    Stage.ACTIVE: "正常",
    Stage.QUIET: "需关注",
    Stage.AT_RISK: "高风险",
    Stage.LOST: "已流失",
}


@dataclass(frozen=True)
class StageRule:
    """Thresholds as multiples of the customer's usual interval (configurable per shop)."""

    quiet_ratio: float = 1.5
    at_risk_ratio: float = 2.0
    lost_ratio: float = 3.0
    # Never call a customer lost before this many days, however short their rhythm.
    lost_min_days: int = 60
    # The interval assumed for a customer with a single order day.
    default_interval_days: float = 20.0

    def __post_init__(self) -> None:
        if not 1.0 <= self.quiet_ratio < self.at_risk_ratio < self.lost_ratio:
            raise ValueError("stage ratios must satisfy 1 <= quiet < at_risk < lost")
        if self.default_interval_days <= 0 or self.lost_min_days < 0:
            raise ValueError("default interval must be positive and lost_min_days >= 0")

    @classmethod
    def from_settings(cls, settings: dict[str, object]) -> StageRule:
        """Build from a shop's settings dict (keys as field names); unknown keys are ignored."""
        known = {k: settings[k] for k in cls.__dataclass_fields__ if k in settings}
        return cls(**known)  # type: ignore[arg-type]


@dataclass(frozen=True)
class OrderPoint:
    """What the rule needs to know about one order."""

    order_date: date
    quantity: int = 1
    amount_cents: int | None = None


@dataclass(frozen=True)
class HistorySummary:
    """Figures derived from a customer's orders; stored as CustomerSummary."""

    first_order_on: date | None
    last_order_on: date | None
    order_count: int
    total_quantity: int
    total_amount_cents: int
    last_quantity: int | None
    mean_interval_days: float | None
    median_interval_days: float | None
    expected_interval_days: float | None
    check_on: date | None
    red_on: date | None
    lost_on: date | None


def _first_day_past(last: date, ratio: float, interval: float) -> date:
    # "days since > ratio x interval" first holds on floor(ratio x interval) + 1 days.
    return last + timedelta(days=math.floor(ratio * interval) + 1)


def summarize_history(orders: Iterable[OrderPoint], rule: StageRule) -> HistorySummary:
    """Summarise a customer's orders (any order); intervals count distinct order days."""
    points = sorted(orders, key=lambda o: o.order_date)
    if not points:
        return HistorySummary(None, None, 0, 0, 0, None, None, None, None, None, None, None)
    days = sorted({o.order_date for o in points})
    gaps = [(b - a).days for a, b in itertools.pairwise(days)]
    mean = sum(gaps) / len(gaps) if gaps else None
    median = float(statistics.median(gaps)) if gaps else None
    expected = mean if mean is not None else rule.default_interval_days
    last = days[-1]
    lost_days = max(rule.lost_ratio * expected, float(rule.lost_min_days))
    return HistorySummary(
        first_order_on=days[0],
        last_order_on=last,
        order_count=len(points),
        total_quantity=sum(o.quantity for o in points),
        total_amount_cents=sum(o.amount_cents or 0 for o in points),
        last_quantity=sum(o.quantity for o in points if o.order_date == last),
        mean_interval_days=mean,
        median_interval_days=median,
        expected_interval_days=expected,
        check_on=_first_day_past(last, rule.quiet_ratio, expected),
        red_on=_first_day_past(last, rule.at_risk_ratio, expected),
        lost_on=_first_day_past(last, 1.0, lost_days),
    )


def stage_on(
    *, check_on: date | None, red_on: date | None, lost_on: date | None, today: date
) -> Stage:
    """The customer's stage on `today`, from the dates the summary precomputed."""
    if check_on is None or red_on is None or lost_on is None:
        return Stage.NEW
    if today >= lost_on:
        return Stage.LOST
    if today >= red_on:
        return Stage.AT_RISK
    if today >= check_on:
        return Stage.QUIET
    return Stage.ACTIVE


def overdue_ratio(*, last_order_on: date, expected_interval_days: float, today: date) -> float:
    """Days since the last order as a multiple of the usual interval (38/25 -> 1.52)."""
    return (today - last_order_on).days / expected_interval_days


def usual_quantity(quantities: Sequence[int]) -> int | None:
    """The quantity the customer orders most often (ties: the larger)."""
    if not quantities:
        return None
    counts = statistics.multimode(quantities)
    return max(counts)
