"""WeCom (企业微信) self-built app: the `/wecom` callback, its API client and the pusher.

Callback: URL verification (encrypted echostr), msg_signature over the ciphertext, AES;
texts go to the bot, `template_card_event` taps to the outcome recorder (then the card is
updated to show the choice); `change_external_contact`: an added or edited contact is
linked to its customer (app.channels.contacts), a deleted one becomes a risk signal.
"""

from __future__ import annotations

import hashlib
import logging
from functools import partial
from typing import Any

import httpx
from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy import Engine
from wechatpy.enterprise import parse_message

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
from app.channels.contacts import contact_changed
from app.channels.dispatch import answer_tap, contact_deleted, guide
from app.channels.inbox import Inbound, handle
from app.channels.limits import Verdict, limiter_of
from app.channels.media import upload_image
from app.channels.push import PushError, PushMessage, PushReceipt, PushUnavailable
from app.channels.reply import answer_in_time
from app.channels.tokens import ApiClient, request_json, token_from
from app.clock import Clock
from app.config import Settings

log = logging.getLogger(__name__)

CHANNEL = "wecom"
DELETED_CONTACT = frozenset({"del_follow_user", "del_external_contact"})
# A contact added, or its remark edited: linked to the customer it is (app.channels.contacts).
LINKED_CONTACT = frozenset({"add_external_contact", "edit_external_contact"})
MARKDOWN_MAX_BYTES = 2000
# WeCom deduplicates a repeated identical message within this many seconds.
DUPLICATE_CHECK_SECONDS = 4 * 3600

router = APIRouter()


class WeComClient(ApiClient):
    """The WeCom server API for one app: token, message/send, update_template_card, and the
    external-contact reads that link customers (app.channels.contacts)."""

    @staticmethod
    def api_base(settings: Settings) -> str:
        return settings.wecom_api_base

    @staticmethod
    def app_key(settings: Settings) -> str:
        return f"wecom:{settings.wecom_corp_id}:{settings.wecom_agent_id}"

    def _fetch_token(self, http: httpx.Client, _force: bool) -> tuple[str, int]:
        body = request_json(
            http,
            "GET",
            f"{self.base}/cgi-bin/gettoken",
            params={
                "corpid": self.settings.wecom_corp_id,
                "corpsecret": self.settings.wecom_secret,
            },
            backoff_seconds=self.backoff_seconds,
        )
        return token_from(body, "gettoken")

    def send(self, touser: str, payload: dict[str, Any], *, dedupe: bool = True) -> dict[str, Any]:
        """message/send to one user; `dedupe` lets WeCom drop a retried identical message."""
        message = {"touser": touser, "agentid": int(self.settings.wecom_agent_id or 0), **payload}
        if dedupe:
            message |= {
                "enable_duplicate_check": 1,
                "duplicate_check_interval": DUPLICATE_CHECK_SECONDS,
            }
        body = self.api.post("/cgi-bin/message/send", message)
        if touser in str(body.get("invaliduser", "")).split("|"):
            raise PushUnavailable(f"WeCom user {touser} is not reachable by this app")
        return body

    def send_text(self, touser: str, text: str, *, dedupe: bool = False) -> dict[str, Any]:
        return self.send(touser, {"msgtype": "text", "text": {"content": text}}, dedupe=dedupe)

    def send_image(self, touser: str, image: ChatImage) -> dict[str, Any]:
        """Upload the picture as temporary media and send it as an image message."""
        media_id = upload_image(self.api, image)
        return self.send(
            touser, {"msgtype": "image", "image": {"media_id": media_id}}, dedupe=False
        )

    def external_contact(self, external_userid: str) -> dict[str, Any]:
        """externalcontact/get: the contact, and each staff member's remark and mobiles for it."""
        return self.api.get("/cgi-bin/externalcontact/get", {"external_userid": external_userid})

    def external_contact_ids(self, userid: str) -> list[str]:
        """externalcontact/list: the external ids of one staff member's customer contacts."""
        body = self.api.get("/cgi-bin/externalcontact/list", {"userid": userid})
        return [str(i) for i in body.get("external_userid") or []]

    def update_card(self, touser: str, response_code: str, replace_name: str) -> dict[str, Any]:
        """Turn a tapped card's buttons into one disabled button saying what was chosen."""
        return self.api.post(
            "/cgi-bin/message/update_template_card",
            {
                "userids": [touser],
                "agentid": int(self.settings.wecom_agent_id or 0),
                "response_code": response_code,
                "button": {"replace_name": replace_name},
            },
        )


