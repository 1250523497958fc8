"""From the owner's records (events) to the facts the signals read. Pure, no database.

Kinds and payloads are the ones the bot writes (app/bot/ledger.py): interaction
{reaction: warm|none|cold}, outreach, outcome {outcome: recovered|lost, reason}, pause
{until}, complaint / complaint_resolved {complaint_ids}, satisfaction {score}, tickets and
deposit {change}, contact_deleted, and undo {event_ids} which cancels earlier events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np

from app.risk.season import epoch_day
from app.risk.signals import EventFacts

UNAVOIDABLE_REASONS = frozenset({"搬家/倒闭", "搬家", "倒闭", "moved", "closed"})
COLD_REPLY_MEMORY_DAYS = 60


@dataclass(frozen=True)
class EventPoint:
    """One event as the engine needs it."""

    id: int
    kind: str
    day: date  # the shop's local date it happened
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class CustomerFacts:
    """One customer's facts; see EventFacts for the meaning of each."""

    ignored_streak: int = 0
    cold_reply: bool = False
    satisfaction: float = float("nan")
    complaint_open: bool = False
    contact_deleted: bool = False
    ticket_balance: float = float("nan")
    had_tickets: bool = False
    deposit_refunded: bool = False
    moved_closed: bool = False
    recalled_day: int = -1
    paused_days: float = 0.0


def customer_facts(
    events: Sequence[EventPoint], *, last_order: date | None, today: date
) -> CustomerFacts:
    """Read one customer's events (any order) as of `today`."""
    if not events:
        return CustomerFacts()  # what the loop below leaves, without building it
    cancelled = {int(i) for e in events if e.kind == "undo" for i in e.data.get("event_ids", [])}
    live = sorted(
        (e for e in events if e.id not in cancelled and e.kind != "undo" and e.day <= today),
        key=lambda e: (e.day, e.id),
    )
    facts = CustomerFacts()
    complaints: set[int] = set()
    tickets = 0.0
    deposit = 0.0
    last_deposit_change = 0.0
    # An outreach counted in the streak and still waiting for its reaction: a "没回" recorded
    # for it confirms that one contact went unanswered, it is not a second one.
    awaiting = False
    for e in live:
        after_last_order = last_order is None or e.day >= last_order
        if e.kind == "outreach" and after_last_order:
            facts.ignored_streak += 1
            awaiting = True
        elif e.kind == "interaction":
            reaction = e.data.get("reaction")
            if reaction == "warm":
                facts.ignored_streak = 0
                facts.cold_reply = False
            elif reaction == "reached":  # a call or visit got through
                facts.ignored_streak = 0
            elif reaction == "none" and after_last_order and not awaiting:
                facts.ignored_streak += 1  # a contact made outside the follow-ups
            elif reaction == "cold":
                # A cold answer matters until the customer orders again, for two months at most.
                recent = (today - e.day).days <= COLD_REPLY_MEMORY_DAYS
                facts.cold_reply = after_last_order and recent
            awaiting = False
        elif e.kind == "satisfaction" and "score" in e.data:
            facts.satisfaction = float(e.data["score"])
        elif e.kind == "complaint":
            complaints.add(e.id)
        elif e.kind == "complaint_resolved":
            ids = e.data.get("complaint_ids")
            complaints = complaints - {int(i) for i in ids} if ids else set()
        elif e.kind == "contact_deleted":
            facts.contact_deleted = True
        elif e.kind == "tickets":
            change = float(e.data.get("change", 0))
            tickets += change
            facts.had_tickets = facts.had_tickets or change > 0
        elif e.kind == "deposit":
            last_deposit_change = float(e.data.get("change", 0))
            deposit += last_deposit_change
        elif e.kind == "outcome":
            outcome = e.data.get("outcome")
            if outcome == "recovered":
                facts.recalled_day = epoch_day(e.day)
                facts.moved_closed = False
            elif outcome == "lost":
                facts.moved_closed = str(e.data.get("reason", "")) in UNAVOIDABLE_REASONS
        elif e.kind == "pause":
            until = e.data.get("until")
            if until and last_order is not None:
                # Days of the pause inside the current gap do not count as waiting.
                end = min(date.fromisoformat(str(until)), today)
                start = max(e.day, last_order)
                facts.paused_days += max((end - start).days, 0)
    facts.complaint_open = bool(complaints)
    facts.ticket_balance = tickets if facts.had_tickets else float("nan")
    facts.deposit_refunded = last_deposit_change < 0 and deposit <= 0
    return facts


def facts_array(per_customer: Sequence[CustomerFacts]) -> EventFacts:
    """Stack per-customer facts into the arrays the engine takes."""
    n = len(per_customer)

    def column(name: str, dtype: type) -> Any:
        return np.array([getattr(f, name) for f in per_customer], dtype=dtype)

    return EventFacts(
        n,
        ignored_streak=column("ignored_streak", np.int64),
        cold_reply=column("cold_reply", bool),
        satisfaction=column("satisfaction", np.float64),
        complaint_open=column("complaint_open", bool),
        contact_deleted=column("contact_deleted", bool),
        ticket_balance=column("ticket_balance", np.float64),
        had_tickets=column("had_tickets", bool),
        deposit_refunded=column("deposit_refunded", bool),
        moved_closed=column("moved_closed", bool),
        recalled_day=column("recalled_day", np.int64),
        paused_effective_days=column("paused_days", np.float64),
    )
