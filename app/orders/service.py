"""Storing orders, and what the customer's summary said just before each one.

What else a recorded order sets off (the follow-up it answers, the customer's
reassessment) is app/flows.py's `record_order`, which calls `store` here first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Insert, bindparam, select
from sqlmodel import Session

from app.clock import Clock
from app.customers.models import Customer, CustomerSummary
from app.orders.models import Order
from app.shops.models import Shop


class OrderError(ValueError):
    """An order that cannot be recorded as given."""


MAX_QUANTITY = 10_000

_ORDERS = Order.__table__  # type: ignore[attr-defined]
_SUMMARY = CustomerSummary.__table__  # type: ignore[attr-defined]


def _before(column: Any) -> Any:
    """The customer's summary `column` as the order finds it (reassessed only afterwards)."""
    return select(column).where(_SUMMARY.c.customer_id == bindparam("cid")).scalar_subquery()


def insert_statement(pending: ColumnElement[bool]) -> Insert:
    """The order INSERT for `store`, to build once. Its RETURNING gives the new id and, in the
    same statement, what the customer's record said just before: the previous order for the
    confirmation, and `pending` (the caller's question about customer `:cid`, e.g. whether
    a follow-up is pending), so recording an order takes no extra read."""
    return _ORDERS.insert().returning(
        _ORDERS.c.id,
        _before(_SUMMARY.c.last_order_on),
        _before(_SUMMARY.c.expected_interval_days),
        _before(_SUMMARY.c.order_count),
        pending,
    )


@dataclass(frozen=True)
class Prior:
    """What the customer's record said just before a new order."""

    last_order_on: date | None
    expected_interval_days: float | None
    order_count: int  # 0 also when the customer has no summary row yet
    has_pending: bool  # the statement's `pending` (flows: a follow-up the order answers)


@dataclass(frozen=True)
class Recorded:
    order: Order
    prior: Prior


def store(
    *,
    session: Session,
    shop: Shop,
    customer: Customer,
    quantity: int,
    clock: Clock,
    statement: Insert,
    unit: str | None = None,
    amount_cents: int | None = None,
    ordered_at: datetime | None = None,
    source: str = "chat",
    raw_text: str | None = None,
    inbox_id: int | None = None,
    staff_id: int | None = None,
    delivery_on: date | None = None,
    paid_by: str | None = None,
) -> Recorded:
    """Insert one order with `statement` (from `insert_statement`); nothing else.

    The order is inserted at once; the returned Order is loaded in `session` (later changes
    to it are flushed as an UPDATE, like any loaded row). With it comes what the customer's
    record said just before (read by the INSERT itself).
    """
    if customer.shop_id != shop.id:
        raise OrderError("客户不属于这个店铺")
    if not 1 <= quantity <= MAX_QUANTITY:
        raise OrderError(f"数量需在1到{MAX_QUANTITY}之间")
    if amount_cents is not None and amount_cents < 0:
        raise OrderError("金额不能为负数")
    moment = ordered_at or clock.now()
    if moment.tzinfo is None:
        raise OrderError("ordered_at must be timezone-aware")
    if amount_cents is None and shop.settings.get("unit_price_cents"):
        amount_cents = int(shop.settings["unit_price_cents"]) * quantity
    assert shop.id is not None and customer.id is not None
    values: dict[str, Any] = {
        "shop_id": shop.id,
        "customer_id": customer.id,
        "ordered_at": moment,
        "order_date": moment.astimezone(ZoneInfo(shop.timezone)).date(),
        "quantity": quantity,
        "unit": unit or str(shop.settings.get("unit", "桶")),
        "amount_cents": amount_cents,
        "source": source,
        "raw_text": raw_text[:1000] if raw_text else None,
        "inbox_id": inbox_id,
        "created_by_staff_id": staff_id,
        "created_at": clock.now(),
        "delivery_on": delivery_on,
        "paid_by": paid_by,
    }
    session.flush()  # rows the order refers to (a customer just created) go first
    row = session.execute(statement, {**values, "cid": customer.id}).one()
    order = session.get(Order, row[0])
    assert order is not None
    return Recorded(order, Prior(row[1], row[2], row[3] or 0, bool(row[4])))
