"""发短信: preview and confirmation in chat, queued in the bot's transaction, sent after it
by the queue sender (TencentSms against the fake provider), outcome "sent", refusals told."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import select

from app.bot.context import capture_side_output
from app.channels.models import OutboxMessage
from app.channels.outbox import OutboxPusher
from app.channels.sms import TencentSms, record_reply
from app.channels.sms_queue import SmsQueueSender
from app.channels.webhooks import sms_queue_sender
from app.clock import FixedClock, local_today
from app.config import Settings
from app.customers.models import Customer
from app.db import read_session, write_session
from app.digest.service import run_digest
from app.events.models import Event
from app.main import create_app
from app.outreach.models import FollowUp
from app.outreach.sms import SmsMessage
from app.shops.models import Shop
from tests.channels.fake_provider import FakeProvider
from tests.channels.test_wecom_callback import bind
from tests.channels.test_wecom_callback import send as wecom_send
from tests.channels.wire import WeComSide
from tests.conftest import ChatDriver
from tests.factories import add_orders, make_customer, make_shop

TODAY = date(2026, 6, 17)
SEND_SMS = "/"  # Tencent's SendSms endpoint on the fake provider


@pytest.fixture
def shop(engine: Engine, clock: FixedClock, settings: Settings) -> Shop:
    """王姐 a little late (tier 1, number 3 in the digest), 老李 and 赵六 far late; digest sent."""
    shop = make_shop(engine, clock)
    phones = {"王姐": "13800001234", "老李": "13900001111", "赵六": ""}
    for name, gap, silent in [("王姐", 10, 16), ("老李", 10, 30), ("赵六", 14, 40)]:
        customer = make_customer(engine, clock, shop, name, phone=phones[name] or None)
        last = TODAY - timedelta(days=silent)
        add_orders(engine, clock, shop, customer,
                   [last - timedelta(days=gap * i) for i in range(7, -1, -1)])  # fmt: skip
    assert shop.id is not None
    result = run_digest(
        engine=engine, shop_id=shop.id, day=local_today(clock, shop.timezone), settings=settings,
        clock=clock, pushers=[OutboxPusher(engine=engine, clock=clock)],
    )  # fmt: skip
    assert result.status == "sent"
    return shop


class Chat(ChatDriver):
    def say(self, text: str) -> str:
        with capture_side_output(self.settings):  # the channel lends its settings
            return super().say(text)


@pytest.fixture
def chat(engine: Engine, channel_settings: Settings, clock: FixedClock, shop: Shop) -> Chat:
    return Chat(engine=engine, settings=channel_settings, clock=clock, shop_ref=shop.slug)


@pytest.fixture
def sender(
    channel_settings: Settings, engine: Engine, clock: FixedClock
) -> Iterator[tuple[SmsQueueSender, list[tuple[int, int, str, str]]]]:
    told: list[tuple[int, int, str, str]] = []
    http = httpx.Client(timeout=5.0)
    sms = TencentSms(settings=channel_settings, engine=engine, clock=clock, http=http,
                     backoff_seconds=0.01)  # fmt: skip
    yield SmsQueueSender(sms=sms, engine=engine, clock=clock,
                         notify=lambda *args: told.append(args)), told  # fmt: skip
    http.close()


def sms_rows(engine: Engine) -> list[SmsMessage]:
    with read_session(engine) as session:
        return list(session.exec(select(SmsMessage).order_by(SmsMessage.id)))  # type: ignore[arg-type]


def followup_of(engine: Engine, name: str) -> FollowUp:
    with read_session(engine) as session:
        row = session.exec(
            select(FollowUp)
            .join(Customer, Customer.id == FollowUp.customer_id)  # type: ignore[arg-type]
            .where(Customer.name == name)
        ).one()
    return row


def test_numbered_reply_previews_confirms_queues_then_sends_and_records_sent(
    chat: Chat, sender: tuple[SmsQueueSender, list[object]], provider: FakeProvider,
    engine: Engine, shop: Shop,
) -> None:  # fmt: skip
    queue, told = sender
    preview = chat.say("3 发短信")
    assert "王姐" in preview and "138****1234" in preview and "13800001234" not in preview
    assert shop.name[:12] in preview and "回复 1 确认发送" in preview
    assert sms_rows(engine) == [] and provider.calls(SEND_SMS) == []
    confirmed = chat.say("1")
    assert "马上发出" in confirmed and "已发消息" in confirmed
    (row,) = sms_rows(engine)
    # Queued in the bot's transaction; the provider has not been called inside it.
    assert (row.status, row.purpose, row.phone) == ("queued", "outreach", "+8613800001234")
    assert provider.calls(SEND_SMS) == []
    assert followup_of(engine, "王姐").outcome is None
    assert queue.drain_once() == 1
    (call,) = provider.calls(SEND_SMS)
    assert call.headers["x-tc-action"] == "SendSms"
    body = call.json
    assert body["PhoneNumberSet"] == ["+8613800001234"] and body["TemplateId"] == "100002"
    assert body["TemplateParamSet"] == [shop.name[:12]]
    (row,) = sms_rows(engine)
    assert row.status == "sent" and row.provider_ref == "sn-1"
    followup = followup_of(engine, "王姐")
    assert (followup.status, followup.outcome, followup.tier) == ("contacted", "sent", 1)
    with read_session(engine) as session:
        outreach = session.exec(
            select(Event).where(Event.customer_id == followup.customer_id, Event.kind == "outreach")
        ).one()
    assert outreach.source == "sms"
    assert queue.drain_once() == 0 and len(provider.calls(SEND_SMS)) == 1 and told == []
    # Asking again does not text twice.
    assert "已经发出" in chat.say("3 发短信")
    assert sms_rows(engine)[0].key == row.key and len(sms_rows(engine)) == 1


def test_by_name_cancel_no_phone_and_wrong_number(
    chat: Chat, engine: Engine, provider: FakeProvider
) -> None:
    assert "138****1234" in chat.say("王姐 发短信")
    chat.say("0")
    assert sms_rows(engine) == []
    assert "没有等您选择" in chat.say("1")  # the question is gone: a stray 1 sends nothing
    assert "手机号" in chat.say("赵六 发短信")
    assert "没有第9位" in chat.say("9 发短信")
    assert "138****1234" in chat.say("给王姐发短信")
    assert "回复 1 确认" in chat.say("2")  # out of range: the question stays
    assert "马上发出" in chat.say("1")
    (row,) = sms_rows(engine)
    assert row.status == "queued" and row.key.startswith("outreach:fu:")


def test_a_refusal_at_send_time_becomes_a_status_and_a_notice(
    chat: Chat, sender: tuple[SmsQueueSender, list[tuple[int, int, str, str]]],
    provider: FakeProvider, engine: Engine, clock: FixedClock,
) -> None:  # fmt: skip
    queue, told = sender
    chat.say("3 发短信")
    chat.say("1")
    # The customer opted out between the confirmation and the send.
    assert record_reply(engine=engine, clock=clock, phone="13800001234", text="退订")
    assert queue.drain_once() == 1
    assert provider.calls(SEND_SMS) == []
    (row,) = sms_rows(engine)
    assert row.status == "refused" and "退订" in (row.error or "")
    ((_shop, _staff, text, key),) = told
    assert "王姐" in text and "退订" in text and key == f"sms-notice:{row.key}"
    assert followup_of(engine, "王姐").outcome is None
    assert "退订" in chat.say("3 发短信")  # asked again: refused before any preview


def test_without_sms_the_owner_is_told_it_is_not_set_up(
    engine: Engine, settings: Settings, clock: FixedClock, shop: Shop
) -> None:
    plain = Chat(engine=engine, settings=settings, clock=clock, shop_ref=shop.slug)
    assert "短信还没开通" in plain.say("3 发短信")
    assert sms_rows(engine) == []


def test_over_wecom_the_app_sender_sends_right_after_the_confirmation_commits(
    channel_settings: Settings, engine: Engine, clock: FixedClock, shop: Shop,
    wecom_side: WeComSide, provider: FakeProvider,
) -> None:  # fmt: skip
    from app.shops.service import issue_binding_code

    # A long round interval: only the after-commit wake can send it in time.
    settings = channel_settings.model_copy(update={"sms_queue_seconds": 600.0})
    with write_session(engine) as session:
        fresh = session.get(Shop, shop.id)
        assert fresh is not None
        code = issue_binding_code(session=session, shop=fresh, clock=clock)
    with TestClient(create_app(settings=settings, engine=engine, clock=clock)) as client:
        assert client.app.state.sms_sender is not None  # type: ignore[attr-defined]
        bind(client, wecom_side, clock, code)
        status, preview = wecom_send(client, wecom_side, clock, "3 发短信")
        assert status == 200 and "138****1234" in preview
        time.sleep(0.2)
        assert provider.calls(SEND_SMS) == []  # nothing before the confirmation
        wecom_send(client, wecom_side, clock, "1")
        deadline = time.monotonic() + 10
        while not provider.calls(SEND_SMS):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        deadline = time.monotonic() + 10
        while sms_rows(engine)[0].status != "sent":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert followup_of(engine, "王姐").outcome == "sent"


def test_a_refusal_is_pushed_to_the_confirming_owner_on_the_local_outbox(
    channel_settings: Settings, engine: Engine, clock: FixedClock, chat: Chat,
    provider: FakeProvider,
) -> None:  # fmt: skip
    from types import SimpleNamespace

    chat.say("3 发短信")
    chat.say("1")
    record_reply(engine=engine, clock=clock, phone="13800001234", text="TD")
    state = SimpleNamespace(settings=channel_settings, engine=engine, clock=clock)
    queue = sms_queue_sender(state)
    assert queue is not None
    try:
        assert queue.drain_once() == 1
    finally:
        queue.sms.http.close()
    with read_session(engine) as session:
        notice = session.exec(
            select(OutboxMessage).where(OutboxMessage.title == "短信没发出")
        ).one()
    assert "王姐" in notice.text and notice.key.startswith("sms-notice:outreach:fu:")
