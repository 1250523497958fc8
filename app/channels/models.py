"""What the channels keep: the local outbox and provider tokens (the SMS log and opt-outs
are outreach's: app/outreach/sms.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel


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
