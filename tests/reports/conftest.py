"""A ten-customer water station whose June 2026 report is counted by hand.

All ten (C1 … C10 = NAMES) first ordered in March or April, so all ten were customers at the
start of May. Marks and follow-ups (clock moved to each moment, then back to 6/17 10:00):

    5/10  C3 赵姨 流失 别家 (May: 1 lost of 10)
    6/1   C8 冯阿姨: tier 3 offer (warning 5/20, a May episode), visited 6/1 10:00, cost 0,
          then 6/12 recorded lost, reason price
    6/2   C4 孙叔: tier 2 call (warning 6/2), called 6/3 11:00 with a 20元 offer;
          6/10 orders 5 buckets for 150元 -> won back, credited to tier 2 / tier2_call
    6/1   C5 周老师: tier 1 message (warning 6/1), sent 6/5 09:00 (after the 48 h), no reply
    6/5   C7 郑师傅: tier 1 message (warning 6/5), never contacted (48 h over: missed)
    6/16  C6 吴会计: tier 1 message (warning 6/16), not contacted yet (48 h not over: waiting)
    6/5   C1 王姐 流失 价格          6/8  C2 李哥 流失 搬家
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine

from app.bot.context import capture_side_output
from app.clock import FixedClock
from app.config import Settings
from app.customers.models import Customer
from app.db import write_session
from app.flows import record_order
from app.outreach.models import FollowUp
from app.outreach.outcomes import record_outcome
from app.outreach.tiers import TEMPLATES
from app.shops.models import Shop
from tests.conftest import ChatDriver
from tests.factories import add_orders, make_customer, make_shop

TZ = ZoneInfo("Asia/Shanghai")
# C1 … C10
NAMES = ("王姐", "李哥", "赵姨", "孙叔", "周老师", "吴会计", "郑师傅", "冯阿姨", "陈老板", "褚大姐")


def at(day: date, hour: int = 10, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=TZ)


@dataclass
class Scenario:
    engine: Engine
    clock: FixedClock
    shop: Shop
    chat: ChatDriver
    customers: dict[str, Customer]
    followups: dict[str, int]
    settings: Settings

    def say(self, text: str) -> str:
        """Chat as the owner on a local channel (links signed with the test settings)."""
        with capture_side_output(self.settings):
            return self.chat.say(text)


def _followup(
    engine: Engine, shop: Shop, customer: Customer, tier: int, warning_on: date, created_on: date
) -> int:
    with write_session(engine) as session:
        row = FollowUp(
            shop_id=shop.id,  # type: ignore[arg-type]
            customer_id=customer.id,  # type: ignore[arg-type]
            tier=tier,
            kind={1: "message", 2: "call", 3: "visit"}[tier],
            template=TEMPLATES[tier],
            reason_code="interval_stretch",
            owner_role="owner",
            due_on=created_on,
            created_on=created_on,
            warning_on=warning_on,
            created_at=at(created_on, 8),
        )
        session.add(row)
        session.flush()
        assert row.id is not None
        return row.id


def _record(
    engine: Engine, clock: FixedClock, shop: Shop, followup_id: int, outcome: str, **kw: object
) -> None:
    with write_session(engine) as session:
        followup = session.get(FollowUp, followup_id)
        fresh_shop = session.get(Shop, shop.id)
        assert followup is not None and fresh_shop is not None
        record_outcome(
            session=session,
            shop=fresh_shop,
            followup=followup,
            outcome=outcome,
            clock=clock,
            staff_id=None,
            **kw,  # type: ignore[arg-type]
        )


@pytest.fixture
def scenario(engine: Engine, settings: Settings, clock: FixedClock) -> Scenario:
    now = clock.current
    shop = make_shop(engine, clock, slug="hand")
    chat = ChatDriver(engine=engine, settings=settings, clock=clock, shop_ref="hand")
    people: dict[str, Customer] = {}
    for n in range(1, 11):
        person = make_customer(engine, clock, shop, NAMES[n - 1])
        first = date(2026, 3, 2 + n) if n <= 5 else date(2026, 4, n)
        add_orders(engine, clock, shop, person, [first, date(2026, 4, 20)])
        people[f"C{n}"] = person
    ids: dict[str, int] = {}

    clock.current = at(date(2026, 5, 10))
    chat.say("赵姨 流失 别家")

    ids["C8"] = _followup(engine, shop, people["C8"], 3, date(2026, 5, 20), date(2026, 6, 1))
    ids["C4"] = _followup(engine, shop, people["C4"], 2, date(2026, 6, 2), date(2026, 6, 2))
    ids["C5"] = _followup(engine, shop, people["C5"], 1, date(2026, 6, 1), date(2026, 6, 1))
    ids["C7"] = _followup(engine, shop, people["C7"], 1, date(2026, 6, 5), date(2026, 6, 5))
    ids["C6"] = _followup(engine, shop, people["C6"], 1, date(2026, 6, 16), date(2026, 6, 16))

    clock.current = at(date(2026, 6, 1))
    _record(engine, clock, shop, ids["C8"], "visited")
    clock.current = at(date(2026, 6, 3), 11)
    _record(engine, clock, shop, ids["C4"], "called", cost_cents=2000)
    clock.current = at(date(2026, 6, 5), 9)
    _record(engine, clock, shop, ids["C5"], "sent")
    _record(engine, clock, shop, ids["C5"], "none")
    clock.current = at(date(2026, 6, 5), 15)
    chat.say("王姐 流失 价格")
    clock.current = at(date(2026, 6, 8))
    chat.say("李哥 流失 搬家")
    clock.current = at(date(2026, 6, 10))
    with write_session(engine) as session:
        fresh_shop = session.get(Shop, shop.id)
        c4 = session.get(Customer, people["C4"].id)
        assert fresh_shop is not None and c4 is not None
        record_order(
            session=session,
            shop=fresh_shop,
            customer=c4,
            quantity=5,
            amount_cents=15000,
            clock=clock,
            source="api",
        )
    clock.current = at(date(2026, 6, 12))
    _record(engine, clock, shop, ids["C8"], "lost", reason="price")
    clock.current = now
    return Scenario(engine, clock, shop, chat, people, ids, settings)
