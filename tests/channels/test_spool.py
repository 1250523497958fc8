"""With the database locked or down, callbacks still answer in time; the spool keeps the
message and the drainer handles it once when the database is back, pushing the reply."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.channels.spool import Spool
from app.clock import FixedClock
from app.config import Settings
from app.db import make_engine, write_session
from app.main import create_app
from app.shops.models import Shop, StaffIdentity
from app.shops.service import owner_of
from tests.channels.conftest import inbox_count, now_ts, order_count
from tests.channels.fake_provider import FakeProvider
from tests.channels.wire import OfficialAccountSide, WeComSide, field_of, text_xml

USER = "LaoBan"
OPENID = "oOwner_openid_123"
# Well inside WeChat's 5 s: the callback must answer about this fast whatever the database.
ANSWER_WITHIN_SECONDS = 2.5


def bind_directly(
    engine: Engine, clock: FixedClock, shop: Shop, channel: str, external: str
) -> None:
    with write_session(engine) as session:
        owner = owner_of(session=session, shop=shop)
        session.add(StaffIdentity(shop_id=shop.id or 0, staff_id=owner.id or 0, channel=channel,
                                  external_id=external, created_at=clock.now()))  # fmt: skip


def spooled(settings: Settings) -> list[tuple[str, str]]:
    spool = Spool(settings.data_dir / "spool.db")
    try:
        return [(i.channel, i.message_key) for i in spool.waiting()]
    finally:
        spool.close()


def wecom_send(client: TestClient, side: WeComSide, clock: FixedClock, content: str,
               msg_id: int) -> tuple[str, float]:  # fmt: skip
    """(decrypted reply or "", seconds the callback took)."""
    xml = text_xml(to=side.corp_id, sender=USER, content=content, created=now_ts(clock),
                   msg_id=msg_id)  # fmt: skip
    request = side.callback(now_ts(clock), xml)
    started = time.monotonic()
    response = client.post("/wecom", params=request.params, content=request.body)
    took = time.monotonic() - started
    assert response.status_code == 200, response.text
    if not response.text:
        return "", took
    return field_of(side.open_reply(response.text), "Content"), took


def oa_send(client: TestClient, side: OfficialAccountSide, clock: FixedClock, content: str,
            msg_id: int) -> tuple[str, float]:  # fmt: skip
    xml = text_xml(to="gh_test", sender=OPENID, content=content, created=now_ts(clock),
                   msg_id=msg_id)  # fmt: skip
    request = side.callback(now_ts(clock), xml, OPENID)
    started = time.monotonic()
    response = client.post("/wechat", params=request.params, content=request.body)
    took = time.monotonic() - started
    assert response.status_code == 200, response.text
    if response.text == "success":
        return "success", took
    return field_of(side.open_reply(response.text), "Content"), took


@pytest.fixture
def spool_settings(channel_settings: Settings) -> Settings:
    # The drainer's automatic rounds are far apart: the tests drain when they choose.
    return channel_settings.model_copy(
        update={"wechat_reply_budget_seconds": 1.0, "spool_drain_seconds": 3600.0}
    )


@pytest.fixture
def exclusive_lock(engine: Engine) -> Iterator[sqlite3.Connection]:
    """Another process's transaction holding SQLite's write lock (released by the test)."""
    if engine.dialect.name != "sqlite":
        pytest.skip("the lock test is about SQLite's single writer")
    path = engine.url.database
    assert path
    holder = sqlite3.connect(path, isolation_level=None, timeout=0)
    yield holder
    if holder.in_transaction:
        holder.execute("ROLLBACK")
    holder.close()


def test_locked_database_answers_in_time_and_drains_each_message_once(
    spool_settings: Settings, engine: Engine, clock: FixedClock, demo_shop: Shop,
    wecom_side: WeComSide, provider: FakeProvider, exclusive_lock: sqlite3.Connection,
) -> None:  # fmt: skip
    bind_directly(engine, clock, demo_shop, "wecom", USER)
    # The app's own engine gives up on a lock after 0.3 s instead of 30 s.
    short = make_engine(engine.url.render_as_string(hide_password=False), busy_timeout_seconds=0.3)
    app = create_app(settings=spool_settings, engine=short, clock=clock)
    orders_before, inbox_before = order_count(engine), inbox_count(engine)
    with TestClient(app) as client:
        exclusive_lock.execute("BEGIN EXCLUSIVE")
        order_reply, order_took = wecom_send(client, wecom_side, clock, "王姐 2桶", 9001)
        list_reply, list_took = wecom_send(client, wecom_side, clock, "今天该跟进谁", 9002)
        again_reply, _ = wecom_send(client, wecom_side, clock, "王姐 2桶", 9001)  # WeCom retry
        assert (order_reply, list_reply, again_reply) == ("", "", "")
        assert max(order_took, list_took) < ANSWER_WITHIN_SECONDS
        assert sorted(spooled(spool_settings)) == [("wecom", "9001"), ("wecom", "9002")]
        # Still locked: a drain round changes nothing and keeps both.
        assert app.state.spool_drainer.drain_once() == 0
        assert len(spooled(spool_settings)) == 2

        exclusive_lock.execute("ROLLBACK")
        assert app.state.spool_drainer.drain_once() == 2
        assert spooled(spool_settings) == []
        assert order_count(engine) == orders_before + 1
        assert inbox_count(engine) == inbox_before + 2
        pushed = [c.json for c in provider.calls("/cgi-bin/message/send")]
        assert [p["touser"] for p in pushed] == [USER, USER]
        texts = sorted(p["text"]["content"] for p in pushed)
        assert "平时" in texts[0] + texts[1] and "已记" in texts[0] + texts[1]

        # WeCom re-delivers the order after all: the stored reply, nothing new.
        late_reply, _ = wecom_send(client, wecom_side, clock, "王姐 2桶", 9001)
        assert "已记" in late_reply
        assert app.state.spool_drainer.drain_once() == 0
    assert order_count(engine) == orders_before + 1
    assert len(provider.calls("/cgi-bin/message/send")) == 2
    short.dispose()


def dead_database_engine() -> Engine:
    """An engine whose server is not there (connection refused at once)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return make_engine(f"postgresql+psycopg://huitou:x@127.0.0.1:{port}/huitou?connect_timeout=2")


