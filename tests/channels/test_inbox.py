"""The one inbox road: a message is claimed once per (channel, id), handled once in one
transaction with its row, and every redelivery gets the stored replies."""

from __future__ import annotations

import inspect
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func
from sqlmodel import select

import app
from app.bot import core as bot
from app.bot.context import BotContext
from app.bot.models import PendingQuestion
from app.channels import wechat, wecom
from app.channels.binding import BoundSender
from app.channels.inbox import Handled, Inbound, MessageIdTaken, handle
from app.clock import FixedClock
from app.config import Settings
from app.db import read_session
from app.events.models import InboxMessage
from app.orders.models import Order
from app.shops.models import Shop
from app.shops.service import owner_of
from tests.channels.conftest import inbox_count, order_count
from tests.channels.test_wechat_callback import say as oa_say
from tests.channels.test_wecom_callback import send as wecom_say
from tests.channels.wire import OfficialAccountSide, WeComSide


def owner(engine: Engine, shop: Shop) -> BoundSender:
    with read_session(engine) as session:
        person = owner_of(session=session, shop=shop)
    return BoundSender(shop_id=shop.id or 0, staff_id=person.id or 0)


def ask(engine: Engine, settings: Settings, clock: FixedClock, who: BoundSender, text: str,
        key: str, sender: str = "wecom:LaoBan") -> Handled:  # fmt: skip
    inbound = Inbound("wecom", sender, key, text, staff=who)
    return handle(engine=engine, settings=settings, clock=clock, inbound=inbound)


def rows_of(engine: Engine, key: str) -> list[InboxMessage]:
    with read_session(engine) as session:
        return list(session.exec(select(InboxMessage).where(InboxMessage.external_id == key)))


def test_four_deliveries_of_a_command_store_one_row_and_repeat_its_reply(
    engine: Engine, settings: Settings, clock: FixedClock, demo_shop: Shop
) -> None:
    who = owner(engine, demo_shop)
    before = inbox_count(engine)
    results = [ask(engine, settings, clock, who, "今天该跟进谁", "m-1") for _ in range(4)]
    assert [r.fresh for r in results] == [True, False, False, False]
    assert len({tuple(r.replies) for r in results}) == 1 and "平时" in results[0].replies[0]
    assert inbox_count(engine) == before + 1
    (row,) = rows_of(engine, "m-1")
    assert row.handled_at is not None and row.replies == results[0].replies


def test_concurrent_deliveries_of_one_message_all_get_the_first_committed_reply(
    engine: Engine, settings: Settings, clock: FixedClock, demo_shop: Shop
) -> None:
    who = owner(engine, demo_shop)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(
            pool.map(lambda _: ask(engine, settings, clock, who, "帮助", "m-race"), range(8))
        )
    assert sum(r.fresh for r in results) == 1
    assert len({tuple(r.replies) for r in results}) == 1
    with read_session(engine) as session:
        count = session.execute(
            select(func.count()).where(InboxMessage.external_id == "m-race")
        ).scalar_one()
    assert count == 1


def test_concurrent_deliveries_of_an_order_record_it_once(
    engine: Engine, settings: Settings, clock: FixedClock, demo_shop: Shop
) -> None:
    who = owner(engine, demo_shop)
    orders = order_count(engine)
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(
            pool.map(lambda _: ask(engine, settings, clock, who, "王姐 2桶", "o-race"), range(6))
        )
    assert sum(r.fresh for r in results) == 1
    assert order_count(engine) == orders + 1


def test_a_waiting_question_is_cleared_by_the_next_command(
    engine: Engine, settings: Settings, clock: FixedClock, demo_shop: Shop
) -> None:
    who = owner(engine, demo_shop)
    asked = ask(engine, settings, clock, who, "赵六六 3桶", "q-1")
    assert "1" in asked.replies[0]  # "reply 1 to create"
    ask(engine, settings, clock, who, "今天该跟进谁", "q-2")
    with read_session(engine) as session:
        assert session.exec(select(PendingQuestion)).first() is None
    orders = order_count(engine)
    ask(engine, settings, clock, who, "1", "q-3")
    assert order_count(engine) == orders  # the stale "1" created nothing


def test_a_message_id_used_by_another_sender_is_refused_without_its_replies(
    engine: Engine, settings: Settings, clock: FixedClock, demo_shop: Shop
) -> None:
    who = owner(engine, demo_shop)
    ask(engine, settings, clock, who, "今天该跟进谁", "same-id")
    with pytest.raises(MessageIdTaken):
        ask(engine, settings, clock, who, "今天该跟进谁", "same-id", sender="wecom:Someone")
    (row,) = rows_of(engine, "same-id")
    assert row.sender == "wecom:LaoBan"


