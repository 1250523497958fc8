"""What WeChat and WeCom callbacks share: the body limit, safe XML, signatures, AES, replies.

Every check fails closed and says nothing about why: a bad signature, a stale timestamp,
a DTD, an oversized body all end the request before any database write. wechatpy does the
signing arithmetic, the AES framing and the message parsing; the XML is read with
defusedxml first, because wechatpy's parser (xmltodict/expat) expands internal entities.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import logging
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from fastapi import HTTPException, Request
from sqlalchemy import Engine, select
from sqlmodel import Session
from wechatpy.crypto import PrpCrypto
from wechatpy.utils import WeChatSigner

from app.channels.models import InboxMessage
from app.clock import Clock
from app.db import insert_for, write_session

log = logging.getLogger(__name__)


@lru_cache(maxsize=4)
def bot_pool(threads: int) -> ThreadPoolExecutor:
    """The threads the bot runs on (not the event loop), so a slow reply can outlive the request."""
    return ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="huitou-channel")


class Rejected(HTTPException):
    """A callback refused before anything is stored; the detail reveals nothing."""

    def __init__(self, status_code: int = 403) -> None:
        super().__init__(status_code=status_code, detail="rejected")


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refused (413) past `max_bytes` without reading the rest."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
        raise Rejected(413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise Rejected(413)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_xml(body: bytes | str) -> dict[str, str]:
    """The flat fields of a WeChat `<xml>` document; DTDs and entities are refused (400)."""
    try:
        root: Element = fromstring(
            body, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except (DefusedXmlException, SyntaxError, ValueError) as exc:
        raise Rejected(400) from exc
    if root.tag != "xml":
        raise Rejected(400)
    fields: dict[str, str] = {}
    for child in root:
        if len(child):  # nested (SelectedItems, ScanCodeInfo): keep the leaves, prefixed
            for leaf in child.iter():
                if leaf is not child and not len(leaf):
                    fields.setdefault(f"{child.tag}.{leaf.tag}", (leaf.text or "").strip())
        else:
            fields[child.tag] = (child.text or "").strip()
    return fields


def signature(token: str, *parts: str) -> str:
    """WeChat's SHA-1 signature over the sorted token, timestamp, nonce (and ciphertext)."""
    signer = WeChatSigner()
    signer.add_data(token, *parts)
    return str(signer.signature)


def check_signature(expected: str, given: str | None) -> None:
    """Constant-time comparison; 403 on any mismatch."""
    if not given or not hmac.compare_digest(expected.encode(), given.encode()):
        raise Rejected(403)


def check_timestamp(timestamp: str | None, clock: Clock, window_seconds: int) -> None:
    """Refuse a callback signed too far from now: a captured request cannot be replayed later."""
    if not timestamp or not timestamp.isdigit():
        raise Rejected(403)
    if abs(int(timestamp) - clock.now().timestamp()) > window_seconds:
        raise Rejected(403)


@dataclass(frozen=True)
class AesCodec:
    """WeChat's AES-256-CBC message framing for one app (the receive id is the corp/app id)."""

    encoding_aes_key: str
    receive_id: str

    @property
    def key(self) -> bytes:
        return base64.b64decode(self.encoding_aes_key + "=")

    def decrypt(self, ciphertext: str) -> str:
        """Plain XML, or 403 when the ciphertext is garbage or meant for another app."""
        try:
            return str(_prp_crypto(self.key).decrypt(ciphertext, self.receive_id))
        except Exception as exc:  # wechatpy raises anything from ValueError to its own types
            raise Rejected(403) from exc

    def encrypt(self, plaintext: str) -> str:
        return _prp_crypto(self.key).encrypt(plaintext, self.receive_id).decode()


@lru_cache(maxsize=8)
def _prp_crypto(key: bytes) -> PrpCrypto:
    """wechatpy's AES framing for one key, built once: it holds only a reusable Cipher (each
    call opens its own encryptor or decryptor), so threads may share it."""
    return PrpCrypto(key)


def valid_aes_key(encoding_aes_key: str) -> bool:
    """A 43-character EncodingAESKey that decodes to 32 bytes."""
    try:
        return len(encoding_aes_key) == 43 and len(AesCodec(encoding_aes_key, "").key) == 32
    except ValueError:
        return False


def encrypted_envelope(
    *, codec: AesCodec, token: str, plaintext: str, timestamp: str, nonce: str | None = None
) -> str:
    """The signed, encrypted reply envelope WeChat and WeCom expect in safe mode."""
    nonce = nonce or secrets.token_hex(8)
    ciphertext = codec.encrypt(plaintext)
    sig = signature(token, timestamp, nonce, ciphertext)
    return (
        f"<xml><Encrypt><![CDATA[{ciphertext}]]></Encrypt>"
        f"<MsgSignature><![CDATA[{sig}]]></MsgSignature>"
        f"<TimeStamp>{timestamp}</TimeStamp><Nonce><![CDATA[{nonce}]]></Nonce></xml>"
    )