def test_database_down_answers_success_and_the_next_start_drains_it_once(
    spool_settings: Settings, engine: Engine, clock: FixedClock, demo_shop: Shop,
    oa_side: OfficialAccountSide, provider: FakeProvider,
) -> None:  # fmt: skip
    bind_directly(engine, clock, demo_shop, "wechat", OPENID)
    orders_before = order_count(engine)
    dead = dead_database_engine()
    down = create_app(settings=spool_settings, engine=dead, clock=clock)
    with TestClient(down) as client:
        reply, took = oa_send(client, oa_side, clock, "王姐 2桶", 9101)
        assert reply == "success" and took < ANSWER_WITHIN_SECONDS
        reply, _ = oa_send(client, oa_side, clock, "王姐 2桶", 9101)  # a redelivery
        assert reply == "success"
        assert down.state.spool_drainer.drain_once() == 0  # still down: kept
    dead.dispose()
    assert spooled(spool_settings) == [("wechat", "9101")]
    assert provider.calls("/cgi-bin/message/custom/send") == []

    # The service comes back with the database: the start-up round drains the spool.
    back = create_app(settings=spool_settings, engine=engine, clock=clock)
    with TestClient(back) as client:
        deadline = time.monotonic() + 10
        while spooled(spool_settings) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert spooled(spool_settings) == []
        sent = [c.json for c in provider.calls("/cgi-bin/message/custom/send")]
        assert len(sent) == 1 and sent[0]["touser"] == OPENID
        assert "已记" in sent[0]["text"]["content"]
        # And WeChat's own last retry of the message, after all that, acts no more.
        reply, _ = oa_send(client, oa_side, clock, "王姐 2桶", 9101)
        assert "已记" in reply
    assert order_count(engine) == orders_before + 1
    assert len(provider.calls("/cgi-bin/message/custom/send")) == 1
