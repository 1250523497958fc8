"""Per-sender rate limits on the callbacks: a flood gets one notice, then is dropped
without touching the database; other senders go on as before."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.clock import FixedClock
from app.config import Settings
from app.main import create_app
from app.shops.models import Shop
from tests.channels.conftest import inbox_count, now_ts
from tests.channels.test_spool import OPENID, USER, bind_directly
from tests.channels.wire import OfficialAccountSide, WeComSide, field_of, text_xml


def wecom_say(client: TestClient, side: WeComSide, clock: FixedClock, sender: str,
              content: str) -> str:  # fmt: skip
    xml = text_xml(to=side.corp_id, sender=sender, content=content, created=now_ts(clock))
    request = side.callback(now_ts(clock), xml)
    response = client.post("/wecom", params=request.params, content=request.body)
    assert response.status_code == 200
    return field_of(side.open_reply(response.text), "Content") if response.text else ""


def test_a_flooding_sender_gets_one_notice_then_is_dropped_and_others_are_served(
    channel_settings: Settings, engine: Engine, clock: FixedClock, demo_shop: Shop,
    wecom_side: WeComSide,
) -> None:  # fmt: skip
    settings = channel_settings.model_copy(
        update={"callback_sender_burst": 3, "callback_sender_per_minute": 6}
    )
    bind_directly(engine, clock, demo_shop, "wecom", USER)
    bind_directly(engine, clock, demo_shop, "wecom", "Clerk")
    with TestClient(create_app(settings=settings, engine=engine, clock=clock)) as client:
        for _ in range(3):
            assert "王姐" in wecom_say(client, wecom_side, clock, USER, "帮助")
        stored = inbox_count(engine)
        notice = wecom_say(client, wecom_side, clock, USER, "王姐 2桶")
        assert "太快" in notice
        for _ in range(5):
            assert wecom_say(client, wecom_side, clock, USER, "王姐 2桶") == ""
        assert inbox_count(engine) == stored  # nothing over the limit reached the database
        assert "王姐" in wecom_say(client, wecom_side, clock, "Clerk", "帮助")  # unaffected
        clock.advance(seconds=10)  # one message's worth refilled (6 a minute)
        assert "王姐" in wecom_say(client, wecom_side, clock, USER, "帮助")
        assert "太快" in wecom_say(client, wecom_side, clock, USER, "帮助")  # a new notice


def test_the_official_account_limit_answers_success_when_dropping(
    channel_settings: Settings, engine: Engine, clock: FixedClock, demo_shop: Shop,
    oa_side: OfficialAccountSide,
) -> None:  # fmt: skip
    settings = channel_settings.model_copy(
        update={"callback_sender_burst": 1, "callback_sender_per_minute": 1}
    )
    bind_directly(engine, clock, demo_shop, "wechat", OPENID)
    replies = []
    with TestClient(create_app(settings=settings, engine=engine, clock=clock)) as client:
        for _ in range(3):
            xml = text_xml(to="gh_test", sender=OPENID, content="帮助", created=now_ts(clock))
            request = oa_side.callback(now_ts(clock), xml, OPENID)
            response = client.post("/wechat", params=request.params, content=request.body)
            assert response.status_code == 200
            text = response.text
            replies.append(
                text if text == "success" else field_of(oa_side.open_reply(text), "Content")
            )
    assert "王姐" in replies[0] and "太快" in replies[1] and replies[2] == "success"
