"""Pictures over WeCom and the Official Account: 统计图 uploads a real PNG as temporary media
and sends an image message with the media_id the provider returned, after the text reply."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.clock import FixedClock
from app.config import Settings
from app.main import create_app
from app.shops.models import Shop
from tests.channels.fake_provider import FakeProvider, Received
from tests.channels.test_wechat_callback import OPENID
from tests.channels.test_wechat_callback import say as oa_say
from tests.channels.test_wecom_callback import USER, bind
from tests.channels.test_wecom_callback import send as wecom_send
from tests.channels.wire import OfficialAccountSide, WeComSide

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
UPLOAD = "/cgi-bin/media/upload"


def assert_real_png_upload(call: Received) -> None:
    assert call.method == "POST"
    assert call.query["type"] == "image" and call.query["access_token"].startswith("tok-")
    assert call.headers["content-type"].startswith("multipart/form-data; boundary=")
    filename, content_type, data = call.multipart()["media"]
    assert filename is not None and filename.startswith("report-") and filename.endswith(".png")
    assert content_type == "image/png"
    assert data.startswith(PNG_SIGNATURE) and len(data) > 5000  # a drawn chart, not a stub
    assert data.rstrip(b"\x00")[-8:-4] == b"IEND"


def wait_for_customer_service_sends(provider: FakeProvider, count: int) -> None:
    deadline = time.monotonic() + 20
    while len(provider.calls("/cgi-bin/message/custom/send")) < count:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def message_paths(provider: FakeProvider) -> list[str]:
    return [c.path for c in provider.received if c.path.startswith("/cgi-bin/m")]


def test_wecom_chart_is_uploaded_then_sent_as_an_image_message(
    client: TestClient, wecom_side: WeComSide, clock: FixedClock, binding_code: str,
    provider: FakeProvider,
) -> None:  # fmt: skip
    bind(client, wecom_side, clock, binding_code)
    status, text = wecom_send(client, wecom_side, clock, "统计图", msg_id=8801)
    assert status == 200 and "/r/" in text  # the passive text reply carries the link
    (upload,) = provider.calls(UPLOAD)
    assert_real_png_upload(upload)
    (image,) = provider.calls("/cgi-bin/message/send")
    assert image.query["access_token"] == upload.query["access_token"]
    assert image.json["touser"] == USER and image.json["agentid"] == 1000002
    assert image.json["msgtype"] == "image"
    assert image.json["image"] == {"media_id": provider.media_ids[0]}
    assert message_paths(provider) == [UPLOAD, "/cgi-bin/message/send"]
    # A redelivery gets the stored text and sends no second picture.
    assert wecom_send(client, wecom_side, clock, "统计图", msg_id=8801) == (status, text)
    assert len(provider.calls(UPLOAD)) == 1 and len(provider.calls("/cgi-bin/message/send")) == 1


def test_official_account_chart_goes_out_as_a_customer_service_image(
    client: TestClient, oa_side: OfficialAccountSide, clock: FixedClock, binding_code: str,
    provider: FakeProvider,
) -> None:  # fmt: skip
    oa_say(client, oa_side, clock, f"绑定 {binding_code}")
    text = oa_say(client, oa_side, clock, "统计图")
    assert "/r/" in text
    (upload,) = provider.calls(UPLOAD)
    assert_real_png_upload(upload)
    (image,) = provider.calls("/cgi-bin/message/custom/send")
    assert image.json == {
        "touser": OPENID,
        "msgtype": "image",
        "image": {"media_id": provider.media_ids[0]},
    }


def test_a_slow_chart_reply_sends_the_text_then_the_picture(
    channel_settings: Settings, engine: Engine, clock: FixedClock, demo_shop: Shop,
    oa_side: OfficialAccountSide, provider: FakeProvider, binding_code: str,
) -> None:  # fmt: skip
    settings = channel_settings.model_copy(update={"wechat_reply_budget_seconds": 0.0})
    client = TestClient(create_app(settings=settings, engine=engine, clock=clock))
    assert oa_say(client, oa_side, clock, f"绑定 {binding_code}") == "success"
    # Bound first: both replies are late, and a 统计图 handled before the binding commits
    # (on PostgreSQL, now and then) rightly gets the binding guide and no picture.
    wait_for_customer_service_sends(provider, 1)
    assert oa_say(client, oa_side, clock, "统计图") == "success"
    wait_for_customer_service_sends(provider, 3)
    sent = [c.json for c in provider.calls("/cgi-bin/message/custom/send")]
    assert sorted(m["msgtype"] for m in sent) == ["image", "text", "text"]
    chart_text = next(
        i for i, m in enumerate(sent) if "/r/" in m.get("text", {}).get("content", "")
    )
    picture = next(i for i, m in enumerate(sent) if m["msgtype"] == "image")
    assert chart_text < picture  # the text first, then its picture
    assert sent[picture]["image"]["media_id"] == provider.media_ids[0]
    assert_real_png_upload(provider.calls(UPLOAD)[0])


def test_without_the_font_or_with_a_failed_upload_only_the_text_goes_out(
    client: TestClient, wecom_side: WeComSide, clock: FixedClock, binding_code: str,
    provider: FakeProvider, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from app.reports import charts

    bind(client, wecom_side, clock, binding_code)
    provider.script(UPLOAD, (200, {"errcode": 40005, "errmsg": "invalid file type"}))
    status, text = wecom_send(client, wecom_side, clock, "统计图")
    assert status == 200 and "/r/" in text
    assert len(provider.calls(UPLOAD)) == 1
    assert provider.calls("/cgi-bin/message/send") == []

    def no_font() -> None:
        raise charts.ChartError("CJK font not found (install fonts-noto-cjk)")

    monkeypatch.setattr(charts, "_setup", no_font)
    clock.advance(seconds=1)
    status, text = wecom_send(client, wecom_side, clock, "统计图")
    assert status == 200 and "/r/" in text
    assert len(provider.calls(UPLOAD)) == 1  # nothing drawn, nothing uploaded
    assert provider.calls("/cgi-bin/message/send") == []
