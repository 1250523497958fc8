"""WeChat Official Account (公众号): the `/wechat` callback, its API client and the pusher.

Plain mode (signature only) and safe mode (AES, when an EncodingAESKey is configured; then
plain messages are refused). WeChat waits 5 seconds for an answer and re-sends up to four
times: the bot gets a budget, and a slower reply is answered "success" and sent later
through the customer-service API. Taps on msgmenu choices come back as text carrying
`bizmsgmenuid`; subscribe and CLICK events get the guide or run the menu's command.
"""

from __future__ import annotations

import logging
import re
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy import Engine
from wechatpy import parse_message

from app.bot.context import ChatImage
from app.channels.binding import channel_message, staff_external_id
from app.channels.callback import (
    AesCodec,
    Rejected,
    check_signature,
    check_timestamp,
    encrypted_envelope,
    message_key,
    parse_xml,
    read_body,
    signature,
    text_reply,
)
from app.channels.dispatch import answer_tap, guide
from app.channels.inbox import Inbound, handle
from app.channels.limits import Verdict, limiter_of
from app.channels.media import upload_image
from app.channels.push import PushMessage, PushReceipt, PushUnavailable
from app.channels.reply import answer_in_time
from app.channels.tokens import ApiClient, request_json, token_from
from app.clock import Clock
from app.config import Settings
from app.db import read_session
from app.shops.models import Shop

log = logging.getLogger(__name__)

CHANNEL = "wechat"
TEXT_MAX_CHARS = 1800
# Template message values: thing* keywords take 20 characters; others are kept short too.
THING_MAX_CHARS = 20
TEMPLATE_VALUE_MAX_CHARS = 60
# Menu button keys (set in the account's custom menu) and the command each one sends.
MENU_COMMANDS = {
    "huitou_followups": "今天该跟进谁",
    "huitou_month": "本月统计",
    "huitou_help": "帮助",
}

router = APIRouter()


class OfficialAccountClient(ApiClient):
    """The Official Account API: stable_token and customer-service messages."""

    @staticmethod
    def api_base(settings: Settings) -> str:
        return settings.wechat_api_base

    @staticmethod
    def app_key(settings: Settings) -> str:
        return f"wechat:{settings.wechat_app_id}"

    def _fetch_token(self, http: httpx.Client, force: bool) -> tuple[str, int]:
        # stable_token: every caller gets the same token until it expires, so a second
        # process (or a restart) never cuts the first one's token short.
        body = request_json(
            http,
            "POST",
            f"{self.base}/cgi-bin/stable_token",
            json={
                "grant_type": "client_credential",
                "appid": self.settings.wechat_app_id,
                "secret": self.settings.wechat_app_secret,
                "force_refresh": force,
            },
            backoff_seconds=self.backoff_seconds,
        )
        return token_from(body, "stable_token")

    def send_template(self, payload: dict[str, Any]) -> dict[str, Any]:
        """A template message (verified service accounts; no 48-hour window)."""
        return self.api.post("/cgi-bin/message/template/send", payload)

    def send_custom(self, payload: dict[str, Any]) -> dict[str, Any]:
        """A customer-service message (within 48 h of the user's last message; else 45015)."""
        return self.api.post("/cgi-bin/message/custom/send", payload)

    def send_text(self, openid: str, text: str) -> dict[str, Any]:
        return self.send_custom(
            {"touser": openid, "msgtype": "text", "text": {"content": text[:TEXT_MAX_CHARS]}}
        )

    def send_image(self, openid: str, image: ChatImage) -> dict[str, Any]:
        """Upload the picture as temporary media; send it as a customer-service image."""
        media_id = upload_image(self.api, image)
        return self.send_custom(
            {"touser": openid, "msgtype": "image", "image": {"media_id": media_id}}
        )


def msgmenu(message: PushMessage, index: int, openid: str) -> dict[str, Any]:
    """One digest item as a msgmenu: tapping a choice sends back its id (the button key)."""
    item = message.items[index]
    tail = f"详情:{item.url}" if item.url else ""
    return {
        "touser": openid,
        "msgtype": "msgmenu",
        "msgmenu": {
            "head_content": f"{item.number}. {item.title}\n{item.description}",
            "list": [{"id": button.key, "content": button.text} for button in item.buttons],
            "tail_content": tail,
        },
    }


