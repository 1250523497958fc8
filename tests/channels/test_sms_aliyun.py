"""Aliyun SendSms: the V3 (ACS3-HMAC-SHA256) signature checked by a reference signer written
here from Aliyun's documented algorithm, named template params, and the shared rules
(one text per key, per-number limits, opt-outs) through the common SmsClient."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterator
from urllib.parse import parse_qsl

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import select

from app.channels.push import PushButton, PushItem, PushMessage, PushUnavailable
from app.channels.pushers import pushers_from_settings
from app.channels.sms import (
    AliyunSms,
    SmsPusher,
    acs3_authorization,
    record_reply,
    sms_client,
)
from app.clock import FixedClock
from app.config import Settings
from app.db import read_session, write_session
from app.outreach.sms import SmsMessage, SmsRefused
from app.shops.models import Shop
from app.shops.service import owner_of
from tests.channels.fake_provider import FakeProvider, Received

ACCESS_KEY_ID = "LTAI5tTestKeyId"
ACCESS_KEY_SECRET = "aliyun-test-secret"
UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def percent(text: str) -> str:
    """RFC 3986 percent-encoding, byte by byte (as Aliyun's V3 document specifies)."""
    return "".join(chr(b) if b in UNRESERVED else f"%{b:02X}" for b in text.encode("utf-8"))


def reference_signature(
    secret: str, method: str, path: str, pairs: list[tuple[str, str]],
    headers: dict[str, str], signed: list[str], body: bytes,
) -> str:  # fmt: skip
    """Aliyun V3: CanonicalRequest -> StringToSign -> hex(HMAC-SHA256(secret, StringToSign))."""
    query = "&".join(percent(k) + "=" + percent(v) for k, v in sorted(pairs))
    header_lines = "".join(name + ":" + headers[name].strip() + "\n" for name in sorted(signed))
    canonical_request = (
        method + "\n" + path + "\n" + query + "\n" + header_lines + "\n"
        + ";".join(sorted(signed)) + "\n" + hashlib.sha256(body).hexdigest()
    )  # fmt: skip
    to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical_request.encode()).hexdigest()
    return hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()


def check_signed(call: Received) -> dict[str, str]:
    """The provider's side: verify the Authorization of a received request; its params."""
    match = re.fullmatch(
        r"ACS3-HMAC-SHA256 Credential=(?P<id>[^,]+),SignedHeaders=(?P<signed>[^,]+),"
        r"Signature=(?P<sig>[0-9a-f]{64})",
        call.headers["authorization"],
    )
    assert match is not None, call.headers["authorization"]
    assert match["id"] == ACCESS_KEY_ID
    signed = match["signed"].split(";")
    assert {"host", "x-acs-action", "x-acs-version", "x-acs-date", "x-acs-signature-nonce",
            "x-acs-content-sha256"} <= set(signed)  # fmt: skip
    assert call.headers["x-acs-content-sha256"] == hashlib.sha256(call.raw).hexdigest()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", call.headers["x-acs-date"])
    pairs = parse_qsl(call.raw_query, keep_blank_values=True)
    expected = reference_signature(ACCESS_KEY_SECRET, call.method, call.path, pairs,
                                   call.headers, signed, call.raw)  # fmt: skip
    assert hmac.compare_digest(match["sig"], expected)
    return dict(pairs)


@pytest.fixture
def aliyun_settings(channel_settings: Settings) -> Settings:
    return channel_settings.model_copy(
        update={
            "sms_provider": "aliyun",
            "sms_secret_id": ACCESS_KEY_ID,
            "sms_secret_key": ACCESS_KEY_SECRET,
            "sms_sdk_app_id": "",
            "sms_sign_name": "清泉送水",
            "sms_digest_template_id": "SMS_100001",
            "sms_outreach_template_id": "SMS_100002",
        }
    )


@pytest.fixture
def sms(aliyun_settings: Settings, engine: Engine, clock: FixedClock) -> Iterator[AliyunSms]:
    http = httpx.Client(timeout=5.0)
    client = sms_client(settings=aliyun_settings, engine=engine, clock=clock, http=http,
                        backoff_seconds=0.01)  # fmt: skip
    assert isinstance(client, AliyunSms)
    yield client
    http.close()


def test_signer_agrees_with_the_reference_on_a_fixed_request() -> None:
    headers = {
        "host": "dysmsapi.aliyuncs.com",
        "x-acs-action": "SendSms",
        "x-acs-version": "2017-05-25",
        "x-acs-date": "2026-06-17T02:00:00Z",
        "x-acs-signature-nonce": "3156853299f313e23d1673dc12e1703d",
        "x-acs-content-sha256": hashlib.sha256(b"").hexdigest(),
    }
    query = {"PhoneNumbers": "13800138000", "SignName": "清泉送水",
             "TemplateParam": '{"shop":"清泉 送水*站~"}', "TemplateCode": "SMS_1"}  # fmt: skip
    canonical_query, authorization = acs3_authorization(
        access_key_id=ACCESS_KEY_ID, access_key_secret=ACCESS_KEY_SECRET, method="POST",
        path="/", query=query, headers=headers, payload=b"",
    )  # fmt: skip
    # Space as %20, * as %2A, ~ kept, UTF-8 bytes upper-case hex.
    assert "%E6%B8%85%E6%B3%89%20%E9%80%81%E6%B0%B4%2A%E7%AB%99~" in canonical_query
    assert canonical_query.startswith("PhoneNumbers=13800138000&SignName=")
    expected = reference_signature(ACCESS_KEY_SECRET, "POST", "/", list(query.items()), headers,
                                   list(headers), b"")  # fmt: skip
    assert authorization == (
        f"ACS3-HMAC-SHA256 Credential={ACCESS_KEY_ID},SignedHeaders=host;x-acs-action;"
        "x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,"
        f"Signature={expected}"
    )


