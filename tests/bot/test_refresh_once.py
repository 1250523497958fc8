"""One message, one reassessment per customer it touches, and the same summary as before."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import select

import app.customers.risk as risk
from app.channels.local import shop_and_owner
from app.clock import FixedClock
from app.customers.models import CustomerSummary
from app.db import read_session, write_session
from app.events.models import Event
from app.events.service import undone_among, undone_event_ids
from app.shops.models import Shop
from app.shops.service import ShopError
from tests.conftest import ChatDriver

SUMMARY_FIELDS = (
    "first_order_on", "last_order_on", "order_count", "total_quantity", "total_amount_cents",
    "last_quantity", "mean_interval_days", "expected_interval_days", "stage",
    "churn_probability", "p_alive", "clv_cents", "retained_value_cents", "value_at_risk_cents",
    "findings", "check_on", "red_on", "lost_on",
)  # fmt: skip


def summaries(engine: Engine) -> dict[int, dict[str, Any]]:
    with read_session(engine) as s:
        return {
            row.customer_id: {f: getattr(row, f) for f in SUMMARY_FIELDS}
            for row in s.exec(select(CustomerSummary))
        }


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Customer ids in the order refresh_customer reassessed them."""
    calls: list[int] = []
    real = risk.refresh_customer

    def counting(**kwargs: Any) -> None:
        calls.append(kwargs["customer_id"])
        real(**kwargs)

    monkeypatch.setattr(risk, "refresh_customer", counting)
    return calls


@pytest.mark.parametrize(
    ("message", "refreshes"),
    [
        ("王姐 2桶", 1),
        ("王姐 用水票 2桶", 1),  # an order and a tickets event: one reassessment
        ("王姐2桶 老刘1桶", 2),
        ("王姐 买水票 20张 300元", 1),
        ("王姐 投诉 送水慢", 1),
        ("今天该跟进谁", 0),
    ],
)
def test_each_customer_is_reassessed_once_per_message(
    chat: ChatDriver, counted: list[int], message: str, refreshes: int
) -> None:
    chat.say(message)
    assert len(counted) == refreshes
    assert len(set(counted)) == refreshes


def test_deferred_summaries_equal_an_immediate_reassessment(
    chat: ChatDriver, engine: Engine, clock: FixedClock, demo_shop: Shop
) -> None:
    for message in (
        "王姐 买水票 20张 300元",
        "王姐 用水票 2桶",
        "王姐2桶 老刘1桶",
        "王姐 投诉 送水慢",
    ):
        chat.say(message)
    after_chat = summaries(engine)
    with write_session(engine) as s:
        for customer_id in after_chat:
            risk.refresh_customer(session=s, shop=demo_shop, customer_id=customer_id, clock=clock)
    assert summaries(engine) == after_chat


def test_the_same_customer_twice_in_one_message_sees_the_first_order(chat: ChatDriver) -> None:
    replies = chat.send("王姐2桶 王姐1桶")
    assert "距上次(5月10日)" in replies[0]
    assert "今天已经给王姐记过单了" in replies[1], replies


def test_undo_reassesses_every_customer_it_touches_once(
    chat: ChatDriver, engine: Engine, counted: list[int]
) -> None:
    chat.say("王姐 2桶")
    before = summaries(engine)
    chat.say("王姐 投诉 送水慢")
    counted.clear()
    chat.say("撤销")
    assert len(counted) == len(set(counted)) == 1
    assert summaries(engine) == before


def test_undone_among_is_the_shop_wide_set_restricted_to_the_ids(
    chat: ChatDriver, engine: Engine, demo_shop: Shop
) -> None:
    chat.say("王姐 投诉 送水慢")
    chat.say("撤销")
    chat.say("王姐 满意度 6")
    assert demo_shop.id is not None
    with read_session(engine) as s:
        ids = [e.id for e in s.exec(select(Event)) if e.id is not None]
        everything = undone_event_ids(s, demo_shop.id)
        assert everything
        for chosen in (ids, ids[-3:], [max(everything)], []):
            assert undone_among(s, demo_shop.id, chosen) == everything & set(chosen)


def test_the_local_channel_finds_the_shop_and_owner_like_the_services(
    engine: Engine, demo_shop: Shop
) -> None:
    from app.shops.service import get_shop, owner_of

    assert demo_shop.id is not None
    with read_session(engine) as s:
        owner = owner_of(session=s, shop=get_shop(session=s, ref=demo_shop.slug))
    expected = (demo_shop.id, owner.id)
    assert shop_and_owner(engine, demo_shop.slug) == expected
    assert shop_and_owner(engine, str(demo_shop.id)) == expected
    with pytest.raises(ShopError, match="没有这个店铺"):
        shop_and_owner(engine, "no-such-shop")
