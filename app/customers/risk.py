"""The risk engine against the database: shop priors, whole-shop rescoring, one-customer refresh.

`rescore_shop` fits the shop's priors on all its orders and rewrites every summary (at demo
load, nightly, or when the priors are missing). `refresh_customer` reassesses one customer
with the stored priors, in the caller's transaction, after each order or event.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    Result,
    Select,
    bindparam,
    update,
)
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.clock import Clock, from_utc, local_today
from app.customers.models import OWNER_CLASS_TAG, Customer, CustomerSummary
from app.events.models import Event
from app.events.service import RISK_EVENT_KINDS, on_risk_events, undone_among, undone_event_ids
from app.orders.models import Order
from app.risk.assess import Assessment, assess_history, assessment_at
from app.risk.batch import score_arrays
from app.risk.config import RiskConfig
from app.risk.events import EventPoint, customer_facts, facts_array
from app.risk.history import OrderArrays
from app.risk.model import ShopPriors
from app.risk.season import epoch_day, from_epoch_day
from app.shops.models import Shop

PRIORS_KEY = "risk_priors"


def risk_config(shop: Shop) -> RiskConfig:
    return RiskConfig.from_settings(shop.settings, shop.industry)


def stored_priors(shop: Shop) -> ShopPriors | None:
    data = shop.settings.get(PRIORS_KEY)
    return ShopPriors.from_dict(data) if isinstance(data, dict) else None


def _cents(yuan: float) -> int:
    return round(yuan * 100)


def _summary_values(
    a: Assessment,
    *,
    first: date | None,
    last: date | None,
    total_quantity: float,
    total_amount: float,
    last_quantity: float | None,
    today: date,
    clock: Clock,
) -> dict[str, Any]:
    """The CustomerSummary columns an assessment sets."""
    return {
        "first_order_on": first,
        "last_order_on": last,
        "order_count": a.n_orders,
        "total_quantity": round(total_quantity),
        "total_amount_cents": _cents(total_amount),
        "last_quantity": None if last_quantity is None else round(last_quantity),
        "mean_interval_days": a.mean_gap_days,
        "expected_interval_days": a.expected_interval_days,
        "stage": a.stage,
        "churn_probability": a.churn_probability,
        "p_alive": a.p_alive,
        "clv_cents": _cents(a.clv),
        "retained_value_cents": _cents(a.retained_value),
        "value_at_risk_cents": _cents(a.value_at_risk),
        "findings": [f.to_dict() for f in a.findings],
        "check_on": a.check_on,
        "red_on": a.red_on,
        "lost_on": a.lost_on,
        "assessed_on": today,
        "updated_at": clock.now(),
    }


def _event_point(event: Event, tz: ZoneInfo) -> EventPoint:
    assert event.id is not None
    return EventPoint(
        id=event.id, kind=event.kind, day=event.occurred_at.astimezone(tz).date(), data=event.data
    )


_SUMMARY = CustomerSummary.__table__  # type: ignore[attr-defined]
_ORDERS = Order.__table__  # type: ignore[attr-defined]
_EVENTS = Event.__table__  # type: ignore[attr-defined]
_SUMMARY_FIELDS = (
    "first_order_on", "last_order_on", "order_count", "total_quantity", "total_amount_cents",
    "last_quantity", "mean_interval_days", "expected_interval_days", "stage",
    "churn_probability", "p_alive", "clv_cents", "retained_value_cents", "value_at_risk_cents",
    "findings", "check_on", "red_on", "lost_on", "assessed_on", "updated_at",
)  # fmt: skip
# Built once: this path runs after every order and event, and composing a 20-column UPDATE
# per call cost more than the assessment itself. The reads take several customers at once
# (the customers one message touched), each customer's rows in the order of its index.
_CUSTOMERS: BindParameter[list[int]] = bindparam("cids", expanding=True)


class _ByCustomer:
    """One read for the customers one message touched, all its statements built once:
    `= ?` for the usual one, `IN (?, ?)` for a few, an expanding IN beyond (that one is
    rewritten on every execution, which cost ~45 µs a statement)."""

    FIXED = 8  # up to this many customers, a statement of that arity

    def __init__(self, statement: Select[*tuple[Any, ...]], column: ColumnElement[int]) -> None:
        self.fixed = [statement.where(column == bindparam("c0"))] + [
            statement.where(column.in_([bindparam(f"c{i}") for i in range(n)]))
            for n in range(2, self.FIXED + 1)
        ]
        self.many = statement.where(column.in_(_CUSTOMERS))

    def run(self, conn: Connection, customer_ids: Sequence[int]) -> Result[*tuple[Any, ...]]:
        n = len(customer_ids)
        if n > self.FIXED:
            return conn.execute(self.many, {"cids": list(customer_ids)})
        params = {f"c{i}": cid for i, cid in enumerate(customer_ids)}
        return conn.execute(self.fixed[n - 1], params)


_LOCK_SUMMARIES = _ByCustomer(
    sa_select(_SUMMARY.c.customer_id).order_by(_SUMMARY.c.customer_id).with_for_update(),
    _SUMMARY.c.customer_id,
)
_SELECT_ORDERS = _ByCustomer(
    sa_select(
        _ORDERS.c.customer_id,
        _ORDERS.c.order_date,
        _ORDERS.c.quantity,
        _ORDERS.c.amount_cents,
        _ORDERS.c.paid_by,
    ),
    _ORDERS.c.customer_id,
)
# All the customers' events, kinds filtered in Python (a second IN list, expanded per call,
# would cost more than it saves).
_SELECT_EVENTS = _ByCustomer(
    sa_select(
        _EVENTS.c.customer_id,
        _EVENTS.c.id,
        _EVENTS.c.kind,
        _EVENTS.c.occurred_at,
        _EVENTS.c.data,
    ),
    _EVENTS.c.customer_id,
)
_RISK_KINDS = frozenset(RISK_EVENT_KINDS)
_UPDATE_SUMMARY = (
    _SUMMARY.update()
    .where(_SUMMARY.c.customer_id == bindparam("cid"))
    .values({name: bindparam(f"v_{name}", type_=_SUMMARY.c[name].type) for name in _SUMMARY_FIELDS})
)


_DEFERRED = "huitou_deferred_refreshes"


@contextmanager
def refreshes_deferred(session: Session) -> Iterator[None]:
    """Within this block, each customer touched is reassessed once, when the block ends.

    One chat message may write several things about one customer (an order paid with water
    tickets is an order and a tickets event; `王姐2桶 王姐1桶` is two orders): each used to
    reassess the customer on the spot. Inside this block `request_refresh` only notes the
    customer, and the notes are settled at the end, still inside the caller's transaction
    (not on an error: the transaction is rolled back anyway), the customers of one shop
    together (`王姐2桶 老李1桶`: one read of both histories). Nested blocks join the outer.
    """
    if _DEFERRED in session.info:
        yield
        return
    pending: dict[int, tuple[Shop, Clock]] = {}
    session.info[_DEFERRED] = pending
    try:
        yield
    finally:
        session.info.pop(_DEFERRED, None)
    batches: dict[tuple[int, int], list[int]] = {}
    for customer_id, (shop, clock) in pending.items():
        batches.setdefault((id(shop), id(clock)), []).append(customer_id)
    for customer_ids in batches.values():
        shop, clock = pending[customer_ids[0]]
        refresh_customers(session=session, shop=shop, customer_ids=customer_ids, clock=clock)


def request_refresh(*, session: Session, shop: Shop, customer_id: int, clock: Clock) -> None:
    """Reassess the customer now, or once at the end of an enclosing refreshes_deferred."""
    pending = session.info.get(_DEFERRED)
    if pending is None:
        refresh_customer(session=session, shop=shop, customer_id=customer_id, clock=clock)
    else:
        pending.setdefault(customer_id, (shop, clock))


def settle_refresh(*, session: Session, customer_id: int) -> None:
    """Bring a deferred reassessment forward: the caller is about to read the summary."""
    pending = session.info.get(_DEFERRED)
    if pending and customer_id in pending:
        shop, clock = pending.pop(customer_id)
        refresh_customer(session=session, shop=shop, customer_id=customer_id, clock=clock)


def refresh_customer(*, session: Session, shop: Shop, customer_id: int, clock: Clock) -> None:
    """Reassess one customer now, in the caller's transaction (row locked on PostgreSQL)."""
    refresh_customers(session=session, shop=shop, customer_ids=[customer_id], clock=clock)


