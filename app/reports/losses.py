"""Who was lost and who came back, day by day, whether or not the owner marked anyone.

The practice's headline (流失率 = 本月流失 ÷ 月初客户) cannot wait for the owner to type
`王姐 流失 价格`: most owners never mark anyone. So, per customer, one state walks through
time (docs/reports.md, "Lost and recovered"):

- lost on the first of: the day the engine judges them lost, or the day the owner marks them
  lost. The engine's day is the summary's `lost_on` for the current gap (signals, pauses and
  the probability rule included). A gap a later order already closed is judged by the plain
  rule the engine applies at the least, with the rhythm the customer had before that gap
  (the median of their earlier gaps; the shop's default interval until there are two): lost
  after `lost_ratio` x that interval (at most that interval + `lost_extra_days` where a pack
  sets it, as car service does), and never before `lost_min_days`. (The gap itself must
  not count: one long absence would stretch the rhythm enough to excuse itself.)
- a mark adds its reason to the loss it falls in (however late); a loss nobody explained has
  no reason, which the report shows as "原因未记" and asks the owner to fill;
- back (recovered) on their next order, or when the owner marks them 已挽回.

Reads the shop's order dates (one ordered scan), its summaries and the owner's marks; the
answer is a list of transitions, the same shape the owner's marks alone used to give.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from itertools import pairwise
from math import ceil
from statistics import median
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Row, String, bindparam, cast, func, select
from sqlmodel import Session

from app.clock import from_utc
from app.customers.models import CustomerSummary
from app.customers.risk import risk_config
from app.orders.models import Order
from app.outreach.tiers import loss_reason_code
from app.risk.config import RiskConfig
from app.shops.models import Shop

_O = Order.__table__.c  # type: ignore[attr-defined]
_S = CustomerSummary.__table__.c  # type: ignore[attr-defined]
# Each customer's order dates as one text ("2026-05-01,2026-05-19,…"), aggregated by the
# database (group_concat / string_agg): 8,000 rows through the driver and SQLAlchemy's
# result rows cost more than the rest of the walk; a few hundred do not. ISO dates sort as
# text, so the order is restored in Python.
_ORDER_DAYS = (
    select(_O.customer_id, func.aggregate_strings(cast(_O.order_date, String), ","))
    .where(_O.shop_id == bindparam("shop"))
    .group_by(_O.customer_id)
)
_OPEN_LOSSES = select(_S.customer_id, _S.lost_on).where(
    _S.shop_id == bindparam("shop"), _S.lost_on.is_not(None)
)


@dataclass(frozen=True)
class Mark:
    """One change of a customer's state: lost, or back (recovered)."""

    customer_id: int
    day: date  # the shop's local date
    occurred_at: datetime  # UTC; a judged loss: the local midnight of its day
    outcome: str  # "lost" | "recovered"
    reason: str | None  # the owner's label (价格, 搬家/倒闭 …), lost only; None: not recorded
    unavoidable: bool  # moved away or closed down
    judged: bool = False  # a loss the engine judged (the owner may have added the reason)


@dataclass(frozen=True)
class LossHistory:
    """Every loss and return of a shop's customers up to a day, oldest first."""

    marks: list[Mark]
    # Each customer's first order: who was already a customer before a month began.
    first_order: dict[int, date] = field(default_factory=dict)


def owner_marks(rows: Sequence[Row[Any]], tz: ZoneInfo) -> list[Mark]:
    """Lost/recovered marks from outcome_marks rows (the owner's, and those orders recorded)."""
    marks: list[Mark] = []
    for row in rows:
        data = row.data or {}
        outcome = data.get("outcome")
        if outcome not in ("lost", "recovered"):
            continue
        moment = from_utc(row.occurred_at)
        reason = str(data["reason"]) if outcome == "lost" and data.get("reason") else None
        marks.append(
            Mark(
                customer_id=int(row.customer_id),
                day=moment.astimezone(tz).date(),
                occurred_at=moment,
                outcome=str(outcome),
                reason=reason,
                unavoidable=outcome == "lost"
                and (bool(data.get("unavoidable")) or loss_reason_code(reason) == "moved"),
            )
        )
    return marks


def loss_history(
    *, session: Session, shop: Shop, rows: Sequence[Row[Any]], today: date
) -> LossHistory:
    """Every loss and return up to `today`.

    `rows`: the owner's live outcome events (outcome_marks); a month's figures read the
    transitions of its days, and a later mark still adds its reason to an earlier loss.
    """
    assert shop.id is not None
    tz = ZoneInfo(shop.timezone)
    config = risk_config(shop)
    until = today
    conn = session.connection()
    orders = {
        int(cid): [date.fromisoformat(day) for day in sorted(days.split(","))]
        for cid, days in conn.execute(_ORDER_DAYS, {"shop": shop.id})
    }
    open_losses = {int(cid): lost_on for cid, lost_on in
                   conn.execute(_OPEN_LOSSES, {"shop": shop.id})}  # fmt: skip
    by_customer: dict[int, list[Mark]] = defaultdict(list)
    for mark in owner_marks(rows, tz):
        by_customer[mark.customer_id].append(mark)
    marks: list[Mark] = []
    for cid in orders.keys() | by_customer.keys():
        days = orders.get(cid, [])
        judged = list(judged_losses(days, config, open_losses.get(cid), until))
        marks.extend(walk(cid, days, judged, by_customer.get(cid, []), tz))
    marks.sort(key=lambda m: (m.occurred_at, m.customer_id, m.outcome != "lost"))
    first_order = {cid: days[0] for cid, days in orders.items()}
    return LossHistory(marks=marks, first_order=first_order)


