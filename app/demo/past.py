"""The demo shop's last six months with Huitou, lived day by day through the real code paths.

A new owner's first look should show what the product does after months of use: digests
sent, contacts and what they found out, win-backs, losses (marked with a reason, or not),
offer costs. None of it is written as rows: every morning the digest is built and pushed
(app/digest/service.run_digest, as the scheduler does), the owner answers the day's items
as a tap or a numbered reply would (app/outreach/outcomes.apply_choice), and each simulated
order is recorded when it happened (app/flows.record_order), so win-backs are credited,
summaries move and the engine judges who left, as in a real shop.

The owner is a plausible one, drawn from a seeded random generator: answers most items the
same morning, some never; a call sometimes finds a reason; a visit may cost an offer.
The last day's digest is left unanswered: that is the list the new owner sees today.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select
from sqlmodel import col

from app.channels.outbox import OutboxPusher
from app.clock import FixedClock
from app.config import Settings
from app.customers.models import Customer
from app.db import read_session, write_session
from app.digest.models import DigestDelivery, DigestRun
from app.digest.service import run_digest
from app.flows import record_order
from app.outreach.models import FollowUp
from app.outreach.outcomes import OutcomeError, apply_choice
from app.shops.models import Shop
from app.shops.service import owner_of

PAST_DAYS = 182


@dataclass(frozen=True)
class PastOrder:
    """One order of the simulated history, for a customer already in the shop."""

    customer_id: int
    day: date
    hour: int
    quantity: int
    amount_cents: int


# What the owner does with an item, by tier: (outcome, reason/arg, cost in cents, weight).
# Tier 1 is a WeChat message (sent, and what came back), 2 a call (what it found out),
# 3 a visit or an offer, 0 a care check on a won-back customer.
_CHOICES: dict[int, tuple[tuple[str, str | None, int | None, int], ...]] = {
    1: (("sent", None, None, 45), ("warm", None, None, 25), ("none", None, None, 22),
        ("cold", None, None, 8)),
    2: (("called", None, None, 30), ("called", "price", None, 20), ("called", "service", None, 8),
        ("warm", None, None, 22), ("none", None, None, 12), ("lost", "price", None, 5),
        ("lost", "moved", None, 3)),
    3: (("visited", None, 2000, 40), ("visited", None, None, 15), ("recovered", None, 3000, 10),
        ("lost", "competitor", None, 20), ("lost", "other", None, 15)),
    0: (("sent", None, None, 50), ("warm", None, None, 50)),
}  # fmt: skip
# Share of the day's items the owner answers at all (the rest wait, as in real shops).
ANSWERED = 0.8


def live_the_past(
    *,
    engine: Engine,
    shop_id: int,
    orders: Sequence[PastOrder],
    first_day: date,
    today: date,
    settings: Settings,
    seed: int = 7,
) -> None:
    """From `first_day` to `today`: each morning's digest, the owner's answers, the orders."""
    rng = random.Random(seed)
    with read_session(engine) as session:
        shop = session.get(Shop, shop_id)
        assert shop is not None
        tz = ZoneInfo(shop.timezone)
    by_day: dict[date, list[PastOrder]] = defaultdict(list)
    for order in orders:
        by_day[order.day].append(order)
    clock = FixedClock(_at(first_day, 7, tz))
    pusher = OutboxPusher(engine=engine, clock=clock)
    day = first_day
    while day <= today:
        clock.current = _at(day, 8, tz)
        run_digest(
            engine=engine, shop_id=shop_id, day=day, settings=settings, clock=clock,
            pushers=[pusher],
        )  # fmt: skip
        # The morning's answers come before the day's orders (an order after a contact is
        # what credits a win-back); the owner has not yet answered today's digest.
        if day < today:
            _answer(engine, shop_id, day, clock, tz, rng)
        _record_orders(engine, shop_id, sorted(by_day.get(day, []), key=lambda o: o.hour),
                       clock, tz)  # fmt: skip
        day += timedelta(days=1)


def _at(day: date, hour: int, tz: ZoneInfo, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=tz)


def _answer(
    engine: Engine, shop_id: int, day: date, clock: FixedClock, tz: ZoneInfo, rng: random.Random
) -> None:
    """The owner answers part of the day's digest items, between 9 and 11 o'clock."""
    with write_session(engine) as session:
        shop = session.get(Shop, shop_id)
        assert shop is not None
        owner = owner_of(session=session, shop=shop)
        items = [
            item
            for items in session.execute(
                select(col(DigestDelivery.items))
                .join(DigestRun, col(DigestRun.id) == col(DigestDelivery.run_id))
                .where(col(DigestRun.shop_id) == shop_id, col(DigestRun.run_date) == day)
            ).scalars()
            for item in items
        ]
        for n, item in enumerate(items):
            if rng.random() > ANSWERED or item.get("followup_id") is None:
                continue
            followup = session.get(FollowUp, int(item["followup_id"]))
            if followup is None:
                continue
            choices = _CHOICES.get(followup.tier, _CHOICES[1])
            outcome, arg, cost, _ = rng.choices(choices, weights=[c[3] for c in choices])[0]
            clock.current = _at(day, 9, tz, minute=0) + timedelta(minutes=3 * n)
            try:
                apply_choice(
                    session=session, shop=shop, staff=owner, followup_id=int(item["followup_id"]),
                    outcome=outcome, arg=arg, clock=clock, source="tap", cost_cents=cost,
                )  # fmt: skip
            except OutcomeError:
                continue  # already answered by an order, or closed: as a late tap would find


def _record_orders(
    engine: Engine, shop_id: int, orders: Sequence[PastOrder], clock: FixedClock, tz: ZoneInfo
) -> None:
    if not orders:
        return
    with write_session(engine) as session:
        shop = session.get(Shop, shop_id)
        assert shop is not None
        for order in orders:
            customer = session.get(Customer, order.customer_id)
            assert customer is not None
            moment = _at(order.day, order.hour, tz)
            clock.current = max(clock.current, moment)
            record_order(
                session=session, shop=shop, customer=customer, quantity=order.quantity,
                clock=clock, amount_cents=order.amount_cents, ordered_at=moment, source="demo",
            )  # fmt: skip
