"""Customers and their per-customer summary (kept current in each order's transaction)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index
from sqlmodel import Field, SQLModel

VALUE_CLASSES = ("A", "B", "C", "D")
# On a customer whose value class the owner set by hand ("王姐 A类"): the nightly rescore
# leaves that class alone. (D, set aside, is always the owner's call.)
OWNER_CLASS_TAG = "老板定级"
CUSTOMER_STATUSES = ("active", "paused", "lost", "forgotten")


class Customer(SQLModel, table=True):
    """A shop's customer as the owner knows them (王姐, 3号楼李会计)."""

    __tablename__ = "customer"
    __table_args__ = (
        Index("ix_customer_shop_name", "shop_id", "name"),
        Index("ix_customer_shop_wecom", "shop_id", "wecom_external_userid"),
    )

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shop.id", index=True)
    name: str = Field(max_length=50)
    aliases: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # Stored whole so a tap can dial it; every display goes through mask_phone().
    phone: str | None = Field(default=None, max_length=32)
    address: str | None = Field(default=None, max_length=200)
    kind: str = Field(default="household", max_length=16)
    value_class: str = Field(default="C", max_length=1)
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="active", max_length=16)
    paused_until: date | None = None
    assigned_staff_id: int | None = Field(default=None, foreign_key="staff.id")
    note: str | None = Field(default=None, max_length=500)
    # The customer's WeCom external-contact id, so a deleted contact becomes a signal.
    wecom_external_userid: str | None = Field(default=None, max_length=64)
    created_at: datetime
    # Unused since migration 0008 (the shop's tag below replaced the per-row tags of 0005);
    # kept because dropping a column on SQLite recreates the table.
    match_tag: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default="0")
    )


class ShopMatchTag(SQLModel, table=True):
    """A random tag the database rewrites (triggers, migration 0008) whenever any of the
    shop's customers is added, deleted, or has its name, aliases, phone, address, status or
    shop changed: a cached match index checks it with one primary-key read. Every writer in
    every process (ORM, Core, raw SQL) invalidates every cache. Never set it from the
    application."""

    __tablename__ = "shop_match_tag"

    shop_id: int = Field(foreign_key="shop.id", primary_key=True)
    tag: int = Field(sa_column=Column(BigInteger, nullable=False))


class CustomerSummary(SQLModel, table=True):
    """Derived figures per customer; rewritten in the same transaction as each order."""

    __tablename__ = "customer_summary"
    __table_args__ = (
        # "Who is due today" = shop_id = ? AND check_on <= today: an index range scan.
        Index("ix_summary_shop_check", "shop_id", "check_on"),
    )

    customer_id: int = Field(foreign_key="customer.id", primary_key=True)
    shop_id: int = Field(foreign_key="shop.id", index=True)
    first_order_on: date | None = None
    last_order_on: date | None = None
    order_count: int = 0
    total_quantity: int = 0
    total_amount_cents: int = 0
    last_quantity: int | None = None
    # The plain average gap between purchase days, as the owner's spreadsheet computes it.
    mean_interval_days: float | None = None
    # The engine's usual interval: the customer's own rhythm, seasonally adjusted and shrunk
    # toward the shop's when there are few orders.
    expected_interval_days: float | None = None
    stage: str = Field(default="new", max_length=16)
    churn_probability: float | None = None  # P(no order within the shop's horizon)
    p_alive: float | None = None
    clv_cents: int = 0  # expected value over the next year
    retained_value_cents: int = 0  # value over the next year if the customer stays
    value_at_risk_cents: int = 0  # retained value x churn probability
    # Fired signals with their figures: [{"code", "level", "figures"}].
    findings: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    assessed_on: date | None = None
    # First day the customer counts as quiet (yellow), at risk (red), and lost.
    check_on: date | None = None
    red_on: date | None = None
    lost_on: date | None = None
    updated_at: datetime