def judged_losses(
    days: Sequence[date], config: RiskConfig, lost_on: date | None, until: date
) -> Iterator[date]:
    """The days a customer was judged lost, from their order days (oldest first)."""
    gaps: list[int] = []
    least = config.lost_min_days + 1  # no threshold is shorter: most gaps stop here
    for before, after in pairwise(days):
        gap = (after - before).days
        if gap <= least:
            gaps.append(gap)
            continue
        usual = median(gaps) if len(gaps) >= 2 else config.default_interval_days
        after_usual = config.lost_ratio * usual
        if config.lost_extra_days:  # service cycles: the cycle plus so many days at most
            after_usual = min(after_usual, usual + config.lost_extra_days)
        threshold = max(least, ceil(after_usual))
        lost_day = before + timedelta(days=threshold)
        if lost_day < after and lost_day <= until:
            yield lost_day
        gaps.append(gap)
    if days and lost_on is not None and days[-1] < lost_on <= until:
        yield lost_on


def walk(
    cid: int, orders: Sequence[date], judged: Sequence[date], owner: Sequence[Mark], tz: ZoneInfo
) -> list[Mark]:
    """One customer's transitions from their orders, judged losses and the owner's marks."""
    if not judged and not owner:
        return []  # never lost, never marked: nothing changed (most customers)
    # Same day: a loss before an order (back), an order before the owner's mark.
    steps: list[tuple[date, int, Any]] = [(d, 0, "judged") for d in judged]
    steps += [(d, 1, "order") for d in orders]
    steps += [(m.day, 2, m) for m in owner]
    steps.sort(key=lambda s: (s[0], s[1], s[2].occurred_at if isinstance(s[2], Mark) else 0))
    out: list[Mark] = []
    lost_at: int | None = None  # index in `out` of the open loss
    for day, _, step in steps:
        if step == "judged":
            if lost_at is None:
                lost_at = len(out)
                out.append(_judged(cid, day, tz))
        elif step == "order":
            if lost_at is not None:
                lost_at = None
                out.append(_back(cid, day, tz))
        elif step.outcome == "lost":
            if lost_at is None:
                lost_at = len(out)
                out.append(step)
            else:  # a mark adds its reason to the loss it falls in
                out[lost_at] = replace(
                    out[lost_at],
                    reason=step.reason or out[lost_at].reason,
                    unavoidable=step.unavoidable or out[lost_at].unavoidable,
                )
        else:  # the owner marked them 已挽回 (a win-back counts even before any loss)
            lost_at = None
            out.append(step)
    return out


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(ZoneInfo("UTC"))


def _judged(cid: int, day: date, tz: ZoneInfo) -> Mark:
    return Mark(cid, day, _midnight(day, tz), "lost", None, False, judged=True)


def _back(cid: int, day: date, tz: ZoneInfo) -> Mark:
    return Mark(cid, day, _midnight(day, tz), "recovered", None, False)


@dataclass(frozen=True)
class MonthChurn:
    """One month's churn: who was a customer at its start, who was lost and who came back."""

    customers_at_start: int
    lost: list[Mark]  # each customer once: the loss that stands at the month's end
    recovered: int

    @property
    def churn_rate(self) -> float | None:
        return len(self.lost) / self.customers_at_start if self.customers_at_start else None


def latest_between(marks: Iterable[Mark], first: date, last: date) -> dict[int, Mark]:
    """Each customer's latest change from `first` to `last` (marks oldest first)."""
    latest: dict[int, Mark] = {}
    for mark in marks:  # oldest first: the last one seen wins
        if first <= mark.day <= last:
            latest[mark.customer_id] = mark
    return latest


def month_churn(
    history: LossHistory, histogram: Sequence[tuple[date, int]], first_day: date, last_day: date
) -> MonthChurn:
    """Lost in the month (a customer whose latest change in it is a loss) ÷ customers at its
    start (ordered before it and not lost then). `histogram`: first_order_days."""
    ordered_before = sum(n for day, n in histogram if day < first_day)
    before = latest_between(history.marks, date.min, first_day - timedelta(days=1))
    in_month = latest_between(history.marks, first_day, last_day)
    lost_before = sum(
        1
        for cid, mark in before.items()
        if mark.outcome == "lost" and history.first_order.get(cid, first_day) < first_day
    )
    return MonthChurn(
        customers_at_start=ordered_before - lost_before,
        lost=[m for m in in_month.values() if m.outcome == "lost"],
        recovered=sum(1 for m in in_month.values() if m.outcome == "recovered"),
    )
