"""The one inbox every channel writes through, which makes inbound messages idempotent."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, Index, UniqueConstraint
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


class AccessToken(SQLModel, table=True):
    """A provider access token, one per app, shared by every process through the database.

    One process refreshes at a time: it takes a short lease (`refreshing_until`) in one
    transaction, fetches outside it, and writes the result; the others wait for the lease
    to end and read the fresh token, so the provider never sees a stampede of refreshes
    (each WeCom/WeChat refresh invalidates nothing, but gettoken is rate limited).
    """

    __tablename__ = "access_token"

    app_key: str = Field(primary_key=True, max_length=120)  # "wecom:<corp>:<agent>"
    token: str = Field(default="", max_length=1024)
    expires_at: datetime | None = None
    refreshing_until: datetime | None = None
    updated_at: datetime


class SmsMessage(SQLModel, table=True):
    """A text message we asked the SMS provider to send (or refused to): the rate-limit log."""

    __tablename__ = "sms_message"
    __table_args__ = (Index("ix_sms_phone_time", "phone", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    # Idempotency: a retried push with the same key never texts twice.
    key: str = Field(max_length=160, unique=True)
    shop_id: int | None = Field(default=None, foreign_key="shop.id", index=True)
    phone: str = Field(max_length=32)
    purpose: str = Field(max_length=16)  # digest | outreach
    template_id: str = Field(max_length=32)
    params: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    status: str = Field(max_length=16)  # sending | sent | failed
    provider_ref: str | None = Field(default=None, max_length=128)
    error: str | None = Field(default=None, max_length=500)
    created_at: datetime


class SmsOptOut(SQLModel, table=True):
    """A number that replied an opt-out word (退订, TD...): never texted again."""

    __tablename__ = "sms_opt_out"

    phone: str = Field(primary_key=True, max_length=32)
    word: str = Field(max_length=32)
    created_at: datetime
