"""Channel fixtures: configured settings, the app behind a TestClient, a fake provider."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func
from sqlmodel import select

from app.clock import FixedClock
from app.config import Settings
from app.db import read_session, write_session
from app.events.models import InboxMessage
from app.main import create_app
from app.orders.models import Order
from app.shops.models import Shop
from app.shops.service import get_shop, issue_binding_code
from tests.channels.fake_provider import FakeProvider, start
from tests.channels.wire import OfficialAccountSide, WeComSide, new_aes_key

CORP_ID = "ww0123456789abcdef"
APP_ID = "wx0123456789abcdef"


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    fake = FakeProvider()
    server = start(fake)
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def wecom_side() -> WeComSide:
    return WeComSide(token="wecomToken123", aes_key=new_aes_key(), corp_id=CORP_ID)


@pytest.fixture
def oa_side() -> OfficialAccountSide:
    return OfficialAccountSide(token="oaToken456", app_id=APP_ID, aes_key=new_aes_key())


@pytest.fixture
def channel_settings(
    settings: Settings, provider: FakeProvider, wecom_side: WeComSide, oa_side: OfficialAccountSide
) -> Settings:
    return settings.model_copy(
        update={
            "wecom_corp_id": CORP_ID,
            "wecom_agent_id": "1000002",
            "wecom_secret": "wecom-secret",
            "wecom_token": wecom_side.token,
            "wecom_aes_key": wecom_side.aes_key,
            "wecom_api_base": provider.url,
            "wechat_app_id": APP_ID,
            "wechat_app_secret": "oa-secret",
            "wechat_token": oa_side.token,
            "wechat_aes_key": oa_side.aes_key,
            "wechat_api_base": provider.url,
            "sms_provider": "tencent",
            "sms_secret_id": "AKIDtest",
            "sms_secret_key": "sms-secret-key",
            "sms_sdk_app_id": "1400000001",
            "sms_sign_name": "清泉送水",
            "sms_digest_template_id": "100001",
            "sms_outreach_template_id": "100002",
            "sms_api_base": provider.url,
            "sms_callback_token": "reply-token-789",
        }
    )


@pytest.fixture
def client(
    channel_settings: Settings, engine: Engine, clock: FixedClock, demo_shop: Shop
) -> Iterator[TestClient]:
    app = create_app(settings=channel_settings, engine=engine, clock=clock)
    with TestClient(app) as test_client:
        yield test_client
        for name in ("wecom_client", "wechat_client"):
            api = getattr(app.state, name, None)
            if api is not None:
                api.http.close()


@pytest.fixture
def binding_code(engine: Engine, clock: FixedClock, demo_shop: Shop) -> str:
    with write_session(engine) as session:
        shop = get_shop(session=session, ref=demo_shop.slug)
        return issue_binding_code(session=session, shop=shop, clock=clock)


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as client:
        yield client


def now_ts(clock: FixedClock) -> int:
    return int(clock.now().timestamp())


def inbox_count(engine: Engine) -> int:
    with read_session(engine) as session:
        return int(session.execute(select(func.count()).select_from(InboxMessage)).scalar_one())


def order_count(engine: Engine) -> int:
    with read_session(engine) as session:
        return int(session.execute(select(func.count()).select_from(Order)).scalar_one())