class OfficialAccountPusher:
    """Pushes a digest as a customer-service text plus one msgmenu per follow-up."""

    name = CHANNEL

    def __init__(self, *, client: OfficialAccountClient, engine: Engine) -> None:
        self.client = client
        self.engine = engine

    def _openid(self, staff_id: int) -> str | None:
        return staff_external_id(engine=self.engine, staff_id=staff_id, channel=CHANNEL)

    def can_reach(self, *, shop_id: int, staff_id: int) -> bool:
        return self._openid(staff_id) is not None

    def push(self, message: PushMessage) -> PushReceipt:
        openid = self._openid(message.staff_id)
        if openid is None:
            raise PushUnavailable("staff member has no Official Account identity")
        # 45015 here (outside the 48-hour window) raises PushUnavailable: a verified
        # service account then sends a template message, any other moves on to SMS.
        # Customer-service messages have no deduplication of their own.
        try:
            self.client.send_text(openid, f"{message.title}\n{message.text}")
        except PushUnavailable:
            if not self.client.settings.wechat_template_id:
                raise
            self.client.send_template(self.template_message(message, openid))
            return PushReceipt(channel=CHANNEL, accepted=True, detail="template message")
        for index in range(len(message.items)):
            self.client.send_custom(msgmenu(message, index, openid))
        return PushReceipt(channel=CHANNEL, accepted=True, detail=f"{len(message.items)} menus")

    def template_message(self, message: PushMessage, openid: str) -> dict[str, Any]:
        """The digest as the configured template message, linking to the full list."""
        settings = self.client.settings
        with read_session(self.engine) as session:
            shop = session.get(Shop, message.shop_id)
        timezone = ZoneInfo(shop.timezone if shop else settings.timezone)
        today = self.client.clock.now().astimezone(timezone).date()
        names = "、".join(item.title.split(" · ")[0] for item in message.items)
        values = {
            "title": message.title,
            "count": str(len(message.items)),
            "names": names or message.title,
            "date": f"{today.month}月{today.day}日",
            "shop": shop.name if shop else "",
            "hint": "点开看完整名单和话术,点一下就能记结果",
        }
        data: dict[str, dict[str, str]] = {}
        for keyword, source in template_fields(settings.wechat_template_fields):
            value = values.get(source, source)
            limit = THING_MAX_CHARS if keyword.startswith("thing") else TEMPLATE_VALUE_MAX_CHARS
            data[keyword] = {"value": value if len(value) <= limit else value[: limit - 1] + "…"}
        payload: dict[str, Any] = {
            "touser": openid,
            "template_id": settings.wechat_template_id,
            "data": data,
        }
        url = message.url or list_link(message)
        if url:
            payload["url"] = url
        return payload


def template_fields(spec: str) -> list[tuple[str, str]]:
    """ "first=title,keyword1=names" -> [("first", "title"), ("keyword1", "names")]."""
    pairs = []
    for part in spec.split(","):
        keyword, _, source = part.partition("=")
        if keyword.strip() and source.strip():
            pairs.append((keyword.strip(), source.strip()))
    return pairs


_LIST_LINK = re.compile(r"https?://\S+/d/[A-Za-z0-9_.\-]+")


def list_link(message: PushMessage) -> str | None:
    """The signed full-list link the digest text carries (…/d/<token>), else the first item's."""
    found = _LIST_LINK.search(message.text)
    if found:
        return found.group(0)
    return next((item.url for item in message.items if item.url), None)


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    if not settings.wechat_configured:
        raise Rejected(404)  # fail closed: no token, no endpoint
    return settings


def official_account_client(request: Request) -> OfficialAccountClient:
    """The app's Official Account client, built on first use."""
    return client_of(request.app.state)


def client_of(state: Any) -> OfficialAccountClient:
    """The Official Account client kept on the app's state, built on first use."""
    client: OfficialAccountClient | None = getattr(state, "wechat_client", None)
    if client is None:
        client = OfficialAccountClient(
            settings=state.settings, engine=state.engine, clock=state.clock
        )
        state.wechat_client = client
    return client


