"""Orders: the facts everything else is derived from."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

ORDER_SOURCES = ("chat", "import", "demo", "api")


class Order(SQLModel, table=True):
    """One order as the owner recorded it."""

    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_customer_date", "customer_id", "order_date"),
        # The month summary: shop_id = ? AND order_date BETWEEN ? AND ?.
        Index("ix_orders_shop_date", "shop_id", "order_date"),
    )

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shop.id", index=True)
    customer_id: int = Field(foreign_key="customer.id")
    ordered_at: datetime  # aware, stored as UTC
    order_date: date  # the shop's local calendar date, what intervals are counted in
    quantity: int = 1
    unit: str = Field(default="桶", max_length=8)
    amount_cents: int | None = None
    source: str = Field(default="chat", max_length=16)
    raw_text: str | None = Field(default=None, max_length=1000)
    # The inbox message that created it, so a retried message can never record it twice.
    inbox_id: int | None = Field(default=None, foreign_key="inbox_message.id", index=True)
    created_by_staff_id: int | None = Field(default=None, foreign_key="staff.id")
    created_at: datetime
    # Ordered today for a later day ("王姐 明天送2桶"): the purchase is dated today, the
    # delivery day is kept here so the interval maths is not skewed by future dates.
    delivery_on: date | None = None
    # How it was paid when not in money: "tickets" (水票), so amount_cents is 0 on purpose.
    paid_by: str | None = Field(default=None, max_length=16)