def _truncate_bytes(text: str, limit: int) -> str:
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return encoded[: limit - 3].decode(errors="ignore") + "…"


def card_task_id(push_key: str, followup_id: int) -> str:
    """Stable per push and item (a retry sends the same card), in WeCom's allowed characters."""
    digest = hashlib.sha1(f"{push_key}|{followup_id}".encode()).hexdigest()[:32]
    return f"ht-{followup_id}-{digest}"


def template_card(message: PushMessage, index: int) -> dict[str, Any]:
    """The `template_card` (button_interaction) for one digest item."""
    item = message.items[index]
    card: dict[str, Any] = {
        "card_type": "button_interaction",
        "source": {"desc": "回头客"},
        "main_title": {"title": item.title[:26], "desc": item.description[:30]},
        "sub_title_text": f"第 {item.number} 位",
        "task_id": card_task_id(message.key, item.followup_id),
        "button_list": [
            {"text": button.text[:10], "style": 1, "key": button.key} for button in item.buttons[:6]
        ],
    }
    if item.url:
        card["card_action"] = {"type": 1, "url": item.url}
    return card


# WeCom markdown has no escape character: the characters that make links, colour tags, code
# and emphasis become their full-width twins, so a customer named "[点我](http://…)" or
# '<font color="warning">' reads as typed and never turns into markup. The digest templates
# use none of them.
_MARKDOWN_LITERAL = str.maketrans(
    {"[": "［", "]": "］", "<": "＜", ">": "＞", "`": "｀", "*": "＊"}
)


def markdown_literal(text: str) -> str:
    """`text` shown as typed inside a WeCom markdown message."""
    return text.translate(_MARKDOWN_LITERAL)


class WeComPusher:
    """Pushes a digest as markdown text plus one button card per follow-up."""

    name = CHANNEL

    def __init__(self, *, client: WeComClient, engine: Engine) -> None:
        self.client = client
        self.engine = engine

    def _userid(self, staff_id: int) -> str | None:
        return staff_external_id(engine=self.engine, staff_id=staff_id, channel=CHANNEL)

    def can_reach(self, *, shop_id: int, staff_id: int) -> bool:
        return self._userid(staff_id) is not None

    def push(self, message: PushMessage) -> PushReceipt:
        userid = self._userid(message.staff_id)
        if userid is None:
            raise PushUnavailable("staff member has no WeCom identity")
        content = _truncate_bytes(
            f"**{markdown_literal(message.title)}**\n{markdown_literal(message.text)}",
            MARKDOWN_MAX_BYTES,
        )
        self.client.send(userid, {"msgtype": "markdown", "markdown": {"content": content}})
        for index in range(len(message.items)):
            self.client.send(
                userid, {"msgtype": "template_card", "template_card": template_card(message, index)}
            )
        return PushReceipt(channel=CHANNEL, accepted=True, detail=f"{len(message.items)} cards")


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    if not settings.wecom_configured:
        raise Rejected(404)  # fail closed: no token or key, no endpoint
    return settings


def wecom_client(request: Request) -> WeComClient:
    """The app's WeCom client, built on first use."""
    return client_of(request.app.state)


def client_of(state: Any) -> WeComClient:
    """The WeCom client kept on the app's state, built on first use."""
    client: WeComClient | None = getattr(state, "wecom_client", None)
    if client is None:
        client = WeComClient(settings=state.settings, engine=state.engine, clock=state.clock)
        state.wecom_client = client
    return client


@router.get("/wecom", include_in_schema=False)
def verify_url(
    request: Request,
    msg_signature: str = "",
    timestamp: str = "",
    nonce: str = "",
    echostr: str = "",
) -> PlainTextResponse:
    """URL verification: answer the decrypted echostr, bare."""
    settings = _settings(request)
    check_timestamp(timestamp, request.app.state.clock, settings.callback_window_seconds)
    check_signature(signature(settings.wecom_token, timestamp, nonce, echostr), msg_signature)
    codec = AesCodec(settings.wecom_aes_key, settings.wecom_corp_id)
    return PlainTextResponse(codec.decrypt(echostr))


