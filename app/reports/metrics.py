"""The owner's monthly report: churn, loss reasons, process, win-backs, money, the weekly list.

Every figure is defined in docs/reports.md. Churn comes from app/reports/losses.py (the
shop's order days, summaries and marks, read once: lost whether or not the owner marked
anyone); the rest is GROUP BYs over follow-ups and a histogram of first-order dates.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, bindparam, case, func
from sqlalchemy import select as core_select
from sqlmodel import Session, select

from app.clock import Clock, from_utc, month_end
from app.customers.models import Customer, CustomerSummary
from app.customers.risk import risk_config
from app.customers.service import DueCustomer, due_customers
from app.events.models import Event
from app.orders.models import Order
from app.outreach.models import FollowUp
from app.outreach.service import policy_for
from app.outreach.tiers import within_48h
from app.reports.losses import LossHistory, Mark, latest_between, loss_history, month_churn
from app.reports.monthly import (
    MonthSummary,
    first_order_days,
    month_of,
    month_summary,
    outcome_marks,
    utc_start,
)
from app.shops.models import Shop

TREND_MONTHS = 12
# Revenue a win-back brings is counted over this many days from the first order back (§7).
REVENUE_WINDOW_DAYS = 90
WEEKLY_TO_MESSAGE = 10
WEEKLY_LAST_LOST = 5

_EVENTS = Event.__table__  # type: ignore[attr-defined]
_FOLLOWUPS = FollowUp.__table__  # type: ignore[attr-defined]
_SUMMARIES = CustomerSummary.__table__  # type: ignore[attr-defined]
_ORDERS = Order.__table__  # type: ignore[attr-defined]
_CUSTOMERS = Customer.__table__  # type: ignore[attr-defined]
# Table columns for the aggregate queries (plain Core: no ORM objects are built).
_F = _FOLLOWUPS.c
_S = _SUMMARIES.c
_O = _ORDERS.c
_C = _CUSTOMERS.c

# Built once, with bind parameters: composing each query per report cost about as much as
# running it on a small shop.
# Warning episodes (a customer's warning day) of the month, with their first contact.
_EPISODES = (
    core_select(
        _F.customer_id, _F.warning_on, func.min(_F.first_contact_at), func.min(_F.created_on)
    )
    .where(
        _F.shop_id == bindparam("shop"),
        _F.tier > 0,
        _F.warning_on >= bindparam("first"),
        _F.warning_on <= bindparam("last"),
    )
    .group_by(_F.customer_id, _F.warning_on)
)
_PROPOSED = (
    core_select(_F.tier, func.count())
    .where(
        _F.shop_id == bindparam("shop"),
        _F.created_on >= bindparam("first"),
        _F.created_on <= bindparam("last"),
    )
    .group_by(_F.tier)
)
_CONTACTED_IN_MONTH = (
    _F.shop_id == bindparam("shop"),
    _F.first_contact_at >= bindparam("start"),
    _F.first_contact_at < bindparam("end"),
)
_DONE = core_select(_F.tier, func.count()).where(*_CONTACTED_IN_MONTH).group_by(_F.tier)
# The month's cohort: follow-ups (tiers 1-3) whose first contact fell in the month.
_COHORT = (*_CONTACTED_IN_MONTH, _F.tier > 0)


def _winback_query(key: Any) -> Select[Any]:
    recovered = func.sum(case((_F.outcome == "recovered", 1), else_=0))
    return (
        core_select(key, func.count(), recovered, func.sum(_F.cost_cents))
        .where(*_COHORT)
        .group_by(key)
    )


_WINBACK_BY_TIER = _winback_query(_F.tier)
_WINBACK_BY_REASON = _winback_query(_F.outcome_reason)
_WINBACK_BY_TEMPLATE = _winback_query(_F.template)
_OFFER_COST = core_select(func.coalesce(func.sum(_F.cost_cents), 0)).where(*_COHORT)
_RECOVERIES = (
    core_select(_F.customer_id, _F.outcome_at, _O.order_date, _S.clv_cents)
    .select_from(
        _FOLLOWUPS.outerjoin(_ORDERS, _O.id == _F.recovered_order_id).outerjoin(
            _SUMMARIES, _S.customer_id == _F.customer_id
        )
    )
    .where(*_COHORT, _F.outcome == "recovered")
)
_ORDERS_SINCE = core_select(_O.customer_id, _O.order_date, _O.amount_cents).where(
    _O.shop_id == bindparam("shop"),
    _O.customer_id.in_(bindparam("ids", expanding=True)),
    _O.order_date >= bindparam("since"),
)


@dataclass(frozen=True)
class ChurnMonth:
    """One month of the churn trend."""

    first_day: date
    partial: bool  # this month, counted up to today
    customers_at_start: int
    lost: int
    lost_unavoidable: int
    recovered: int

    @property
    def lost_avoidable(self) -> int:
        return self.lost - self.lost_unavoidable

    @property
    def churn_rate(self) -> float | None:
        return self.lost / self.customers_at_start if self.customers_at_start else None

    @property
    def avoidable_rate(self) -> float | None:
        n = self.customers_at_start
        return self.lost_avoidable / n if n else None

    @property
    def unavoidable_rate(self) -> float | None:
        n = self.customers_at_start
        return self.lost_unavoidable / n if n else None


@dataclass(frozen=True)
class ReasonCount:
    reason: str | None  # None: lost without a reason recorded
    count: int
    share: float  # of the customers lost in the period
    unavoidable: bool


@dataclass(frozen=True)
class TierActivity:
    """Follow-ups of one tier in the month: proposed by the digest, done (first contact)."""

    tier: int
    proposed: int
    done: int


@dataclass(frozen=True)
class Warnings:
    """Warnings raised in the month and how fast they were answered (target 48 h)."""

    warnings: int
    within_48h: int
    late: int  # contacted, but after 48 h
    waiting: int  # not contacted yet, still inside the 48 h
    missed: int  # not contacted and the 48 h are over

    @property
    def within_48h_rate(self) -> float | None:
        due = self.warnings - self.waiting
        return self.within_48h / due if due else None


@dataclass(frozen=True)
class Process(Warnings):
    """The warnings, and the follow-ups proposed and done per tier in the month."""

    tiers: list[TierActivity]


@dataclass(frozen=True)
class WinBack:
    """Of the follow-ups first contacted in the month (by tier, reason or template), how
    many have been won back so far."""

    key: str
    contacted: int
    recovered: int
    cost_cents: int

    @property
    def rate(self) -> float | None:
        return self.recovered / self.contacted if self.contacted else None


@dataclass(frozen=True)
class Money:
    """What the month's contacts cost and what the customers they won back brought."""

    offer_cost_cents: int
    recovered_customers: int
    revenue_recovered_cents: int  # their orders in the 90 days from the first order back
    clv_saved_cents: int  # their expected value over the shop's CLV horizon, as assessed now
    clv_years: int = 1  # that horizon in whole years (car service counts five)

    @property
    def return_per_yuan(self) -> float | None:
        """Revenue recovered per yuan of offers (680k / 80k = 8.5 in domain §7)."""
        if not self.offer_cost_cents:
            return None
        return self.revenue_recovered_cents / self.offer_cost_cents


