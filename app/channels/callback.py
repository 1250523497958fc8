"""What WeChat and WeCom callbacks share: the body limit, safe XML, signatures, AES, replies.

Every check fails closed and says nothing about why: a bad signature, a stale timestamp,
a DTD, an oversized body all end the request before any database write. wechatpy does the
signing arithmetic, the AES framing and the message parsing; the XML is read with
defusedxml first, because wechatpy's parser (xmltodict/expat) expands internal entities.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from dataclasses import dataclass
from functools import lru_cache
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from fastapi import HTTPException, Request
from wechatpy.crypto import PrpCrypto
from wechatpy.utils import WeChatSigner

from app.clock import Clock


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
