"""A date a year back must not read as this year's on the card and the weekly list."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine

from app.clock import FixedClock
from app.config import Settings
from tests.conftest import ChatDriver
from tests.factories import add_orders, make_customer, make_shop


def test_a_card_names_the_year_of_an_order_from_last_year(
    engine: Engine, settings: Settings, clock: FixedClock
) -> None:
    shop = make_shop(engine, clock, slug="years")
    old = make_customer(engine, clock, shop, "老郭")
    add_orders(engine, clock, shop, old, [date(2025, 10, 31), date(2025, 11, 22)])
    recent = make_customer(engine, clock, shop, "王姐")
    add_orders(engine, clock, shop, recent, [date(2026, 5, 20), date(2026, 6, 3)])
    chat = ChatDriver(engine=engine, settings=settings, clock=clock, shop_ref="years")
    card = chat.say("老郭")
    assert "上次下单 2025年11月22日" in card and "· 2025年10月31日 2桶" in card
    this_year = chat.say("王姐")
    assert "上次下单 6月3日" in this_year and "2026年" not in this_year
