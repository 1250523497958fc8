"""A contact's result carried through: the reply confirms it, the card, the chat list, the
next digest line and the next script use it, and an order is credited only after it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from html import unescape
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import col, select

from app.clock import FixedClock
from app.config import Settings
from app.customers.models import Customer, CustomerSummary
from app.db import read_session, write_session
from app.digest.models import DigestDelivery
from app.main import create_app
from app.outreach.models import FollowUp
from app.shops.models import Shop
from tests.conftest import ChatDriver
from tests.digest.test_line_words import send_digest
from tests.factories import LOCAL, add_orders, make_customer, make_shop

TODAY = date(2026, 6, 17)


@pytest.fixture
def shop(engine: Engine, clock: FixedClock) -> Shop:
    """老郭: an A-class regular every 10 days, silent for 30 (red: a call); 王姐: every 10 days,
    silent for 16 (yellow: a message)."""
    shop = make_shop(engine, clock)
    for name, silent, value_class in (("老郭", 30, "A"), ("王姐", 16, "C")):
        customer = make_customer(engine, clock, shop, name, phone="13800001234")
        last = TODAY - timedelta(days=silent)
        add_orders(engine, clock, shop, customer, [last - timedelta(days=10 * i) for i in range(8)])
        with write_session(engine) as session:
            row = session.get(Customer, customer.id)
            assert row is not None
            row.value_class = value_class
            session.add(row)
    return shop


@pytest.fixture
def chat(engine: Engine, settings: Settings, clock: FixedClock, shop: Shop) -> ChatDriver:
    return ChatDriver(engine=engine, settings=settings, clock=clock, shop_ref=shop.slug)


@pytest.fixture
def client(engine: Engine, settings: Settings, clock: FixedClock) -> Iterator[TestClient]:
    with TestClient(
        create_app(settings=settings, engine=engine, clock=clock), base_url=LOCAL
    ) as client:
        yield client


def number_of(digest: str, name: str) -> int:
    match = re.search(rf"(\d+)\. \S{{1,2}}{name}:", digest)
    assert match is not None, digest
    return int(match.group(1))


def line_of(text: str, name: str) -> str:
    """The line that names the customer, with the note under it (digest) if any."""
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if name in line)
    following = lines[at + 1] if at + 1 < len(lines) and lines[at + 1].startswith("   ") else ""
    return lines[at] + following


def tap_page(client: TestClient, engine: Engine, name: str) -> str:
    """The visible text of the tap page of the customer's item in the latest digest."""
    with read_session(engine) as session:
        delivery = session.exec(
            select(DigestDelivery).order_by(col(DigestDelivery.id).desc())
        ).first()
        assert delivery is not None
        customer_id = session.exec(select(Customer.id).where(Customer.name == name)).one()
        for item in delivery.items:
            followup = session.get(FollowUp, int(item["followup_id"]))
            if followup is not None and followup.customer_id == customer_id:
                path = urlsplit(str(item["url"])).path
                break
        else:
            raise AssertionError(f"{name} is not in the latest digest")
    response = client.get(path)
    assert response.status_code == 200, response.text
    return unescape(re.sub(r"<[^>]+>", " ", response.text))


def test_a_numbered_reply_confirms_the_reason_it_recorded(
    engine: Engine, shop: Shop, settings: Settings, clock: FixedClock, chat: ChatDriver
) -> None:
    digest = send_digest(engine, shop, settings, clock)
    number = number_of(digest, "老郭")
    reply = chat.say(f"{number} 打过了 嫌贵")
    assert "已记:老郭 打过电话,原因:价格 ✓" in reply
    with read_session(engine) as session:
        row = session.exec(select(FollowUp).where(FollowUp.tier == 2)).one()
    assert (row.outcome, row.outcome_reason) == ("called", "price")


def test_the_next_day_the_card_and_the_list_show_the_call_and_its_reason(
    engine: Engine, shop: Shop, settings: Settings, clock: FixedClock, chat: ChatDriver
) -> None:
    number = number_of(send_digest(engine, shop, settings, clock), "老郭")
    chat.say(f"{number} 打过了 嫌贵 送了20元券")
    clock.advance(days=1)
    card = chat.say("老郭")
    assert "最近跟进:\n· 6月17日 电话:打过电话,嫌贵,花了20元" in card
    # The visit waits out the cooldown after the call: the day it comes due is said.
    assert "下一步:建议上门/优惠(6月20日起)" in card
    listed = line_of(chat.say("今天该跟进谁"), "老郭")
    assert "昨天电话:嫌贵,花了20元 → 建议上门/优惠(6月20日起)" in listed
    # 王姐 was not contacted: her line says nothing about a contact.
    assert "电话:" not in line_of(chat.say("今天该跟进谁"), "王姐")