@router.get("/wechat", include_in_schema=False)
def verify_url(
    request: Request, signature: str = "", timestamp: str = "", nonce: str = "", echostr: str = ""
) -> PlainTextResponse:
    """Server verification: the bare echostr as plain text when the signature holds."""
    settings = _settings(request)
    check_timestamp(timestamp, request.app.state.clock, settings.callback_window_seconds)
    check_signature(_sign(settings.wechat_token, timestamp, nonce), signature)
    return PlainTextResponse(echostr)


def _sign(token: str, *parts: str) -> str:
    return signature(token, *parts)


@router.post("/wechat", include_in_schema=False)
async def receive(request: Request, background: BackgroundTasks) -> Response:
    """A message or event from the Official Account: verify, (decrypt), act once, answer."""
    settings = _settings(request)
    clock: Clock = request.app.state.clock
    engine: Engine = request.app.state.engine
    query = request.query_params
    timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
    body = await read_body(request, settings.callback_max_bytes)
    document = parse_xml(body)
    check_timestamp(timestamp, clock, settings.callback_window_seconds)
    codec: AesCodec | None = None
    if settings.wechat_aes_key:
        if query.get("encrypt_type") != "aes":
            raise Rejected(403)  # safe mode configured: never accept plaintext
        ciphertext = document.get("Encrypt", "")
        expected = _sign(settings.wechat_token, timestamp, nonce, ciphertext)
        check_signature(expected, query.get("msg_signature"))
        codec = AesCodec(settings.wechat_aes_key, settings.wechat_app_id)
        plain = codec.decrypt(ciphertext)
        fields = parse_xml(plain)
    else:
        check_signature(_sign(settings.wechat_token, timestamp, nonce), query.get("signature"))
        plain = body.decode()
        fields = document
    openid = fields.get("FromUserName", "")
    if not openid:
        raise Rejected(400)
    kind = fields.get("MsgType", "").lower()
    event = fields.get("Event", "").lower()
    inbound = Inbound(CHANNEL, openid, message_key(fields), fields.get("Content", ""))

    def reply(replies: list[str]) -> Response:
        if not replies:
            return PlainTextResponse("success")
        xml = text_reply(
            to_user=openid,
            from_user=fields.get("ToUserName", ""),
            content="\n\n".join(replies)[:TEXT_MAX_CHARS],
            create_time=int(clock.now().timestamp()),
        )
        if codec is None:
            return Response(content=xml, media_type="application/xml")
        wrapped = encrypted_envelope(
            codec=codec,
            token=settings.wechat_token,
            plaintext=xml,
            timestamp=str(int(clock.now().timestamp())),
        )
        return Response(content=wrapped, media_type="application/xml")

    verdict = limiter_of(request.app.state).check(CHANNEL, openid)
    if verdict is not Verdict.ALLOW:
        if verdict is Verdict.NOTICE:
            return reply([channel_message(settings.templates_dir, "rate_limited")])
        return PlainTextResponse("success")
    if kind == "text" and fields.get("bizmsgmenuid"):
        tap = answer_tap(
            engine=engine,
            settings=settings,
            clock=clock,
            inbound=inbound,
            key=fields["bizmsgmenuid"],
        )
        return reply(tap.handled.replies)
    text: str | None = None
    if kind == "text":
        text = inbound.text
    elif kind == "event" and event == "click":
        key = fields.get("EventKey", "")
        text = MENU_COMMANDS.get(key, key)
    if text is not None:
        inbound = Inbound(CHANNEL, openid, inbound.message_key, text)
        return reply(
            await answer_in_time(
                state=request.app.state,
                background=background,
                inbound=inbound,
                work=partial(
                    handle, engine=engine, settings=settings, clock=clock, inbound=inbound
                ),
                send_text=lambda text: official_account_client(request).send_text(openid, text),
                send_image=lambda image: official_account_client(request).send_image(openid, image),
            )
        )
    if kind == "event" and event == "subscribe":
        return reply(guide(engine=engine, settings=settings, clock=clock, inbound=inbound))
    if kind == "event":
        # wechatpy names the event for the log (its typed parse is needed nowhere else).
        log.debug("wechat event %s ignored (%s)", event, type(parse_message(plain)).__name__)
        return PlainTextResponse("success")
    return reply([channel_message(settings.templates_dir, "not_text")])
