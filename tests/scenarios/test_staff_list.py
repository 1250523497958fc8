"""A delivery worker's own list: the customers assigned to him come to him, in his digest and
in his web chat; the owner keeps the rest and sees how the team is doing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

from sqlalchemy import select
from sqlmodel import col

from app.customers.models import Customer
from app.db import write_session
from app.shops.models import Shop, Staff
from tests.factories import add_orders, make_customer
from tests.scenarios.harness import ShopLife


def test_a_staff_member_works_his_own_list(new_shop: Callable[..., ShopLife]) -> None:
    life = new_shop("team", name="两人水站")
    with write_session(life.engine) as session:
        shop = session.execute(select(Shop).where(col(Shop.slug) == "team")).scalar_one()
        worker = Staff(shop_id=shop.id, name="小刘", role="staff", created_at=life.clock.now())
        session.add(worker)
        session.flush()
        worker_id = worker.id
    # Both every 12 days until late May: due for a light touch by mid-June.
    for name, assigned in (("孔阿姨", worker_id), ("严老师", None)):
        customer = make_customer(life.engine, life.clock, shop, name)
        with write_session(life.engine) as session:
            row = session.get(Customer, customer.id)
            assert row is not None
            row.assigned_staff_id = assigned  # the owner's split of the round
            session.add(row)
        days = [date(2026, 5, 28) - timedelta(days=12 * n) for n in range(8, -1, -1)]
        add_orders(life.engine, life.clock, shop, customer, days)
    life.on("6/18", 8)
    owner_morning = life.morning()
    owner_morning.shows("严老师", "小刘").lacks("孔阿姨")
    life.morning("小刘").shows("孔阿姨").lacks("严老师")
    # He signs in to the web chat from his phone; his "1" is his own item 1.
    xiaoliu = life.signs_in("小刘")
    xiaoliu.says("1 已发").shows("已记:孔阿姨 已发消息")
    life.says("1 已发").shows("已记:严老师 已发消息")
