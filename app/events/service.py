"""Appending to the event log."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from sqlalchemy import Select, bindparam
from sqlmodel import Session, col, select

from app.clock import Clock
from app.events.models import Event

# Event kinds the risk engine reads (app/risk/events.py); others never change an assessment.
RISK_EVENT_KINDS = (
    "interaction", "outreach", "outcome", "pause", "complaint", "complaint_resolved",
    "satisfaction", "tickets", "deposit", "contact_deleted", "undo",
)  # fmt: skip

# (session, shop id, customer ids, clock): reassess these customers after an event of theirs.
Reassess = Callable[[Session, int, list[int], Clock], None]
_reassess: Reassess | None = None


def on_risk_events(reassess: Reassess) -> None:
    """Set who reassesses customers when log_event appends a risk-relevant event.

    The customers' risk code reads events, so events cannot import it back: it registers
    here when loaded (app/customers/risk.py), and every caller of log_event, whatever its
    layer, gets the reassessment without having to ask for it.
    """
    global _reassess
    _reassess = reassess


# Built once: every reassessment reads it.
_UNDO_PAYLOADS = select(col(Event.data)).where(
    col(Event.shop_id) == bindparam("shop"), col(Event.kind) == "undo"
)


def undone_event_ids(session: Session, shop_id: int) -> set[int]:
    """Ids of events some later "undo" cancelled; every reader skips them."""
    return {
        int(i)
        for data in session.execute(_UNDO_PAYLOADS, {"shop": shop_id}).scalars()
        for i in (data or {}).get("event_ids", [])
    }


_EVENTS = Event.__table__  # type: ignore[attr-defined]
# An undo is appended after the events it cancels, so its id is larger than theirs: only
# undo events newer than the oldest of the events in question can cancel any of them.
_UNDO_PAYLOADS_AFTER = select(_EVENTS.c.data).where(
    _EVENTS.c.shop_id == bindparam("shop"),
    _EVENTS.c.kind == "undo",
    _EVENTS.c.id > bindparam("after"),
)


def undone_among(session: Session, shop_id: int, event_ids: Collection[int]) -> set[int]:
    """Which of `event_ids` some later "undo" cancelled (reads only the undo events after them)."""
    if not event_ids:
        return set()
    rows = session.execute(_UNDO_PAYLOADS_AFTER, {"shop": shop_id, "after": min(event_ids)})
    wanted = set(event_ids)
    return {
        int(i) for (data,) in rows for i in (data or {}).get("event_ids", []) if int(i) in wanted
    }


def log_event(
    *,
    session: Session,
    shop_id: int,
    kind: str,
    clock: Clock,
    customer_id: int | None = None,
    data: dict[str, Any] | None = None,
    source: str = "chat",
    staff_id: int | None = None,
    inbox_id: int | None = None,
) -> Event:
    """Append one event; events are never updated or deleted."""
    event = Event(
        shop_id=shop_id,
        customer_id=customer_id,
        kind=kind,
        occurred_at=clock.now(),
        data=data or {},
        source=source,
        staff_id=staff_id,
        inbox_id=inbox_id,
    )
    session.add(event)
    session.flush()  # its id: 撤销 and the follow-ups name events by id
    # A complaint, a cold reply, a returned bucket (or undoing one) changes the customer's
    # risk now, in the same transaction, not at the next nightly rescore.
    affected: set[int] = set()
    if customer_id is not None and kind in RISK_EVENT_KINDS:
        affected.add(customer_id)
    if kind == "undo" and event.data.get("event_ids"):
        ids = [int(i) for i in event.data["event_ids"]]
        affected |= {
            c
            for c in session.exec(select(Event.customer_id).where(col(Event.id).in_(ids)))
            if c is not None
        }
    if affected:
        if _reassess is None:  # a stale risk would go unnoticed: refuse instead
            raise RuntimeError("risk events need app.customers.risk loaded (on_risk_events)")
        _reassess(session, shop_id, sorted(affected), clock)
    return event


def live_rows(
    session: Session, shop_id: int, statement: Select[Any], params: dict[str, Any]
) -> list[Any]:
    """The rows of a prebuilt Core `statement` over events (its first column the event id)
    whose events were not undone, in the statement's order."""
    session.flush()  # events added through the session count (a plain read does not autoflush)
    rows: list[Any] = list(session.execute(statement, params))
    if not rows:
        return rows
    undone = undone_among(session, shop_id, [row[0] for row in rows])
    return [row for row in rows if row[0] not in undone]
