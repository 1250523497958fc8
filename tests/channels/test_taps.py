"""Button taps: a WeCom template_card_event and an OA msgmenu choice record the outcome."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import select

from app.clock import FixedClock, local_today
from app.customers.models import Customer
from app.db import read_session, write_session
from app.outreach.models import FollowUp
from app.shops.models import Shop
from tests.channels.conftest import now_ts
from tests.channels.fake_provider import FakeProvider
from tests.channels.test_wechat_callback import say
from tests.channels.test_wecom_callback import USER, bind
from tests.channels.wire import OfficialAccountSide, WeComSide, event_xml, field_of


@pytest.fixture
def followup_id(engine: Engine, clock: FixedClock, demo_shop: Shop) -> int:
    today = local_today(clock, demo_shop.timezone)
    with write_session(engine) as session:
        customer = session.exec(
            select(Customer).where(Customer.shop_id == demo_shop.id, Customer.name == "王姐")
        ).one()
        followup = FollowUp(
            shop_id=demo_shop.id or 0, customer_id=customer.id or 0, tier=1, kind="message",
            template="outreach/tier1", reason_code="interval", owner_role="owner",
            due_on=today, created_on=today, created_at=clock.now(),
        )  # fmt: skip
        session.add(followup)
        session.flush()
        return followup.id or 0


def outcome(engine: Engine, followup_id: int) -> str | None:
    with read_session(engine) as session:
        followup = session.get(FollowUp, followup_id)
        assert followup is not None
        return followup.outcome


def card_event(
    side: WeComSide, clock: FixedClock, key: str, task: str
) -> tuple[dict[str, str], str]:
    xml = event_xml(
        to=side.corp_id, sender=USER, created=now_ts(clock), event="template_card_event",
        fields={"EventKey": key, "TaskId": task, "CardType": "button_interaction",
                "ResponseCode": "RC-abc", "AgentID": "1000002"},
    )  # fmt: skip
    request = side.callback(now_ts(clock), xml)
    return request.params, request.body


def test_wecom_card_tap_records_once_and_updates_the_card(
    client: TestClient, wecom_side: WeComSide, clock: FixedClock, binding_code: str,
    engine: Engine, followup_id: int, provider: FakeProvider,
) -> None:  # fmt: skip
    bind(client, wecom_side, clock, binding_code)
    for _ in range(2):  # a redelivery neither records nor updates again
        params, body = card_event(wecom_side, clock, f"fu:{followup_id}:sent", "ht-1")
        assert client.post("/wecom", params=params, content=body).status_code == 200
    assert outcome(engine, followup_id) == "sent"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not provider.calls(
        "/cgi-bin/message/update_template_card"
    ):
        time.sleep(0.02)
    (update,) = provider.calls("/cgi-bin/message/update_template_card")
    assert update.json["response_code"] == "RC-abc"
    assert update.json["userids"] == [USER]
    assert update.json["button"]["replace_name"].startswith("已记:王姐")


def test_wecom_tap_with_a_foreign_key_is_refused_in_chinese(
    client: TestClient, wecom_side: WeComSide, clock: FixedClock, binding_code: str,
    engine: Engine, followup_id: int, provider: FakeProvider,
) -> None:  # fmt: skip
    bind(client, wecom_side, clock, binding_code)
    params, body = card_event(wecom_side, clock, "fu:999999:sent", "ht-2")
    response = client.post("/wecom", params=params, content=body)
    assert response.status_code == 200
    reply = field_of(wecom_side.open_reply(response.text), "Content")
    assert reply and not reply.isascii()
    assert outcome(engine, followup_id) is None
    assert not provider.calls("/cgi-bin/message/update_template_card")


def test_official_account_msgmenu_tap_records_the_outcome(
    client: TestClient, oa_side: OfficialAccountSide, clock: FixedClock, binding_code: str,
    engine: Engine, followup_id: int,
) -> None:  # fmt: skip
    say(client, oa_side, clock, f"绑定 {binding_code}")
    key = f"fu:{followup_id}:none"
    reply = say(client, oa_side, clock, "没回", extra=f"<bizmsgmenuid>{key}</bizmsgmenuid>")
    assert reply.startswith("已记:王姐")
    assert outcome(engine, followup_id) == "none"


def test_unbound_tap_gets_the_guide_and_records_nothing(
    client: TestClient, oa_side: OfficialAccountSide, clock: FixedClock, engine: Engine,
    followup_id: int,
) -> None:  # fmt: skip
    key = f"fu:{followup_id}:sent"
    reply = say(client, oa_side, clock, "已发", openid="oStranger",
                extra=f"<bizmsgmenuid>{key}</bizmsgmenuid>")  # fmt: skip
    assert "绑定" in reply
    assert outcome(engine, followup_id) is None
