"""The one inbox every channel writes through, which makes inbound messages idempotent."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel


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


class PendingQuestion(SQLModel, table=True):
    """A question the bot asked a sender and is waiting on (create this customer? which one?)."""

    __tablename__ = "pending_question"

    shop_id: int = Field(foreign_key="shop.id", primary_key=True)
    sender: str = Field(max_length=128, primary_key=True)
    kind: str = Field(max_length=32)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    asked_at: datetime
    expires_at: datetime


class OutboxMessage(SQLModel, table=True):
    """A push to staff on the local channels (web chat, console); unique per push key."""

    __tablename__ = "outbox_message"
    __table_args__ = (UniqueConstraint("key", name="uq_outbox_key"),)

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shop.id", index=True)
    staff_id: int = Field(foreign_key="staff.id")
    key: str = Field(max_length=160)
    title: str = Field(max_length=120)
    text: str
    created_at: datetime
