"""What one action sets off across the domains, step by step, in the order the steps run.

Above the domain folders (orders, outreach, customers, events), below the bot and the
demo, which call a flow here rather than chaining the domains' calls themselves.

A recorded order, `record_order`:
  1. orders.service.store inserts the order; the same statement reads what the customer's
     summary said just before, and whether a follow-up is pending
     (outreach.outcomes.followup_pending);
  2. outreach.outcomes.on_order: the order answers those follow-ups (a win-back, with its
     "outcome" event, when we had reached out);
  3. customers.risk.request_refresh reassesses the customer, once, after the order and
     its outcome (at once, or at the end of the bot's refreshes_deferred block).

A logged event (events.service.log_event) needs no flow: a risk-relevant one reassesses
its customers through the hook app/customers/risk.py registers with the events module,
so each caller, whatever its layer, gets that step without asking for it.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import bindparam
from sqlmodel import Session

from app.clock import Clock
from app.customers.models import Customer
from app.customers.risk import request_refresh
from app.orders.service import Recorded, insert_statement, store
from app.outreach.outcomes import followup_pending, on_order
from app.shops.models import Shop

# Built once: the order's INSERT also asks whether a follow-up is pending.
_ORDER_INSERT = insert_statement(followup_pending(bindparam("cid")))


def record_order(
    *,
    session: Session,
    shop: Shop,
    customer: Customer,
    quantity: int,
    clock: Clock,
    unit: str | None = None,
    amount_cents: int | None = None,
    ordered_at: datetime | None = None,
    source: str = "chat",
    raw_text: str | None = None,
    inbox_id: int | None = None,
    staff_id: int | None = None,
    delivery_on: date | None = None,
    paid_by: str | None = None,
) -> Recorded:
    """Record one order and bring the customer's summary up to date before returning
    (OrderError when it cannot be recorded as given)."""
    recorded = store(
        session=session, shop=shop, customer=customer, quantity=quantity, clock=clock,
        statement=_ORDER_INSERT, unit=unit, amount_cents=amount_cents, ordered_at=ordered_at,
        source=source, raw_text=raw_text, inbox_id=inbox_id, staff_id=staff_id,
        delivery_on=delivery_on, paid_by=paid_by,
    )  # fmt: skip
    on_order(
        session=session, shop=shop, customer=customer, order=recorded.order,
        has_pending=recorded.prior.has_pending,
    )  # fmt: skip
    assert customer.id is not None
    request_refresh(session=session, shop=shop, customer_id=customer.id, clock=clock)
    return recorded
