"""Forgetting a customer on request: personal data goes, the shop's figures stay right.

The customer row stays (renamed 已删除客户#id, status "forgotten", so no list or lookup
finds it) and so do its orders' dates, quantities and amounts, so monthly counts, revenue
and churn rates do not change. Everything that says who the person was is cleared: name,
phone, address, aliases, note, the free text in their orders and events, and the text of
the chat messages that recorded them. A "forget" event records that it was done, without
any personal data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from app.bot.models import PendingQuestion
from app.channels.models import OutboxMessage
from app.clock import Clock
from app.customers.models import Customer
from app.customers.service import CustomerError, mask_phone
from app.digest.models import DigestDelivery
from app.events.models import Event, InboxMessage
from app.events.service import log_event
from app.orders.models import Order
from app.outreach.models import FollowUp
from app.outreach.sms import SmsMessage
from app.shops.models import Shop

FORGOTTEN_STATUS = "forgotten"
REDACTED = "[已删除]"
# Keys in event data that can hold what a person said or who they are.
PERSONAL_KEYS = frozenset(
    {"text", "name", "phone", "address", "aliases", "note", "raw_text", "body", "said"}
)
# Personal columns of a customer beyond the name; ones a newer schema may not have are skipped.
PERSONAL_COLUMNS = ("phone", "address", "note", "wecom_external_userid")


@dataclass(frozen=True)
class ForgetResult:
    customer_id: int
    orders_kept: int
    events_cleared: int
    messages_cleared: int
    pushes_cleared: int
    event_id: int | None


def forgotten_name(customer_id: int) -> str:
    return f"已删除客户#{customer_id}"


def find_customer_to_forget(*, session: Session, shop: Shop, ref: str) -> Customer:
    """The one customer `ref` means: an id (12 or #12), an exact name, or a phone number."""
    text = ref.strip()
    if not text:
        raise CustomerError("请说明要删除哪位客户(编号、名字或电话)")
    digits = text.lstrip("#")
    if digits.isdigit() and len(digits) < 7:
        customer = session.get(Customer, int(digits))
        if customer is None or customer.shop_id != shop.id:
            raise CustomerError(f"本店没有编号为 {digits} 的客户")
        return customer
    matches = list(
        session.exec(
            select(Customer).where(
                Customer.shop_id == shop.id,
                (col(Customer.name) == text) | (col(Customer.phone) == text),
                col(Customer.status) != FORGOTTEN_STATUS,
            )
        )
    )
    if not matches:
        raise CustomerError(f"本店没有叫“{text}”(或电话是它)的客户")
    if len(matches) > 1:
        ids = "、".join(f"#{c.id}" for c in matches)
        raise CustomerError(f"有 {len(matches)} 位客户都对得上“{text}”({ids}),请用编号指定")
    return matches[0]


def _scrub(value: Any) -> tuple[Any, bool]:
    """A copy of event data with personal values blanked, and whether anything changed."""
    if isinstance(value, dict):
        changed = False
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in PERSONAL_KEYS and item not in (None, "", [], {}):
                out[key] = [] if isinstance(item, list) else ""
                changed = True
            else:
                out[key], sub = _scrub(item)
                changed = changed or sub
        return out, changed
    if isinstance(value, list):
        items = [_scrub(v) for v in value]
        return [v for v, _ in items], any(c for _, c in items)
    return value, False


def forget_customer(
    *,
    session: Session,
    shop: Shop,
    customer: Customer,
    clock: Clock,
    staff_id: int | None = None,
    source: str = "cli",
) -> ForgetResult:
    """Remove a customer's personal data in the caller's transaction and log that it was done."""
    if customer.shop_id != shop.id:
        raise CustomerError("客户不属于这个店铺")
    assert shop.id is not None and customer.id is not None
    cid = customer.id
    # What identified them in text written before today: digests, pushes, questions, texts.
    said = [w for w in (customer.name, *customer.aliases, customer.phone) if w and len(w) >= 2]
    old_phone = customer.phone
    customer.name = forgotten_name(cid)
    customer.aliases = []
    for column in PERSONAL_COLUMNS:
        if column in Customer.model_fields:
            setattr(customer, column, None)
    customer.status = FORGOTTEN_STATUS
    customer.paused_until = None
    session.add(customer)
    inbox_ids: set[int] = set()
    for inbox_id in session.exec(
        select(Order.inbox_id).where(Order.customer_id == cid, col(Order.inbox_id).is_not(None))
    ):
        if inbox_id is not None:
            inbox_ids.add(inbox_id)
    session.execute(update(Order).where(col(Order.customer_id) == cid).values(raw_text=None))
    orders_kept = session.exec(
        select(func.count()).select_from(Order).where(Order.customer_id == cid)
    ).one()
    # Events are otherwise never changed; erasing a person on request is the one exception.
    events_cleared = 0
    for event in session.exec(
        select(Event).where(
            Event.shop_id == shop.id, (col(Event.customer_id) == cid) | (col(Event.kind) == "undo")
        )
    ):
        mine = event.customer_id == cid
        # An undo keeps copies of the orders it removed, with their text.
        holds_mine = event.kind == "undo" and any(
            isinstance(o, dict) and o.get("customer_id") == cid
            for o in (event.data or {}).get("orders", [])
        )
        if not (mine or holds_mine):
            continue
        if event.inbox_id is not None:
            inbox_ids.add(event.inbox_id)
        data, changed = _scrub(event.data or {})
        if changed:
            event.data = data
            session.add(event)
            events_cleared += 1
    messages_cleared = 0
    for message in session.exec(
        select(InboxMessage).where(col(InboxMessage.id).in_(sorted(inbox_ids)))
    ):
        # The whole message goes: "王姐2桶 老李1桶" cannot be cut around one name reliably.
        message.body = REDACTED
        message.replies = [REDACTED] if message.replies else message.replies
        session.add(message)
        messages_cleared += 1
    pushes_cleared = _scrub_pushes(
        session=session, shop_id=shop.id, customer_id=cid, said=said, phone=old_phone
    )
    session.flush()
    event = log_event(
        session=session,
        shop_id=shop.id,
        customer_id=cid,
        kind="forget",
        clock=clock,
        data={
            "orders_kept": orders_kept,
            "events_cleared": events_cleared,
            "messages_cleared": messages_cleared,
            "pushes_cleared": pushes_cleared,
        },
        source=source,
        staff_id=staff_id,
    )
    return ForgetResult(
        customer_id=cid,
        orders_kept=orders_kept,
        events_cleared=events_cleared,
        messages_cleared=messages_cleared,
        pushes_cleared=pushes_cleared,
        event_id=event.id,
    )


def _redact(text: str, said: list[str], replacement: str) -> str:
    # Longest first, so a phone number or a full alias goes before a name inside it.
    for word in sorted(said, key=len, reverse=True):
        text = text.replace(word, replacement)
    return text


def _scrub_pushes(
    *, session: Session, shop_id: int, customer_id: int, said: list[str], phone: str | None
) -> int:
    """Take the person out of what was pushed or asked about them; returns rows changed.

    Digests and local pushes list several customers, so only this one's name, aliases and
    phone are replaced (the digest line keeps its place and number); an item that points at
    one of their follow-ups loses its title and description. Open questions that mention
    them are dropped (they expire within minutes anyway), and texts sent to their number
    keep only the masked number and no words.
    """
    replacement = forgotten_name(customer_id)
    changed = 0
    theirs = {
        int(i)
        for i in session.exec(select(FollowUp.id).where(FollowUp.customer_id == customer_id))
        if i is not None
    }
    if said or theirs:
        for delivery in session.exec(
            select(DigestDelivery).where(DigestDelivery.shop_id == shop_id)
        ):
            text = _redact(delivery.text, said, replacement)
            items = []
            for item in delivery.items:
                item = dict(item)
                if item.get("followup_id") in theirs:
                    item["title"], item["description"] = replacement, ""
                for key in ("title", "description"):
                    if isinstance(item.get(key), str):
                        item[key] = _redact(item[key], said, replacement)
                items.append(item)
            if text != delivery.text or items != delivery.items:
                delivery.text, delivery.items = text, items
                session.add(delivery)
                changed += 1
    if said:
        for push in session.exec(select(OutboxMessage).where(OutboxMessage.shop_id == shop_id)):
            text = _redact(push.text, said, replacement)
            if text != push.text:
                push.text = text
                session.add(push)
                changed += 1
        for question in session.exec(
            select(PendingQuestion).where(PendingQuestion.shop_id == shop_id)
        ):
            blob = repr(question.payload)
            if any(w in blob for w in said) or f"'customer_id': {customer_id}" in blob:
                session.delete(question)
                changed += 1
    if phone:
        for sms in session.exec(
            select(SmsMessage).where(SmsMessage.shop_id == shop_id, SmsMessage.phone == phone)
        ):
            sms.phone = mask_phone(phone) or REDACTED
            sms.params = []
            session.add(sms)
            changed += 1
    return changed
