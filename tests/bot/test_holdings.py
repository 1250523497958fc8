"""holdings_of.holdings (the card's one read) agrees with balance() and open_complaints()."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import select

from app.customers.models import Customer
from app.db import read_session
from app.events import holdings as holdings_of
from app.shops.models import Shop
from tests.conftest import ChatDriver


def _both(
    engine: Engine, shop: Shop, name: str
) -> tuple[holdings_of.Holdings, holdings_of.Holdings]:
    assert shop.id is not None
    with read_session(engine) as session:
        customer = session.exec(
            select(Customer).where(Customer.shop_id == shop.id, Customer.name == name)
        ).one()
        assert customer.id is not None
        one_read = holdings_of.holdings(session, shop.id, customer.id)
        separate = holdings_of.Holdings(
            holdings_of.balance(session, shop.id, customer.id, "tickets"),
            holdings_of.balance(session, shop.id, customer.id, "deposit"),
            holdings_of.open_complaints(session, shop.id, customer.id),
        )
    return one_read, separate


def test_holdings_follow_every_change_and_undo(
    chat: ChatDriver, engine: Engine, demo_shop: Shop
) -> None:
    steps = [
        ("王姐 买水票 20张 300元", (20, 0, 0)),
        ("王姐 用水票 2桶", (18, 0, 0)),
        ("王姐 押桶 2个", (18, 2, 0)),
        ("王姐 退桶 1个", (18, 1, 0)),
        ("王姐 投诉 送水慢", (18, 1, 1)),
        ("王姐 投诉 水有味道", (18, 1, 2)),
        ("王姐 投诉已解决", (18, 1, 0)),
        ("撤销", (18, 1, 2)),  # the resolution taken back: both complaints open again
        ("撤销", (18, 1, 1)),
        ("王姐 买水票 10张 150元", (28, 1, 1)),
    ]
    for message, expected in steps:
        reply = chat.say(message)
        assert reply.startswith(("已记", "已撤销", "好的")), (message, reply)
        one_read, separate = _both(engine, demo_shop, "王姐")
        assert one_read == separate, message
        assert (one_read.tickets, one_read.buckets, len(one_read.complaints)) == expected, message
    card = chat.say("王姐")
    assert "水票余 28 张" in card and "押桶 1 个" in card and "1 条投诉没解决" in card
