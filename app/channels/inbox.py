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
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field

from sqlalchemy import Engine, bindparam, exists, select
from sqlmodel import Session, col

from app.bot import core as bot
from app.bot.context import BotContext, ChatImage
from app.bot.models import PendingQuestion
from app.channels.binding import BIND_COMMAND, BoundSender, answer_binding, find_sender_in
from app.clock import Clock
from app.config import Settings
from app.db import insert_for, write_session
from app.events.models import InboxMessage
from app.shops.models import Shop, Staff


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
    with _claimed(engine, clock, inbound, find=True) as (session, row, bound):
        if row.handled_at is not None:
            return Handled(list(row.replies or []), fresh=False)
        assert row.id is not None
        if bound is None or BIND_COMMAND.match(inbound.text):
            ctx = None
            replies = answer_binding(
                session, bound=bound, channel=inbound.channel, external_id=inbound.sender_id,
                text=inbound.text, clock=clock, templates_dir=settings.templates_dir,
            )  # fmt: skip
        else:
            ctx = _context(session, bound, inbound, settings, clock, inbox_id=row.id)
            replies = bot.handle(ctx, inbound.text)
        _settle(row, replies, clock)
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
    with _claimed(engine, clock, inbound, shop_id=shop_id) as (session, row, _):
        if row.handled_at is not None:
            return Handled(list(row.replies or []), fresh=False)
        assert row.id is not None
        replies = action(session, row.id)
        _settle(row, replies, clock)
    return Handled(replies, fresh=True)


@contextmanager
def _claimed(
    engine: Engine, clock: Clock, inbound: Inbound, *, find: bool = False,
    shop_id: int | None = None,
) -> Iterator[tuple[Session, InboxMessage, BoundSender | None]]:  # fmt: skip
    """A write transaction holding the message's inbox row (inserted if new, locked).

    With `find`, the sender is looked up first and the row carries their shop.
    """
    with writer_lock(engine), write_session(engine) as session:
        bound = inbound.staff
        if find and bound is None:
            bound = find_sender_in(session, channel=inbound.channel, external_id=inbound.sender_id)
        if find:
            shop_id = bound.shop_id if bound else None
        session.execute(
            insert_for(engine.dialect.name)(InboxMessage)
            .values(
                shop_id=shop_id, channel=inbound.channel, external_id=inbound.message_key,
                sender=inbound.sender_key, body=inbound.text[:4000], received_at=clock.now(),
            )
            .on_conflict_do_nothing(index_elements=["channel", "external_id"])
        )  # fmt: skip
        row = session.execute(_ROW, _row_key(inbound)).scalar_one()
        if row.sender != inbound.sender_key or row.shop_id != shop_id:
            raise MessageIdTaken("message id already used by another sender")
        yield session, row, bound


# Built once (every message runs them).
_ROW = (
    select(InboxMessage)
    .where(
        col(InboxMessage.channel) == bindparam("channel"),
        col(InboxMessage.external_id) == bindparam("external_id"),
    )
    .with_for_update()
)


def _row_key(inbound: Inbound) -> dict[str, str]:
    return {"channel": inbound.channel, "external_id": inbound.message_key}


def _settle(row: InboxMessage, replies: list[str], clock: Clock) -> None:
    row.replies = replies
    row.handled_at = clock.now()


_QUESTIONS = PendingQuestion.__table__  # type: ignore[attr-defined]
# The shop and the member of staff, with whether the sender has a question stored (most
# messages then skip pending's DELETE in bot.handle), in one read.
_SHOP_AND_STAFF = select(
    Shop,
    Staff,
    exists().where(
        _QUESTIONS.c.shop_id == bindparam("shop"), _QUESTIONS.c.sender == bindparam("sender")
    ),
).where(
    col(Shop.id) == bindparam("shop"),
    col(Staff.id) == bindparam("staff"),
    col(Staff.shop_id) == col(Shop.id),
)


def _context(
    session: Session,
    bound: BoundSender,
    inbound: Inbound,
    settings: Settings,
    clock: Clock,
    *,
    inbox_id: int,
) -> BotContext:
    """The bot's context; PermissionError unless the sender is staff of the shop."""
    found = session.execute(
        _SHOP_AND_STAFF,
        {"shop": bound.shop_id, "staff": bound.staff_id, "sender": inbound.sender_key},
    ).first()
    if found is None:
        raise PermissionError("sender is not staff of this shop")
    shop, staff, question_waiting = found
    return BotContext(
        session=session,
        shop=shop,
        staff=staff,
        sender_key=inbound.sender_key,
        clock=clock,
        templates_dir=settings.templates_dir,
        pending_ttl_seconds=settings.pending_ttl_seconds,
        inbox_id=inbox_id,
        settings=settings,
        question_waiting=bool(question_waiting),
    )
