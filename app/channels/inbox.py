"""Every inbound message passes through here: stored once, acted on once, answered the same.

The inbox row, the bot's writes and the stored replies commit in one transaction, so a
message is either fully handled or not at all; a redelivery of a handled message gets the
stored replies back and changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from app.bot.context import BotContext
from app.bot.core import handle
from app.channels.models import InboxMessage
from app.clock import Clock
from app.db import write_session
from app.shops.models import Shop, Staff

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    """One inbound message as a channel adapter hands it over."""

    shop_id: int
    staff_id: int
    channel: str
    external_id: str  # unique per channel: WeChat MsgId, a web client's message id
    sender_key: str
    text: str


@dataclass(frozen=True)
class DeliveryResult:
    replies: list[str]
    duplicate: bool  # True when this delivery was a repeat of a handled message


def _insert_ignoring_duplicate(engine: Engine) -> type[sqlite.Insert] | type[postgresql.Insert]:
    return postgresql.Insert if engine.dialect.name == "postgresql" else sqlite.Insert


def deliver(
    *,
    engine: Engine,
    delivery: Delivery,
    clock: Clock,
    templates_dir: Path,
    pending_ttl_seconds: int = 600,
) -> DeliveryResult:
    """Store the message if new, let the bot handle it, and return the replies."""
    with write_session(engine) as session:
        insert = _insert_ignoring_duplicate(engine)
        statement = (
            insert(InboxMessage)
            .values(
                shop_id=delivery.shop_id,
                channel=delivery.channel,
                external_id=delivery.external_id,
                sender=delivery.sender_key,
                body=delivery.text[:4000],
                received_at=clock.now(),
            )
            .on_conflict_do_nothing(index_elements=["channel", "external_id"])
        )
        session.execute(statement)
        row = session.execute(
            select(InboxMessage)
            .where(
                InboxMessage.channel == delivery.channel,  # type: ignore[arg-type]
                InboxMessage.external_id == delivery.external_id,  # type: ignore[arg-type]
            )
            .with_for_update()
        ).scalar_one()
        if row.shop_id != delivery.shop_id or row.sender != delivery.sender_key:
            # Same id from someone else: never reveal or replay another sender's replies.
            raise PermissionError("message id already used by another sender")
        if row.handled_at is not None:
            return DeliveryResult(replies=list(row.replies or []), duplicate=True)
        shop = session.get(Shop, delivery.shop_id)
        staff = session.get(Staff, delivery.staff_id)
        if shop is None or staff is None or staff.shop_id != shop.id:
            raise PermissionError("sender is not staff of this shop")
        ctx = BotContext(
            session=session,
            shop=shop,
            staff=staff,
            sender_key=delivery.sender_key,
            clock=clock,
            templates_dir=templates_dir,
            pending_ttl_seconds=pending_ttl_seconds,
            inbox_id=row.id,
        )
        replies = handle(ctx, delivery.text)
        row.replies = replies
        row.handled_at = clock.now()
        session.add(row)
        return DeliveryResult(replies=replies, duplicate=False)