def text_reply(*, to_user: str, from_user: str, content: str, create_time: int) -> str:
    """A passive text reply (wechatpy renders it, CDATA-escaped)."""
    from wechatpy.replies import TextReply

    reply = TextReply(target=to_user, source=from_user, content=content, time=create_time)
    return str(reply.render())


def message_key(fields: dict[str, str]) -> str:
    """The inbox key WeChat retries with: MsgId, or sender + time (+ event detail) for events."""
    if fields.get("MsgId"):
        return fields["MsgId"]
    parts = [fields.get("FromUserName", ""), fields.get("CreateTime", "")]
    parts += [fields.get(k, "") for k in ("Event", "EventKey", "TaskId", "ChangeType")]
    return ":".join(p for p in parts if p)[:160]


def claim_row(
    session: Session,
    *,
    channel: str,
    external_id: str,
    shop_id: int | None,
    sender: str,
    body: str,
    now: datetime,
) -> InboxMessage:
    """The inbox row of (channel, external_id), inserted if new, locked until the caller's
    transaction ends: a second delivery of the message waits here for the first to finish.
    The caller checks the row's sender (another sender's id must not be replayed)."""
    dialect = session.get_bind().dialect.name
    session.execute(
        insert_for(dialect)(InboxMessage)
        .values(
            shop_id=shop_id,
            channel=channel,
            external_id=external_id,
            sender=sender,
            body=body[:4000],
            received_at=now,
        )
        .on_conflict_do_nothing(index_elements=["channel", "external_id"])
    )
    return session.execute(
        select(InboxMessage)
        .where(
            InboxMessage.channel == channel,  # type: ignore[arg-type]
            InboxMessage.external_id == external_id,  # type: ignore[arg-type]
        )
        .with_for_update()
    ).scalar_one()


def act_once(
    *,
    engine: Engine,
    clock: Clock,
    channel: str,
    external_id: str,
    sender: str,
    body: str,
    shop_id: int | None,
    action: Callable[[Any, int], list[str]],
) -> list[str]:
    """Run `action(session, inbox_id)` once per (channel, external_id); repeats get its replies.

    For what does not go through the bot (binding, taps, contact events). The inbox row and
    the action's writes commit together, like app.channels.inbox.deliver.
    """
    with write_session(engine) as session:
        row = claim_row(
            session, channel=channel, external_id=external_id, shop_id=shop_id,
            sender=sender, body=body, now=clock.now(),
        )  # fmt: skip
        if row.sender != sender:
            raise Rejected(409)
        if row.handled_at is not None:
            return list(row.replies or [])
        assert row.id is not None
        replies = action(session, row.id)
        row.replies = replies
        row.handled_at = clock.now()
        session.add(row)
        return replies


@dataclass
class _Flight:
    future: Future[list[str]]
    answered: bool = False  # some delivery of this message got the replies passively


_IN_FLIGHT: dict[str, _Flight] = {}
_IN_FLIGHT_LOCK = threading.Lock()


async def within_budget(
    key: str,
    work: Callable[[], list[str]],
    budget_seconds: float,
    late: Callable[[list[str]], None],
    threads: int = 4,
) -> list[str] | None:
    """Run `work` in the channel pool; its replies if done within the budget, else None.

    When the budget runs out the work goes on, and `late` receives its replies (to send
    them through the provider's API) once it finishes, unless a redelivery of the same
    message (same `key`) was answered with them meanwhile. A redelivery while the first is
    still running waits on the same work instead of starting it again.
    """
    with _IN_FLIGHT_LOCK:
        flight = _IN_FLIGHT.get(key)
        first = flight is None
        if flight is None:
            flight = _Flight(bot_pool(threads).submit(work))
            _IN_FLIGHT[key] = flight
    current = flight

    def _finish(done: Future[list[str]]) -> None:
        with _IN_FLIGHT_LOCK:
            _IN_FLIGHT.pop(key, None)
            answered = current.answered
        if done.exception() is not None:
            log.error("channel message %s failed", key, exc_info=done.exception())
        elif not answered and done.result():
            _safely(late, done.result())

    # asyncio.wait neither cancels the work nor raises: only a work still running means the
    # budget ran out; a TimeoutError the work raised itself is the work's failure, not ours.
    waiter = asyncio.wrap_future(current.future)
    done, _running = await asyncio.wait({waiter}, timeout=budget_seconds)
    if not done:
        if first:
            current.future.add_done_callback(_finish)
        return None
    with _IN_FLIGHT_LOCK:
        current.answered = True
        if first and _IN_FLIGHT.get(key) is current:
            _IN_FLIGHT.pop(key, None)  # ended, even by failing: a redelivery runs it afresh
    return waiter.result()


def in_flight(key: str) -> bool:
    """Whether a message (by its `within_budget` key) is being handled in this process now."""
    with _IN_FLIGHT_LOCK:
        return key in _IN_FLIGHT


def _safely(late: Callable[[list[str]], None], replies: list[str]) -> None:
    try:
        late(replies)
    except Exception:
        log.exception("sending a late reply failed")
