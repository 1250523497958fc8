"""A short month summary for 本月统计 / 上月统计 (the full reports come later).

Definitions, shown to the owner with the figures:
- active customers: ordered at least once in the month;
- new customers: their first order ever falls in the month;
- lost / recovered: customers the owner marked so (流失 / 已挽回) during the month, each
  counted once, by their latest mark in the month; undone marks do not count;
- customers at the start: ordered before the month began and not marked lost before it
  (or marked lost and then recovered before it);
- monthly churn rate = lost in the month / customers at the start (domain.md §7).
Revenue is money taken: order amounts plus water tickets sold (ticket-paid orders are 0,
so a ticket is never counted twice); deposits are refundable and not revenue.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, func
from sqlmodel import Session, col, select

from app.bot.ledger import live_events
from app.bot.when import month_end
from app.customers.models import Customer
from app.events.models import Event
from app.orders.models import Order
from app.shops.models import Shop


@dataclass(frozen=True)
class ReasonShare:
    reason: str
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


def _utc_start(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; they are UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _latest_outcomes(events: list[Event]) -> dict[int, dict[str, Any]]:
    latest: dict[int, dict[str, Any]] = {}
    for event in events:  # oldest first, so the last one seen wins
        if event.customer_id is not None:
            latest[event.customer_id] = event.data
    return latest


def month_summary(*, session: Session, shop: Shop, first_day: date, today: date) -> MonthSummary:
    """Figures for the month starting `first_day` (counted up to today when it is this month)."""
    assert shop.id is not None
    tz = ZoneInfo(shop.timezone)
    last_day = month_end(first_day)
    start, end = _utc_start(first_day, tz), _utc_start(last_day + timedelta(days=1), tz)
    unit = str(shop.settings.get("unit", "桶"))
    in_month = (
        Order.shop_id == shop.id,
        col(Order.order_date) >= first_day,
        col(Order.order_date) <= last_day,
    )
    # Index range scans on orders(shop_id, order_date); no pass over the shop's whole history.
    orders, revenue, quantity = session.exec(
        select(
            func.count(col(Order.id)),
            func.coalesce(func.sum(Order.amount_cents), 0),
            func.coalesce(func.sum(case((col(Order.unit) == unit, Order.quantity), else_=0)), 0),
        ).where(*in_month)
    ).one()
    active_ids = set(session.exec(select(col(Order.customer_id)).where(*in_month).distinct()))
    # Per customer, one probe of orders(customer_id, order_date): it costs the number of
    # customers, not the length of the shop's history. (A customer's orders are always in
    # the customer's shop, and naming orders.shop_id here would steer SQLite to scan
    # orders(shop_id, order_date) instead.)
    earlier = (
        select(col(Order.id))
        .where(col(Order.customer_id) == col(Customer.id), col(Order.order_date) < first_day)
        .exists()
    )
    ordered_before: set[int] = {
        i
        for i in session.exec(select(col(Customer.id)).where(Customer.shop_id == shop.id, earlier))
        if i is not None
    }
    # First order ever in the month = ordered in the month and never before it.
    new_customers = len(active_ids - ordered_before)
    # Outcome marks are few: read them once, up to the month's end, and split at its start.
    marks = live_events(session, shop.id, kinds=("outcome",), until=end)
    outcomes_before = _latest_outcomes([e for e in marks if _aware(e.occurred_at) < start])
    at_start = {c for c in ordered_before if outcomes_before.get(c, {}).get("outcome") != "lost"}
    outcomes = _latest_outcomes([e for e in marks if _aware(e.occurred_at) >= start])
    lost = {c: d for c, d in outcomes.items() if d.get("outcome") == "lost"}
    recovered = sum(1 for d in outcomes.values() if d.get("outcome") == "recovered")
    counts = Counter(str(d.get("reason") or "其他") for d in lost.values())
    reasons = [ReasonShare(reason=r, count=n, share=n / len(lost)) for r, n in counts.most_common()]
    tickets_sold = sum(
        int(e.data.get("amount_cents") or 0)
        for e in live_events(session, shop.id, kinds=("tickets",), since=start, until=end)
        if int(e.data.get("change", 0)) > 0
    )
    return MonthSummary(
        first_day=first_day,
        last_day=last_day,
        partial=last_day >= today,
        orders=int(orders or 0),
        quantity=int(quantity or 0),
        unit=unit,
        revenue_cents=int(revenue or 0) + tickets_sold,
        tickets_sold_cents=tickets_sold,
        active_customers=len(active_ids),
        new_customers=new_customers,
        lost=len(lost),
        reasons=reasons,
        recovered=recovered,
        customers_at_start=len(at_start),
    )