@dataclass(frozen=True)
class LostCustomer:
    customer_id: int
    name: str
    lost_on: date
    reason: str | None
    unavoidable: bool
    last_order_on: date | None
    order_count: int
    total_amount_cents: int


@dataclass(frozen=True)
class WeeklyList:
    """The weekly habit (domain §8): ~10 to message now, the last 5 lost to look over."""

    to_message: list[DueCustomer]
    due_total: int
    last_lost: list[LostCustomer]
    common_reason: str | None  # a reason shared by at least two of the last lost

    @property
    def common_count(self) -> int:
        return sum(1 for c in self.last_lost if c.reason == self.common_reason)


@dataclass(frozen=True)
class ShopReport:
    """Everything the chat text, the chart and the dashboard show for one month."""

    shop_name: str
    today: date
    summary: MonthSummary
    trend: list[ChurnMonth]  # oldest first; the last one is the report's month
    reasons_month: list[ReasonCount]
    quarter: tuple[int, int]  # (year, quarter 1-4) containing the month
    reasons_quarter: list[ReasonCount]
    unmarked_lost: int  # lost in the month with no reason recorded (原因未记)
    process: Process
    by_tier: list[WinBack]
    by_reason: list[WinBack]
    by_template: list[WinBack]
    money: Money
    weekly: WeeklyList | None  # only for the current month

    @property
    def month(self) -> ChurnMonth:
        return self.trend[-1]

    @property
    def previous(self) -> ChurnMonth | None:
        return self.trend[-2] if len(self.trend) > 1 else None


