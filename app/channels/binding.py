"""Who is writing: a bound staff member, or a stranger who may bind with a one-time code.

An owner binds a WeCom userid or an Official Account OpenID by sending `绑定 123456`, the
code from `huitou shop code`. The code does not name its shop, so we look for the shop whose
live code it is. Until bound, a sender gets a short guide and never any shop data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Connection, Engine, bindparam, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.clock import Clock
from app.db import read_session
from app.events.models import InboxMessage
from app.shops.models import Shop, StaffIdentity
from app.shops.service import consume_binding_code, owner_of
from app.templating import render_message

BIND_COMMAND = re.compile(r"^\s*绑定\s*[::]?\s*(\d{6})\s*$")
# Failed binding attempts one sender may make per hour: 6-digit codes must not be guessable.
MAX_BIND_FAILURES_PER_HOUR = 5


@dataclass(frozen=True)
class BoundSender:
    shop_id: int
    staff_id: int


_IDENTITY = StaffIdentity.__table__  # type: ignore[attr-defined]
# Built once: every callback runs it, and building it costs more than running it.
_FIND_SENDER = (
    sa_select(_IDENTITY.c.shop_id, _IDENTITY.c.staff_id)
    .where(_IDENTITY.c.channel == bindparam("channel"))
    .where(_IDENTITY.c.external_id == bindparam("external_id"))
    .limit(1)
)


def find_sender(*, engine: Engine, channel: str, external_id: str) -> BoundSender | None:
    """The staff member this channel identity is bound to, if any."""
    with engine.connect() as conn:
        return find_sender_in(conn, channel=channel, external_id=external_id)


def find_sender_in(
    executor: Session | Connection, *, channel: str, external_id: str
) -> BoundSender | None:
    """`find_sender` inside an open session or connection."""
    identity = executor.execute(
        _FIND_SENDER, {"channel": channel, "external_id": external_id}
    ).first()
    if identity is None:
        return None
    return BoundSender(shop_id=identity.shop_id, staff_id=identity.staff_id)


def staff_external_id(*, engine: Engine, staff_id: int, channel: str) -> str | None:
    """The id a channel knows this member of staff by (WeCom userid, OA OpenID), if bound."""
    with read_session(engine) as session:
        identity = session.exec(
            select(StaffIdentity).where(
                StaffIdentity.staff_id == staff_id, StaffIdentity.channel == channel
            )
        ).first()
    return identity.external_id if identity else None


def channel_message(
    templates_dir: Path, name: str, *, shop: Shop | None = None, **context: object
) -> str:
    """Render message_templates/<pack>/channels/<name>.txt.j2 (generic before binding)."""
    industry = shop.industry if shop else "generic"
    slug = shop.slug if shop else None
    return render_message(templates_dir, industry, slug, f"channels/{name}.txt.j2", **context)


def _recent_failures(session: Session, *, channel: str, sender: str, clock: Clock) -> int:
    since = clock.now() - timedelta(hours=1)
    count = session.execute(
        select(func.count())
        .select_from(InboxMessage)
        .where(
            col(InboxMessage.channel) == channel,
            col(InboxMessage.sender) == sender,
            col(InboxMessage.shop_id).is_(None),
            col(InboxMessage.received_at) >= since,
            col(InboxMessage.body).like("绑定%"),
            col(InboxMessage.handled_at).is_not(None),
        )
    ).scalar_one()
    return int(count)


def _bind(
    session: Session,
    *,
    channel: str,
    external_id: str,
    code: str,
    clock: Clock,
    templates_dir: Path,
) -> list[str]:
    sender = f"{channel}:{external_id}"
    if _recent_failures(session, channel=channel, sender=sender, clock=clock) >= (
        MAX_BIND_FAILURES_PER_HOUR
    ):
        return [channel_message(templates_dir, "bind_too_many")]
    now = clock.now()
    candidates = session.exec(
        select(Shop).where(
            col(Shop.binding_code_hash).is_not(None), col(Shop.binding_code_expires_at) > now
        )
    ).all()
    for shop in candidates:
        if consume_binding_code(session=session, shop=shop, code=code, clock=clock):
            owner = owner_of(session=session, shop=shop)
            assert shop.id is not None and owner.id is not None
            session.add(
                StaffIdentity(
                    shop_id=shop.id,
                    staff_id=owner.id,
                    channel=channel,
                    external_id=external_id,
                    created_at=now,
                )
            )
            session.flush()
            return [channel_message(templates_dir, "bind_done", shop=shop, shop_name=shop.name)]
    return [channel_message(templates_dir, "bind_failed")]


def answer_binding(
    session: Session,
    *,
    bound: BoundSender | None,
    channel: str,
    external_id: str,
    text: str,
    clock: Clock,
    templates_dir: Path,
) -> list[str]:
    """Bind a stranger on `绑定 123456`; anything else from a stranger gets the guide.

    Staff who send a code are told they are bound already, and nothing changes.
    """
    match = BIND_COMMAND.match(text)
    if match is None and bound is None:
        return [channel_message(templates_dir, "bind_guide")]
    if bound is None:  # bound meanwhile by a concurrent delivery of another message?
        bound = find_sender_in(session, channel=channel, external_id=external_id)
    if bound is not None:
        shop = session.get(Shop, bound.shop_id)
        assert shop is not None
        return [channel_message(templates_dir, "already_bound", shop=shop, shop_name=shop.name)]
    assert match is not None
    return _bind(
        session,
        channel=channel,
        external_id=external_id,
        code=match.group(1),
        clock=clock,
        templates_dir=templates_dir,
    )
