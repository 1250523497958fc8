"""Pushing to shop staff (the morning digest, reminders): one small protocol, many channels.

Every push carries an idempotency `key`. A sender that dies after the provider accepted a
message but before recording it will push again with the same key after a restart, so a
channel must make a repeated key harmless: the local outbox has a unique key column; WeCom's
message API deduplicates with `enable_duplicate_check`; the generic webhook sends the key as
an `Idempotency-Key` header for the receiver to honour.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class PushButton:
    """A tap choice under a pushed item (a WeCom card button, a numbered chat reply)."""

    key: str  # what the tap stands for, e.g. "fu:123:sent"
    text: str  # the label, e.g. "已发消息"


@dataclass(frozen=True)
class PushItem:
    """One follow-up inside a digest, for channels that can show it as its own card."""

    followup_id: int
    number: int  # its number in the text digest ("回复 1 已发")
    title: str  # "王姐 · 🟡 该发消息了"
    description: str  # "38天没订,平时25天一次"
    url: str | None  # the signed tap page for this item
    buttons: tuple[PushButton, ...] = ()


@dataclass(frozen=True)
class PushMessage:
    """What one person receives: the text (markdown-light) and, optionally, per-item cards."""

    key: str  # idempotency key, stable across retries and restarts
    shop_id: int
    staff_id: int
    title: str
    text: str
    items: tuple[PushItem, ...] = field(default=())
    # The signed link to the person's full list, when the sender has one apart from the text
    # (channels that show one link, e.g. an Official Account template message, use it).
    url: str | None = None


@dataclass(frozen=True)
class PushReceipt:
    channel: str
    accepted: bool
    detail: str = ""
    # True when the receiver said it had already seen this key (a retried send).
    duplicate: bool = False


class PushError(RuntimeError):
    """The channel could not take the message now; the sender retries later."""


class Pusher(Protocol):
    """A channel that can push to a shop's staff."""

    name: str

    def can_reach(self, *, shop_id: int, staff_id: int) -> bool:
        """Whether this channel knows how to reach that person (bound identity, phone...)."""
        ...

    def push(self, message: PushMessage) -> PushReceipt:
        """Deliver once per key; raise PushError when it should be retried."""
        ...


class PushUnavailable(PushError):
    """This channel cannot deliver this message at all (no identity, outside WeChat's
    48-hour window: errcode 45015); the sender moves on to the next channel (SMS)."""
