"""The one road every inbound message takes: claimed once, handled once, answered the same.

`handle(inbound)` opens one write transaction, finds who is writing, claims the inbox row
of (channel, message_key) — unique, and locked until the transaction ends, so a
concurrent redelivery waits here and then reads the stored replies — runs the bot once
(binding or the guide for a stranger), and stores the replies on the row. The row, the
bot's writes and the replies commit together: a message is handled fully or not at all,
and a redelivery of a handled message gets its replies back and changes nothing.

What does not go through the bot (a tap, a contact event) takes the same claim through
`act_once`. The reply budget and the spool (database down) wrap `handle` from outside
(app/channels/reply.py); the provider modules only verify, decrypt, build an `Inbound`
and format the reply.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from functools import lru_cache

from sqlalchemy import Engine, Insert, bindparam, exists, select, update
from sqlmodel import Session, col

from app.bot import core as bot
from app.bot.context import BotContext, ChatImage
from app.bot.models import PendingQuestion
from app.channels.binding import BIND_COMMAND, BoundSender, answer_binding
from app.clock import Clock
from app.config import Settings
from app.db import insert_for, write_session
from app.events.models import InboxMessage
from app.shops.models import Shop, Staff, StaffIdentity


@dataclass(frozen=True)
class Inbound:
    """One verified message as a channel hands it over."""

    channel: str  # "wecom" | "wechat" | "web" | "console"
    sender_id: str  # WeCom userid, OA OpenID; a local channel's whole sender key
    message_key: str  # the provider's retry key (MsgId…); unique per channel
    text: str  # what the owner wrote (for a tap or an event: what the inbox stores)
    # Who is writing, when the channel has established it itself (web chat, console);
    # None: looked up from the channel identity the owner bound with `绑定`.
    staff: BoundSender | None = None

    def __post_init__(self) -> None:
        # A NUL cannot be stored in PostgreSQL text, and no owner means one (XML cannot
        # carry it; a web client can): dropped before anything reads the text.
        if "\x00" in self.text:
            object.__setattr__(self, "text", self.text.replace("\x00", ""))

    @property
    def sender_key(self) -> str:
        """The sender as the inbox and pending questions know them, e.g. "wecom:LaoBan"."""
        return self.sender_id if self.staff is not None else f"{self.channel}:{self.sender_id}"


@dataclass(frozen=True)
class Handled:
    """What handling a message gave, or what its first handling gave (a redelivery)."""

    replies: list[str]
    fresh: bool  # False: a redelivery of a handled message; the replies are the stored ones
    # Pictures (report charts) to send after the replies; drawn lazily, after the commit.
    images: list[ChatImage] = field(default_factory=list)


class MessageIdTaken(PermissionError):
    """The message id was already used by another sender: never replay their replies."""


# SQLite lets one writer in at a time and a waiting writer polls with growing sleeps (up to
# 100 ms each), which turns 20 owners writing at once into multi-second tails. Queuing this
# process's channel writes on a lock hands the database over at once instead. PostgreSQL
# needs no such help.
_SQLITE_WRITES = threading.Lock()


def writer_lock(engine: Engine) -> AbstractContextManager[object]:
    """This process's queue for SQLite's single writer (nothing for PostgreSQL)."""
    return _SQLITE_WRITES if engine.dialect.name == "sqlite" else nullcontext()


def handle(*, engine: Engine, settings: Settings, clock: Clock, inbound: Inbound) -> Handled:
    """Handle `inbound` once: the bot's replies for staff, binding or the guide for others."""
    with writer_lock(engine), write_session(engine) as session:
        found = _who(session, inbound)
        claim = _claim(session, inbound, found[0].id if found else None, clock)
        if claim.stored is not None:
            return Handled(claim.stored, fresh=False)
        ctx = None
        if found is None or BIND_COMMAND.match(inbound.text):
            bound = None if found is None else BoundSender(found[0].id or 0, found[1].id or 0)
            replies = answer_binding(
                session, bound=bound, channel=inbound.channel, external_id=inbound.sender_id,
                text=inbound.text, clock=clock, templates_dir=settings.templates_dir,
            )  # fmt: skip
        else:
            shop, staff, question_waiting = found
            ctx = BotContext(
                session=session, shop=shop, staff=staff, sender_key=inbound.sender_key,
                clock=clock, templates_dir=settings.templates_dir,
                pending_ttl_seconds=settings.pending_ttl_seconds, inbox_id=claim.id,
                settings=settings, question_waiting=question_waiting,
            )  # fmt: skip
            replies = bot.handle(ctx, inbound.text)
        _settle(session, claim.id, replies, clock)
    return Handled(replies, fresh=True, images=ctx.images if ctx else [])


