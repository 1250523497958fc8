"""SMS through Tencent Cloud (SendSms, TC3-HMAC-SHA256) or Aliyun (SendSms, ACS3-HMAC-SHA256),
signed with hmac/hashlib and sent with httpx (HUITOU_SMS_PROVIDER = tencent | aliyun).

Two uses: the digest notice to an owner's phone when no WeChat push is possible, and an
owner-confirmed tier-1 text to a customer who has no WeChat. Every text is logged in
`sms_message` under an idempotency key; a number that replied an opt-out word is never
texted again; each number gets at most a few texts per hour and per day.
The approved template carries the link: a URL cannot be a template variable.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from fastapi import APIRouter, Request
from sqlalchemy import Engine, func
from sqlmodel import col, select

from app.channels.callback import Rejected, read_body
from app.channels.push import PushError, PushMessage, PushReceipt, PushUnavailable
from app.channels.tokens import request_json
from app.clock import Clock
from app.config import Settings
from app.customers.models import Customer
from app.db import read_session, write_session
from app.outreach.sms import SmsMessage, SmsOptOut, SmsRefused, normalise_phone
from app.shops.models import Shop, Staff

log = logging.getLogger(__name__)

CHANNEL = "sms"
SERVICE = "sms"
ACTION = "SendSms"
VERSION = "2021-01-11"
CONTENT_TYPE = "application/json; charset=utf-8"
TENCENT_API_BASE = "https://sms.tencentcloudapi.com"
ALIYUN_API_BASE = "https://dysmsapi.aliyuncs.com"
ALIYUN_VERSION = "2017-05-25"
ACS3 = "ACS3-HMAC-SHA256"
# Aliyun templates name their variables: what each purpose's params are called, in order.
ALIYUN_PARAM_NAMES: dict[str, tuple[str, ...]] = {"digest": ("count",), "outreach": ("shop",)}
# What a customer replies to stop texts (the carriers' conventions and plain Chinese).
OPT_OUT_WORDS = frozenset({"TD", "T", "N", "退订", "退", "取消", "不要再发", "别发了", "STOP"})

router = APIRouter()


def tc3_authorization(
    *,
    secret_id: str,
    secret_key: str,
    service: str,
    host: str,
    timestamp: int,
    payload: bytes,
    content_type: str = CONTENT_TYPE,
) -> str:
    """The TC3-HMAC-SHA256 Authorization header for a POST of `payload` to `host`."""
    canonical_request = "\n".join(
        (
            "POST",
            "/",
            "",
            f"content-type:{content_type}\nhost:{host}\n",
            "content-type;host",
            hashlib.sha256(payload).hexdigest(),
        )
    )
    day = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    scope = f"{day}/{service}/tc3_request"
    string_to_sign = "\n".join(
        (
            "TC3-HMAC-SHA256",
            str(timestamp),
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        )
    )

    def _hmac(key: bytes, message: str) -> bytes:
        return hmac.new(key, message.encode(), hashlib.sha256).digest()

    signing_key = _hmac(_hmac(_hmac(f"TC3{secret_key}".encode(), day), service), "tc3_request")
    signed = hmac.new(signing_key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    return (
        f"TC3-HMAC-SHA256 Credential={secret_id}/{scope}, "
        f"SignedHeaders=content-type;host, Signature={signed}"
    )


def is_opt_out(text: str) -> bool:
    """Whether a customer's reply asks us to stop texting."""
    words = re.sub(r"[\s。.!!]", "", text or "").upper()
    return words in OPT_OUT_WORDS or "退订" in words