def _after_events(session: Session, shop_id: int, customer_ids: list[int], clock: Clock) -> None:
    """Registered with app.events.service: the customers a logged event concerns."""
    shop = session.get(Shop, shop_id)
    if shop is not None:
        for customer_id in customer_ids:
            request_refresh(session=session, shop=shop, customer_id=customer_id, clock=clock)


on_risk_events(_after_events)


@dataclass
class _History:
    """One customer's orders (epoch days, quantities, amounts in yuan) and risk events."""

    days: list[int] = field(default_factory=list)
    quantities: list[float] = field(default_factory=list)
    amounts: list[float] = field(default_factory=list)
    events: list[EventPoint] = field(default_factory=list)


def _histories(session: Session, shop: Shop, customer_ids: Sequence[int]) -> dict[int, _History]:
    """The customers' histories, read in one query for the orders and one for the events."""
    assert shop.id is not None
    tz = ZoneInfo(shop.timezone)
    # Orders and events just added through the ORM must reach the database first.
    session.flush()
    conn = session.connection()
    if conn.dialect.name != "sqlite":
        # Serialise concurrent reassessments of these customers before reading their history.
        # (SQLite has one writer at a time already: write transactions BEGIN IMMEDIATE.)
        _LOCK_SUMMARIES.run(conn, customer_ids)
    histories = {cid: _History() for cid in customer_ids}
    price = ticket_value_cents(shop)
    for cid, d, q, a, paid_by in _SELECT_ORDERS.run(conn, customer_ids):
        history = histories[cid]
        history.days.append(epoch_day(d))
        history.quantities.append(float(q))
        history.amounts.append(_order_value(q, a, paid_by, price) / 100)
    rows = [r for r in _SELECT_EVENTS.run(conn, customer_ids) if r.kind in _RISK_KINDS]
    # Undo events are shop-level (one message may touch several customers); only those
    # newer than the oldest of these events can cancel one of them.
    undone = undone_among(session, shop.id, [r.id for r in rows])
    for cid, i, kind, at, data in rows:
        if i not in undone:
            day = from_utc(at).astimezone(tz).date()
            histories[cid].events.append(EventPoint(id=i, kind=kind, day=day, data=data))
    return histories


