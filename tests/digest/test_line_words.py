"""The words and numbers on the lists, the digest lines and the scripts: whole 元, what is at
stake on every line, never "0天没订", and a company addressed as a company."""

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

from app.channels.outbox import OutboxPusher
from app.clock import FixedClock, local_today
from app.config import Settings
from app.customers.models import Customer
from app.db import read_session
from app.digest.models import DigestDelivery, DigestRun
from app.digest.service import run_digest
from app.main import create_app
from app.outreach.models import FollowUp
from app.shops.models import Shop
from tests.conftest import ChatDriver
from tests.factories import LOCAL, add_orders, make_customer, make_shop

TODAY = date(2026, 6, 17)


def send_digest(engine: Engine, shop: Shop, settings: Settings, clock: FixedClock) -> str:
    """Run the morning digest for the clock's day; the owner's text."""
    assert shop.id is not None
    day = local_today(clock, shop.timezone)
    result = run_digest(
        engine=engine,
        shop_id=shop.id,
        day=day,
        settings=settings,
        clock=clock,
        pushers=[OutboxPusher(engine=engine, clock=clock)],
    )
    assert result.status == "sent", result
    with read_session(engine) as session:
        text = session.exec(
            select(DigestDelivery.text)
            .join(DigestRun, col(DigestRun.id) == col(DigestDelivery.run_id))
            .where(DigestRun.shop_id == shop.id, DigestRun.run_date == day)
        ).first()
    assert text is not None
    return text


def numbered_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(r"^\d+\. ", line)]


@pytest.fixture
def shop(engine: Engine, clock: FixedClock) -> Shop:
    return make_shop(engine, clock)


@pytest.fixture
def owner_chat(engine: Engine, settings: Settings, clock: FixedClock, shop: Shop) -> ChatDriver:
    return ChatDriver(engine=engine, settings=settings, clock=clock, shop_ref=shop.slug)


@pytest.fixture
def client(engine: Engine, settings: Settings, clock: FixedClock) -> Iterator[TestClient]:
    with TestClient(
        create_app(settings=settings, engine=engine, clock=clock), base_url=LOCAL
    ) as client:
        yield client


def regular(
    engine: Engine, clock: FixedClock, shop: Shop, name: str, *, silent: int, kind: str
) -> None:
    """A customer every 10 days for eight orders, the last `silent` days ago."""
    customer = make_customer(engine, clock, shop, name, kind=kind)
    last = TODAY - timedelta(days=silent)
    add_orders(engine, clock, shop, customer, [last - timedelta(days=10 * i) for i in range(8)])


def test_a_ticket_delivery_today_never_reads_as_zero_days_without_an_order(
    engine: Engine, shop: Shop, settings: Settings, clock: FixedClock, owner_chat: ChatDriver
) -> None:
    regular(engine, clock, shop, "老韩", silent=12, kind="household")
    assert owner_chat.say("老韩 买水票 20张 360元").startswith("已记")
    assert owner_chat.say("老韩 用水票 19桶").startswith("已记")
    listed = owner_chat.say("今天该跟进谁")
    weekly = owner_chat.say("本周名单")
    digest = send_digest(engine, shop, settings, clock)
    for text in (listed, weekly, digest):
        assert "0天没" not in text, text
    # He is there for his tickets, not as overdue: the digest says the order is today's.
    line = next(line for line in numbered_lines(digest) if "老韩" in line)
    assert "水票快用完;今天刚订过水" in line
    assert "天没订" not in line


def test_the_weekly_list_and_the_chat_list_say_money_in_whole_yuan(chat: ChatDriver) -> None:
    for text in (chat.say("本周名单"), chat.say("今天该跟进谁")):
        amounts = re.findall(r"可能少收([\d.]+)元", text)
        assert len(amounts) >= 10, text
        assert all(a.isdigit() for a in amounts), amounts


def test_every_digest_line_says_what_is_at_stake_in_yuan(
    engine: Engine, settings: Settings, clock: FixedClock, demo_shop: Shop
) -> None:
    digest = send_digest(engine, demo_shop, settings, clock)
    lines = numbered_lines(digest)
    assert len(lines) >= 5, digest
    for line in lines:
        assert re.search(r" · 可能少收\d+元$", line), line


def test_a_company_is_greeted_as_a_company_in_its_message_and_call(
    engine: Engine, shop: Shop, settings: Settings, clock: FixedClock, client: TestClient
) -> None:
    regular(engine, clock, shop, "蓝天科技", silent=16, kind="office")  # yellow: a message
    regular(engine, clock, shop, "幸福物业", silent=30, kind="office")  # red: a call
    regular(engine, clock, shop, "王姐", silent=16, kind="household")
    send_digest(engine, shop, settings, clock)
    pages = {name: _tap_page(client, engine, name) for name in ("蓝天科技", "幸福物业", "王姐")}
    assert "贵公司上次订水是" in pages["蓝天科技"]
    assert "公司里的水还够喝吗" in pages["蓝天科技"]
    assert "好一阵没给贵公司送水了" in pages["幸福物业"]
    for name in ("蓝天科技", "幸福物业"):
        assert "您家" not in pages[name] and "家里" not in pages[name], pages[name]
    assert "您家上次订水是" in pages["王姐"]  # a household still is one


def _tap_page(client: TestClient, engine: Engine, name: str) -> str:
    with read_session(engine) as session:
        customer_id = session.exec(select(Customer.id).where(Customer.name == name)).one()
        for delivery in session.exec(select(DigestDelivery)):
            for item in delivery.items:
                followup = session.get(FollowUp, int(item["followup_id"]))
                if followup is not None and followup.customer_id == customer_id:
                    path = urlsplit(str(item["url"])).path
                    break
            else:
                continue
            break
        else:
            raise AssertionError(f"{name} is not in the digest")
    response = client.get(path)
    assert response.status_code == 200, response.text
    return unescape(re.sub(r"<[^>]+>", " ", response.text))