class SmsClient:
    """Sends approved-template texts, once per key, within per-number limits.

    What every provider shares: the `sms_message` log and its idempotency key, opt-outs,
    per-number limits. A provider implements `_deliver` (one signed SendSms call).
    """

    provider = ""

    def __init__(
        self,
        *,
        settings: Settings,
        engine: Engine,
        clock: Clock,
        http: httpx.Client | None = None,
        backoff_seconds: float = 0.2,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.clock = clock
        self.http = http or httpx.Client(timeout=10.0)
        self.backoff_seconds = backoff_seconds

    def opted_out(self, phone: str) -> bool:
        with read_session(self.engine) as session:
            return session.get(SmsOptOut, normalise_phone(phone)) is not None

    def _claim(
        self, *, key: str, shop_id: int | None, phone: str, purpose: str, template_id: str,
        params: list[str],
    ) -> bool:  # fmt: skip
        """Log the text as sending; False when this key was already sent."""
        now = self.clock.now()
        with write_session(self.engine) as session:
            existing = session.exec(select(SmsMessage).where(SmsMessage.key == key)).first()
            if existing is not None and existing.status == "sent":
                return False
            if session.get(SmsOptOut, phone) is not None:
                raise SmsRefused("这个号码回复过退订")
            for window, limit in (
                (timedelta(hours=1), self.settings.sms_max_per_hour),
                (timedelta(days=1), self.settings.sms_max_per_day),
            ):
                sent = session.execute(
                    select(func.count())
                    .select_from(SmsMessage)
                    .where(
                        col(SmsMessage.phone) == phone,
                        col(SmsMessage.status).in_(("sent", "sending")),
                        col(SmsMessage.created_at) >= now - window,
                        col(SmsMessage.key) != key,
                    )
                ).scalar_one()
                if sent >= limit:
                    raise SmsRefused("这个号码今天的短信已经够多了")
            row = existing or SmsMessage(
                key=key, shop_id=shop_id, phone=phone, purpose=purpose, template_id=template_id,
                status="sending", created_at=now,
            )  # fmt: skip
            row.params = params
            row.status = "sending"
            row.error = None
            session.add(row)
        return True

    def _finish(self, key: str, *, status: str, ref: str | None = None, error: str = "") -> None:
        with write_session(self.engine) as session:
            row = session.exec(select(SmsMessage).where(SmsMessage.key == key)).one()
            row.status = status
            row.provider_ref = ref
            row.error = error[:500] or None
            session.add(row)

    def send(
        self,
        *,
        key: str,
        shop_id: int | None,
        phone: str,
        purpose: str,
        template_id: str,
        params: list[str],
    ) -> PushReceipt:
        """Send once per `key`; SmsRefused when the number may not be texted now."""
        if not template_id:
            raise SmsRefused("没有配置短信模板")
        number = normalise_phone(phone)
        if not self._claim(
            key=key, shop_id=shop_id, phone=number, purpose=purpose, template_id=template_id,
            params=params,
        ):  # fmt: skip
            return PushReceipt(channel=CHANNEL, accepted=True, duplicate=True)
        try:
            ref = self._deliver(
                key=key, number=number, purpose=purpose, template_id=template_id, params=params
            )
        except PushError as exc:
            self._finish(key, status="failed", error=str(exc))
            raise
        self._finish(key, status="sent", ref=ref)
        return PushReceipt(channel=CHANNEL, accepted=True, detail=number[-4:])

    def _deliver(
        self, *, key: str, number: str, purpose: str, template_id: str, params: list[str]
    ) -> str | None:
        """One provider call; the provider's reference, or PushError (PushUnavailable when
        this number cannot be texted through this provider now)."""
        raise NotImplementedError


class TencentSms(SmsClient):
    """Tencent Cloud SendSms (API 3.0, TC3-HMAC-SHA256); templates take positional {1}, {2}."""

    provider = "tencent"

    def _deliver(
        self, *, key: str, number: str, purpose: str, template_id: str, params: list[str]
    ) -> str | None:
        payload = json.dumps(
            {
                "PhoneNumberSet": [number],
                "SmsSdkAppId": self.settings.sms_sdk_app_id,
                "SignName": self.settings.sms_sign_name,
                "TemplateId": template_id,
                "TemplateParamSet": params,
                "SessionContext": key[:512],
            },
            ensure_ascii=False,
        ).encode()
        body = self._post(payload)
        response: dict[str, Any] = body.get("Response") or {}
        error = response.get("Error")
        statuses = response.get("SendStatusSet") or [{}]
        code = str(error.get("Code", "")) if error else str(statuses[0].get("Code", ""))
        if code != "Ok":
            message = f"{code} {(error or statuses[0]).get('Message', '')}"
            if code.startswith(("LimitExceeded", "FailedOperation.PhoneNumberInBlacklist")):
                raise PushUnavailable(message)
            raise PushError(message)
        return str(statuses[0].get("SerialNo", "")) or None

    def _post(self, payload: bytes) -> dict[str, Any]:
        base = self.settings.sms_api_base.rstrip("/")
        host = urlsplit(base).netloc
        timestamp = int(self.clock.now().timestamp())
        headers = {
            "Authorization": tc3_authorization(
                secret_id=self.settings.sms_secret_id,
                secret_key=self.settings.sms_secret_key,
                service=SERVICE,
                host=host,
                timestamp=timestamp,
                payload=payload,
            ),
            "Content-Type": CONTENT_TYPE,
            "Host": host,
            "X-TC-Action": ACTION,
            "X-TC-Version": VERSION,
            "X-TC-Timestamp": str(timestamp),
            "X-TC-Region": self.settings.sms_region,
        }
        return request_json(
            self.http, "POST", f"{base}/", content=payload, headers=headers,
            backoff_seconds=self.backoff_seconds,
        )  # fmt: skip


def acs3_authorization(
    *,
    access_key_id: str,
    access_key_secret: str,
    method: str,
    path: str,
    query: dict[str, str],
    headers: dict[str, str],
    payload: bytes,
) -> tuple[str, str]:
    """Aliyun's V3 signature: (the canonical query string, the Authorization header).

    `headers` are the ones to sign (host, the x-acs-* headers, content-type if any), with
    x-acs-content-sha256 already set to the payload's hex SHA-256.
    """
    canonical_query = "&".join(
        f"{_acs_encode(k)}={_acs_encode(v)}" for k, v in sorted(query.items())
    )
    lowered = sorted((k.lower(), v.strip()) for k, v in headers.items())
    canonical_headers = "".join(f"{k}:{v}\n" for k, v in lowered)
    signed_headers = ";".join(k for k, _ in lowered)
    canonical_request = "\n".join(
        (
            method,
            path,
            canonical_query,
            canonical_headers,
            signed_headers,
            hashlib.sha256(payload).hexdigest(),
        )
    )
    string_to_sign = f"{ACS3}\n{hashlib.sha256(canonical_request.encode()).hexdigest()}"
    signature = hmac.new(
        access_key_secret.encode(), string_to_sign.encode(), hashlib.sha256
    ).hexdigest()
    return canonical_query, (
        f"{ACS3} Credential={access_key_id},SignedHeaders={signed_headers},Signature={signature}"
    )


def _acs_encode(value: str) -> str:
    # RFC 3986: unreserved characters stay, everything else %XX of its UTF-8 bytes.
    return quote(value, safe="-_.~")


class AliyunSms(SmsClient):
    """Aliyun (dysmsapi) SendSms, V3 signature; templates take named ${...} variables.

    The digest template's variable is ${count}, the outreach template's ${shop}
    (ALIYUN_PARAM_NAMES); the link lives in the approved template text, as with Tencent.
    """

    provider = "aliyun"

    def _deliver(
        self, *, key: str, number: str, purpose: str, template_id: str, params: list[str]
    ) -> str | None:
        names = ALIYUN_PARAM_NAMES.get(purpose, ())
        named = {
            (names[i] if i < len(names) else f"p{i + 1}"): value for i, value in enumerate(params)
        }
        query = {
            "PhoneNumbers": number.removeprefix("+86"),
            "SignName": self.settings.sms_sign_name,
            "TemplateCode": template_id,
            "TemplateParam": json.dumps(named, ensure_ascii=False, separators=(",", ":")),
            "OutId": key[:256],
        }
        body = self._post(query)
        code = str(body.get("Code", ""))
        if code != "OK":
            message = f"{code} {body.get('Message', '')}"
            if "LIMIT_CONTROL" in code or code == "isv.MOBILE_NUMBER_ILLEGAL":
                raise PushUnavailable(message)
            raise PushError(message)
        return str(body.get("BizId", "")) or None

    def _post(self, query: dict[str, str]) -> dict[str, Any]:
        base = self.settings.sms_api_base.rstrip("/")
        if base == TENCENT_API_BASE:  # the setting's default is Tencent's endpoint
            base = ALIYUN_API_BASE
        payload = b""
        headers = {
            "host": urlsplit(base).netloc,
            "x-acs-action": ACTION,
            "x-acs-version": ALIYUN_VERSION,
            "x-acs-date": self.clock.now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "x-acs-signature-nonce": uuid.uuid4().hex,
            "x-acs-content-sha256": hashlib.sha256(payload).hexdigest(),
        }
        canonical_query, authorization = acs3_authorization(
            access_key_id=self.settings.sms_secret_id,
            access_key_secret=self.settings.sms_secret_key,
            method="POST",
            path="/",
            query=query,
            headers=headers,
            payload=payload,
        )
        return request_json(
            self.http, "POST", f"{base}/?{canonical_query}", content=payload,
            headers={**headers, "Authorization": authorization},
            backoff_seconds=self.backoff_seconds,
        )  # fmt: skip


def sms_client(
    *,
    settings: Settings,
    engine: Engine,
    clock: Clock,
    http: httpx.Client | None = None,
    backoff_seconds: float = 0.2,
) -> SmsClient:
    """The configured provider's client (HUITOU_SMS_PROVIDER)."""
    providers: dict[str, type[SmsClient]] = {"tencent": TencentSms, "aliyun": AliyunSms}
    kind = providers.get(settings.sms_provider.strip().lower())
    if kind is None:
        raise ValueError(f"unknown HUITOU_SMS_PROVIDER {settings.sms_provider!r}")
    return kind(
        settings=settings, engine=engine, clock=clock, http=http, backoff_seconds=backoff_seconds
    )


class SmsPusher:
    """The last resort for the digest: a short notice to the staff member's phone."""

    name = CHANNEL

    def __init__(self, *, sms: SmsClient, engine: Engine) -> None:
        self.sms = sms
        self.engine = engine

    def _phone(self, staff_id: int) -> str | None:
        with read_session(self.engine) as session:
            staff = session.get(Staff, staff_id)
        return staff.phone if staff and staff.phone else None

    def can_reach(self, *, shop_id: int, staff_id: int) -> bool:
        phone = self._phone(staff_id)
        if not phone or not self.sms.settings.sms_digest_template_id:
            return False
        try:
            return not self.sms.opted_out(phone)
        except SmsRefused:
            return False

    def push(self, message: PushMessage) -> PushReceipt:
        phone = self._phone(message.staff_id)
        if phone is None:
            raise PushUnavailable("staff member has no phone number")
        try:
            return self.sms.send(
                key=f"digest:{message.key}"[:160],
                shop_id=message.shop_id,
                phone=phone,
                purpose="digest",
                template_id=self.sms.settings.sms_digest_template_id,
                params=[str(len(message.items))],
            )
        except SmsRefused as exc:
            raise PushUnavailable(str(exc)) from exc


def send_outreach_sms(
    *, sms: SmsClient, shop: Shop, customer: Customer, confirmed_by: Staff | None, key: str
) -> PushReceipt:
    """The tier-1 text to a customer without WeChat; only after the owner confirmed it."""
    if confirmed_by is None or confirmed_by.shop_id != shop.id:
        raise SmsRefused("给客户发短信要先经店主确认")
    if not customer.phone:
        raise SmsRefused("这位客户没有手机号")
    return sms.send(
        key=f"outreach:{key}"[:160],
        shop_id=shop.id,
        phone=customer.phone,
        purpose="outreach",
        template_id=sms.settings.sms_outreach_template_id,
        params=[shop.name[:12]],
    )


def record_reply(*, engine: Engine, clock: Clock, phone: str, text: str) -> bool:
    """Honour an opt-out word in a customer's reply; True when the number is now opted out."""
    if not is_opt_out(text):
        return False
    number = normalise_phone(phone)
    with write_session(engine) as session:
        if session.get(SmsOptOut, number) is None:
            session.add(SmsOptOut(phone=number, word=text.strip()[:32], created_at=clock.now()))
    return True


@router.post("/sms/reply/{token}", include_in_schema=False)
async def sms_reply(request: Request, token: str) -> dict[str, Any]:
    """Tencent's reply callback (one JSON object or a list): opt-out words are recorded."""
    settings: Settings = request.app.state.settings
    expected = settings.sms_callback_token
    if not expected or not hmac.compare_digest(expected.encode(), token.encode()):
        raise Rejected(404)
    body = await read_body(request, settings.callback_max_bytes)
    try:
        parsed = json.loads(body or b"null")
    except ValueError as exc:
        raise Rejected(400) from exc
    replies = parsed if isinstance(parsed, list) else [parsed]
    for reply in replies:
        if not isinstance(reply, dict):
            continue
        mobile, text = str(reply.get("mobile", "")), str(reply.get("text", ""))
        try:
            record_reply(engine=request.app.state.engine, clock=request.app.state.clock,
                         phone=mobile, text=text)  # fmt: skip
        except SmsRefused:
            log.info("sms reply from an unusable number ignored")
    return {"result": 0, "errmsg": "OK"}