def refresh_customers(
    *, session: Session, shop: Shop, customer_ids: Sequence[int], clock: Clock
) -> None:
    """Reassess these customers of `shop` now, in the caller's transaction (their rows
    locked on PostgreSQL), each exactly as refresh_customer would."""
    priors = stored_priors(shop)
    if priors is None:
        rescore_shop(session=session, shop=shop, clock=clock)
        priors = stored_priors(shop)
        assert priors is not None
    assert shop.id is not None
    today = local_today(clock, shop.timezone)
    config = risk_config(shop)
    rows: dict[int, dict[str, Any]] = {}
    for customer_id, history in _histories(session, shop, customer_ids).items():
        assessment, row = assess_history(
            history.days,
            history.quantities,
            history.amounts,
            history.events,
            priors=priors,
            config=config,
            as_of=today,
        )
        bought = row["n_orders"] > 0
        rows[customer_id] = _summary_values(
            assessment,
            first=from_epoch_day(row["first_day"]) if bought else None,
            last=from_epoch_day(row["last_day"]) if bought else None,
            total_quantity=row["total_quantity"],
            total_amount=row["total_amount"],
            last_quantity=row["last_quantity"] if bought else None,
            today=today,
            clock=clock,
        )
    _write_summaries(session, shop.id, rows)


_SUMMARY_IDS = _ByCustomer(sa_select(_SUMMARY.c.customer_id), _SUMMARY.c.customer_id)