@router.post("/wecom", include_in_schema=False)
async def receive(request: Request, background: BackgroundTasks) -> Response:
    """A message or event from WeCom: verify, decrypt, act once, reply (encrypted)."""
    settings = _settings(request)
    clock: Clock = request.app.state.clock
    engine: Engine = request.app.state.engine
    # Read as sent (missing: empty, refused below), as /wechat does, not as validated params.
    query = request.query_params
    msg_signature = query.get("msg_signature", "")
    timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
    body = await read_body(request, settings.callback_max_bytes)
    envelope = parse_xml(body)
    check_timestamp(timestamp, clock, settings.callback_window_seconds)
    ciphertext = envelope.get("Encrypt", "")
    check_signature(signature(settings.wecom_token, timestamp, nonce, ciphertext), msg_signature)
    codec = AesCodec(settings.wecom_aes_key, settings.wecom_corp_id)
    plain = codec.decrypt(ciphertext)
    fields = parse_xml(plain)  # the decrypted document is refused with a DTD too
    sender = fields.get("FromUserName", "")
    if not sender:
        raise Rejected(400)
    inbound = Inbound(CHANNEL, sender, message_key(fields), fields.get("Content", ""))
    kind = fields.get("MsgType", "").lower()
    event = fields.get("Event", "").lower()

    def reply(replies: list[str]) -> Response:
        if not replies:
            return PlainTextResponse("")
        xml = text_reply(
            to_user=sender,
            from_user=fields.get("ToUserName", ""),
            content="\n\n".join(replies),
            create_time=int(clock.now().timestamp()),
        )
        envelope_xml = encrypted_envelope(
            codec=codec,
            token=settings.wecom_token,
            plaintext=xml,
            timestamp=str(int(clock.now().timestamp())),
        )
        return Response(content=envelope_xml, media_type="application/xml")

    verdict = limiter_of(request.app.state).check(CHANNEL, sender)
    if verdict is not Verdict.ALLOW:
        if verdict is Verdict.NOTICE:
            return reply([channel_message(settings.templates_dir, "rate_limited")])
        return PlainTextResponse("")
    if kind == "text":
        return reply(
            await answer_in_time(
                state=request.app.state,
                background=background,
                inbound=inbound,
                work=partial(
                    handle, engine=engine, settings=settings, clock=clock, inbound=inbound
                ),
                send_text=lambda text: wecom_client(request).send_text(sender, text),
                send_image=lambda image: wecom_client(request).send_image(sender, image),
            )
        )
    if kind == "event" and event == "template_card_event":
        key = fields.get("EventKey", "")
        response_code = fields.get("ResponseCode", "")
        tap = answer_tap(engine=engine, settings=settings, clock=clock, inbound=inbound, key=key)
        label = tap.handled.replies
        if tap.recorded_now and response_code:
            background.add_task(
                _update_card, wecom_client(request), sender, response_code, label[0]
            )
        return PlainTextResponse("") if tap.recorded_now else reply(label)
    if kind == "event" and event == "change_external_contact":
        change = fields.get("ChangeType", "")
        external = fields.get("ExternalUserID", "")
        sender_staff = fields.get("UserID", "") or sender
        # Events of two contacts in the same second share sender, time and type: the
        # contact's id tells them apart (a redelivery still has the same key).
        key = f"{inbound.message_key}:{external}"[:160]
        if change in DELETED_CONTACT and external:
            matched = contact_deleted(
                engine=engine,
                clock=clock,
                inbound=Inbound(CHANNEL, sender_staff, key, ""),
                external_userid=external,
                change_type=change,
            )
            log.info("wecom %s for %s: %d customer(s) flagged", change, external, matched)
        elif change in LINKED_CONTACT and external:
            # After the answer: reading the contact is a call to WeCom, which wants its 5 s.
            background.add_task(
                contact_changed, engine=engine, templates_dir=settings.templates_dir,
                clock=clock, api=wecom_client(request), staff_userid=sender_staff,
                external_userid=external, message_key=key, change_type=change,
                ttl_seconds=settings.pending_ttl_seconds,
            )  # fmt: skip
        return PlainTextResponse("")
    if kind == "event" and event in {"subscribe", "enter_agent"}:
        return reply(guide(engine=engine, settings=settings, clock=clock, inbound=inbound))
    if kind == "event":
        # wechatpy names the event for the log (its typed parse is needed nowhere else).
        log.debug("wecom event %s ignored (%s)", event, type(parse_message(plain)).__name__)
        return PlainTextResponse("")
    return reply([channel_message(settings.templates_dir, "not_text")])


def _update_card(client: WeComClient, userid: str, response_code: str, label: str) -> None:
    try:
        client.update_card(userid, response_code, label)
    except PushError:
        log.warning("updating a WeCom card failed", exc_info=True)
