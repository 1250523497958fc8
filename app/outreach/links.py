"""Signed, expiring links: one per digest item (tap page), one per person's full list, the
owner's read-only report dashboard for one month, and a one-time sign-in to the web chat.

A token is `payload.signature`, both base64url; the payload names the purpose, the shop,
the follow-up (or staff member and day), the expiry and a random nonce. HMAC-SHA256 with the
service's secret signs it and signatures are compared in constant time. A link authorises
only what it names; writes through an item link are single-use (the nonce is stored in
link_use when the write commits, see app/web/links.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from app.config import Settings

_SECRET_FILE = ".link_secret"


class LinkError(ValueError):
    """A link that is forged, tampered with, expired or for something else."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def link_secret(settings: Settings) -> bytes:
    """HUITOU_SECRET_KEY, or a random key created once in data_dir (never in the repo)."""
    if settings.secret_key:
        return settings.secret_key.encode("utf-8")
    path = Path(settings.data_dir) / _SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # O_EXCL: two processes starting together agree on whichever key was written first.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
    key = path.read_text().strip()
    if len(key) < 32:
        raise RuntimeError(f"{path} is damaged; delete it to make a new link key")
    return key.encode("ascii")


@dataclass(frozen=True)
class ItemLink:
    shop_id: int
    followup_id: int
    expires: datetime
    nonce: str


@dataclass(frozen=True)
class ListLink:
    shop_id: int
    staff_id: int
    day: date
    expires: datetime


@dataclass(frozen=True)
class ReportLink:
    shop_id: int
    month: date  # the first day of the month the dashboard shows
    expires: datetime


@dataclass(frozen=True)
class SigninLink:
    shop_id: int
    staff_id: int
    expires: datetime
    nonce: str


def _sign(secret: bytes, payload: dict[str, object]) -> str:
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    mac = hmac.new(secret, body.encode("ascii"), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def _open(secret: bytes, token: str, now: datetime, purpose: str) -> dict[str, object]:
    if len(token) > 512 or token.count(".") != 1:
        raise LinkError("链接不完整")
    body, mac = token.split(".")
    expected = hmac.new(secret, body.encode("ascii", "replace"), hashlib.sha256).digest()
    try:
        given = _unb64(mac)
        payload = json.loads(_unb64(body))
    except (ValueError, UnicodeDecodeError) as exc:
        raise LinkError("链接不完整") from exc
    if not hmac.compare_digest(expected, given):
        raise LinkError("链接无效")
    if not isinstance(payload, dict) or payload.get("p") != purpose:
        raise LinkError("链接无效")
    exp = payload.get("e")
    if not isinstance(exp, int) or now.timestamp() > exp:
        raise LinkError("链接已过期")
    return payload


def item_token(
    secret: bytes, *, shop_id: int, followup_id: int, now: datetime, ttl: timedelta
) -> str:
    """A tap link's token for one follow-up."""
    payload = {
        "p": "item",
        "s": shop_id,
        "f": followup_id,
        "e": int((now + ttl).timestamp()),
        "n": secrets.token_hex(8),
    }
    return _sign(secret, payload)


def read_item(secret: bytes, token: str, *, now: datetime) -> ItemLink:
    payload = _open(secret, token, now, "item")
    try:
        return ItemLink(
            shop_id=int(payload["s"]),  # type: ignore[call-overload]
            followup_id=int(payload["f"]),  # type: ignore[call-overload]
            expires=datetime.fromtimestamp(int(payload["e"]), tz=now.tzinfo),  # type: ignore[call-overload]
            nonce=str(payload["n"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise LinkError("链接无效") from exc


def list_token(
    secret: bytes, *, shop_id: int, staff_id: int, day: date, now: datetime, ttl: timedelta
) -> str:
    """A link to one person's full list for one day (read-only; taps go via item links)."""
    payload = {
        "p": "list",
        "s": shop_id,
        "u": staff_id,
        "d": day.isoformat(),
        "e": int((now + ttl).timestamp()),
    }
    return _sign(secret, payload)


def read_list(secret: bytes, token: str, *, now: datetime) -> ListLink:
    payload = _open(secret, token, now, "list")
    try:
        return ListLink(
            shop_id=int(payload["s"]),  # type: ignore[call-overload]
            staff_id=int(payload["u"]),  # type: ignore[call-overload]
            day=date.fromisoformat(str(payload["d"])),
            expires=datetime.fromtimestamp(int(payload["e"]), tz=now.tzinfo),  # type: ignore[call-overload]
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise LinkError("链接无效") from exc


def report_token(secret: bytes, *, shop_id: int, month: date, now: datetime, ttl: timedelta) -> str:
    """A link to one shop's report dashboard for one month (read-only)."""
    payload = {
        "p": "report",
        "s": shop_id,
        "m": month.replace(day=1).isoformat(),
        "e": int((now + ttl).timestamp()),
    }
    return _sign(secret, payload)


def read_report(secret: bytes, token: str, *, now: datetime) -> ReportLink:
    payload = _open(secret, token, now, "report")
    try:
        month = date.fromisoformat(str(payload["m"]))
        if month.day != 1:
            raise ValueError("not a month")
        return ReportLink(
            shop_id=int(payload["s"]),  # type: ignore[call-overload]
            month=month,
            expires=datetime.fromtimestamp(int(payload["e"]), tz=now.tzinfo),  # type: ignore[call-overload]
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise LinkError("链接无效") from exc


def signin_token(
    secret: bytes, *, shop_id: int, staff_id: int, now: datetime, ttl: timedelta
) -> str:
    """A one-time link that signs one person of one shop into the web chat."""
    payload = {
        "p": "signin",
        "s": shop_id,
        "u": staff_id,
        "e": int((now + ttl).timestamp()),
        "n": secrets.token_hex(12),
    }
    return _sign(secret, payload)


def read_signin(secret: bytes, token: str, *, now: datetime) -> SigninLink:
    payload = _open(secret, token, now, "signin")
    try:
        return SigninLink(
            shop_id=int(payload["s"]),  # type: ignore[call-overload]
            staff_id=int(payload["u"]),  # type: ignore[call-overload]
            expires=datetime.fromtimestamp(int(payload["e"]), tz=now.tzinfo),  # type: ignore[call-overload]
            nonce=str(payload["n"])[:32],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise LinkError("链接无效") from exc
