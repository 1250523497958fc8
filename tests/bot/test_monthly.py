"""本月统计 / 上月统计 on a five-customer shop whose figures are counted by hand."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import Engine

from app.clock import FixedClock
from app.config import Settings
from tests.conftest import ChatDriver
from tests.factories import add_orders, make_customer, make_shop


@pytest.fixture
def small(engine: Engine, settings: Settings, clock: FixedClock) -> ChatDriver:
    """Customers A–E (water, 18元 a bucket) with orders from March to June 2026.

    A: 4/10, 5/5 (2 buckets each)     B: 5/20 (3)     C: 6/2 (1)     D: 3/1 (2)     E: 5/1 (2)
    The engine judges D lost on 5/18 (no order for 78 days against a usual ~26); nobody
    else is past their lost day by 6/17.
    """
    shop = make_shop(engine, clock, slug="small")
    plan = {
        "A": ([date(2026, 4, 10), date(2026, 5, 5)], 2),
        "B": ([date(2026, 5, 20)], 3),
        "C": ([date(2026, 6, 2)], 1),
        "D": ([date(2026, 3, 1)], 2),
        "E": ([date(2026, 5, 1)], 2),
    }
    for name, (days, quantity) in plan.items():
        person = make_customer(engine, clock, shop, f"客户{name}")
        add_orders(engine, clock, shop, person, days, quantity=quantity)
    return ChatDriver(engine=engine, settings=settings, clock=clock, shop_ref="small")


def test_this_month_by_hand(small: ChatDriver) -> None:
    small.say("客户A 2桶 60元")  # June order: 60元
    small.say("客户A 买水票 10张 150元")  # tickets: revenue, not an order
    small.say("客户D 流失 价格")
    small.say("客户B 流失 换了别家")
    small.say("客户E 流失 太贵")
    small.say("客户E 已挽回")  # her latest June mark is "recovered"
    small.say("客户C 流失 水质")
    small.say("撤销")  # C's mark is taken back and must not count
    reply = small.say("本月统计")
    assert reply.startswith("📊 2026年6月(到6月17日)")
    # Orders: C 6/2 (1 bucket, 18元) + A today (2 buckets, 60元). Revenue 18 + 60 + 150.
    assert "订单 2 单 · 3桶 · 收入 228元(含水票 150元)" in reply
    # Active: A, C. New: C (first order ever in June).
    assert "下过单的客户 2 位,其中新客户 1 位" in reply
    # Lost in June: B (marked). D was lost in May already (the engine's day); the owner's
    # mark only adds the reason to that loss. E marked lost, then back: recovered.
    assert "流失 1 位,回来 1 位" in reply
    assert "· 竞争对手 1位(100%)" in reply and "价格" not in reply
    # At the start of June: A, B, D, E had ordered before; D was lost by then.
    assert "月流失率 33.3%(本月流失 1 位 ÷ 月初老客户 3 位)" in reply
    assert "流失 = 助手判断已经走了" in reply and "月初老客户 = " in reply


def test_last_month_by_hand(small: ChatDriver) -> None:
    reply = small.say("上月统计")
    assert reply.startswith("📊 2026年5月\n")
    # A 5/5 (2, 36元), B 5/20 (3, 54元), E 5/1 (2, 36元).
    assert "订单 3 单 · 7桶 · 收入 126元" in reply
    assert "下过单的客户 3 位,其中新客户 2 位" in reply  # B and E
    # Nobody marked anyone in May, yet D passed the engine's lost day (5/18).
    assert "流失 1 位,回来 0 位" in reply
    assert "· 原因未记 1位(100%)" in reply
    assert "月流失率 50.0%(本月流失 1 位 ÷ 月初老客户 2 位)" in reply  # A and D
    assert "其中 1 位还没记原因" in reply


def test_a_reason_marked_later_fills_the_earlier_loss(small: ChatDriver) -> None:
    small.say("客户D 流失 价格")  # in June; the engine judged D lost on 5/18
    reply = small.say("上月统计")
    assert "流失 1 位,回来 0 位" in reply and "· 价格 1位(100%)" in reply
    assert "还没记原因" not in reply


def test_an_order_after_a_judged_loss_is_a_return(small: ChatDriver) -> None:
    reply = small.say("客户D 2桶")  # D, lost since 5/18, orders again today
    assert "已记" in reply
    month = small.say("本月统计")
    # D was lost at the start of June (not counted among its customers) and came back.
    assert "流失 0 位,回来 1 位" in month
    assert "月流失率 0.0%(本月流失 0 位 ÷ 月初老客户 3 位)" in month


def test_a_shop_with_no_history(engine: Engine, settings: Settings, clock: FixedClock) -> None:
    make_shop(engine, clock, slug="empty")
    chat = ChatDriver(engine=engine, settings=settings, clock=clock, shop_ref="empty")
    reply = chat.say("本月统计")
    assert "订单 0 单 · 0桶 · 收入 0元" in reply
    assert "算不出来" in reply
