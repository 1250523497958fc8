"""One customer's assessment, with every fired signal and the figures behind it.

The online path scores a single customer with the shop's stored priors through the batch's
own `score_arrays`, on that customer's length-1 arrays: one implementation of the model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from functools import lru_cache
from typing import Any

import numpy as np

from app.risk.batch import NO_DAY, STAGES, ScoreArrays, score_arrays
from app.risk.config import RiskConfig
from app.risk.events import EventPoint, customer_facts, facts_array
from app.risk.history import OrderArrays
from app.risk.model import ShopPriors
from app.risk.season import epoch_day, from_epoch_day
from app.risk.signals import BY_CODE, SIGNALS, Level, codes


@dataclass(frozen=True)
class OrderFact:
    """What the engine needs of one order."""

    day: date
    quantity: float = 1.0
    amount: float = 0.0  # yuan


@dataclass(frozen=True)
class Finding:
    """A fired signal: its code, level and the numbers that made it fire."""

    code: str
    level: str  # yellow | red | lost
    label: str
    figures: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "level": self.level, "figures": self.figures}


@dataclass(frozen=True)
class Assessment:
    """Everything the product says about one customer on one day."""

    stage: str
    n_orders: int
    days_since_last: int | None
    expected_interval_days: float
    mean_gap_days: float | None
    overdue_ratio: float | None
    churn_probability: float | None
    p_alive: float | None
    clv: float
    retained_value: float
    value_at_risk: float
    check_on: date | None
    red_on: date | None
    lost_on: date | None
    findings: tuple[Finding, ...]


def _num(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


@lru_cache(maxsize=4096)
def _day(value: int) -> date | None:
    # Memoised: the few days near today recur in every assessment (dates are immutable).
    return None if value == NO_DAY else from_epoch_day(value)


def _row(scores: ScoreArrays, i: int) -> dict[str, Any]:
    """Customer i of a scored batch as the plain values an Assessment is built from."""
    fig, facts = scores.figures, scores.facts
    return {
        "stage": STAGES[int(scores.stage[i])],
        "n_orders": int(scores.n_orders[i]),
        "days_since_last": float(scores.days_since_last[i]),
        "expected_interval_days": float(scores.expected_interval_days[i]),
        "mean_gap_days": float(scores.mean_gap_days[i]),
        "overdue_ratio": float(scores.overdue_ratio[i]),
        "churn_probability": float(scores.churn_probability[i]),
        "p_alive": float(scores.p_alive[i]),
        "clv": float(scores.clv[i]),
        "retained_value": float(scores.retained_value[i]),
        "value_at_risk": float(scores.value_at_risk[i]),
        "check_day": int(scores.check_day[i]),
        "red_day": int(scores.red_day[i]),
        "lost_day": int(scores.lost_day[i]),
        "signals": int(scores.signals[i]),
        "recent_quantity": float(fig.recent_quantity[i]),
        "earlier_quantity": float(fig.earlier_quantity[i]),
        "last_gap_days": float(fig.last_gap_days[i]),
        "earlier_gap_mean": float(fig.earlier_gap_mean[i]),
        "recent_amount": float(fig.recent_amount[i]),
        "earlier_amount": float(fig.earlier_amount[i]),
        "ignored_streak": int(facts.ignored_streak[i]),
        "satisfaction": float(facts.satisfaction[i]),
        "ticket_balance": float(facts.ticket_balance[i]),
        "recalled_day": int(facts.recalled_day[i]),
    }


_LEVEL_NAMES = {s.code: Level(s.level).name.lower() for s in SIGNALS}
_INTERVAL_CODES = frozenset({"interval_stretch", "interval_stretch_red"})
# The figures behind each other signal that has some, read off a scored row.
_FIGURES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "size_drop": lambda row: {
        "recent": round(row["recent_quantity"], 1),
        "earlier": round(row["earlier_quantity"], 1),
    },
    "frequency_drop": lambda row: {
        "last_gap": _num(row["last_gap_days"]),
        "earlier_gap": round(row["earlier_gap_mean"], 1),
    },
    "ticket_drop": lambda row: {
        "recent": round(row["recent_amount"], 2),
        "earlier": round(row["earlier_amount"], 2),
    },
    "ignored_2": lambda row: {"streak": row["ignored_streak"]},
    "ignored_4": lambda row: {"streak": row["ignored_streak"]},
    "low_satisfaction": lambda row: {"score": _num(row["satisfaction"])},
    "tickets_running_out": lambda row: {"balance": _num(row["ticket_balance"])},
    "tickets_not_renewed": lambda row: {"balance": _num(row["ticket_balance"])},
    "recently_recalled": lambda row: {"recalled_on": str(_day(row["recalled_day"]))},
}


def _findings(row: dict[str, Any]) -> tuple[Finding, ...]:
    """The signals that fired, each with its figures (only theirs are computed)."""
    mask = row["signals"]
    if not mask:
        return ()
    found = []
    interval: dict[str, Any] | None = None  # one dict, shared by both interval stretches
    for code in codes(mask):
        if code in _INTERVAL_CODES:
            if interval is None:
                days = row["days_since_last"]
                interval = {
                    "days_since_last": None if math.isnan(days) else int(days),
                    "interval": round(row["expected_interval_days"], 1),
                    "ratio": round(row["overdue_ratio"], 2),
                }
            figures = interval
        else:
            figures = _FIGURES[code](row) if code in _FIGURES else {}
        found.append(
            Finding(code=code, level=_LEVEL_NAMES[code], label=BY_CODE[code].label, figures=figures)
        )
    return tuple(found)


def findings_for(scores: ScoreArrays, i: int) -> tuple[Finding, ...]:
    """The signals that fired for customer i, each with its figures."""
    return _findings(_row(scores, i))


def _assessment(row: dict[str, Any]) -> Assessment:
    days = row["days_since_last"]
    return Assessment(
        stage=row["stage"],
        n_orders=row["n_orders"],
        days_since_last=None if math.isnan(days) else int(days),
        expected_interval_days=row["expected_interval_days"],
        mean_gap_days=_num(row["mean_gap_days"]),
        overdue_ratio=_num(row["overdue_ratio"]),
        churn_probability=_num(row["churn_probability"]),
        p_alive=_num(row["p_alive"]),
        clv=row["clv"],
        retained_value=row["retained_value"],
        value_at_risk=row["value_at_risk"],
        check_on=_day(row["check_day"]),
        red_on=_day(row["red_day"]),
        lost_on=_day(row["lost_day"]),
        findings=_findings(row),
    )


def assessment_at(scores: ScoreArrays, i: int) -> Assessment:
    """Customer i of a scored batch as an Assessment."""
    return _assessment(_row(scores, i))


def assess_customer(
    orders: Sequence[OrderFact],
    events: Sequence[EventPoint],
    *,
    priors: ShopPriors,
    config: RiskConfig,
    as_of: date,
) -> Assessment:
    """Assess one customer with the shop's stored priors (the online path)."""
    assessment, _ = assess_history(
        [epoch_day(o.day) for o in orders],
        [o.quantity for o in orders],
        [o.amount for o in orders],
        events,
        priors=priors,
        config=config,
        as_of=as_of,
    )
    return assessment


