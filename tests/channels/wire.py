"""WeChat's and WeCom's side of the wire, written from the protocol, not from app code.

Signing: SHA-1 over the sorted strings. Safe mode: AES-256-CBC, key = base64(EncodingAESKey
+ "="), IV = first 16 key bytes, plaintext = 16 random bytes + 4-byte big-endian length +
message + receive id, PKCS#7 padded to 32-byte blocks.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from dataclasses import dataclass, field
from itertools import count
from xml.sax.saxutils import escape

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

_ids = count(7_000_000_000_000_000_001)


def sha1_signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def new_aes_key() -> str:
    return base64.b64encode(os.urandom(32)).decode().rstrip("=")


def aes_encrypt(encoding_aes_key: str, receive_id: str, plaintext: str) -> str:
    key = base64.b64decode(encoding_aes_key + "=")
    body = plaintext.encode()
    raw = os.urandom(16) + struct.pack(">I", len(body)) + body + receive_id.encode()
    pad = 32 - len(raw) % 32
    raw += bytes([pad]) * pad
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(raw) + encryptor.finalize()).decode()


def aes_decrypt(encoding_aes_key: str, ciphertext: str) -> tuple[str, str]:
    """(message, receive id)."""
    key = base64.b64decode(encoding_aes_key + "=")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    raw = decryptor.update(base64.b64decode(ciphertext)) + decryptor.finalize()
    raw = raw[: -raw[-1]]
    (length,) = struct.unpack(">I", raw[16:20])
    return raw[20 : 20 + length].decode(), raw[20 + length :].decode()


def text_xml(*, to: str, sender: str, content: str, created: int, msg_id: int | None = None,
             extra: str = "") -> str:  # fmt: skip
    msg_id = msg_id if msg_id is not None else next(_ids)
    return (
        f"<xml><ToUserName><![CDATA[{to}]]></ToUserName>"
        f"<FromUserName><![CDATA[{sender}]]></FromUserName>"
        f"<CreateTime>{created}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content>{escape(content)}</Content><MsgId>{msg_id}</MsgId>{extra}</xml>"
    )


def event_xml(*, to: str, sender: str, created: int, event: str, fields: dict[str, str]) -> str:
    extra = "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items())
    return (
        f"<xml><ToUserName><![CDATA[{to}]]></ToUserName>"
        f"<FromUserName><![CDATA[{sender}]]></FromUserName>"
        f"<CreateTime>{created}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[{event}]]></Event>{extra}</xml>"
    )


def field_of(xml: str, name: str) -> str:
    """A field's text from a flat reply document (CDATA or plain)."""
    start = xml.index(f"<{name}>") + len(name) + 2
    end = xml.index(f"</{name}>", start)
    value = xml[start:end]
    if value.startswith("<![CDATA["):
        value = value[9:-3]
    return value


@dataclass
class SignedRequest:
    params: dict[str, str]
    body: str


@dataclass
class WeComSide:
    """Plays WeCom: encrypts and signs callbacks the way WeCom does."""

    token: str
    aes_key: str
    corp_id: str
    nonces: count[int] = field(default_factory=lambda: count(1))

    def sign_params(self, timestamp: int, encrypted: str) -> dict[str, str]:
        nonce = f"n{next(self.nonces)}"
        return {
            "msg_signature": sha1_signature(self.token, str(timestamp), nonce, encrypted),
            "timestamp": str(timestamp),
            "nonce": nonce,
        }

    def verification(self, timestamp: int, echo: str) -> dict[str, str]:
        echostr = aes_encrypt(self.aes_key, self.corp_id, echo)
        return {**self.sign_params(timestamp, echostr), "echostr": echostr}

    def callback(self, timestamp: int, inner_xml: str) -> SignedRequest:
        encrypted = aes_encrypt(self.aes_key, self.corp_id, inner_xml)
        body = (
            f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName>"
            f"<Encrypt><![CDATA[{encrypted}]]></Encrypt><AgentID><![CDATA[1000002]]></AgentID></xml>"
        )
        return SignedRequest(self.sign_params(timestamp, encrypted), body)

    def open_reply(self, reply: str) -> str:
        """Check the reply envelope's signature and decrypt it; the inner XML."""
        encrypted = field_of(reply, "Encrypt")
        expected = sha1_signature(
            self.token, field_of(reply, "TimeStamp"), field_of(reply, "Nonce"), encrypted
        )
        assert field_of(reply, "MsgSignature") == expected
        message, receive_id = aes_decrypt(self.aes_key, encrypted)
        assert receive_id == self.corp_id
        return message


@dataclass
class OfficialAccountSide:
    """Plays the Official Account platform, in plain or safe mode."""

    token: str
    app_id: str
    aes_key: str = ""
    nonces: count[int] = field(default_factory=lambda: count(1))

    def verification(self, timestamp: int, echo: str) -> dict[str, str]:
        nonce = f"v{next(self.nonces)}"
        return {
            "signature": sha1_signature(self.token, str(timestamp), nonce),
            "timestamp": str(timestamp),
            "nonce": nonce,
            "echostr": echo,
        }

    def callback(self, timestamp: int, inner_xml: str, openid: str) -> SignedRequest:
        nonce = f"m{next(self.nonces)}"
        params = {
            "signature": sha1_signature(self.token, str(timestamp), nonce),
            "timestamp": str(timestamp),
            "nonce": nonce,
            "openid": openid,
        }
        if not self.aes_key:
            return SignedRequest(params, inner_xml)
        encrypted = aes_encrypt(self.aes_key, self.app_id, inner_xml)
        params |= {
            "encrypt_type": "aes",
            "msg_signature": sha1_signature(self.token, str(timestamp), nonce, encrypted),
        }
        body = (
            f"<xml><ToUserName><![CDATA[gh_test]]></ToUserName>"
            f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
        )
        return SignedRequest(params, body)

    def open_reply(self, reply: str) -> str:
        if not self.aes_key:
            return reply
        encrypted = field_of(reply, "Encrypt")
        expected = sha1_signature(
            self.token, field_of(reply, "TimeStamp"), field_of(reply, "Nonce"), encrypted
        )
        assert field_of(reply, "MsgSignature") == expected
        message, receive_id = aes_decrypt(self.aes_key, encrypted)
        assert receive_id == self.app_id
        return message
