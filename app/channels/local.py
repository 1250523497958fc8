"""The local channels (web chat, console): the shop owner, no credentials."""

from __future__ import annotations

import uuid

from sqlalchemy import Engine

from app.channels.inbox import Delivery, DeliveryResult, deliver
from app.clock import Clock
from app.config import Settings
from app.db import read_session
from app.shops.service import LOCAL_OWNER_ID, get_shop, owner_of


def deliver_as_owner(
    *,
    engine: Engine,
    settings: Settings,
    clock: Clock,
    shop_ref: str,
    channel: str,
    text: str,
    client_msg_id: str | None = None,
) -> DeliveryResult:
    """Deliver `text` to shop `shop_ref` as its owner on a local channel (web or console)."""
    with read_session(engine) as session:
        shop = get_shop(session=session, ref=shop_ref)
        owner = owner_of(session=session, shop=shop)
    assert shop.id is not None and owner.id is not None
    message_id = client_msg_id or uuid.uuid4().hex
    delivery = Delivery(
        shop_id=shop.id,
        staff_id=owner.id,
        channel=channel,
        # Client ids are only unique per client; scope them to the shop so they never collide.
        external_id=f"{shop.id}:{message_id}",
        sender_key=f"local:{shop.id}:{LOCAL_OWNER_ID}",
        text=text,
    )
    return deliver(
        engine=engine,
        delivery=delivery,
        clock=clock,
        templates_dir=settings.templates_dir,
        pending_ttl_seconds=settings.pending_ttl_seconds,
    )
