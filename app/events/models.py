"""An append-only log of everything that happened around a customer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
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
