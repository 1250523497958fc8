"""The Official Account's side of /wechat over HTTP: plain and safe mode, taps, 5 s rule."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.clock import FixedClock
from app.config import Settings
from app.main import create_app
from app.shops.models import Shop
from tests.channels.conftest import inbox_count, now_ts, order_count
from tests.channels.fake_provider import FakeProvider
from tests.channels.wire import OfficialAccountSide, event_xml, field_of, text_xml

OPENID = "oOwner_openid_123"


def post(client: TestClient, side: OfficialAccountSide, clock: FixedClock, xml: str,
         openid: str = OPENID) -> str:  # fmt: skip
    request = side.callback(now_ts(clock), xml, openid)
    response = client.post("/wechat", params=request.params, content=request.body)
    assert response.status_code == 200, response.text
    if response.text == "success":
        return "success"
    return field_of(side.open_reply(response.text), "Content")


def say(client: TestClient, side: OfficialAccountSide, clock: FixedClock, content: str, *,
        openid: str = OPENID, msg_id: int | None = None, extra: str = "") -> str:  # fmt: skip
    xml = text_xml(to="gh_test", sender=openid, content=content, created=now_ts(clock),
                   msg_id=msg_id, extra=extra)  # fmt: skip
    return post(client, side, clock, xml, openid)


def test_get_verification_returns_the_bare_echostr(
    client: TestClient, oa_side: OfficialAccountSide, clock: FixedClock
) -> None:
    response = client.get("/wechat", params=oa_side.verification(now_ts(clock), "1234567890"))
    assert response.status_code == 200
    assert response.text == "1234567890"
    assert response.headers["content-type"].startswith("text/plain")
    bad = oa_side.verification(now_ts(clock), "1234567890")
    bad["signature"] = "f" * 40
    assert client.get("/wechat", params=bad).status_code == 403


def test_safe_mode_binding_commands_orders_and_four_deliveries(
    client: TestClient, oa_side: OfficialAccountSide, clock: FixedClock, binding_code: str,
    engine: Engine,
) -> None:  # fmt: skip
    guide = say(client, oa_side, clock, "王姐")
    assert "绑定" in guide and "王姐" not in guide
    assert "绑好了" in say(client, oa_side, clock, f"绑定 {binding_code}")
    assert "平时" in say(client, oa_side, clock, "今天该跟进谁")
    before = order_count(engine)
    replies = {say(client, oa_side, clock, "王姐 2桶", msg_id=5150) for _ in range(4)}
    assert len(replies) == 1 and "已记" in replies.pop()
    assert order_count(engine) == before + 1


def test_safe_mode_refuses_plaintext(
    client: TestClient, oa_side: OfficialAccountSide, clock: FixedClock, engine: Engine
) -> None:
    plain = OfficialAccountSide(token=oa_side.token, app_id=oa_side.app_id)
    xml = text_xml(to="gh", sender=OPENID, content="帮助", created=now_ts(clock))
    request = plain.callback(now_ts(clock), xml, OPENID)
    assert client.post("/wechat", params=request.params, content=request.body).status_code == 403
    assert inbox_count(engine) == 0


def test_subscribe_gets_the_guide_and_click_runs_the_menu_command(
    client: TestClient, oa_side: OfficialAccountSide, clock: FixedClock, binding_code: str
) -> None:
    subscribe = event_xml(to="gh", sender=OPENID, created=now_ts(clock), event="subscribe",
                          fields={})  # fmt: skip
    assert "绑定" in post(client, oa_side, clock, subscribe)
    say(client, oa_side, clock, f"绑定 {binding_code}")
    clock.advance(seconds=1)
    click = event_xml(to="gh", sender=OPENID, created=now_ts(clock), event="CLICK",
                      fields={"EventKey": "huitou_followups"})  # fmt: skip
    assert "平时" in post(client, oa_side, clock, click)


@pytest.fixture
def plain_client(
    channel_settings: Settings, engine: Engine, clock: FixedClock, demo_shop: Shop
) -> TestClient:
    settings = channel_settings.model_copy(update={"wechat_aes_key": ""})
    return TestClient(create_app(settings=settings, engine=engine, clock=clock))


def test_plain_mode_and_wrong_signature(
    plain_client: TestClient, clock: FixedClock, engine: Engine, binding_code: str
) -> None:
    side = OfficialAccountSide(token="oaToken456", app_id="wx0123456789abcdef")
    assert "绑好了" in say(plain_client, side, clock, f"绑定 {binding_code}")
    xml = text_xml(to="gh", sender=OPENID, content="王姐 2桶", created=now_ts(clock))
    request = side.callback(now_ts(clock), xml, OPENID)
    request.params["signature"] = "0" * 40
    before = inbox_count(engine)
    assert (
        plain_client.post("/wechat", params=request.params, content=request.body).status_code == 403
    )
    assert inbox_count(engine) == before


def test_slow_reply_answers_success_and_is_sent_by_the_customer_service_api(
    channel_settings: Settings, engine: Engine, clock: FixedClock, demo_shop: Shop,
    oa_side: OfficialAccountSide, provider: FakeProvider, binding_code: str,
) -> None:  # fmt: skip
    settings = channel_settings.model_copy(update={"wechat_reply_budget_seconds": 0.0})
    client = TestClient(create_app(settings=settings, engine=engine, clock=clock))

    def wait_for_sends(count: int) -> None:
        deadline = time.monotonic() + 10
        while len(provider.calls("/cgi-bin/message/custom/send")) < count:
            assert time.monotonic() < deadline
            time.sleep(0.05)

    assert say(client, oa_side, clock, f"绑定 {binding_code}") == "success"  # a late reply too
    wait_for_sends(1)
    before = order_count(engine)
    assert say(client, oa_side, clock, "王姐 2桶", msg_id=777) == "success"
    wait_for_sends(2)
    sent = [c.json for c in provider.calls("/cgi-bin/message/custom/send")]
    assert len(sent) == 2
    assert all(message["touser"] == OPENID for message in sent)
    contents = sorted(message["text"]["content"] for message in sent)
    assert "已记" in contents[0] and "绑好了" in contents[1]
    assert len(provider.calls("/cgi-bin/stable_token")) == 1
    # A redelivery after that changes nothing.
    say(client, oa_side, clock, "王姐 2桶", msg_id=777)
    assert order_count(engine) == before + 1
