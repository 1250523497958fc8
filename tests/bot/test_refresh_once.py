"""One message, one reassessment per customer it touches, and the same summary as before."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import col, select

import app.customers.risk as risk
from app.channels.local import shop_and_owner
from app.clock import FixedClock
from app.customers.models import CustomerSummary
from app.db import read_session, write_session
from app.events.models import Event
from app.events.service import undone_among, undone_event_ids
from app.orders.models import Order
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


def rounded(value: Any) -> Any:
    """`value` with every float rounded to 12 significant digits, at any depth."""
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(rounded(v) for v in value)
    return value


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """The customer ids of each refresh_customers call (refresh_customer makes one too)."""
    calls: list[list[int]] = []
    real = risk.refresh_customers

    def counting(**kwargs: Any) -> None:
        calls.append(list(kwargs["customer_ids"]))
        real(**kwargs)

    monkeypatch.setattr(risk, "refresh_customers", counting)
    return calls


def _reassessed(batches: list[list[int]]) -> list[int]:
    """Customer ids in the order they were reassessed."""
    return [customer_id for batch in batches for customer_id in batch]


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
    chat: ChatDriver, batches: list[list[int]], message: str, refreshes: int
) -> None:
    chat.say(message)
    counted = _reassessed(batches)
    assert len(counted) == refreshes
    assert len(set(counted)) == refreshes


def test_a_message_with_several_orders_records_each_once_and_reads_histories_once(
    chat: ChatDriver, engine: Engine, batches: list[list[int]]
) -> None:
    def orders() -> Counter[int]:
        with read_session(engine) as s:
            return Counter(s.exec(select(Order.customer_id)).all())

    before = orders()
    replies = chat.send("王姐2桶 老刘1桶")
    assert replies[0].startswith("已记:王姐 2桶") and replies[1].startswith("已记:老刘 1桶")
    added = orders() - before
    assert sorted(added.values()) == [1, 1]
    # Both customers reassessed together, after both orders: one read of their histories.
    assert len(batches) == 1 and sorted(batches[0]) == sorted(added)
    with read_session(engine) as s:
        for customer_id in added:
            summary = s.get(CustomerSummary, customer_id)
            assert summary is not None
            assert summary.order_count == before[customer_id] + 1


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
    # Floats to 12 significant digits: the batch (demo load) and one-customer paths of the
    # engine may round the last bit apart where numpy's SIMD log/exp differ by CPU.
    assert rounded(summaries(engine)) == rounded(after_chat)


def test_the_same_customer_twice_in_one_message_sees_the_first_order(chat: ChatDriver) -> None:
    replies = chat.send("王姐2桶 王姐1桶")
    assert "距上次(5月10日)" in replies[0]
    assert "今天已经给王姐记过单了" in replies[1], replies


def test_undo_reassesses_every_customer_it_touches_once(
    chat: ChatDriver, engine: Engine, batches: list[list[int]]
) -> None:
    chat.say("王姐 2桶")
    before = summaries(engine)
    chat.say("王姐 投诉 送水慢")
    batches.clear()
    chat.say("撤销")
    counted = _reassessed(batches)
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
    expected = (demo_shop.id, demo_shop.slug, owner.id)
    assert shop_and_owner(engine, demo_shop.slug) == expected
    assert shop_and_owner(engine, str(demo_shop.id)) == expected
    with pytest.raises(ShopError, match="没有这个店铺"):
        shop_and_owner(engine, "no-such-shop")


@pytest.mark.parametrize("size", [2, 3, 8, 9, 40])
def test_customers_reassessed_together_equal_one_at_a_time(
    chat: ChatDriver, engine: Engine, clock: FixedClock, demo_shop: Shop, size: int
) -> None:
    # Each read has a statement per group size up to 8, then an expanding IN: all agree.
    chat.say("王姐 投诉 送水慢")
    chat.say("王姐2桶 老刘1桶")
    with read_session(engine) as s:
        chosen = sorted(s.exec(select(CustomerSummary.customer_id)))[:size]
    assert len(chosen) == size
    with write_session(engine) as s:
        for customer_id in chosen:
            risk.refresh_customer(session=s, shop=demo_shop, customer_id=customer_id, clock=clock)
    one_at_a_time = summaries(engine)
    with write_session(engine) as s:  # dirty them, so the group refresh has work to do
        for row in s.exec(
            select(CustomerSummary).where(col(CustomerSummary.customer_id).in_(chosen))
        ):
            row.stage, row.findings, row.order_count = "x", [], -1
            s.add(row)
    with write_session(engine) as s:
        risk.refresh_customers(session=s, shop=demo_shop, customer_ids=chosen, clock=clock)
    assert summaries(engine) == one_at_a_time
