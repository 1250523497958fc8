"""Read-only commands are answered in a read transaction and their inbox rows group-committed;
idempotency stays exact (one row, the same replies), and anything that writes falls back."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, func
from sqlmodel import select

from app.bot import pending
from app.bot.context import BotContext
from app.bot.models import PendingQuestion
from app.channels import inbox
from app.channels.inbox import Delivery, DeliveryResult, answer, recorder_for
from app.channels.models import InboxMessage
from app.clock import FixedClock
from app.config import Settings
from app.db import read_session, write_session
from app.shops.models import Shop
from app.shops.service import owner_of
from tests.channels.conftest import inbox_count, order_count


def delivery(engine: Engine, shop: Shop, external_id: str, text: str) -> Delivery:
    with read_session(engine) as session:
        owner = owner_of(session=session, shop=shop)
    return Delivery(shop_id=shop.id or 0, staff_id=owner.id or 0, channel="wecom",
                    external_id=external_id, sender_key="wecom:LaoBan", text=text)  # fmt: skip


def ask(engine: Engine, settings: Settings, clock: FixedClock, d: Delivery, text: str,
        external_id: str) -> DeliveryResult:  # fmt: skip
    return answer(engine=engine, delivery=Delivery(**{**d.__dict__, "external_id": external_id,
                  "text": text}), clock=clock, templates_dir=settings.templates_dir)  # fmt: skip


def test_four_deliveries_of_a_read_only_command_store_one_row_and_repeat_its_reply(
    engine: Engine, settings: Settings, clock: FixedClock, demo_shop: Shop
) -> None:
    d = delivery(engine, demo_shop, "m-1", "今天该跟进谁")
    before = inbox_count(engine)
    results = [ask(engine, settings, clock, d, "今天该跟进谁", "m-1") for _ in range(4)]
    assert [r.duplicate for r in results] == [False, True, True, True]
    assert len({tuple(r.replies) for r in results}) == 1 and "平时" in results[0].replies[0]
    assert inbox_count(engine) == before + 1
    with read_session(engine) as session:
        row = session.exec(select(InboxMessage).where(InboxMessage.external_id == "m-1")).one()
    assert row.handled_at is not None and row.replies == results[0].replies


def test_concurrent_deliveries_of_one_message_all_get_the_first_committed_reply(
    engine: Engine, settings: Settings, clock: FixedClock, demo_shop: Shop
) -> None:
    d = delivery(engine, demo_shop, "m-race", "帮助")
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: ask(engine, settings, clock, d, "帮助", "m-race"),
                                range(8)))  # fmt: skip
    assert sum(not r.duplicate for r in results) == 1
    assert len({tuple(r.replies) for r in results}) == 1
    with read_session(engine) as session:
        count = session.execute(
            select(func.count()).where(InboxMessage.external_id == "m-race")
        ).scalar_one()
    assert count == 1


def test_group_commit_puts_concurrent_rows_in_one_transaction(
    engine: Engine, settings: Settings, clock: FixedClock, demo_shop: Shop
) -> None:
    d = delivery(engine, demo_shop, "g", "帮助")
    recorder = recorder_for(engine)
    commits: list[int] = []
    original = recorder._commit

    def counting(batch: list[inbox._Row]) -> None:
        commits.append(len(batch))
        original(batch)

    recorder._commit = counting  # type: ignore[method-assign]
    with ThreadPoolExecutor(max_workers=12) as pool:
        list(pool.map(lambda i: ask(engine, settings, clock, d, "帮助", f"g-{i}"), range(48)))
    assert sum(commits) == 48
    assert len(commits) < 48  # some rows shared a commit


def test_a_waiting_question_sends_a_read_only_command_down_the_write_path(
    engine: Engine, settings: Settings, clock: FixedClock, demo_shop: Shop
) -> None:
    d = delivery(engine, demo_shop, "q-1", "赵六六 3桶")
    asked = ask(engine, settings, clock, d, "赵六六 3桶", "q-1")
    assert "1" in asked.replies[0]  # "reply 1 to create"
    ask(engine, settings, clock, d, "今天该跟进谁", "q-2")
    with read_session(engine) as session:
        assert session.exec(select(PendingQuestion)).first() is None  # cleared, as handle does
    orders = order_count(engine)
    ask(engine, settings, clock, d, "1", "q-3")
    assert order_count(engine) == orders  # the stale "1" created nothing


def test_a_read_only_command_that_writes_falls_back_to_one_write_transaction(
    engine: Engine, settings: Settings, clock: FixedClock, demo_shop: Shop,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    def writes_anyway(ctx: BotContext, message: str) -> list[str] | None:
        pending.ask(ctx, "choose_for_card", {"candidates": []})  # an INSERT: refused
        raise AssertionError("the guard should have stopped the write")

    monkeypatch.setattr(inbox, "answer_without_writes", writes_anyway)
    d = delivery(engine, demo_shop, "w-1", "今天该跟进谁")
    result = ask(engine, settings, clock, d, "今天该跟进谁", "w-1")
    assert "平时" in result.replies[0] and not result.duplicate
    with write_session(engine) as session:
        rows = session.exec(select(InboxMessage).where(InboxMessage.external_id == "w-1")).all()
    assert len(rows) == 1 and rows[0].handled_at is not None
