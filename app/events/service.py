"""Appending to the event log."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from app.clock import Clock
from app.events.models import Event


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
    session.flush()
    return event