@dataclass(frozen=True)
class ChatReport:
    """The part of a month's ShopReport the 本月统计 text shows (bot/report_month.txt.j2),
    under the same names: build_chat_report computes only these."""

    summary: MonthSummary
    month: ChurnMonth
    previous: ChurnMonth
    unmarked_lost: int
    process: Warnings
    by_tier: list[WinBack]
    money: Money


def read_marks(session: Session, shop: Shop, *, today: date) -> list[Mark]:
    """Every loss and return of the shop's customers up to today, oldest first."""
    return _history(session, shop, today).marks


def _history(session: Session, shop: Shop, today: date) -> LossHistory:
    """loss_history over the owner's marks up to the end of `today`."""
    assert shop.id is not None
    until = utc_start(today + timedelta(days=1), ZoneInfo(shop.timezone))
    rows = outcome_marks(session, shop.id, until=until)
    return loss_history(session=session, shop=shop, rows=rows, today=today)


def _reasons(lost: Sequence[Mark]) -> list[ReasonCount]:
    counts = Counter((m.reason, m.unavoidable) for m in lost)
    total = len(lost)
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0][0] is None, kv[0][0] or ""))
    return [
        ReasonCount(reason=reason, count=n, share=n / total, unavoidable=unavoidable)
        for (reason, unavoidable), n in ordered
    ]


def _lost_between(marks: Sequence[Mark], first: date, last: date) -> list[Mark]:
    """Customers whose latest mark in [first, last] is "lost" (each counted once)."""
    latest = latest_between(marks, first, last)
    return [m for m in latest.values() if m.outcome == "lost"]


def churn_trend(
    history: LossHistory,
    histogram: Sequence[tuple[date, int]],
    months: Sequence[date],
    today: date,
) -> list[ChurnMonth]:
    """Lost in each month / customers at its start, for `months` (first days), as
    month_churn counts them. `histogram`: first_order_days."""
    trend: list[ChurnMonth] = []
    for first_day in months:
        last_day = month_end(first_day)
        churn = month_churn(history, histogram, first_day, last_day)
        trend.append(
            ChurnMonth(
                first_day=first_day,
                partial=last_day >= today,
                customers_at_start=churn.customers_at_start,
                lost=len(churn.lost),
                lost_unavoidable=sum(1 for m in churn.lost if m.unavoidable),
                recovered=churn.recovered,
            )
        )
    return trend


def _warnings(session: Session, shop: Shop, month: _Window, hours: int) -> Warnings:
    """The month's warning episodes and how fast each was answered."""
    episodes = (
        session.connection()
        .execute(_EPISODES, {"shop": shop.id, "first": month.first_day, "last": month.last_day})
        .all()
    )
    on_time = late = waiting = missed = 0
    for _, warning_on, contact, proposed_on in episodes:
        contacted = from_utc(contact) if contact is not None else None
        # The clock starts when Huitou first told the owner: a customer already overdue on
        # a shop's first morning was not the owner's to answer before then.
        start = max(warning_on, proposed_on) if proposed_on is not None else warning_on
        in_time = within_48h(start, contacted, month.now, hours=hours)
        if contacted is not None:
            on_time, late = (on_time + 1, late) if in_time else (on_time, late + 1)
        elif in_time:
            waiting += 1
        else:
            missed += 1
    return Warnings(
        warnings=len(episodes), within_48h=on_time, late=late, waiting=waiting, missed=missed
    )


def _tier_activity(session: Session, shop: Shop, month: _Window) -> list[TierActivity]:
    """Per tier: follow-ups proposed in the month, and first contacted in it."""
    conn = session.connection()
    days = {"shop": shop.id, "first": month.first_day, "last": month.last_day}
    proposed: dict[int, int] = {tier: n for tier, n in conn.execute(_PROPOSED, days)}
    done: dict[int, int] = {tier: n for tier, n in conn.execute(_DONE, _cohort(shop, month))}
    return [
        TierActivity(tier=t, proposed=int(proposed.get(t, 0)), done=int(done.get(t, 0)))
        for t in (1, 2, 3, 0)
        if proposed.get(t) or done.get(t)
    ]


def _process(session: Session, shop: Shop, month: _Window, hours: int) -> Process:
    warnings = _warnings(session, shop, month, hours)
    return Process(**vars(warnings), tiers=_tier_activity(session, shop, month))