def test_send_sms_is_signed_named_and_sent_once_per_key(
    sms: AliyunSms, provider: FakeProvider, engine: Engine
) -> None:
    receipt = sms.send(key="outreach:fu:9:by:1", shop_id=None, phone="+86 138-0013-8000",
                       purpose="outreach", template_id="SMS_100002",
                       params=["清泉送水站"])  # fmt: skip
    assert receipt.accepted and not receipt.duplicate
    (call,) = provider.calls("/")
    assert call.method == "POST"
    assert call.headers["x-acs-action"] == "SendSms"
    assert call.headers["x-acs-version"] == "2017-05-25"
    params = check_signed(call)
    assert params["PhoneNumbers"] == "13800138000"
    assert params["SignName"] == "清泉送水" and params["TemplateCode"] == "SMS_100002"
    assert json.loads(params["TemplateParam"]) == {"shop": "清泉送水站"}
    again = sms.send(key="outreach:fu:9:by:1", shop_id=None, phone="13800138000",
                     purpose="outreach", template_id="SMS_100002",
                     params=["清泉送水站"])  # fmt: skip
    assert again.duplicate and len(provider.calls("/")) == 1
    with read_session(engine) as session:
        row = session.exec(select(SmsMessage)).one()
    assert (row.status, row.provider_ref) == ("sent", "biz-1")


def test_limits_opt_out_and_provider_refusals_are_shared_with_tencent(
    sms: AliyunSms, provider: FakeProvider, engine: Engine, clock: FixedClock
) -> None:
    sms.send(key="a", shop_id=None, phone="13800138000", purpose="digest", template_id="SMS_1",
             params=["2"])  # fmt: skip
    assert json.loads(check_signed(provider.calls("/")[0])["TemplateParam"]) == {"count": "2"}
    with pytest.raises(SmsRefused):  # one an hour per number
        sms.send(key="b", shop_id=None, phone="13800138000", purpose="digest",
                 template_id="SMS_1", params=["2"])  # fmt: skip
    record_reply(engine=engine, clock=clock, phone="13900139000", text="TD")
    with pytest.raises(SmsRefused):
        sms.send(key="c", shop_id=None, phone="13900139000", purpose="digest",
                 template_id="SMS_1", params=["2"])  # fmt: skip
    provider.script("/", (200, {"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "触发流控"}))
    with pytest.raises(PushUnavailable):
        sms.send(key="d", shop_id=None, phone="13700137000", purpose="digest",
                 template_id="SMS_1", params=["2"])  # fmt: skip
    assert len(provider.calls("/")) == 2
    with read_session(engine) as session:
        failed = session.exec(select(SmsMessage).where(SmsMessage.key == "d")).one()
    assert failed.status == "failed" and "BUSINESS_LIMIT_CONTROL" in (failed.error or "")


def test_the_digest_falls_back_to_aliyun_sms_with_a_named_count(
    aliyun_settings: Settings, engine: Engine, clock: FixedClock, demo_shop: Shop,
    provider: FakeProvider,
) -> None:  # fmt: skip
    assert aliyun_settings.sms_configured  # no SmsSdkAppId needed for Aliyun
    with write_session(engine) as session:
        owner = owner_of(session=session, shop=demo_shop)
        owner.phone = "13800138000"
        session.add(owner)
        assert owner.id is not None and demo_shop.id is not None
        owner_id, shop_id = owner.id, demo_shop.id
    http = httpx.Client(timeout=5.0)
    try:
        pushers = pushers_from_settings(aliyun_settings, engine, clock=clock, http=http,
                                        backoff_seconds=0.01)  # fmt: skip
        sms_pusher = pushers[-1]
        assert isinstance(sms_pusher, SmsPusher) and isinstance(sms_pusher.sms, AliyunSms)
        item = PushItem(followup_id=1, number=1, title="王姐", description="38天没订", url=None,
                        buttons=(PushButton("fu:1:sent", "已发消息"),))  # fmt: skip
        message = PushMessage(key="digest:2026-06-17:1", shop_id=shop_id, staff_id=owner_id,
                              title="今天该跟进 1 位", text="1. 王姐", items=(item,))  # fmt: skip
        assert sms_pusher.push(message).accepted
    finally:
        http.close()
    params = check_signed(provider.calls("/")[0])
    assert params["TemplateCode"] == "SMS_100001"
    assert json.loads(params["TemplateParam"]) == {"count": "1"}