def _write_summaries(session: Session, shop_id: int, rows: dict[int, dict[str, Any]]) -> None:
    """Rewrite these customers' summaries: one UPDATE statement (executemany for several)."""
    params = [
        {"cid": customer_id, **{f"v_{k}": v for k, v in values.items()}}
        for customer_id, values in rows.items()
    ]
    if not params:
        return
    conn = session.connection()
    updated = conn.execute(_UPDATE_SUMMARY, params if len(params) > 1 else params[0]).rowcount
    if updated != len(params):
        # A customer without a summary row yet (one made outside create_customer): add it.
        present = set(_SUMMARY_IDS.run(conn, list(rows)).scalars())
        for customer_id, values in rows.items():
            if customer_id not in present:
                session.add(CustomerSummary(customer_id=customer_id, shop_id=shop_id, **values))
        session.flush()
    for customer_id in rows:
        # A copy of this summary loaded earlier in the session would now be stale.
        cached = session.identity_map.get(session.identity_key(CustomerSummary, customer_id))
        if cached is not None:
            session.expire(cached)


_ORDER_CHUNK = 20_000


def ticket_value_cents(shop: Shop) -> int | None:
    """What a delivery paid with water tickets is worth to the engine: the shop's unit price."""
    price = shop.settings.get("unit_price_cents")
    return int(price) if price else None


def _order_value(quantity: Any, amount_cents: Any, paid_by: Any, ticket_price: int | None) -> int:
    """An order's value in cents. A delivery paid with tickets carries 0 money (the tickets
    were the revenue when sold), but it is an order of the usual size: valued at the unit
    price, or a ticket customer's every delivery would read as a collapsed 客单价."""
    if paid_by == "tickets" and ticket_price:
        return int(quantity) * ticket_price
    return int(amount_cents or 0)


def _shop_orders(
    session: Session, shop_id: int, index: dict[int, int], ticket_price: int | None = None
) -> OrderArrays:
    """The shop's orders as arrays, read in chunks: memory holds the arrays (about 28 bytes
    an order) and one chunk of rows, never a row object per order of the whole history."""
    query = sa_select(
        _ORDERS.c.customer_id, _ORDERS.c.order_date, _ORDERS.c.quantity,
        _ORDERS.c.amount_cents, _ORDERS.c.paid_by,
    ).where(_ORDERS.c.shop_id == shop_id)  # fmt: skip
    # Per statement: Connection.execution_options would switch the whole connection (and
    # every later UPDATE on it) to server-side cursors on PostgreSQL.
    result = session.connection().execute(query.execution_options(stream_results=True))
    parts: list[tuple[Any, Any, Any, Any]] = []
    for chunk in result.partitions(_ORDER_CHUNK):
        n = len(chunk)
        parts.append(
            (
                np.fromiter((index[r[0]] for r in chunk), dtype=np.int64, count=n),
                np.fromiter((epoch_day(r[1]) for r in chunk), dtype=np.int64, count=n),
                np.fromiter((r[2] for r in chunk), dtype=np.float64, count=n),
                np.fromiter(
                    (_order_value(r[2], r[3], r[4], ticket_price) / 100 for r in chunk),
                    dtype=np.float64,
                    count=n,
                ),
            )
        )

    def joined(k: int, dtype: Any) -> Any:
        return np.concatenate([p[k] for p in parts]) if parts else np.zeros(0, dtype=dtype)

    return OrderArrays(
        customer=joined(0, np.int64),
        day=joined(1, np.int64),
        quantity=joined(2, np.float64),
        amount=joined(3, np.float64),
        n_customers=len(index),
    )