def act_once(
    *,
    engine: Engine,
    clock: Clock,
    inbound: Inbound,
    shop_id: int | None,
    action: Callable[[Session, int], list[str]],
) -> Handled:
    """Run `action(session, inbox_id)` once per message; a redelivery gets its replies.

    For what does not go through the bot (taps, contact events, the guide); the row and
    the action's writes commit together, as in `handle`.
    """
    with writer_lock(engine), write_session(engine) as session:
        claim = _claim(session, inbound, shop_id, clock)
        if claim.stored is not None:
            return Handled(claim.stored, fresh=False)
        replies = action(session, claim.id)
        _settle(session, claim.id, replies, clock)
    return Handled(replies, fresh=True)


_INBOX = InboxMessage.__table__  # type: ignore[attr-defined]
_QUESTIONS = PendingQuestion.__table__  # type: ignore[attr-defined]
_IDENTITY = StaffIdentity.__table__  # type: ignore[attr-defined]
# Whether the sender has a question stored, read with the shop and the member of staff
# (most messages then skip pending's DELETE in bot.handle).
_WAITING = exists().where(
    _QUESTIONS.c.shop_id == col(Shop.id), _QUESTIONS.c.sender == bindparam("sender")
)
# Who is writing on a channel identity bound with 绑定, in one read: shop, staff, question.
_BY_IDENTITY = (
    select(Shop, Staff, _WAITING)
    .join(_IDENTITY, _IDENTITY.c.shop_id == col(Shop.id))
    .join(Staff, (col(Staff.id) == _IDENTITY.c.staff_id) & (col(Staff.shop_id) == col(Shop.id)))
    .where(
        _IDENTITY.c.channel == bindparam("channel"),
        _IDENTITY.c.external_id == bindparam("external_id"),
    )
    .limit(1)
)
# The same for a person a local channel has signed in (web chat, console).
_BY_STAFF = select(Shop, Staff, _WAITING).where(
    col(Shop.id) == bindparam("shop"),
    col(Staff.id) == bindparam("staff"),
    col(Staff.shop_id) == col(Shop.id),
)


def _who(session: Session, inbound: Inbound) -> tuple[Shop, Staff, bool] | None:
    """The sender's shop and staff record (and whether a question waits); None: a stranger.

    PermissionError when a local channel names someone who is not staff of the shop.
    """
    if inbound.staff is None:
        row = session.execute(
            _BY_IDENTITY,
            {"channel": inbound.channel, "external_id": inbound.sender_id,
             "sender": inbound.sender_key},
        ).first()  # fmt: skip
        return None if row is None else (row[0], row[1], bool(row[2]))
    row = session.execute(
        _BY_STAFF,
        {"shop": inbound.staff.shop_id, "staff": inbound.staff.staff_id,
         "sender": inbound.sender_key},
    ).first()  # fmt: skip
    if row is None:
        raise PermissionError("sender is not staff of this shop")
    return row[0], row[1], bool(row[2])


@dataclass(frozen=True)
class _Claim:
    id: int  # the inbox row
    stored: list[str] | None  # an earlier delivery's replies; None: this one handles it


@lru_cache(maxsize=2)
def _insert(dialect: str) -> Insert:
    """The inbox row, unless (channel, external_id) has one; RETURNING says which (rowcount
    is not reliable across drivers for ON CONFLICT DO NOTHING)."""
    return (
        insert_for(dialect)(_INBOX)
        .on_conflict_do_nothing(index_elements=["channel", "external_id"])
        .returning(_INBOX.c.id)
    )


# A redelivery's row, locked: a delivery still being handled holds it until it commits.
_EXISTING = (
    select(_INBOX.c.id, _INBOX.c.shop_id, _INBOX.c.sender, _INBOX.c.handled_at, _INBOX.c.replies)
    .where(
        _INBOX.c.channel == bindparam("channel"),
        _INBOX.c.external_id == bindparam("external_id"),
    )
    .with_for_update()
)
_SETTLE = (
    update(_INBOX)
    .where(_INBOX.c.id == bindparam("row_id"))
    .values(replies=bindparam("given"), handled_at=bindparam("at"))
)


def _claim(session: Session, inbound: Inbound, shop_id: int | None, clock: Clock) -> _Claim:
    """Insert the message's inbox row, or find (and wait for) the one already there."""
    new_id = session.execute(
        _insert(session.get_bind().dialect.name),
        {"shop_id": shop_id, "channel": inbound.channel, "external_id": inbound.message_key,
         "sender": inbound.sender_key, "body": inbound.text[:4000], "received_at": clock.now()},
    ).scalar()  # fmt: skip
    if new_id is not None:
        return _Claim(int(new_id), None)
    row = session.execute(
        _EXISTING, {"channel": inbound.channel, "external_id": inbound.message_key}
    ).one()
    if row.sender != inbound.sender_key or row.shop_id != shop_id:
        raise MessageIdTaken("message id already used by another sender")
    if row.handled_at is None:  # not expected (a row commits with its replies): handle it
        return _Claim(int(row.id), None)
    return _Claim(int(row.id), list(row.replies or []))


def _settle(session: Session, row_id: int, replies: list[str], clock: Clock) -> None:
    session.execute(_SETTLE, {"row_id": row_id, "given": replies, "at": clock.now()})
