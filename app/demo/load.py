"""Loading the demo water station into the configured database (idempotent)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, insert
from sqlmodel import select

from app.clock import Clock, local_today
from app.customers.models import Customer, CustomerSummary
from app.db import write_session
from app.demo.simulator import simulate_water_station
from app.orders.models import Order
from app.risk.stage import OrderPoint, StageRule, stage_on, summarize_history
from app.shops.models import Shop
from app.shops.service import create_shop

DEMO_SLUG = "demo"
DEMO_NAME = "清泉送水站(演示)"


def load_demo(*, engine: Engine, clock: Clock, seed: int = 7) -> tuple[Shop, bool]:
    """Create the demo shop with its simulated history; (shop, False) when it already exists."""
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
        points: dict[int, list[OrderPoint]] = defaultdict(list)
        order_rows: list[dict[str, Any]] = []
        for demo_order in data.orders:
            customer_id = ids[demo_order.customer_key]
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
            points[customer_id].append(
                OrderPoint(demo_order.order_date, demo_order.quantity, demo_order.amount_cents)
            )
        # Core executemany: building ~10k ORM objects costs seconds, this costs milliseconds.
        session.execute(insert(Order), order_rows)
        # The same pure function the online path runs after each order, so both agree.
        rule = StageRule.from_settings(shop.settings)
        summary_rows: list[dict[str, Any]] = []
        for customer_id in ids.values():
            figures = summarize_history(points[customer_id], rule)
            stage = stage_on(
                check_on=figures.check_on,
                red_on=figures.red_on,
                lost_on=figures.lost_on,
                today=today,
            )
            summary_rows.append(
                {
                    "customer_id": customer_id,
                    "shop_id": shop.id,
                    "stage": stage.value,
                    "updated_at": now,
                    **vars(figures),
                }
            )
        session.execute(insert(CustomerSummary), summary_rows)
        return shop, True