def rescore_shop(*, session: Session, shop: Shop, clock: Clock) -> ShopPriors:
    """Fit the shop's priors on its whole history and rewrite every customer's summary."""
    assert shop.id is not None
    tz = ZoneInfo(shop.timezone)
    today = local_today(clock, shop.timezone)
    customer_ids = [
        cid
        for cid in session.exec(
            select(Customer.id).where(Customer.shop_id == shop.id).order_by(col(Customer.id))
        )
        if cid is not None
    ]
    index = {cid: i for i, cid in enumerate(customer_ids)}
    orders = _shop_orders(session, shop.id, index, ticket_value_cents(shop))
    per_customer: dict[int, list[EventPoint]] = defaultdict(list)
    undone = undone_event_ids(session, shop.id)
    for event in session.exec(
        select(Event).where(Event.shop_id == shop.id, col(Event.kind).in_(RISK_EVENT_KINDS))
    ):
        if event.id in undone:
            continue
        if event.customer_id is not None and event.customer_id in index:
            per_customer[event.customer_id].append(_event_point(event, tz))
    config = risk_config(shop)
    # Fit on orders alone, then score with the fitted priors exactly as the online path does.
    priors = score_arrays(orders, as_of=today, config=config).priors
    last_days = np.full(len(customer_ids), -1, dtype=np.int64)
    np.maximum.at(
        last_days, orders.customer, np.where(orders.day <= epoch_day(today), orders.day, -1)
    )
    facts = facts_array(
        [
            customer_facts(
                per_customer.get(cid, []),
                last_order=None if last_days[i] < 0 else from_epoch_day(int(last_days[i])),
                today=today,
            )
            for i, cid in enumerate(customer_ids)
        ]
    )
    scores = score_arrays(orders, as_of=today, config=config, priors=priors, facts=facts)
    settings = {**shop.settings, PRIORS_KEY: {**priors.to_dict(), "fitted_on": today.isoformat()}}
    # The caller's Shop may belong to another session (another request or thread): write
    # through this session's own copy, and keep the caller's object in step.
    own = session.get(Shop, shop.id)
    assert own is not None
    own.settings = settings
    session.add(own)
    if own is not shop:
        shop.__dict__["settings"] = settings
    summaries = set(
        session.exec(select(CustomerSummary.customer_id).where(CustomerSummary.shop_id == shop.id))
    )
    fig = scores.figures
    updates: list[dict[str, Any]] = []
    for i, cid in enumerate(customer_ids):
        assessment = assessment_at(scores, i)
        first_day, last_day = int(scores.first_day[i]), int(scores.last_day[i])
        values = _summary_values(
            assessment,
            first=None if first_day < 0 else from_epoch_day(first_day),
            last=None if last_day < 0 else from_epoch_day(last_day),
            total_quantity=float(scores.total_quantity[i]),
            total_amount=float(scores.total_amount[i]),
            last_quantity=None if np.isnan(fig.last_quantity[i]) else float(fig.last_quantity[i]),
            today=today,
            clock=clock,
        )
        if cid in summaries:
            updates.append({"customer_id": cid, "shop_id": shop.id, **values})
        else:
            session.add(CustomerSummary(customer_id=cid, shop_id=shop.id, **values))
    if updates:
        # One executemany (bulk UPDATE by primary key), not thousands of dirty objects.
        session.execute(update(CustomerSummary), updates)
    _assign_value_classes(
        session=session, shop=shop, retained=scores.retained_value, ids=customer_ids
    )
    session.flush()
    return priors


def _assign_value_classes(*, session: Session, shop: Shop, retained: Any, ids: list[int]) -> None:
    """A (top 20 % by value if retained), B (next 30 %), C (the rest); D is the owner's call,
    and so is any class the owner set by hand (tagged OWNER_CLASS_TAG)."""
    if not ids:
        return
    order = np.argsort(-retained, kind="stable")
    classes = np.full(len(ids), "C", dtype=object)
    classes[order[: int(len(ids) * 0.2)]] = "A"
    classes[order[int(len(ids) * 0.2) : int(len(ids) * 0.5)]] = "B"
    by_owner = {
        cid
        for cid, tags in session.exec(
            select(Customer.id, Customer.tags).where(Customer.shop_id == shop.id)
        )
        if OWNER_CLASS_TAG in (tags or [])
    }
    for value_class in ("A", "B", "C"):
        chosen = [ids[i] for i in np.flatnonzero(classes == value_class) if ids[i] not in by_owner]
        if chosen:
            session.execute(
                update(Customer)
                .where(col(Customer.id).in_(chosen), col(Customer.value_class) != "D")
                .values(value_class=value_class)
            )
