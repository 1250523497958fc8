"""Questions the bot asked and is waiting on ("1 新建客户 / 0 取消"), one per sender."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, delete, select

from app.bot.context import BotContext
from app.bot.models import PendingQuestion

# (ctx, the question's payload, the number chosen) -> replies: answers to question kinds
# asked outside commands.py (e.g. "sms_confirm"), looked up by commands.choice.
Answerer = Callable[[BotContext, dict[str, Any], int], list[str]]
_ANSWERERS: dict[str, Answerer] = {}


def answers(kind: str) -> Callable[[Answerer], Answerer]:
    """Register the decorated function as the answer to questions of `kind`."""

    def decorate(answer: Answerer) -> Answerer:
        _ANSWERERS[kind] = answer
        return answer

    return decorate


def answerer(kind: str) -> Answerer | None:
    return _ANSWERERS.get(kind)


def ask(ctx: BotContext, kind: str, payload: dict[str, Any]) -> None:
    """Remember a question for this sender, replacing any earlier one."""
    clear(ctx)
    now = ctx.clock.now()
    ctx.session.add(
        PendingQuestion(
            shop_id=ctx.shop_id,
            sender=ctx.sender_key,
            kind=kind,
            payload=payload,
            asked_at=now,
            expires_at=now + timedelta(seconds=ctx.pending_ttl_seconds),
        )
    )
    ctx.session.flush()
    ctx.question_waiting = True


def take(ctx: BotContext) -> PendingQuestion | None:
    """The sender's live question, removed so it is answered at most once."""
    question = ctx.session.get(PendingQuestion, (ctx.shop_id, ctx.sender_key))
    if question is None:
        return None
    ctx.session.delete(question)
    ctx.session.flush()
    ctx.question_waiting = False
    return question if question.expires_at > ctx.clock.now() else None


_TABLE = PendingQuestion.__table__  # type: ignore[attr-defined]
# Built once, on the table (no ORM session synchronisation): every message that is not an
# answer runs it; a copy the session holds is expunged by hand (clear).
_DELETE = delete(_TABLE).where(
    _TABLE.c.shop_id == bindparam("shop"), _TABLE.c.sender == bindparam("sender")
)


# Built once: every read-only command asks it before answering without a write.
_WAITING = select(_TABLE.c.shop_id).where(
    _TABLE.c.shop_id == bindparam("shop"), _TABLE.c.sender == bindparam("sender")
)


def waiting(ctx: BotContext) -> bool:
    """Whether the sender has a question stored, live or expired: as the caller read it with
    the shop, else a plain probe."""
    if ctx.question_waiting is not None:
        return ctx.question_waiting
    found = ctx.session.execute(_WAITING, {"shop": ctx.shop_id, "sender": ctx.sender_key})
    ctx.question_waiting = found.first() is not None
    return ctx.question_waiting


def clear(ctx: BotContext) -> None:
    """Forget the sender's question (a new message supersedes it)."""
    session = ctx.session
    # An unflushed question would be inserted after the DELETE: flush it first.
    if any(isinstance(o, PendingQuestion) for o in session.new):
        session.flush()
    elif ctx.question_waiting is False:
        return  # none stored: most messages skip the DELETE
    session.execute(_DELETE, {"shop": ctx.shop_id, "sender": ctx.sender_key})
    ctx.question_waiting = False
    # A copy loaded in this session is gone from the database too.
    key = session.identity_key(PendingQuestion, (ctx.shop_id, ctx.sender_key))
    loaded = session.identity_map.get(key)
    if loaded is not None:
        session.expunge(loaded)
