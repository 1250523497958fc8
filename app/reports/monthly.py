"""A short month summary for 本月统计 / 上月统计 (the full reports come later).

Definitions, shown to the owner with the figures:
- active customers: ordered at least once in the month;
- new customers: their first order ever falls in the month;
- lost / recovered: whether or not the owner marked anyone (app/reports/losses.py): lost
  when the engine judges the customer lost or the owner marks them so, back on their next
  order or the owner's 已挽回; each customer counted once, by their latest change in the
  month; a loss nobody explained is "原因未记"; undone marks do not count;
- customers at the start: ordered before the month began and not lost at its start;
- monthly churn rate = lost in the month / customers at the start (domain.md §7).
Revenue is money taken: order amounts plus water tickets sold (ticket-paid orders are 0,
so a ticket is never counted twice); deposits are refundable and not revenue.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Row, bindparam, case, distinct, func, select
from sqlmodel import Session

from app.clock import month_end
from app.customers.models import CustomerSummary
from app.events.models import Event
from app.events.service import live_rows
from app.orders.models import Order
from app.reports.losses import LossHistory, loss_history, month_churn
from app.shops.models import Shop

_O = Order.__table__.c  # type: ignore[attr-defined]
_E = Event.__table__.c  # type: ignore[attr-defined]
_S = CustomerSummary.__table__.c  # type: ignore[attr-defined]
# Built once and run on the connection (composing them per call, and the ORM around them,
# cost more than the queries). The month's orders in one index range scan on
# orders(shop_id, order_date), added up in the database: one row back.
_MONTH_ORDERS = select(
    func.count(_O.id),
    func.count(distinct(_O.customer_id)),
    func.coalesce(func.sum(_O.amount_cents), 0),
    func.coalesce(func.sum(case((_O.unit == bindparam("unit"), _O.quantity), else_=0)), 0),
).where(
    _O.shop_id == bindparam("shop"),
    _O.order_date >= bindparam("first"),
    _O.order_date <= bindparam("last"),
)
# How many customers had their first order on each day (kept in the summary with every
# order): who had ordered before a month and who is new in it, for the month summary and
# the churn trend alike.
_FIRST_ORDERS = (
    select(_S.first_order_on, func.count())
    .where(_S.shop_id == bindparam("shop"), _S.first_order_on.is_not(None))
    .group_by(_S.first_order_on)
)
# The shop's outcome marks (lost / recovered) before a moment, oldest first.
_OUTCOMES = (
    select(_E.id, _E.customer_id, _E.occurred_at, _E.data)
    .where(
        _E.shop_id == bindparam("shop"),
        _E.kind == "outcome",
        _E.customer_id.is_not(None),
        _E.occurred_at < bindparam("until"),
    )
    .order_by(_E.occurred_at, _E.id)
)
_TICKETS = select(_E.id, _E.data).where(
    _E.shop_id == bindparam("shop"),
    _E.kind == "tickets",
    _E.occurred_at >= bindparam("since"),
    _E.occurred_at < bindparam("until"),
)


@dataclass(frozen=True)
class ReasonShare:
    reason: str | None  # None: nobody recorded why (shown as 原因未记, its own bucket)
    count: int
    share: float  # of all customers lost in the month


@dataclass(frozen=True)
class MonthSummary:
    """One month's figures for one shop."""

    first_day: date
    last_day: date
    partial: bool  # the month is not over yet (本月)
    orders: int
    quantity: int  # in the shop's main unit (桶 for a water station)
    unit: str
    revenue_cents: int
    tickets_sold_cents: int
    active_customers: int
    new_customers: int
    lost: int
    reasons: list[ReasonShare]
    recovered: int
    customers_at_start: int

    @property
    def churn_rate(self) -> float | None:
        return self.lost / self.customers_at_start if self.customers_at_start else None


def month_of(today: date, months_back: int = 0) -> date:
    """The first day of the month `months_back` before today's."""
    index = today.year * 12 + today.month - 1 - months_back
    return date(index // 12, index % 12 + 1, 1)


def utc_start(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; they are UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def outcome_marks(session: Session, shop_id: int, *, until: datetime) -> Sequence[Row[Any]]:
    """The shop's live (not undone) outcome events before `until`, oldest first, as rows of
    (id, customer_id, occurred_at, data): what month_summary and the report's marks read."""
    return live_rows(session, shop_id, _OUTCOMES, {"shop": shop_id, "until": until})


def first_order_days(session: Session, shop_id: int) -> list[tuple[date, int]]:
    """How many customers had their first order on each day, by day: a histogram of the
    summaries (not 10,000 rows), what the churn trend and the month summary count from."""
    rows = session.execute(_FIRST_ORDERS, {"shop": shop_id})
    return sorted((day, int(n)) for day, n in rows)


def month_summary(
    *,
    session: Session,
    shop: Shop,
    first_day: date,
    today: date,
    history: LossHistory | None = None,
    first_orders: Sequence[tuple[date, int]] | None = None,
) -> MonthSummary:
    """Figures for the month starting `first_day` (counted up to today when it is this month).

    `history`: the shop's loss_history, when the caller read it already;
    `first_orders`: first_order_days, likewise (the churn trend reads it too).
    """
    assert shop.id is not None
    tz = ZoneInfo(shop.timezone)
    last_day = month_end(first_day)
    start, end = utc_start(first_day, tz), utc_start(last_day + timedelta(days=1), tz)
    unit = str(shop.settings.get("unit", "桶"))
    conn = session.connection()
    month = {"shop": shop.id, "first": first_day, "last": last_day, "unit": unit}
    orders, active, revenue, quantity = conn.execute(_MONTH_ORDERS, month).one()
    if first_orders is None:
        first_orders = first_order_days(session, shop.id)
    new_customers = sum(n for day, n in first_orders if first_day <= day <= last_day)
    if history is None:
        rows = outcome_marks(session, shop.id, until=utc_start(today + timedelta(days=1), tz))
        history = loss_history(session=session, shop=shop, rows=rows, today=today)
    churn = month_churn(history, first_orders, first_day, last_day)
    counts = Counter(m.reason for m in churn.lost)
    reasons = [
        ReasonShare(reason=r, count=n, share=n / len(churn.lost)) for r, n in counts.most_common()
    ]
    tickets = live_rows(session, shop.id, _TICKETS, {"shop": shop.id, "since": start, "until": end})
    tickets_sold = sum(
        int(row.data.get("amount_cents") or 0)
        for row in tickets
        if int(row.data.get("change", 0)) > 0
    )
    return MonthSummary(
        first_day=first_day,
        last_day=last_day,
        partial=last_day >= today,
        orders=int(orders),
        quantity=int(quantity),
        unit=unit,
        revenue_cents=int(revenue) + tickets_sold,
        tickets_sold_cents=tickets_sold,
        active_customers=int(active),
        new_customers=int(new_customers),
        lost=len(churn.lost),
        reasons=reasons,
        recovered=churn.recovered,
        customers_at_start=churn.customers_at_start,
    )
