"""A customer who did not answer a message but took the call is no longer "silent".

Trying the demo as of 2026-12-07: lines like "老谢 连续两次没回 · 11月12日电话:嫌贵" — the
call that found the reason was counted as one more unanswered contact.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

from sqlalchemy import select
from sqlmodel import col

from app.db import read_session
from app.shops.models import Shop
from tests.factories import add_orders, make_customer
from tests.scenarios.harness import ShopLife


def test_a_call_that_got_through_ends_the_silence(new_shop: Callable[..., ShopLife]) -> None:
    life = new_shop("streak")
    with read_session(life.engine) as session:
        shop = session.execute(select(Shop).where(col(Shop.slug) == "streak")).scalar_one()
    customer = make_customer(life.engine, life.clock, shop, "蔡姐")
    days = [date(2026, 6, 1) - timedelta(days=12 * n) for n in range(8, -1, -1)]
    add_orders(life.engine, life.clock, shop, customer, days)
    life.on("6/20", 8).morning().shows("蔡姐", "发条微信")
    life.on("6/20", 9).says("1 已发").shows("已记:蔡姐 已发消息")
    life.on("6/23", 9).says("1 没回").shows("已记:蔡姐 没回")
    life.on("6/24", 8).morning().shows("蔡姐", "打个电话")
    life.on("6/24", 10).says("1 打了 嫌贵").shows("已记:蔡姐 打过电话,原因:价格")
    listing = life.on("6/25", 9).says("今天该跟进谁")
    listing.shows("蔡姐", "嫌贵").lacks("连续两次没回", "连续四次没回")
