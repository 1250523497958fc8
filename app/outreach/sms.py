"""Texts to customers as outreach knows them: the `sms_message` log and opt-outs, the queue's
statuses and keys, which numbers can be texted, and the wake-up of the sender.

The bot queues an owner-confirmed text here (a row with status queued); the transport in
app/channels/sms.py and app/channels/sms_queue.py sends it. Channels import this module,
never the other way round.

Row key of an outreach text: `outreach:fu:<followup id>:by:<staff id>` (one text per
follow-up), or `outreach:cu:<customer id>:<YYYY-MM-DD>:by:<staff id>` (one per customer and
day) when the customer has no open follow-up.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import JSON, Column, Index, event
from sqlmodel import Field, Session, SQLModel

QUEUED = "queued"
# Statuses the owner can be shown (besides queued / sending / sent).
REFUSED = "refused"
FAILED = "failed"

_PHONE = re.compile(r"^(?:\+?86)?(1\d{10})$")
KEY = re.compile(
    r"^outreach:(?:fu:(?P<fu>\d+)|cu:(?P<cu>\d+):(?P<day>\d{4}-\d{2}-\d{2})):by:(?P<by>\d+)$"
)


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


class SmsRefused(ValueError):
    """A text we will not send: opted out, over the number's limit, not confirmed."""


def normalise_phone(phone: str) -> str:
    """+86 and 11 digits, or SmsRefused: only mainland mobile numbers are texted."""
    match = _PHONE.match(re.sub(r"[\s-]", "", phone or ""))
    if match is None:
        raise SmsRefused("不是有效的手机号")
    return f"+86{match.group(1)}"


def outreach_key(*, followup_id: int | None, customer_id: int, day: date, staff_id: int) -> str:
    if followup_id is not None:
        return f"outreach:fu:{followup_id}:by:{staff_id}"
    return f"outreach:cu:{customer_id}:{day.isoformat()}:by:{staff_id}"


def key_prefix(*, followup_id: int | None, customer_id: int, day: date) -> str:
    """What every key for this follow-up (or customer and day) starts with, whoever confirmed."""
    if followup_id is not None:
        return f"outreach:fu:{followup_id}:"
    return f"outreach:cu:{customer_id}:{day.isoformat()}:"


@dataclass(frozen=True)
class Target:
    followup_id: int | None
    staff_id: int


def parse_key(key: str) -> Target | None:
    match = KEY.match(key)
    if match is None:
        return None
    return Target(int(match["fu"]) if match["fu"] else None, int(match["by"]))


# The sender thread (app/channels/sms_queue.py) waits on this. A plain Event set from the
# session's after_commit lets the bot wake it without knowing the transport, and never
# before the queued row is visible to the sender's own transaction.
QUEUE_WOKEN = threading.Event()


def wake() -> None:
    """Ask the sender (in this process) to look at the queue now."""
    QUEUE_WOKEN.set()


def wake_after_commit(session: Session) -> None:
    """Wake the sender once `session`'s transaction has committed (never before)."""
    event.listen(session, "after_commit", lambda _session: wake(), once=True)
