"""The shop's log as the bot writes and reads it: events tied to the message that caused them,
balances derived from those events, and undo.

Events are append-only. Undo never edits one: it appends an "undo" event naming the inbox
message and event ids it cancels, and every reader here skips cancelled events. Orders are
facts the summary is computed from, so an undone order is removed (and its figures kept in
the undo event), then the customer's summary is recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from app.bot.context import BotContext
from app.customers.models import Customer
from app.customers.risk import request_refresh
from app.events.models import Event, InboxMessage
from app.events.service import log_event
from app.orders.models import Order
from app.outreach.outcomes import undo_followups, undo_orders

UNDO_WINDOW = timedelta(minutes=10)
# Event kinds that are not "a change the owner made" and so are never what 撤销 undoes.
_NOT_UNDOABLE = frozenset({"undo", "note"})


def record_event(
    ctx: BotContext, kind: str, *, customer: Customer | None = None, data: dict[str, Any]
) -> Event:
    """Append an event caused by the message being handled (so 撤销 can find it)."""
    ctx.changed = True
    return log_event(
        session=ctx.session,
        shop_id=ctx.shop_id,
        customer_id=customer.id if customer else None,
        kind=kind,
        clock=ctx.clock,
        data=data,
        source="chat",
        staff_id=ctx.staff.id,
        inbox_id=ctx.inbox_id,
    )


def link_new_customer(ctx: BotContext, customer: Customer) -> None:
    """Tie a customer just created for this message to it, so 撤销 can take it back."""
    created = ctx.session.exec(
        select(Event).where(
            Event.customer_id == customer.id,
            Event.kind == "customer_created",
            col(Event.inbox_id).is_(None),
        )
    ).first()
    if created is not None:
        # Same transaction as its insert: it is still being written, not edited afterwards.
        created.inbox_id = ctx.inbox_id
        ctx.session.add(created)
    ctx.changed = True


@dataclass(frozen=True)
class LastChange:
    """The sender's most recent message that changed something."""

    inbox_id: int
    received_at: datetime
    body: str
    orders: list[Order]
    events: list[Event]


def last_change(ctx: BotContext) -> LastChange | None:
    """The newest of this sender's messages whose writes are still in force."""
    session = ctx.session
    undone_inbox = {
        int(data.get("undone_inbox_id", 0))
        for data in session.exec(
            select(col(Event.data)).where(Event.shop_id == ctx.shop_id, Event.kind == "undo")
        )
    }
    messages = session.exec(
        select(InboxMessage)
        .where(
            InboxMessage.shop_id == ctx.shop_id,
            InboxMessage.sender == ctx.sender_key,
            col(InboxMessage.handled_at).is_not(None),
        )
        .order_by(col(InboxMessage.id).desc())
        .limit(50)
    )
    for message in messages:
        if message.id is None or message.id in undone_inbox or message.id == ctx.inbox_id:
            continue
        orders = list(session.exec(select(Order).where(Order.inbox_id == message.id)))
        events = [
            e
            for e in session.exec(
                select(Event).where(Event.shop_id == ctx.shop_id, Event.inbox_id == message.id)
            )
            if e.kind not in _NOT_UNDOABLE
        ]
        if orders or events:
            return LastChange(message.id, message.received_at, message.body, orders, events)
    return None


def _restore(session: Session, event: Event) -> dict[str, Any] | None:
    """Put back a customer's fields as they were before `event` (recorded in data.before)."""
    before = event.data.get("before")
    if not before or event.customer_id is None:
        return None
    customer = session.get(Customer, event.customer_id)
    if customer is None:
        return None
    for name, value in before.items():
        if name == "paused_until":
            customer.paused_until = date.fromisoformat(value) if value else None
        elif name == "status":
            customer.status = str(value)
    session.add(customer)
    return {"customer_id": customer.id, **before}


def undo(ctx: BotContext, change: LastChange) -> Event:
    """Cancel one message's writes; the returned "undo" event records what was undone."""
    session = ctx.session
    orders = [
        {
            "order_id": o.id,
            "customer_id": o.customer_id,
            "order_date": o.order_date.isoformat(),
            "quantity": o.quantity,
            "unit": o.unit,
            "amount_cents": o.amount_cents,
            "raw_text": o.raw_text,
        }
        for o in change.orders
    ]
    customers = {o.customer_id for o in change.orders}
    # Follow-ups the orders closed reopen first (they point at the orders being removed).
    undo_orders(session=session, order_ids=[o.id for o in change.orders if o.id is not None])
    for order in change.orders:
        session.delete(order)
    session.flush()
    for customer_id in customers:
        request_refresh(session=session, shop=ctx.shop, customer_id=customer_id, clock=ctx.clock)
    undo_followups(session=session, events=change.events)
    # Newest first, so a field changed twice by one message ends at its oldest "before".
    restored = [r for e in reversed(change.events) if (r := _restore(session, e)) is not None]
    for event in change.events:
        if event.kind == "customer_created" and event.customer_id is not None:
            created = session.get(Customer, event.customer_id)
            if created is not None:
                # A customer made by mistake is hidden from every list and lookup.
                restored.append({"customer_id": created.id, "status": created.status})
                created.status = "forgotten"
                session.add(created)
    event = record_event(
        ctx,
        "undo",
        data={
            "undone_inbox_id": change.inbox_id,
            "text": change.body[:200],
            "event_ids": [e.id for e in change.events],
            "orders": orders,
            "restored": restored,
        },
    )
    ctx.changed = False  # an undo is not itself offered for undoing in the reply
    return event
