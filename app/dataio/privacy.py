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

from app.channels.models import InboxMessage
from app.clock import Clock
from app.customers.models import Customer
from app.customers.service import CustomerError
from app.events.models import Event
from app.events.service import log_event
from app.orders.models import Order
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
        },
        source=source,
        staff_id=staff_id,
    )
    return ForgetResult(
        customer_id=cid,
        orders_kept=orders_kept,
        events_cleared=events_cleared,
        messages_cleared=messages_cleared,
        event_id=event.id,
    )
