"""The event log read as the owner's ledger: ticket and deposit balances, open complaints,
and what a script may say from them (app/bot reads them for replies, app/outreach for scripts).

Every read skips undone events (live_rows)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, bindparam, literal
from sqlmodel import Session, select

from app.events.models import Event
from app.events.service import live_rows

_EVENTS = Event.__table__  # type: ignore[attr-defined]
_COMPLAINT_KINDS = ("complaint", "complaint_resolved")
# Built once: a balance is read after every ticket or deposit change and on every card.
_CHANGES = select(_EVENTS.c.id, _EVENTS.c.data).where(
    _EVENTS.c.customer_id == bindparam("cid"),
    _EVENTS.c.shop_id == bindparam("shop"),
    _EVENTS.c.kind == bindparam("kind"),
)


def _changes(rows: Iterable[Any]) -> int:
    """What ticket or deposit events add up to (each says its change)."""
    return sum(int(row.data.get("change", 0)) for row in rows)


def balance(session: Session, shop_id: int, customer_id: int, kind: str) -> int:
    """Water tickets ("tickets") or buckets on deposit ("deposit") the customer holds."""
    rows = live_rows(
        session, shop_id, _CHANGES, {"cid": customer_id, "shop": shop_id, "kind": kind}
    )
    return _changes(rows)


def _customer_events(*kinds: str) -> Select[Any]:
    """A customer's events of these kinds, oldest first: id, kind, data."""
    return (
        select(_EVENTS.c.id, _EVENTS.c.kind, _EVENTS.c.data)
        .where(
            _EVENTS.c.customer_id == bindparam("cid"),
            _EVENTS.c.shop_id == bindparam("shop"),
            _EVENTS.c.kind.in_([literal(k) for k in kinds]),
        )
        .order_by(_EVENTS.c.occurred_at, _EVENTS.c.id)
    )


# Built once: a customer's complaints and their resolutions; and, for a card or a script,
# those with the ticket and deposit changes, in one read.
_COMPLAINTS = _customer_events(*_COMPLAINT_KINDS)
_HELD = _customer_events("tickets", "deposit", *_COMPLAINT_KINDS)


def _still_open(rows: list[Any]) -> list[Any]:
    """The complaints among `rows` that no resolution among them names."""
    resolved = {
        int(i) for r in rows if r.kind == "complaint_resolved" for i in r.data["complaint_ids"]
    }
    return [r for r in rows if r.kind == "complaint" and r.id not in resolved]


def open_complaints(session: Session, shop_id: int, customer_id: int) -> list[Any]:
    """Complaints not yet marked resolved, oldest first (rows: id, kind, data)."""
    params = {"cid": customer_id, "shop": shop_id}
    return _still_open(live_rows(session, shop_id, _COMPLAINTS, params))


@dataclass(frozen=True)
class Holdings:
    """What a customer holds and has open with the shop: what a card and a script show."""

    tickets: int
    buckets: int
    complaints: list[Any]  # open_complaints()


def holdings(session: Session, shop_id: int, customer_id: int) -> Holdings:
    """balance() of tickets and of deposits and open_complaints(), from one read."""
    rows = live_rows(session, shop_id, _HELD, {"cid": customer_id, "shop": shop_id})
    return _holdings(rows)


def _holdings(rows: list[Any]) -> Holdings:
    return Holdings(
        tickets=_changes(r for r in rows if r.kind == "tickets"),
        buckets=_changes(r for r in rows if r.kind == "deposit"),
        complaints=_still_open(rows),
    )


# Said when a complaint was marked resolved without saying how.
FIX_UNSAID = "处理好了"


@dataclass(frozen=True)
class ScriptFacts:
    """What a follow-up script may say about a customer's dealings with the shop."""

    held: Holdings
    complaint: str | None  # the open complaint, else the last one resolved, in the owner's words
    complaint_fix: str | None  # what was done about it; None while it is still open
    ticket_price_cents: int | None  # what the customer paid per ticket (None: never priced)


def script_facts(session: Session, shop_id: int, customer_id: int) -> ScriptFacts:
    """holdings() plus the complaint story and the ticket price, from the same one read."""
    rows = live_rows(session, shop_id, _HELD, {"cid": customer_id, "shop": shop_id})
    held = _holdings(rows)
    complaint = fix = None
    if held.complaints:
        complaint = str(held.complaints[-1].data.get("text") or "") or None
    else:
        resolutions = [r for r in rows if r.kind == "complaint_resolved"]
        if resolutions:
            last = resolutions[-1]
            named = {int(i) for i in last.data.get("complaint_ids", [])}
            texts = [
                str(r.data.get("text") or "")
                for r in rows
                if r.kind == "complaint" and r.id in named
            ]
            complaint = next((t for t in reversed(texts) if t), None)
            if complaint is not None:
                fix = str(last.data.get("text") or "") or FIX_UNSAID
    bought = [r for r in rows if r.kind == "tickets" and int(r.data.get("change", 0)) > 0]
    priced = [r for r in bought if r.data.get("amount_cents")]
    count = sum(int(r.data["change"]) for r in priced)
    price = round(sum(int(r.data["amount_cents"]) for r in priced) / count) if count else None
    return ScriptFacts(held, complaint, fix, price)


# --- undo -----------------------------------------------------------------------------------
