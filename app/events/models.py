"""An append-only log of everything that happened around a customer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

EVENT_KINDS = (
    "customer_created",
    "note",
    "interaction",
    "complaint",
    "satisfaction",
    "outreach",
    "outcome",
    "pause",
    "complaint_resolved",
    "tickets",  # water tickets bought (+) or used (-): data {"change", "amount_cents"}
    "deposit",  # buckets on deposit (+) or returned (-): data {"change", "amount_cents"}
    "undo",  # data {"undone_inbox_id", "event_ids", "orders"}: readers skip those events
    "import",  # a spreadsheet imported: data {"sha256", "file", "rows", "orders_added", ...}
    "forget",  # a customer's personal data removed on request: counts only, nothing personal
    "offer_cost",  # what an offer cost, on a follow-up: data {"followup_id", "cost_cents", ...}
)


class Event(SQLModel, table=True):
    """Something that happened: a reply, a complaint, an outreach, an outcome. Never updated."""

    __tablename__ = "event"
    __table_args__ = (Index("ix_event_customer_time", "customer_id", "occurred_at"),)

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shop.id", index=True)
    customer_id: int | None = Field(default=None, foreign_key="customer.id")
    kind: str = Field(max_length=32)
    occurred_at: datetime  # aware, stored as UTC
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    source: str = Field(default="chat", max_length=16)
    staff_id: int | None = Field(default=None, foreign_key="staff.id")
    inbox_id: int | None = Field(default=None, foreign_key="inbox_message.id")


class InboxMessage(SQLModel, table=True):
    """An inbound message, stored before it is acted on; unique per (channel, external_id)."""

    __tablename__ = "inbox_message"
    __table_args__ = (UniqueConstraint("channel", "external_id", name="uq_inbox_channel_ext"),)

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int | None = Field(default=None, foreign_key="shop.id", index=True)
    channel: str = Field(max_length=16)
    external_id: str = Field(max_length=160)
    sender: str = Field(max_length=128)
    body: str = Field(max_length=4000)
    received_at: datetime
    handled_at: datetime | None = None
    # The replies given, so a redelivery answers exactly as the first delivery did.
    replies: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    error: str | None = Field(default=None, max_length=500)
