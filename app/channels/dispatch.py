"""From a verified, decrypted callback to the bot or the outcome recorder, once per message."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from app.channels.binding import BIND_COMMAND, answer_stranger, channel_message, find_sender
from app.channels.callback import Rejected, act_once
from app.channels.inbox import answer_from
from app.clock import Clock
from app.config import Settings
from app.customers.models import Customer
from app.events.service import log_event
from app.shops.models import Shop, Staff

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Inbound:
    """One verified message: who (the channel's id for them), its retry key, and its text."""

    channel: str  # "wecom" | "wechat"
    sender_id: str  # WeCom userid / OA OpenID
    message_key: str
    text: str


@dataclass(frozen=True)
class Answered:
    replies: list[str]
    duplicate: bool  # the inbox had handled this message already: these are its replies


def answer_text(*, engine: Engine, settings: Settings, clock: Clock, inbound: Inbound) -> list[str]:
    """Replies to a text: the bot's for bound staff, binding or the guide for anyone else."""
    return answer_text_once(engine=engine, settings=settings, clock=clock, inbound=inbound).replies


def answer_text_once(
    *, engine: Engine, settings: Settings, clock: Clock, inbound: Inbound
) -> Answered:
    """`answer_text`, saying whether this call handled the message or found it handled."""
    if not BIND_COMMAND.match(inbound.text):
        # The usual case, a bound member of staff: who they are and (for a read-only
        # command) the answer come from one read transaction.
        try:
            result = answer_from(
                engine=engine,
                channel=inbound.channel,
                sender_id=inbound.sender_id,
                sender_key=sender_key(inbound),
                external_id=inbound.message_key,
                text=inbound.text,
                clock=clock,
                templates_dir=settings.templates_dir,
                pending_ttl_seconds=settings.pending_ttl_seconds,
            )
        except PermissionError as exc:
            raise Rejected(409) from exc
        if result is not None:
            return Answered(result.replies, result.duplicate)
        return _answer_stranger(engine=engine, settings=settings, clock=clock, inbound=inbound)
    bound = find_sender(engine=engine, channel=inbound.channel, external_id=inbound.sender_id)
    if bound is None:
        return _answer_stranger(engine=engine, settings=settings, clock=clock, inbound=inbound)

    def already(session: Session, _inbox_id: int) -> list[str]:
        shop = session.get(Shop, bound.shop_id)
        assert shop is not None
        return [
            channel_message(settings.templates_dir, "already_bound", shop=shop, shop_name=shop.name)
        ]

    replies = act_once(
        engine=engine,
        clock=clock,
        channel=inbound.channel,
        external_id=inbound.message_key,
        sender=sender_key(inbound),
        body=inbound.text,
        shop_id=bound.shop_id,
        action=already,
    )
    return Answered(replies, duplicate=False)


def _answer_stranger(
    *, engine: Engine, settings: Settings, clock: Clock, inbound: Inbound
) -> Answered:
    # Binding and the guide: a repeat gets the stored replies; sending them again is
    # harmless, so they count as fresh.
    replies = answer_stranger(
        engine=engine,
        clock=clock,
        templates_dir=settings.templates_dir,
        channel=inbound.channel,
        external_id=inbound.sender_id,
        message_key=inbound.message_key,
        text=inbound.text,
    )
    return Answered(replies, duplicate=False)


def sender_key(inbound: Inbound) -> str:
    return f"{inbound.channel}:{inbound.sender_id}"


def guide(*, engine: Engine, settings: Settings, clock: Clock, inbound: Inbound) -> list[str]:
    """The binding guide for a stranger (a follow, a menu click), a welcome for staff."""
    if find_sender(engine=engine, channel=inbound.channel, external_id=inbound.sender_id):
        return [channel_message(settings.templates_dir, "welcome_back")]
    return answer_stranger(
        engine=engine,
        clock=clock,
        templates_dir=settings.templates_dir,
        channel=inbound.channel,
        external_id=inbound.sender_id,
        message_key=inbound.message_key,
        text=None,
    )


@dataclass
class TapAnswer:
    replies: list[str]
    recorded_now: bool  # False on a redelivery, or when the tap was refused


def answer_tap(
    *, engine: Engine, settings: Settings, clock: Clock, inbound: Inbound, key: str
) -> TapAnswer:
    """Record what a button tap stands for (once), and return the label to show."""
    from app.outreach.outcomes import TapError, record_tap

    bound = find_sender(engine=engine, channel=inbound.channel, external_id=inbound.sender_id)
    if bound is None:
        return TapAnswer(
            guide(engine=engine, settings=settings, clock=clock, inbound=inbound), False
        )
    recorded = False

    def tap(session: Session, _inbox_id: int) -> list[str]:
        nonlocal recorded
        shop = session.get(Shop, bound.shop_id)
        staff = session.get(Staff, bound.staff_id)
        assert shop is not None and staff is not None
        try:
            label = record_tap(
                session=session,
                shop=shop,
                staff=staff,
                key=key,
                clock=clock,
                source=inbound.channel,
            )
        except TapError as exc:
            return [str(exc)]
        recorded = True
        return [label]

    replies = act_once(
        engine=engine,
        clock=clock,
        channel=inbound.channel,
        external_id=inbound.message_key,
        sender=sender_key(inbound),
        body=f"tap {key}"[:200],
        shop_id=bound.shop_id,
        action=tap,
    )
    return TapAnswer(replies, recorded)


def contact_deleted(
    *,
    engine: Engine,
    clock: Clock,
    inbound: Inbound,
    external_userid: str,
    change_type: str,
) -> int:
    """Log `contact_deleted` on the customer(s) with this WeCom external id; how many matched.

    Scoped to the shop of the staff member involved when they are bound; an unbound
    staff member's contacts are matched across shops (an external id is unique per corp).
    """
    bound = find_sender(engine=engine, channel=inbound.channel, external_id=inbound.sender_id)
    matched = 0

    def record(session: Session, inbox_id: int) -> list[str]:
        nonlocal matched
        query = select(Customer).where(col(Customer.wecom_external_userid) == external_userid)
        if bound is not None:
            query = query.where(col(Customer.shop_id) == bound.shop_id)
        for customer in session.exec(query):
            assert customer.id is not None
            log_event(
                session=session,
                shop_id=customer.shop_id,
                kind="contact_deleted",
                clock=clock,
                customer_id=customer.id,
                data={"change_type": change_type, "staff_userid": inbound.sender_id},
                source="wecom",
                staff_id=bound.staff_id if bound else None,
                inbox_id=inbox_id,
            )
            matched += 1
        return []

    act_once(
        engine=engine,
        clock=clock,
        channel=inbound.channel,
        external_id=inbound.message_key,
        sender=sender_key(inbound),
        body=f"{change_type} {external_userid}"[:200],
        shop_id=bound.shop_id if bound else None,
        action=record,
    )
    return matched
