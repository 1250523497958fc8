"""Every inbound message passes through here: stored once, acted on once, answered the same.

The inbox row, the bot's writes and the stored replies commit in one transaction, so a
message is either fully handled or not at all; a redelivery of a handled message gets the
stored replies back and changes nothing.

Commands registered as read-only (跟进名单, 统计, 帮助) take a cheaper road (`answer`,
`answer_from`): the reply is computed in a read transaction (a guard turns any attempted
write into a fall back to `deliver`), and the inbox row with its replies is committed by
`InboxRecorder`, which writes the rows of all concurrent requests in one transaction. The
unique (channel, external_id) still decides: when two deliveries of one message race, the
row committed first wins and both get its replies. docs/channels.md has the figures.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Insert, bindparam, event, exists, select
from sqlmodel import Session, col

from app.bot.context import BotContext
from app.bot.core import answer_without_writes, handle
from app.bot.models import PendingQuestion
from app.channels.binding import find_sender_in
from app.channels.callback import claim_row
from app.channels.models import InboxMessage
from app.clock import Clock
from app.db import insert_for, with_option, write_connection, write_session
from app.shops.models import Shop, Staff

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    """One inbound message as a channel adapter hands it over."""

    shop_id: int
    staff_id: int
    channel: str
    external_id: str  # unique per channel: WeChat MsgId, a web client's message id
    sender_key: str
    text: str


@dataclass(frozen=True)
class DeliveryResult:
    replies: list[str]
    duplicate: bool  # True when this delivery was a repeat of a handled message


# SQLite lets one writer in at a time and a waiting writer polls with growing sleeps (up to
# 100 ms each), which turns 20 owners writing at once into multi-second tails. Queuing this
# process's channel writes on a lock hands the database over at once instead. PostgreSQL
# needs no such help.
_SQLITE_WRITES = threading.Lock()


def writer_lock(engine: Engine) -> AbstractContextManager[object]:
    """This process's queue for SQLite's single writer (nothing for PostgreSQL)."""
    return _SQLITE_WRITES if engine.dialect.name == "sqlite" else nullcontext()


def answer(
    *,
    engine: Engine,
    delivery: Delivery,
    clock: Clock,
    templates_dir: Path,
    pending_ttl_seconds: int = 600,
) -> DeliveryResult:
    """Like `deliver`, but a read-only command is answered without a write transaction."""
    with _reading(engine) as session:
        outcome = _reply_reading(session, delivery, clock, templates_dir, pending_ttl_seconds)
    return _settle(engine, delivery, outcome, clock, templates_dir, pending_ttl_seconds)


def answer_from(
    *,
    engine: Engine,
    channel: str,
    sender_id: str,
    sender_key: str,
    external_id: str,
    text: str,
    clock: Clock,
    templates_dir: Path,
    pending_ttl_seconds: int = 600,
) -> DeliveryResult | None:
    """`answer` for a channel identity; None when it is bound to no staff member.

    Who the sender is and the read-only answer come from one read transaction (one
    connection checkout: on PostgreSQL each checkout is a round trip more).
    """
    with _reading(engine) as session:
        bound = find_sender_in(session, channel=channel, external_id=sender_id)
        if bound is None:
            return None
        delivery = Delivery(
            shop_id=bound.shop_id,
            staff_id=bound.staff_id,
            channel=channel,
            external_id=external_id,
            sender_key=sender_key,
            text=text,
        )
        outcome = _reply_reading(session, delivery, clock, templates_dir, pending_ttl_seconds)
    return _settle(engine, delivery, outcome, clock, templates_dir, pending_ttl_seconds)


_QUESTIONS = PendingQuestion.__table__  # type: ignore[attr-defined]
# Built once: the shop and the member of staff as session objects, with whether the sender
# has a question stored, in one read (most messages then skip pending's DELETE in handle,
# or its probe on the read road).
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


def context_for(
    session: Session,
    delivery: Delivery,
    *,
    clock: Clock,
    templates_dir: Path,
    pending_ttl_seconds: int,
    inbox_id: int | None = None,
) -> BotContext:
    """The bot's context for a delivery; PermissionError unless the sender is the shop's staff."""
    found = session.execute(
        _SHOP_AND_STAFF,
        {"shop": delivery.shop_id, "staff": delivery.staff_id, "sender": delivery.sender_key},
    ).first()
    if found is None:
        raise PermissionError("sender is not staff of this shop")
    shop, staff, question_waiting = found
    return BotContext(
        session=session,
        shop=shop,
        staff=staff,
        sender_key=delivery.sender_key,
        clock=clock,
        templates_dir=templates_dir,
        pending_ttl_seconds=pending_ttl_seconds,
        inbox_id=inbox_id,
        question_waiting=bool(question_waiting),
    )


def deliver(
    *,
    engine: Engine,
    delivery: Delivery,
    clock: Clock,
    templates_dir: Path,
    pending_ttl_seconds: int = 600,
) -> DeliveryResult:
    """Store the message if new, let the bot handle it, and return the replies."""
    with write_session(engine) as session:
        row = claim_row(
            session, channel=delivery.channel, external_id=delivery.external_id,
            shop_id=delivery.shop_id, sender=delivery.sender_key, body=delivery.text,
            now=clock.now(),
        )  # fmt: skip
        if row.shop_id != delivery.shop_id or row.sender != delivery.sender_key:
            # Same id from someone else: never reveal or replay another sender's replies.
            raise PermissionError("message id already used by another sender")
        if row.handled_at is not None:
            return DeliveryResult(replies=list(row.replies or []), duplicate=True)
        ctx = context_for(
            session, delivery, clock=clock, templates_dir=templates_dir,
            pending_ttl_seconds=pending_ttl_seconds, inbox_id=row.id,
        )  # fmt: skip
        replies = handle(ctx, delivery.text)
        row.replies = replies
        row.handled_at = clock.now()
        session.add(row)
        return DeliveryResult(replies=replies, duplicate=False)


# --- the read-only road ---------------------------------------------------------------------

_READ_ONLY = "huitou_read_only"
_WRITE_VERBS = frozenset(
    {"INSERT", "UPDATE", "DELETE", "REPLACE", "MERGE", "CREATE", "DROP", "ALTER"}
)
_GUARDED: weakref.WeakSet[Engine] = weakref.WeakSet()
_INBOX = InboxMessage.__table__  # type: ignore[attr-defined]
# Built once: statement construction costs more than running it on this path.
_STORED = select(_INBOX.c.shop_id, _INBOX.c.sender, _INBOX.c.handled_at, _INBOX.c.replies).where(
    _INBOX.c.channel == bindparam("channel"), _INBOX.c.external_id == bindparam("external_id")
)
_GUARD_LOCK = threading.Lock()


class WriteAttempted(Exception):
    """A statement that writes, run where only reads were expected (stopped before it ran)."""


def _guard(engine: Engine) -> None:
    """Refuse writing statements on connections marked read-only (installed once per engine).

    By the statement's first word: what the ORM and our own statements emit. It is a
    safety net behind the registry's `writes` flag, not a sandbox.
    """
    with _GUARD_LOCK:
        if engine in _GUARDED:
            return

        @event.listens_for(engine, "before_cursor_execute")
        def _refuse_writes(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if conn.get_execution_options().get(_READ_ONLY):
                verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else ""
                if verb in _WRITE_VERBS:
                    raise WriteAttempted(verb)

        _GUARDED.add(engine)


@contextmanager
def _reading(engine: Engine) -> Iterator[Session]:
    """A session that may only read (the guard stops any write before it runs)."""
    _guard(engine)
    with Session(with_option(engine, _READ_ONLY)) as session:
        try:
            yield session
        finally:
            session.rollback()


def _reply_reading(
    session: Session,
    delivery: Delivery,
    clock: Clock,
    templates_dir: Path,
    pending_ttl_seconds: int,
) -> DeliveryResult | list[str] | None:
    """Stored replies (a repeat), new replies to record, or None: take the write path."""
    stored = session.execute(
        _STORED, {"channel": delivery.channel, "external_id": delivery.external_id}
    ).first()
    if stored is not None:
        if stored.shop_id != delivery.shop_id or stored.sender != delivery.sender_key:
            raise PermissionError("message id already used by another sender")
        if stored.handled_at is None:
            return None
        return DeliveryResult(replies=list(stored.replies or []), duplicate=True)
    ctx = context_for(
        session, delivery, clock=clock, templates_dir=templates_dir,
        pending_ttl_seconds=pending_ttl_seconds,
    )  # fmt: skip
    try:
        return answer_without_writes(ctx, delivery.text)
    except WriteAttempted:
        log.warning("read-only command wrote; took the write path: %r", delivery.text)
        return None


def _settle(
    engine: Engine,
    delivery: Delivery,
    outcome: DeliveryResult | list[str] | None,
    clock: Clock,
    templates_dir: Path,
    pending_ttl_seconds: int,
) -> DeliveryResult:
    """Finish what the read transaction started: record its replies, or run `deliver`."""
    if isinstance(outcome, DeliveryResult):
        return outcome
    if outcome is None:
        with writer_lock(engine):
            return deliver(
                engine=engine,
                delivery=delivery,
                clock=clock,
                templates_dir=templates_dir,
                pending_ttl_seconds=pending_ttl_seconds,
            )
    now = clock.now()
    won, stored_replies = recorder_for(engine).record(
        {
            "shop_id": delivery.shop_id,
            "channel": delivery.channel,
            "external_id": delivery.external_id,
            "sender": delivery.sender_key,
            "body": delivery.text[:4000],
            "received_at": now,
            "handled_at": now,
            "replies": outcome,
        }
    )
    return DeliveryResult(replies=stored_replies, duplicate=not won)


@dataclass
class _Row:
    values: dict[str, Any]
    wake: threading.Event = field(default_factory=threading.Event)
    done: bool = False  # committed (or failed): `won`, `replies`, `error` are set
    won: bool = False
    replies: list[str] = field(default_factory=list)
    error: BaseException | None = None


class InboxRecorder:
    """Group commit for handled inbox rows: whatever is queued goes in one transaction.

    Leader and followers, no thread of its own: a caller that finds no commit running
    commits the queue (its own row first) on its own thread; callers that arrive while a
    commit runs queue up and wait. The leader wakes the rows it committed and hands the
    lead to the first row still queued, whose caller commits the next batch. Under load
    the rows of 10-20 concurrent requests share one commit; alone, a row is committed at
    once by its own caller, with no hand-off between threads.
    """

    MAX_BATCH = 64

    def __init__(self, engine: Engine) -> None:
        self._engine = weakref.ref(engine)
        self._lock = threading.Lock()
        self._queue: list[_Row] = []
        self._committing = False  # a leader is at work; False only with an empty queue

    def record(self, values: dict[str, Any]) -> tuple[bool, list[str]]:
        """Commit this row (or find the one that was first); (ours won, the stored replies)."""
        row = _Row(values)
        with self._lock:
            self._queue.append(row)
            lead = not self._committing
            self._committing = True
        if not lead:
            row.wake.wait()  # committed by a leader, or handed the lead
        if not row.done:
            self._lead()
        if row.error is not None:
            raise row.error
        return row.won, row.replies

    def _lead(self) -> None:
        """Commit one batch (the caller's row is first in the queue), then pass the lead on."""
        with self._lock:
            batch = self._queue[: self.MAX_BATCH]
            del self._queue[: self.MAX_BATCH]
        try:
            self._commit(batch)
        except BaseException as exc:  # every caller of the batch gets the failure
            for row in batch:
                row.error = exc
        finally:
            for row in batch:
                row.done = True
            with self._lock:
                if self._queue:
                    self._queue[0].wake.set()  # its caller leads the next batch
                else:
                    self._committing = False
            for row in batch:
                row.wake.set()

    def _commit(self, batch: list[_Row]) -> None:
        engine = self._engine()
        if engine is None:
            raise RuntimeError("engine disposed")
        statement = _record_statement(engine.dialect.name)
        with writer_lock(engine), write_connection(engine) as conn:
            lost: list[_Row] = []
            for row in batch:
                if conn.execute(statement, row.values).first() is not None:
                    row.won, row.replies = True, list(row.values["replies"])
                else:
                    lost.append(row)
            if lost:
                found = {
                    (r.channel, r.external_id): r
                    for r in conn.execute(
                        select(
                            _INBOX.c.channel,
                            _INBOX.c.external_id,
                            _INBOX.c.shop_id,
                            _INBOX.c.sender,
                            _INBOX.c.replies,
                        ).where(_INBOX.c.external_id.in_({r.values["external_id"] for r in lost}))
                    )
                }
                for row in lost:
                    first = found[(row.values["channel"], row.values["external_id"])]
                    if (
                        first.shop_id != row.values["shop_id"]
                        or first.sender != row.values["sender"]
                    ):
                        row.error = PermissionError("message id already used by another sender")
                    row.replies = list(first.replies or [])


@lru_cache(maxsize=2)
def _record_statement(dialect: str) -> Insert:
    """INSERT of a handled inbox row that yields to an existing one, built once per dialect.

    RETURNING tells a row that went in from one that lost to an earlier delivery
    (rowcount is not reliable across drivers for ON CONFLICT DO NOTHING).
    """
    return (
        insert_for(dialect)(InboxMessage)
        .on_conflict_do_nothing(index_elements=["channel", "external_id"])
        .returning(_INBOX.c.id)
    )


_RECORDERS: weakref.WeakKeyDictionary[Engine, InboxRecorder] = weakref.WeakKeyDictionary()
_RECORDERS_LOCK = threading.Lock()


def recorder_for(engine: Engine) -> InboxRecorder:
    """The engine's group-commit recorder."""
    with _RECORDERS_LOCK:
        recorder = _RECORDERS.get(engine)
        if recorder is None:
            recorder = _RECORDERS[engine] = InboxRecorder(engine)
        return recorder
