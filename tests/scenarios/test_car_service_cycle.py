"""A car service centre's year: customers come back about every six months.

The car pack's thresholds count from each customer's own cycle (issue 17): nothing is due
within the cycle, a reminder at cycle + 30 days, a call at + 90, and the customer is lost six
months overdue, counted in that month's churn without anyone marking them.
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

CYCLE = 181


def test_a_car_customer_is_reminded_by_their_own_service_cycle(
    new_shop: Callable[..., ShopLife],
) -> None:
    life = new_shop("garage", industry="car", name="顺达汽修")
    with read_session(life.engine) as session:
        shop = session.execute(select(Shop).where(col(Shop.slug) == "garage")).scalar_one()
    last = date(2026, 1, 2)
    visits = [last - timedelta(days=CYCLE * n) for n in range(5, -1, -1)]
    for name in ("周先生", "吴女士"):
        customer = make_customer(life.engine, life.clock, shop, name)
        add_orders(life.engine, life.clock, shop, customer, visits, quantity=1)
    due = last + timedelta(days=CYCLE)  # 7/2
    # Inside the cycle and within 30 days past it: nobody to chase.
    life.on(due + timedelta(days=20), 9).says("今天该跟进谁").lacks("周先生")
    # (issue 17) 219 days into a 181-day cycle is no longer 正常.
    life.on(last + timedelta(days=219), 9).says("今天该跟进谁").shows("🟡周先生")
    life.says("周先生").lacks("正常")
    # Cycle + 95: red, a call in the morning's digest.
    morning = life.on(due + timedelta(days=95), 8).morning()
    morning.shows("🔴周先生", "打个电话")
    # Six months overdue: lost, and counted in that month's churn without a mark.
    gone = due + timedelta(days=185)
    life.on(gone + timedelta(days=3), 9).says("周先生").shows("已流失")
    month = life.says("本月统计")
    month.shows("流失 2 位", "· 原因未记 2位", "月流失率 100.0%(本月流失 2 位 ÷ 月初老客户 2 位)")
