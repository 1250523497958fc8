"""Loading the demo water station into the configured database (idempotent)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, insert
from sqlmodel import select

from app.clock import Clock, FixedClock, local_today
from app.config import Settings
from app.customers.models import Customer
from app.customers.risk import rescore_shop
from app.db import write_session
from app.demo.past import PAST_DAYS, PastOrder, live_the_past
from app.demo.simulator import simulate_water_station
from app.orders.models import Order
from app.shops.models import Shop
from app.shops.service import create_shop

DEMO_SLUG = "demo"
DEMO_NAME = "清泉送水站(演示)"


def load_demo(
    *, engine: Engine, clock: Clock, seed: int = 7, past: Settings | None = None
) -> tuple[Shop, bool]:
    """Create the demo shop with its simulated history; (shop, False) when it already exists.

    `past`: the service settings, to live the last PAST_DAYS days with Huitou (app/demo/past.py:
    digests, the owner's answers, orders one by one) instead of loading them at once; what
    `huitou serve` and `huitou demo` show a new owner. Without it (tests) the history loads
    in half a second.
    """
    with write_session(engine) as session:
        existing = session.exec(select(Shop).where(Shop.slug == DEMO_SLUG)).first()
        if existing is not None:
            return existing, False
        shop = create_shop(
            session=session, name=DEMO_NAME, industry="water", clock=clock, slug=DEMO_SLUG
        )
        assert shop.id is not None
        tz = ZoneInfo(shop.timezone)
        today = local_today(clock, shop.timezone)
        data = simulate_water_station(as_of=today, seed=seed)
        now = clock.now()
        customers = {
            demo.key: Customer(
                shop_id=shop.id,
                name=demo.name,
                aliases=list(demo.aliases),
                phone=demo.phone,
                address=demo.address,
                kind=demo.kind,
                created_at=now,
            )
            for demo in data.customers
        }
        session.add_all(customers.values())
        session.flush()  # one batched INSERT ... RETURNING gives every id
        ids = {key: c.id for key, c in customers.items() if c.id is not None}
        lived_from = today - timedelta(days=PAST_DAYS) if past is not None else None
        order_rows: list[dict[str, Any]] = []
        lived: list[PastOrder] = []
        for demo_order in data.orders:
            customer_id = ids[demo_order.customer_key]
            if lived_from is not None and demo_order.order_date >= lived_from:
                lived.append(
                    PastOrder(
                        customer_id=customer_id,
                        day=demo_order.order_date,
                        hour=demo_order.hour,
                        quantity=demo_order.quantity,
                        amount_cents=demo_order.amount_cents,
                    )
                )
                continue
            moment = datetime.combine(demo_order.order_date, time(demo_order.hour), tzinfo=tz)
            order_rows.append(
                {
                    "shop_id": shop.id,
                    "customer_id": customer_id,
                    "ordered_at": moment,
                    "order_date": demo_order.order_date,
                    "quantity": demo_order.quantity,
                    "unit": "桶",
                    "amount_cents": demo_order.amount_cents,
                    "source": "demo",
                    "created_at": now,
                }
            )
        # Core executemany: building ~10k ORM objects costs seconds, this costs milliseconds.
        session.execute(insert(Order), order_rows)
        # Fit the shop's priors on its history and assess every customer, as nightly.
        start = clock if lived_from is None else FixedClock.at_local(lived_from, 7, shop.timezone)
        rescore_shop(session=session, shop=shop, clock=start)
    if past is not None and lived_from is not None:
        assert shop.id is not None
        live_the_past(
            engine=engine, shop_id=shop.id, orders=lived, first_day=lived_from, today=today,
            settings=past, seed=seed,
        )  # fmt: skip
        with write_session(engine) as session:
            fresh = session.get(Shop, shop.id)
            assert fresh is not None
            rescore_shop(session=session, shop=fresh, clock=clock)
    return shop, True