def _cohort(shop: Shop, month: _Window) -> dict[str, Any]:
    """The parameters of _COHORT: the month's first contacts in this shop."""
    return {"shop": shop.id, "start": month.start, "end": month.end}


def _winback(
    session: Session, statement: Select[Any], cohort: dict[str, Any], *, unknown: str = ""
) -> list[WinBack]:
    rows = session.execute(statement, cohort).all()
    out = [
        WinBack(
            key=unknown if k is None else str(k),
            contacted=int(n),
            recovered=int(r or 0),
            cost_cents=int(c or 0),
        )
        for k, n, r, c in rows
    ]
    return sorted(out, key=lambda w: (-w.contacted, w.key))


def _by_tier(session: Session, cohort: dict[str, Any]) -> list[WinBack]:
    return sorted(_winback(session, _WINBACK_BY_TIER, cohort), key=lambda w: int(w.key))


def _money(session: Session, shop: Shop, cohort: dict[str, Any], month: _Window) -> Money:
    conn = session.connection()
    cost = conn.execute(_OFFER_COST, cohort).scalar_one()
    # The first day back per customer (a recovery without an order dates from its record).
    back_on: dict[int, date] = {}
    clv: dict[int, int] = {}
    for cid, outcome_at, order_date, clv_cents in conn.execute(_RECOVERIES, cohort):
        day = order_date or (
            from_utc(outcome_at).astimezone(month.tz).date() if outcome_at else month.today
        )
        back_on[int(cid)] = min(day, back_on.get(int(cid), day))
        clv[int(cid)] = int(clv_cents or 0)
    revenue = 0
    if back_on:
        orders = {"shop": shop.id, "ids": list(back_on), "since": min(back_on.values())}
        for cid, order_date, amount in conn.execute(_ORDERS_SINCE, orders):
            start = back_on[int(cid)]
            if start <= order_date < start + timedelta(days=REVENUE_WINDOW_DAYS):
                revenue += int(amount or 0)
    return Money(
        offer_cost_cents=int(cost or 0),
        recovered_customers=len(back_on),
        revenue_recovered_cents=revenue,
        clv_saved_cents=sum(clv.values()),
        clv_years=max(1, round(risk_config(shop).clv_horizon_days / 365)),
    )


def weekly_list(
    *,
    session: Session,
    shop: Shop,
    today: date,
    marks: Sequence[Mark] | None = None,
) -> WeeklyList:
    """~10 customers to message now (most at stake first) and the last 5 lost."""
    due = due_customers(session=session, shop=shop, today=today)
    worth = [d for d in due if d.customer.value_class != "D"]  # D: never chased (domain §3)
    if marks is None:
        marks = read_marks(session, shop, today=today)
    # Still lost: their latest change ever is a loss.
    latest = latest_between(marks, date.min, date.max)
    lost = sorted(
        (m for m in latest.values() if m.outcome == "lost"),
        key=lambda m: (m.occurred_at, m.customer_id),
        reverse=True,
    )[:WEEKLY_LAST_LOST]
    people: dict[int, tuple[Customer, CustomerSummary | None]] = {}
    if lost:
        for customer, summary in session.exec(
            select(Customer, CustomerSummary)
            .outerjoin(CustomerSummary, _S.customer_id == _C.id)
            .where(
                _C.shop_id == shop.id,
                _C.id.in_([m.customer_id for m in lost]),
            )
        ):
            assert customer.id is not None
            people[customer.id] = (customer, summary)
    last_lost = []
    for mark in lost:
        if mark.customer_id not in people:
            continue
        customer, found = people[mark.customer_id]
        last_lost.append(
            LostCustomer(
                customer_id=mark.customer_id,
                name=customer.name,
                lost_on=mark.day,
                reason=mark.reason,
                unavoidable=mark.unavoidable,
                last_order_on=found.last_order_on if found else None,
                order_count=found.order_count if found else 0,
                total_amount_cents=found.total_amount_cents if found else 0,
            )
        )
    counts = Counter(c.reason for c in last_lost if c.reason)
    common = counts.most_common(1)
    return WeeklyList(
        to_message=worth[:WEEKLY_TO_MESSAGE],
        due_total=len(worth),
        last_lost=last_lost,
        common_reason=common[0][0] if common and common[0][1] >= 2 else None,
    )