def test_the_visit_digest_line_and_its_script_use_the_reason_the_call_found(
    engine: Engine,
    shop: Shop,
    settings: Settings,
    clock: FixedClock,
    chat: ChatDriver,
    client: TestClient,
) -> None:
    number = number_of(send_digest(engine, shop, settings, clock), "老郭")
    chat.say(f"{number} 打过了 嫌贵")
    clock.advance(days=3)  # the visit comes after the cooldown
    digest = send_digest(engine, shop, settings, clock)
    line = line_of(digest, "老郭")
    assert "嫌价格高,值得上门" in line
    assert "6月17日电话:嫌贵 → 建议上门/优惠" in line
    page = tap_page(client, engine, "老郭")
    assert "原因:嫌价格高" in page
    assert "原因还没问清" not in page
    assert "价钱我们认真算过了" in page  # the offer answers the reason
    assert "6月17日电话,打通了" in page  # not "还没记回复" after a call that found the reason


def test_the_script_says_what_was_fixed_and_offers_to_round_up_the_tickets_left(
    engine: Engine,
    shop: Shop,
    settings: Settings,
    clock: FixedClock,
    chat: ChatDriver,
    client: TestClient,
) -> None:
    assert chat.say("老郭 投诉 送水慢").startswith("已记")
    assert chat.say("老郭 投诉已解决 换了送水师傅").startswith("已记")
    assert chat.say("老郭 买水票 10张 175元").startswith("已记")
    number = number_of(send_digest(engine, shop, settings, clock), "老郭")
    page = tap_page(client, engine, "老郭")  # the call script
    assert "以前投诉过:送水慢。我们已经换了送水师傅。" in page
    assert "怎么改的还没定" not in page
    chat.say(f"{number} 打过了 嫌贵")
    clock.advance(days=3)
    send_digest(engine, shop, settings, clock)
    page = tap_page(client, engine, "老郭")  # the visit script
    assert "投诉过:送水慢;已换了送水师傅" in page
    # 10 tickets at 17.5元 are 175元 already paid: a 180元 voucher costs the shop 5元.
    assert "余额凑整成180元代金券(约5元)" in page


def test_one_message_and_one_no_reply_is_not_twice_ignored(
    engine: Engine, shop: Shop, settings: Settings, clock: FixedClock, chat: ChatDriver
) -> None:
    number = number_of(send_digest(engine, shop, settings, clock), "王姐")
    chat.say(f"{number} 已发")
    assert "已记:王姐 没回 ✓" in chat.say(f"{number} 没回")
    listed = chat.say("今天该跟进谁")
    assert "连续两次没回" not in listed
    assert "王姐 16天没订" in listed
    with read_session(engine) as session:
        summary = session.exec(
            select(CustomerSummary)
            .join(Customer, col(Customer.id) == col(CustomerSummary.customer_id))
            .where(Customer.name == "王姐")
        ).one()
    assert "ignored_2" not in {f["code"] for f in summary.findings}


def test_an_order_dated_before_the_call_is_not_the_calls_win_back(
    engine: Engine, shop: Shop, settings: Settings, clock: FixedClock, chat: ChatDriver
) -> None:
    number = number_of(send_digest(engine, shop, settings, clock), "老郭")
    chat.say(f"{number} 打过了")
    chat.say("老郭 3桶 前天")  # found in the book: it was ordered before the call
    with read_session(engine) as session:
        row = session.exec(select(FollowUp).where(FollowUp.tier == 2)).one()
        customer = session.get(Customer, row.customer_id)
    assert (row.status, row.outcome) == ("closed", "returned")
    assert customer is not None and "召回客户" not in customer.tags
    clock.advance(days=1)
    digest = send_digest(engine, shop, settings, clock)
    assert "请回来了" not in digest
    assert "1位自己回来了" in digest


def test_an_order_on_the_day_of_the_call_is_still_its_win_back(
    engine: Engine, shop: Shop, settings: Settings, clock: FixedClock, chat: ChatDriver
) -> None:
    number = number_of(send_digest(engine, shop, settings, clock), "老郭")
    chat.say(f"{number} 打过了")
    chat.say("老郭 3桶")
    with read_session(engine) as session:
        row = session.exec(select(FollowUp).where(FollowUp.tier == 2)).one()
    assert (row.status, row.outcome) == ("closed", "recovered")
    clock.advance(days=1)
    assert "请回来了老郭" in send_digest(engine, shop, settings, clock)
