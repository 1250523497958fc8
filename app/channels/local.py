"""The local channels (web chat, console): a shop's owner, or a person signed in to the web chat."""

from __future__ import annotations

import uuid

from sqlalchemy import Engine, and_, bindparam, select

from app.channels.binding import BoundSender
from app.channels.inbox import Handled, Inbound, handle
from app.clock import Clock
from app.config import Settings
from app.shops.models import Shop, Staff
from app.shops.service import LOCAL_OWNER_ID, ShopError

_SHOP = Shop.__table__  # type: ignore[attr-defined]
_STAFF = Staff.__table__  # type: ignore[attr-defined]
# get_shop + owner_of in one statement on a bare connection (no ORM session, no objects):
# this runs before every message typed in the web chat or the console.
_OWNER_JOIN = _SHOP.outerjoin(
    _STAFF, and_(_STAFF.c.shop_id == _SHOP.c.id, _STAFF.c.role == "owner")
)
_BY_SLUG = (
    select(_SHOP.c.id, _SHOP.c.slug, _STAFF.c.id)
    .select_from(_OWNER_JOIN)
    .where(_SHOP.c.slug == bindparam("ref"))
    .order_by(_STAFF.c.id)
    .limit(1)
)
_BY_ID = (
    select(_SHOP.c.id, _SHOP.c.slug, _STAFF.c.id)
    .select_from(_OWNER_JOIN)
    .where(_SHOP.c.id == bindparam("ref"))
    .order_by(_STAFF.c.id)
    .limit(1)
)


def shop_and_owner(engine: Engine, shop_ref: str) -> tuple[int, str, int]:
    """(shop id, slug, owner's staff id) for a slug or numeric id, as get_shop and owner_of
    find them.

    Raises ShopError as they do: no such shop, or a shop without an owner.
    """
    with engine.connect() as conn:
        row = conn.execute(_BY_SLUG, {"ref": shop_ref}).first()
        if row is None and shop_ref.isascii() and shop_ref.isdigit() and len(shop_ref) <= 18:
            row = conn.execute(_BY_ID, {"ref": int(shop_ref)}).first()
    if row is None:
        raise ShopError(f"没有这个店铺:{shop_ref}")
    shop_id, slug, owner_id = row
    if owner_id is None:
        raise ShopError(f"店铺 {slug} 没有店主")
    return int(shop_id), str(slug), int(owner_id)


def deliver_as_owner(
    *,
    engine: Engine,
    settings: Settings,
    clock: Clock,
    shop_ref: str,
    channel: str,
    text: str,
    client_msg_id: str | None = None,
) -> Handled:
    """Deliver `text` to shop `shop_ref` as its owner on a local channel (web or console)."""
    shop_id, _, owner_id = shop_and_owner(engine, shop_ref)
    return deliver_as(
        engine=engine,
        settings=settings,
        clock=clock,
        shop_id=shop_id,
        staff_id=owner_id,
        sender_key=f"local:{shop_id}:{LOCAL_OWNER_ID}",
        channel=channel,
        text=text,
        client_msg_id=client_msg_id,
    )


def deliver_as(
    *,
    engine: Engine,
    settings: Settings,
    clock: Clock,
    shop_id: int,
    staff_id: int,
    sender_key: str,
    channel: str,
    text: str,
    client_msg_id: str | None = None,
) -> Handled:
    """Deliver `text` to one shop from one of its people, known on `sender_key`."""
    message_id = client_msg_id or uuid.uuid4().hex
    inbound = Inbound(
        channel=channel,
        sender_id=sender_key,
        # Client ids are only unique per client; scope them to the shop so they never collide.
        message_key=f"{shop_id}:{message_id}",
        text=text,
        staff=BoundSender(shop_id=shop_id, staff_id=staff_id),
    )
    return handle(engine=engine, settings=settings, clock=clock, inbound=inbound)
