"""What is not a text for the bot: a follow or menu entry, a button tap, a deleted contact.

Each goes through the inbox once (`inbox.act_once`), like a text through `inbox.handle`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from app.channels.binding import answer_binding, channel_message, find_sender
from app.channels.inbox import Handled, Inbound, act_once
from app.clock import Clock
from app.config import Settings
from app.customers.models import Customer
from app.events.service import log_event
from app.shops.models import Shop, Staff


def guide(*, engine: Engine, settings: Settings, clock: Clock, inbound: Inbound) -> list[str]:
    """The binding guide for a stranger (a follow, a menu click), a welcome for staff."""
    if find_sender(engine=engine, channel=inbound.channel, external_id=inbound.sender_id):
        return [channel_message(settings.templates_dir, "welcome_back")]

    def the_guide(session: Session, _inbox_id: int) -> list[str]:
        return answer_binding(
            session, bound=None, channel=inbound.channel, external_id=inbound.sender_id,
            text="", clock=clock, templates_dir=settings.templates_dir,
        )  # fmt: skip

    stored = Inbound(inbound.channel, inbound.sender_id, inbound.message_key, "")
    return act_once(
        engine=engine, clock=clock, inbound=stored, shop_id=None, action=the_guide
    ).replies


@dataclass(frozen=True)
class TapAnswer:
    handled: Handled
    recorded_now: bool  # False on a redelivery, or when the tap was refused


def answer_tap(
    *, engine: Engine, settings: Settings, clock: Clock, inbound: Inbound, key: str
) -> TapAnswer:
    """Record what a button tap stands for (once), and return the label to show."""
    from app.outreach.outcomes import TapError, record_tap

    bound = find_sender(engine=engine, channel=inbound.channel, external_id=inbound.sender_id)
    if bound is None:
        replies = guide(engine=engine, settings=settings, clock=clock, inbound=inbound)
        return TapAnswer(Handled(replies, fresh=False), recorded_now=False)
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

    stored = Inbound(inbound.channel, inbound.sender_id, inbound.message_key, f"tap {key}"[:200])
    handled = act_once(
        engine=engine, clock=clock, inbound=stored, shop_id=bound.shop_id, action=tap
    )
    return TapAnswer(handled, recorded)


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

    stored = Inbound(
        inbound.channel, inbound.sender_id, inbound.message_key,
        f"{change_type} {external_userid}"[:200],
    )  # fmt: skip
    act_once(
        engine=engine,
        clock=clock,
        inbound=stored,
        shop_id=bound.shop_id if bound else None,
        action=record,
    )
    return matched