def assess_history(
    days: Sequence[int],
    quantities: Sequence[float],
    amounts: Sequence[float],
    events: Sequence[EventPoint],
    *,
    priors: ShopPriors,
    config: RiskConfig,
    as_of: date,
) -> tuple[Assessment, dict[str, Any]]:
    """assess_customer on parallel lists (epoch days, quantities, amounts in yuan).

    Scores the customer alone with `score_arrays`. Also returns the scored row: its totals,
    first and last purchase days and last quantity are the figures a summary stores.
    """
    n = len(days)
    orders = OrderArrays(
        customer=np.zeros(n, dtype=np.int64),
        day=np.array(days, dtype=np.int64),
        quantity=np.array(quantities, dtype=np.float64),
        amount=np.array(amounts, dtype=np.float64),
        n_customers=1,
    )
    facts = None  # without events the facts are neutral, score_arrays' default
    if events:
        today = epoch_day(as_of)
        known = [d for d in days if d <= today]
        last_order = from_epoch_day(max(known)) if known else None
        facts = facts_array([customer_facts(events, last_order=last_order, today=as_of)])
    scores = score_arrays(orders, as_of=as_of, config=config, priors=priors, facts=facts)
    row = _row(scores, 0)
    row.update(
        first_day=int(scores.first_day[0]),
        last_day=int(scores.last_day[0]),
        total_quantity=float(scores.total_quantity[0]),
        total_amount=float(scores.total_amount[0]),
        last_quantity=float(scores.figures.last_quantity[0]),
        dropout=float(scores.dropout[0]),
    )
    return _assessment(row), row


class Stage(StrEnum):
    """Where a customer is on the way from active to lost."""

    NEW = "new"
    ACTIVE = "active"
    QUIET = "quiet"  # yellow
    AT_RISK = "at_risk"  # red
    LOST = "lost"
    RECOVERED = "recovered"  # won back, under close watch


STAGE_LABELS = {
    Stage.NEW: "新客户",
    Stage.ACTIVE: "正常",
    Stage.QUIET: "需关注",
    Stage.AT_RISK: "高风险",
    Stage.LOST: "已流失",
    Stage.RECOVERED: "已挽回",
}


def stage_on(
    *, stored: str, check_on: date | None, red_on: date | None, lost_on: date | None, today: date
) -> Stage:
    """The stage on `today` from a stored assessment: its dates hold until news arrives."""
    if stored == Stage.NEW or check_on is None or red_on is None or lost_on is None:
        return Stage.NEW
    if stored == Stage.LOST or today >= lost_on:
        return Stage.LOST
    if today >= red_on:
        return Stage.AT_RISK
    if today >= check_on:
        return Stage.QUIET
    return Stage.RECOVERED if stored == Stage.RECOVERED else Stage.ACTIVE
