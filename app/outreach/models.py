"""Follow-ups: one row per proposed contact, carrying its outcome for the reports."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

FOLLOWUP_STATUSES = ("open", "contacted", "closed")
# What a tap (or a chat reply) can record about a follow-up.
OUTCOMES = (
    "sent",  # the tier-1 message went out
    "warm",  # they replied kindly
    "none",  # no reply
    "cold",  # a cold reply
    "called",
    "visited",
    "recovered",  # ordered again after our contact: credited to this tier and template
    "returned",  # ordered again before anyone contacted them: no credit
    "lost",  # with a reason
    "away",  # away until a date: no alerts until then
)
CONTACT_OUTCOMES = frozenset({"sent", "warm", "none", "cold", "called", "visited"})
CLOSING_OUTCOMES = frozenset({"recovered", "returned", "lost", "away"})


class FollowUp(SQLModel, table=True):
    """A contact the digest proposed (tier, template, who) and what came of it."""

    __tablename__ = "followup"
    __table_args__ = (
        # One proposal per customer per digest day: a rebuilt digest reuses it.
        UniqueConstraint("shop_id", "customer_id", "created_on", name="uq_followup_day"),
        Index("ix_followup_customer", "customer_id", "created_on"),
        Index("ix_followup_shop_outcome", "shop_id", "outcome_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shop.id", index=True)
    customer_id: int = Field(foreign_key="customer.id")
    tier: int  # 1 message, 2 call, 3 visit/offer, 0 care check
    kind: str = Field(max_length=16)
    template: str = Field(max_length=120)
    reason_code: str = Field(max_length=40)
    owner_role: str = Field(max_length=16)  # staff | owner
    assigned_staff_id: int | None = Field(default=None, foreign_key="staff.id")
    due_on: date
    created_on: date  # the digest day that proposed it
    warning_on: date | None = None  # the episode's first quiet day, for the 48 h target
    status: str = Field(default="open", max_length=16)
    outcome: str | None = Field(default=None, max_length=16)
    outcome_reason: str | None = Field(default=None, max_length=32)
    away_until: date | None = None
    cost_cents: int = 0  # what an offer cost the shop
    first_contact_at: datetime | None = None
    outcome_at: datetime | None = None
    outcome_staff_id: int | None = Field(default=None, foreign_key="staff.id")
    recovered_order_id: int | None = Field(default=None, foreign_key="orders.id")
    created_at: datetime


class LinkUse(SQLModel, table=True):
    """A signed tap link that has been used to write; a second write with it is refused."""

    __tablename__ = "link_use"

    nonce: str = Field(primary_key=True, max_length=32)
    shop_id: int = Field(foreign_key="shop.id")
    followup_id: int = Field(foreign_key="followup.id")
    used_at: datetime
