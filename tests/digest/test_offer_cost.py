"""What an offer cost, recorded from chat (numbered replies) so the ROI report has it."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from app.bot.core import vocabulary
from app.bot.parse import parse
from app.clock import FixedClock
from app.config import Settings
from app.db import read_session
from app.events.models import Event
from app.shops.models import Shop
from tests.digest.test_followups import TODAY, _chat, _followup, _send
from tests.digest.test_followups import shop as shop


@pytest.mark.parametrize(
    ("text", "outcome", "cost", "reason"),
    [
        ("3 上门了 送券20元", "visited", 2000, None),
        ("3 给了优惠 20元", "visited", 2000, None),
        ("3 上门了,送了一桶水 ¥15", "visited", 1500, None),
        ("3 花了30块", "cost", 3000, None),
        ("3 优惠 12.5元", "cost", 1250, None),
        ("3 送了一箱水 50元", "cost", 5000, None),
        ("4 打过了 嫌贵 送了20元券", "called", 2000, "price"),
        ("1 已挽回 送了20元券", "recovered", 2000, None),
        # Numbers that are not money stay out of it.
        ("4 打过了 嫌送水慢 等了2天", "called", None, "service"),
        ("3 上门了 20", "visited", None, None),
    ],
)
def test_numbered_replies_read_an_offer_cost_only_when_it_is_money(
    text: str, outcome: str, cost: int | None, reason: str | None
) -> None:
    intent = parse(text, vocab=vocabulary("water", "桶"), today=TODAY)
    assert intent.kind == "digest_reply", text
    assert intent.fields["outcome"] == outcome
    assert intent.fields.get("cost_cents") == cost
    assert intent.fields.get("reason") == reason


def test_a_cost_goes_with_the_outcome_and_is_confirmed(
    engine: Engine, shop: Shop, settings: Settings, clock: FixedClock
) -> None:
    _send(engine, shop, settings, clock)
    reply = _chat(engine, settings, clock, shop).say("1 打过了 嫌贵 送了20元券")
    assert "已记:老李 打过电话,原因:价格,优惠花费20元 ✓" in reply
    row = _followup(engine, "老李")
    assert (row.outcome, row.outcome_reason, row.cost_cents) == ("called", "price", 2000)


def test_a_cost_on_its_own_adds_up_even_after_the_customer_came_back_and_undo_takes_it_back(
    engine: Engine, shop: Shop, settings: Settings, clock: FixedClock
) -> None:
    _send(engine, shop, settings, clock)
    chat = _chat(engine, settings, clock, shop)
    chat.say("3 已发")
    clock.advance(hours=2)
    chat.say("王姐 2桶")  # she orders: the follow-up closes as recovered
    assert _followup(engine, "王姐").outcome == "recovered"
    # The make-good went with the delivery; it is recorded on the closed follow-up.
    assert "已记:王姐 优惠花费15元 ✓" in chat.say("3 送了一桶水 15元")
    assert "已记:王姐 优惠花费5.50元 ✓" in chat.say("3 花了5.5元")
    row = _followup(engine, "王姐")
    assert (row.status, row.outcome, row.cost_cents) == ("closed", "recovered", 2050)
    with read_session(engine) as session:
        costs = session.exec(select(Event).where(Event.kind == "offer_cost")).all()
    assert [e.data["cost_cents"] for e in costs] == [1500, 550]
    assert all(e.data["followup_id"] == row.id for e in costs)

    assert "撤" in chat.say("撤销")
    assert _followup(engine, "王姐").cost_cents == 1500
    assert _followup(engine, "王姐").outcome == "recovered"


def test_an_impossible_cost_is_refused_and_changes_nothing(
    engine: Engine, shop: Shop, settings: Settings, clock: FixedClock
) -> None:
    _send(engine, shop, settings, clock)
    chat = _chat(engine, settings, clock, shop)
    reply = chat.say("3 花了200000元")
    assert "10万元" in reply
    assert _followup(engine, "王姐").cost_cents == 0
    with read_session(engine) as session:
        assert session.exec(select(Event).where(Event.kind == "offer_cost")).all() == []


def test_staff_cannot_put_a_cost_on_someone_elses_item(
    engine: Engine, shop: Shop, settings: Settings, clock: FixedClock
) -> None:
    from app.db import write_session
    from app.outreach.outcomes import TapError, add_offer_cost
    from app.shops.models import Staff

    _send(engine, shop, settings, clock)
    row = _followup(engine, "老李")  # an owner's call
    with write_session(engine) as session:
        fresh = session.get(Shop, shop.id)
        assert fresh is not None and row.id is not None
        worker = Staff(shop_id=fresh.id, name="小刘", role="staff", created_at=clock.now())
        session.add(worker)
        session.flush()
        with pytest.raises(TapError):
            add_offer_cost(
                session=session, shop=fresh, staff=worker, followup_id=row.id,
                cost_cents=1000, clock=clock, source="chat",
            )  # fmt: skip
    assert _followup(engine, "老李").cost_cents == 0
