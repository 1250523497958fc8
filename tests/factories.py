"""Small builders for shops, customers and order histories."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from app.clock import Clock
from app.customers.models import Customer
from app.customers.service import create_customer
from app.db import write_session
from app.flows import record_order
from app.shops.models import Shop
from app.shops.service import create_shop

# The base URL of an in-process test client that comes from this machine: the owner pages
# answer it without a sign-in (TestClient's own "testserver" is not a loopback name).
LOCAL = "http://127.0.0.1:8000"


def make_shop(
    engine: Engine,
    clock: Clock,
    *,
    slug: str = "shop-a",
    name: str = "测试水站",
    industry: str = "water",
) -> Shop:
    with write_session(engine) as session:
        return create_shop(session=session, name=name, industry=industry, clock=clock, slug=slug)


def make_customer(
    engine: Engine, clock: Clock, shop: Shop, name: str, **fields: object
) -> Customer:
    with write_session(engine) as session:
        return create_customer(session=session, shop=shop, name=name, clock=clock, **fields)  # type: ignore[arg-type]


def add_orders(
    engine: Engine,
    clock: Clock,
    shop: Shop,
    customer: Customer,
    days: Iterable[date],
    quantity: int = 2,
) -> None:
    """One order per day given, at 10:00 shop time, each through the online path."""
    tz = ZoneInfo(shop.timezone)
    with write_session(engine) as session:
        for day in days:
            record_order(
                session=session,
                shop=shop,
                customer=customer,
                quantity=quantity,
                clock=clock,
                ordered_at=datetime.combine(day, time(10), tzinfo=tz),
                source="api",
            )
