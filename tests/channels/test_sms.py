"""SMS: TC3-HMAC-SHA256 against Tencent's published example, opt-out, per-number limits."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import select

from app.channels.sms import (
    TencentSms,
    is_opt_out,
    send_outreach_sms,
    tc3_authorization,
)
from app.clock import FixedClock
from app.config import Settings
from app.customers.models import Customer
from app.db import read_session, write_session
from app.outreach.sms import SmsMessage, SmsRefused
from app.shops.models import Shop
from app.shops.service import owner_of
from tests.channels.fake_provider import FakeProvider


def test_tc3_signature_matches_tencent_published_example() -> None:
    # Tencent Cloud API 3.0 signature v3 documentation, CVM DescribeInstances example.
    payload = (
        b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
    )
    header = tc3_authorization(
        secret_id="AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
        secret_key="Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
        service="cvm",
        host="cvm.tencentcloudapi.com",
        timestamp=1551113065,
        payload=payload,
    )
    assert header == (
        "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/"
        "tc3_request, SignedHeaders=content-type;host, "
        "Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
    )


def rederive(secret_key: str, headers: dict[str, str], body: bytes, service: str = "sms") -> str:
    """The fake provider's own check of a received request (the documented steps)."""
    canonical = (
        f"POST\n/\n\ncontent-type:{headers['content-type']}\nhost:{headers['host']}\n\n"
        f"content-type;host\n{hashlib.sha256(body).hexdigest()}"
    )
    credential = headers["authorization"].split("Credential=")[1].split(",")[0]
    day = credential.split("/")[1]
    to_sign = (
        f"TC3-HMAC-SHA256\n{headers['x-tc-timestamp']}\n{day}/{service}/tc3_request\n"
        f"{hashlib.sha256(canonical.encode()).hexdigest()}"
    )
    key = f"TC3{secret_key}".encode()
    for part in (day, service, "tc3_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


@pytest.fixture
def sms(channel_settings: Settings, engine: Engine, clock: FixedClock) -> Iterator[TencentSms]:
    http = httpx.Client(timeout=5.0)
    yield TencentSms(settings=channel_settings, engine=engine, clock=clock, http=http,
                     backoff_seconds=0.01)  # fmt: skip
    http.close()


def test_sms_request_is_signed_and_sent_once_per_key(
    sms: TencentSms, provider: FakeProvider, engine: Engine
) -> None:
    receipt = sms.send(key="digest:1", shop_id=None, phone="13800138000", purpose="digest",
                       template_id="100001", params=["3"])  # fmt: skip
    assert receipt.accepted and not receipt.duplicate
    (call,) = provider.calls("/")
    signature = call.headers["authorization"].rsplit("Signature=", 1)[1]
    assert signature == rederive("sms-secret-key", call.headers, call.raw)
    assert call.headers["x-tc-version"] == "2021-01-11"
    assert json.loads(call.raw)["PhoneNumberSet"] == ["+8613800138000"]
    again = sms.send(key="digest:1", shop_id=None, phone="13800138000", purpose="digest",
                     template_id="100001", params=["3"])  # fmt: skip
    assert again.duplicate
    assert len(provider.calls("/")) == 1
    with read_session(engine) as session:
        row = session.exec(select(SmsMessage)).one()
    assert row.status == "sent" and row.provider_ref == "sn-1"


def test_per_number_rate_limit(sms: TencentSms, provider: FakeProvider, clock: FixedClock) -> None:
    sms.send(key="a", shop_id=None, phone="13800138000", purpose="digest", template_id="1",
             params=[])  # fmt: skip
    with pytest.raises(SmsRefused):
        sms.send(key="b", shop_id=None, phone="13800138000", purpose="digest", template_id="1",
                 params=[])  # fmt: skip
    sms.send(key="c", shop_id=None, phone="13900139000", purpose="digest", template_id="1",
             params=[])  # fmt: skip
    for hour in range(2):
        clock.advance(hours=1, minutes=1)
        sms.send(key=f"d{hour}", shop_id=None, phone="13800138000", purpose="digest",
                 template_id="1", params=[])  # fmt: skip
    clock.advance(hours=1, minutes=1)
    with pytest.raises(SmsRefused):  # three a day
        sms.send(key="e", shop_id=None, phone="13800138000", purpose="digest", template_id="1",
                 params=[])  # fmt: skip
    assert len(provider.calls("/")) == 4


@pytest.mark.parametrize("text", ["退订", "TD", "td", " T ", "N", "退订谢谢", "STOP"])
def test_opt_out_words(text: str) -> None:
    assert is_opt_out(text)


@pytest.mark.parametrize("text", ["好的", "明天送两桶", "谢谢", "在吗"])
def test_ordinary_replies_are_not_opt_outs(text: str) -> None:
    assert not is_opt_out(text)


def test_customer_reply_opts_out_and_outreach_is_refused(
    client: TestClient, sms: TencentSms, provider: FakeProvider, engine: Engine,
    demo_shop: Shop,
) -> None:  # fmt: skip
    with write_session(engine) as session:
        customer = session.exec(
            select(Customer).where(Customer.shop_id == demo_shop.id, Customer.name == "王姐")
        ).one()
        customer.phone = "13700137000"
        session.add(customer)
        owner = owner_of(session=session, shop=demo_shop)
    with pytest.raises(SmsRefused):  # never without the owner's confirmation
        send_outreach_sms(sms=sms, shop=demo_shop, customer=customer, confirmed_by=None, key="1")
    assert send_outreach_sms(sms=sms, shop=demo_shop, customer=customer, confirmed_by=owner,
                             key="1").accepted  # fmt: skip
    assert json.loads(provider.calls("/")[0].raw)["TemplateParamSet"] == [demo_shop.name[:12]]
    wrong = client.post("/sms/reply/wrong-token", json={"mobile": "13700137000", "text": "TD"})
    assert wrong.status_code == 404
    assert not sms.opted_out("13700137000")
    reply = {"mobile": "13700137000", "nationcode": "86", "text": "退订"}
    response = client.post("/sms/reply/reply-token-789", json=reply)
    assert response.status_code == 200
    assert sms.opted_out("13700137000")
    with pytest.raises(SmsRefused):
        send_outreach_sms(sms=sms, shop=demo_shop, customer=customer, confirmed_by=owner, key="2")
    assert len(provider.calls("/")) == 1