def test_a_failing_bot_leaves_no_row_and_no_write_and_the_redelivery_handles_it(
    engine: Engine, settings: Settings, clock: FixedClock, demo_shop: Shop,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    who = owner(engine, demo_shop)
    orders = order_count(engine)
    real = bot.handle

    def writes_then_fails(ctx: BotContext, message: str) -> list[str]:
        real(ctx, message)  # records the order in the message's transaction
        ctx.session.flush()
        raise RuntimeError("the bot broke after writing")

    monkeypatch.setattr(bot, "handle", writes_then_fails)
    with pytest.raises(RuntimeError):
        ask(engine, settings, clock, who, "王姐 2桶", "f-1")
    assert rows_of(engine, "f-1") == [] and order_count(engine) == orders
    monkeypatch.setattr(bot, "handle", real)
    again = ask(engine, settings, clock, who, "王姐 2桶", "f-1")
    assert again.fresh and order_count(engine) == orders + 1
    with read_session(engine) as session:
        assert session.exec(
            select(Order).where(Order.inbox_id == rows_of(engine, "f-1")[0].id)
        ).one()


def _app_frames(stack: list[inspect.FrameInfo]) -> list[tuple[str, str]]:
    """(file, function) of the app's own frames in `stack`, innermost first."""
    root = Path(app.__file__).parent.parent
    return [
        (Path(f.filename).relative_to(root).as_posix(), f.function)
        for f in stack
        if Path(f.filename).is_relative_to(root / "app")
    ]


@pytest.mark.parametrize("channel", ["wecom", "wechat"])
def test_a_provider_text_reaches_the_bot_in_four_calls_after_decryption(
    channel: str, client: TestClient, wecom_side: WeComSide, oa_side: OfficialAccountSide,
    clock: FixedClock, binding_code: str, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """receive (verified, decrypted) → answer_in_time → _run → inbox.handle → bot.handle."""
    provider = wecom if channel == "wecom" else wechat

    def say(text: str, msg_id: int) -> str:
        if channel == "wecom":
            return wecom_say(client, wecom_side, clock, text, msg_id=msg_id)[1]
        return oa_say(client, oa_side, clock, text, msg_id=msg_id)

    say(f"绑定 {binding_code}", 7001)
    callers: list[list[tuple[str, str]]] = []
    bot_stacks: list[list[tuple[str, str]]] = []
    real_answer, real_handle = provider.answer_in_time, bot.handle

    async def answer_in_time(**kwargs: Any) -> list[str]:
        callers.append(_app_frames(inspect.stack()[1:2]))
        return await real_answer(**kwargs)

    def handle(ctx: BotContext, message: str) -> list[str]:
        bot_stacks.append(_app_frames(inspect.stack()[1:]))
        return real_handle(ctx, message)

    monkeypatch.setattr(provider, "answer_in_time", answer_in_time)
    monkeypatch.setattr(bot, "handle", handle)
    assert "平时" in say("今天该跟进谁", 7002)
    assert callers == [[(f"app/channels/{channel}.py", "receive")]]
    # On the channel thread: the bot is called by the inbox, which the budget's runner calls.
    assert bot_stacks == [[("app/channels/inbox.py", "handle"), ("app/channels/reply.py", "_run")]]


def test_a_nul_in_a_typed_message_is_dropped_before_it_is_stored_or_read(
    engine: Engine, settings: Settings, clock: FixedClock, demo_shop: Shop
) -> None:
    who = owner(engine, demo_shop)
    orders = order_count(engine)
    handled = ask(engine, settings, clock, who, "王姐\x00 2桶", "nul-1")
    assert handled.fresh and "王姐" in handled.replies[0]
    assert order_count(engine) == orders + 1
    (row,) = rows_of(engine, "nul-1")
    assert row.body == "王姐 2桶"


def test_a_wecom_message_id_reused_by_another_sender_is_refused_with_409(
    client: TestClient, wecom_side: WeComSide, clock: FixedClock, binding_code: str,
    engine: Engine,
) -> None:  # fmt: skip
    wecom_say(client, wecom_side, clock, f"绑定 {binding_code}", msg_id=7101)
    status, reply = wecom_say(client, wecom_side, clock, "今天该跟进谁", msg_id=7102)
    assert status == 200 and reply
    before = inbox_count(engine)
    status, reply = wecom_say(
        client, wecom_side, clock, "今天该跟进谁", sender="Other", msg_id=7102
    )
    assert status == 409 and "平时" not in reply
    assert inbox_count(engine) == before
