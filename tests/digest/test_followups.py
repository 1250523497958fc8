"""Follow-ups end to end: the plan, numbered replies, escalation, win-back credit, the watch."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import col, select

from app.bot.core import vocabulary
from app.bot.parse import parse
from app.channels.models import OutboxMessage
from app.channels.outbox import OutboxPusher
from app.clock import FixedClock
from app.config import Settings
from app.customers.models import Customer
from app.db import read_session, write_session
from app.digest.service import run_digest
from app.events.models import Event
from app.outreach.models import FollowUp
from app.outreach.outcomes import TapError, record_tap, tap_key
from app.outreach.service import plan_day
from app.shops.models import Shop, Staff
from tests.conftest import ChatDriver
from tests.factories import add_orders, make_customer, make_shop

TODAY = date(2026, 6, 17)


@pytest.fixture
def shop(engine: Engine, clock: FixedClock) -> Shop:
    """Four regulars: 老李 and 赵六 far past their rhythm (red), 王姐 a little (yellow),
    张三 on time."""
    shop = make_shop(engine, clock)
    for name, gap, silent in [("王姐", 10, 16), ("老李", 10, 30), ("张三", 7, 3), ("赵六", 14, 40)]:
        customer = make_customer(engine, clock, shop, name, phone="13800001234")
        last = TODAY - timedelta(days=silent)
        add_orders(
            engine,
            clock,
            shop,
            customer,
            [last - timedelta(days=gap * i) for i in range(7, -1, -1)],
        )
    return shop


def _plan(engine: Engine, shop: Shop, day: date) -> dict[str, tuple[int, str, str]]:
    with read_session(engine) as session:
        fresh = session.get(Shop, shop.id)
        assert fresh is not None
        return {
            i.customer.name: (i.step.tier, i.step.reason_code, i.step.owner_role)
            for i in plan_day(session=session, shop=fresh, today=day)
        }


def _send(engine: Engine, shop: Shop, settings: Settings, clock: FixedClock) -> None:
    from app.clock import local_today

    assert shop.id is not None
    result = run_digest(
        engine=engine,
        shop_id=shop.id,
        day=local_today(clock, shop.timezone),
        settings=settings,
        clock=clock,
        pushers=[OutboxPusher(engine=engine, clock=clock)],
    )
    assert result.status == "sent"


def _followup(engine: Engine, name: str) -> FollowUp:
    with read_session(engine) as session:
        row = session.exec(
            select(FollowUp)
            .join(Customer, Customer.id == FollowUp.customer_id)  # type: ignore[arg-type]
            .where(Customer.name == name)
            .order_by(FollowUp.id.desc())  # type: ignore[union-attr]
        ).first()
        assert row is not None
        return row


def _chat(engine: Engine, settings: Settings, clock: FixedClock, shop: Shop) -> ChatDriver:
    return ChatDriver(engine=engine, settings=settings, clock=clock, shop_ref=shop.slug)


def test_plan_calls_the_red_customers_and_messages_the_yellow_one(
    engine: Engine, shop: Shop
) -> None:
    plan = _plan(engine, shop, TODAY)
    assert plan == {
        "老李": (2, "interval_stretch_red", "owner"),
        "赵六": (2, "interval_stretch_red", "owner"),
        "王姐": (1, "interval_stretch", "staff"),
    }


def test_digest_numbers_calls_first_and_lists_the_reason_in_plain_chinese(
    engine: Engine, shop: Shop, settings: Settings, clock: FixedClock
) -> None:
    _send(engine, shop, settings, clock)
    with read_session(engine) as session:
        text = session.exec(select(OutboxMessage.text)).one()
    assert "📞 打个电话(2位)" in text
    assert "💬 发条微信问候(1位)" in text
    assert "3. 🟡王姐:16天没订水,平时1" in text  # the usual interval, about 10 days
    assert text.index("老李") < text.index("王姐")


def test_numbered_reply_records_the_message_and_the_call_comes_after_three_quiet_days(
    engine: Engine, shop: Shop, settings: Settings, clock: FixedClock
) -> None:
    _send(engine, shop, settings, clock)
    reply = _chat(engine, settings, clock, shop).say("3 已发")
    assert "已记:王姐 已发消息 ✓" in reply
    row = _followup(engine, "王姐")
    assert (row.status, row.outcome, row.tier) == ("contacted", "sent", 1)
    with read_session(engine) as session:
        kinds = [
            e.kind for e in session.exec(select(Event).where(Event.customer_id == row.customer_id))
        ]
    assert kinds.count("outreach") == 1
    # Nobody hears from us again the next day; after three days without a reply, a call.
    assert "王姐" not in _plan(engine, shop, TODAY + timedelta(days=1))
    assert _plan(engine, shop, TODAY + timedelta(days=3))["王姐"][:2] == (2, "no_reply")


def test_a_cold_reply_escalates_to_a_call(
    engine: Engine, shop: Shop, settings: Settings, clock: FixedClock
) -> None:
    _send(engine, shop, settings, clock)
    chat = _chat(engine, settings, clock, shop)
    chat.say("3 已发")
    assert "回得冷淡" in chat.say("3 冷淡")
    assert _plan(engine, shop, TODAY + timedelta(days=3))["王姐"][:2] == (2, "cold_reply")


def test_a_warm_reply_takes_them_off_the_list(
    engine: Engine, shop: Shop, settings: Settings, clock: FixedClock
) -> None:
    _send(engine, shop, settings, clock)
    chat = _chat(engine, settings, clock, shop)
    chat.say("3 回复了")
    assert "王姐" not in _plan(engine, shop, TODAY + timedelta(days=4))


def test_an_order_after_contact_credits_the_tier_and_starts_the_close_watch(
    engine: Engine, shop: Shop, settings: Settings, clock: FixedClock
) -> None:
    _send(engine, shop, settings, clock)
    chat = _chat(engine, settings, clock, shop)
    chat.say("3 已发")
    chat.say("王姐 2桶")
    row = _followup(engine, "王姐")
    assert (row.status, row.outcome, row.tier) == ("closed", "recovered", 1)
    assert row.recovered_order_id is not None
    with read_session(engine) as session:
        customer = session.get(Customer, row.customer_id)
        assert customer is not None and "召回客户" in customer.tags
        credit = session.exec(
            select(Event).where(Event.customer_id == row.customer_id, Event.kind == "outcome")
        ).one()
    assert credit.data["attributed"] is True
    assert credit.data["template"] == "outreach/tier1_message.txt.j2"
    # A care check two days after the order back, held to the 3-day cooldown since the message.
    assert "王姐" not in _plan(engine, shop, TODAY + timedelta(days=2))
    assert _plan(engine, shop, TODAY + timedelta(days=3))["王姐"][:2] == (0, "care_first_order")


def test_an_order_nobody_asked_for_closes_the_followup_without_credit(
    engine: Engine, shop: Shop, settings: Settings, clock: FixedClock
) -> None:
    _send(engine, shop, settings, clock)
    _chat(engine, settings, clock, shop).say("王姐 2桶")
    row = _followup(engine, "王姐")
    assert (row.status, row.outcome) == ("closed", "returned")
    with read_session(engine) as session:
        outcomes = session.exec(
            select(Event).where(Event.customer_id == row.customer_id, Event.kind == "outcome")
        ).all()
        customer = session.get(Customer, row.customer_id)
    assert outcomes == []
    assert customer is not None and "召回客户" not in customer.tags


def test_undoing_the_order_reopens_the_followup(
    engine: Engine, shop: Shop, settings: Settings, clock: FixedClock
) -> None:
    _send(engine, shop, settings, clock)
    chat = _chat(engine, settings, clock, shop)
    chat.say("3 已发")
    chat.say("王姐 2桶")
    assert "撤" in chat.say("撤销")
    row = _followup(engine, "王姐")
    assert (row.status, row.outcome, row.recovered_order_id) == ("contacted", "sent", None)


def test_undoing_a_numbered_reply_puts_the_followup_back(
    engine: Engine, shop: Shop, settings: Settings, clock: FixedClock
) -> None:
    _send(engine, shop, settings, clock)
    chat = _chat(engine, settings, clock, shop)
    chat.say("3 已发")
    chat.say("撤销")
    row = _followup(engine, "王姐")
    assert (row.status, row.outcome, row.first_contact_at) == ("open", None, None)
    assert _plan(engine, shop, TODAY + timedelta(days=1))["王姐"][0] == 1


def test_lost_needs_a_reason_and_moved_leaves_the_list(
    engine: Engine, shop: Shop, settings: Settings, clock: FixedClock
) -> None:
    _send(engine, shop, settings, clock)
    chat = _chat(engine, settings, clock, shop)
    assert "原因" in chat.say("1 流失")
    assert _followup(engine, "老李").status == "open"
    assert "流失·搬家/倒闭" in chat.say("1 流失 搬家了")
    row = _followup(engine, "老李")
    assert (row.status, row.outcome, row.outcome_reason) == ("closed", "lost", "moved")
    assert "老李" not in _plan(engine, shop, TODAY + timedelta(days=1))


def test_d_class_customers_are_never_chased(engine: Engine, shop: Shop) -> None:
    with write_session(engine) as session:
        for customer in session.exec(select(Customer).where(Customer.name == "赵六")):
            customer.value_class = "D"
            session.add(customer)
    assert "赵六" not in _plan(engine, shop, TODAY)


def test_a_call_that_finds_the_reason_opens_a_visit_for_a_high_value_customer(
    engine: Engine, shop: Shop, settings: Settings, clock: FixedClock
) -> None:
    with write_session(engine) as session:
        for customer in session.exec(select(Customer).where(Customer.name == "老李")):
            customer.value_class = "A"
            session.add(customer)
    _send(engine, shop, settings, clock)
    assert "已记:老李 打过电话" in _chat(engine, settings, clock, shop).say("1 打过了 嫌贵")
    assert _followup(engine, "老李").outcome_reason == "price"
    tier, reason, role = _plan(engine, shop, TODAY + timedelta(days=3))["老李"]
    assert (tier, reason, role) == (3, "reason_price", "owner")


def test_a_visit_that_finds_the_reason_records_it(
    engine: Engine, shop: Shop, settings: Settings, clock: FixedClock
) -> None:
    _send(engine, shop, settings, clock)
    reply = _chat(engine, settings, clock, shop).say("1 上门了 嫌贵")
    assert "已记:老李" in reply and "原因:价格" in reply, reply
    assert _followup(engine, "老李").outcome_reason == "price"


def test_numbers_refer_to_the_senders_latest_digest(
    engine: Engine, shop: Shop, settings: Settings, clock: FixedClock
) -> None:
    chat = _chat(engine, settings, clock, shop)
    assert "还没有发过跟进提醒" in chat.say("1 已发")
    _send(engine, shop, settings, clock)
    assert "没有第9位" in chat.say("9 已发")


def test_the_chat_list_shows_the_digest_numbers_the_replies_refer_to(
    engine: Engine, shop: Shop, settings: Settings, clock: FixedClock
) -> None:
    """今天该跟进谁 is computed anew and sorts by value; the digest groups by next step. After
    a digest, the chat list shows each customer's digest number, so "N 打过了" is the
    customer the owner read as N."""
    # A big buyer a little late: first by value in the chat list, after the calls in the digest.
    big = make_customer(engine, clock, shop, "钱总", phone="13800005678")
    last = TODAY - timedelta(days=16)
    add_orders(
        engine, clock, shop, big, [last - timedelta(days=10 * i) for i in range(7, -1, -1)], 20
    )
    chat = _chat(engine, settings, clock, shop)
    before = chat.say("今天该跟进谁")
    ordinal = re.findall(r"^(\d+)\. ", before, re.M)
    assert ordinal == [str(i) for i in range(1, len(ordinal) + 1)] and len(ordinal) >= 3
    _send(engine, shop, settings, clock)
    with read_session(engine) as session:
        pushed = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id).desc())).first()
    assert pushed is not None
    in_digest = {name: n for n, name in re.findall(r"^(\d+)\. \W*([^:\s]+):", pushed.text, re.M)}
    listing = chat.say("今天该跟进谁")
    shown = {name: n for n, name in re.findall(r"^(\d+)\. \W*(\S+?) ", listing, re.M)}
    assert shown and shown == {name: n for name, n in in_digest.items() if name in listing}
    assert list(shown.values()) != ordinal[: len(shown)]  # the digest's order, not the list's
    assert "编号跟早上的提醒一样" in listing
    name, number = next(iter(shown.items()))
    assert f"已记:{name} 打过电话" in chat.say(f"{number} 打过了")


def test_numbered_replies_parse_with_their_outcome_and_reason() -> None:
    vocab = vocabulary("water", "桶")
    cases = {
        "1 已发": {"kind": "digest_reply", "number": 1, "outcome": "sent"},
        "２ 回复了": {"kind": "digest_reply", "number": 2, "outcome": "warm"},
        "3、没回": {"kind": "digest_reply", "number": 3, "outcome": "none"},
        "4 打过了 嫌贵": {
            "kind": "digest_reply",
            "number": 4,
            "outcome": "called",
            "reason": "price",
            "text": "嫌贵",
        },
        "4 上门了 嫌贵": {
            "kind": "digest_reply",
            "number": 4,
            "outcome": "visited",
            "reason": "price",
            "text": "嫌贵",
        },
        # A visit's note that names no reason records none.
        "2 上门了 聊得不错": {
            "kind": "digest_reply",
            "number": 2,
            "outcome": "visited",
            "text": "聊得不错",
        },
        "5 流失 去别家了": {
            "kind": "digest_reply",
            "number": 5,
            "outcome": "lost",
            "reason": "competitor",
            "text": "去别家了",
        },
    }
    for text, expected in cases.items():
        assert parse(text, vocab=vocab, today=TODAY).describe() == expected, text
    # Orders and addresses that start with a number stay what they were.
    assert parse("3号楼李会计 5桶", vocab=vocab, today=TODAY).kind == "order"
    assert parse("1", vocab=vocab, today=TODAY).kind == "choice"


def test_staff_get_their_own_list_and_the_owner_sees_the_team(
    engine: Engine, shop: Shop, settings: Settings, clock: FixedClock
) -> None:
    with write_session(engine) as session:
        worker = Staff(shop_id=shop.id or 0, name="小周", role="staff", created_at=clock.now())
        session.add(worker)
        session.flush()
        for customer in session.exec(select(Customer).where(Customer.shop_id == shop.id)):
            customer.assigned_staff_id = worker.id
            session.add(customer)
        worker_id = worker.id
    _send(engine, shop, settings, clock)
    with read_session(engine) as session:
        texts = {m.staff_id: m.text for m in session.exec(select(OutboxMessage))}
    # Yellow tier-1 goes to the staff member who serves the customer; red calls to the owner.
    assert "王姐" in texts[worker_id] and "老李" not in texts[worker_id]
    owner_text = next(t for sid, t in texts.items() if sid != worker_id)
    assert "老李" in owner_text and "小周:今天1位" in owner_text
    # The worker may not record on the owner's item.
    red = _followup(engine, "老李")
    with write_session(engine) as session, pytest.raises(TapError):
        fresh_shop = session.get(Shop, shop.id)
        staff = session.get(Staff, worker_id)
        assert fresh_shop is not None and staff is not None and red.id is not None
        record_tap(
            session=session, shop=fresh_shop, staff=staff, key=tap_key(red.id, "sent"),
            clock=clock, source="test",
        )  # fmt: skip


def test_a_tap_key_from_another_shop_is_refused_and_reveals_nothing(
    engine: Engine, shop: Shop, settings: Settings, clock: FixedClock
) -> None:
    _send(engine, shop, settings, clock)
    other = make_shop(engine, clock, slug="shop-b", name="别家水站")
    target = _followup(engine, "老李")
    assert target.id is not None
    with write_session(engine) as session:
        other_owner = session.exec(select(Staff).where(Staff.shop_id == other.id)).one()
        fresh_other = session.get(Shop, other.id)
        assert fresh_other is not None
        for key in (tap_key(target.id, "sent"), "fu:abc:sent", "fu:1:hack", "x" * 300):
            with pytest.raises(TapError) as info:
                record_tap(
                    session=session, shop=fresh_other, staff=other_owner, key=key,
                    clock=clock, source="test",
                )  # fmt: skip
            assert "老李" not in str(info.value)
    assert _followup(engine, "老李").outcome is None
