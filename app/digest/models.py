"""Run records that make the morning digest go out exactly once per shop per day."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

RUN_STATUSES = ("sending", "sent", "failed")
DELIVERY_STATUSES = ("pending", "sending", "sent", "failed")


class DigestRun(SQLModel, table=True):
    """One shop's digest for one day. The unique key is what makes it exactly once."""

    __tablename__ = "digest_run"
    __table_args__ = (UniqueConstraint("shop_id", "run_date", name="uq_digest_run_day"),)

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shop.id", index=True)
    run_date: date
    status: str = Field(default="sending", max_length=16)
    # Which process holds it and until when; a dead holder's lease runs out and another
    # process (or the same one after a restart) finishes the unsent deliveries.
    claimed_by: str = Field(max_length=80)
    lease_until: datetime
    item_count: int = 0
    created_at: datetime
    finished_at: datetime | None = None


class DigestDelivery(SQLModel, table=True):
    """What one person gets from a run; rendered once, pushed until a channel accepts it."""

    __tablename__ = "digest_delivery"
    __table_args__ = (UniqueConstraint("run_id", "staff_id", name="uq_digest_delivery"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="digest_run.id", index=True)
    shop_id: int = Field(foreign_key="shop.id")
    staff_id: int = Field(foreign_key="staff.id")
    status: str = Field(default="pending", max_length=16)
    channel: str | None = Field(default=None, max_length=16)
    attempts: int = 0
    title: str = Field(max_length=120)
    text: str
    # The items as pushed (followup id, number, title, description, url, buttons).
    items: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    sent_at: datetime | None = None
    error: str | None = Field(default=None, max_length=500)