def quarter_of(day: date) -> tuple[int, int, date]:
    """(year, quarter, first day of the quarter) for a date."""
    q = (day.month - 1) // 3
    return day.year, q + 1, date(day.year, 3 * q + 1, 1)


@dataclass(frozen=True)
class _Window:
    """A report's month in the shop's time zone."""

    first_day: date
    last_day: date
    start: datetime  # UTC: the first day's midnight
    end: datetime  # UTC: the midnight after the last day
    now: datetime  # the shop's local time
    tz: ZoneInfo

    @property
    def today(self) -> date:
        return self.now.date()


def _window(shop: Shop, first_day: date, clock: Clock) -> _Window:
    tz = ZoneInfo(shop.timezone)
    first_day = first_day.replace(day=1)
    last_day = month_end(first_day)
    return _Window(
        first_day=first_day,
        last_day=last_day,
        start=utc_start(first_day, tz),
        end=utc_start(last_day + timedelta(days=1), tz),
        now=clock.now().astimezone(tz),
        tz=tz,
    )


def _unexplained(marks: Sequence[Mark], month: _Window) -> int:
    """Lost in the month without a reason recorded: the report asks the owner to fill them."""
    return sum(1 for m in _lost_between(marks, month.first_day, month.last_day) if not m.reason)


def _month_marks(
    session: Session, shop: Shop, month: _Window, *, trend_months: int
) -> tuple[MonthSummary, list[Mark], list[ChurnMonth]]:
    """The month's summary, every loss and return so far, and the churn trend ending with
    the month: the order days, marks and first-order histogram are read once for all three."""
    assert shop.id is not None
    history = _history(session, shop, month.today)
    histogram = first_order_days(session, shop.id)
    summary = month_summary(
        session=session,
        shop=shop,
        first_day=month.first_day,
        today=month.today,
        history=history,
        first_orders=histogram,
    )
    months = [month_of(month.first_day, back) for back in range(trend_months - 1, -1, -1)]
    return summary, history.marks, churn_trend(history, histogram, months, month.today)


def build_report(
    *, session: Session, shop: Shop, first_day: date, clock: Clock, with_weekly: bool = True
) -> ShopReport:
    """The report for the month starting `first_day` (up to today when it is this month)."""
    month = _window(shop, first_day, clock)
    summary, marks, trend = _month_marks(session, shop, month, trend_months=TREND_MONTHS)
    first_day, last_day, today = month.first_day, month.last_day, month.today
    year, quarter, quarter_first = quarter_of(first_day)
    cohort = _cohort(shop, month)
    return ShopReport(
        shop_name=shop.name,
        today=today,
        summary=summary,
        trend=trend,
        reasons_month=_reasons(_lost_between(marks, first_day, last_day)),
        quarter=(year, quarter),
        reasons_quarter=_reasons(_lost_between(marks, quarter_first, last_day)),
        unmarked_lost=_unexplained(marks, month),
        process=_process(session, shop, month, policy_for(shop).respond_within_hours),
        by_tier=_by_tier(session, cohort),
        by_reason=_winback(session, _WINBACK_BY_REASON, cohort, unknown="unknown"),
        by_template=_winback(session, _WINBACK_BY_TEMPLATE, cohort),
        money=_money(session, shop, cohort, month),
        weekly=weekly_list(session=session, shop=shop, today=today, marks=marks)
        if with_weekly and first_day <= today <= last_day
        else None,
    )


def build_chat_report(*, session: Session, shop: Shop, first_day: date, clock: Clock) -> ChatReport:
    """What the 本月统计 text shows of build_report's report for the same month, computed
    the same way and nothing more (tests/reports/test_chat_report.py holds the two to each
    other): two months of trend instead of twelve, no loss reasons by quarter, no win-backs
    by reason or template, no activity per tier, no weekly list."""
    month = _window(shop, first_day, clock)
    summary, marks, trend = _month_marks(session, shop, month, trend_months=2)
    cohort = _cohort(shop, month)
    return ChatReport(
        summary=summary,
        month=trend[-1],
        previous=trend[-2],
        unmarked_lost=_unexplained(marks, month),
        process=_warnings(session, shop, month, policy_for(shop).respond_within_hours),
        by_tier=_by_tier(session, cohort),
        money=_money(session, shop, cohort, month),
    )
