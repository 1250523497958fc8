"""Questions the bot asked and is waiting on ("1 新建客户 / 0 取消"), one per sender."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import delete

from app.bot.context import BotContext
from app.channels.models import PendingQuestion


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


def take(ctx: BotContext) -> PendingQuestion | None:
    """The sender's live question, removed so it is answered at most once."""
    question = ctx.session.get(PendingQuestion, (ctx.shop_id, ctx.sender_key))
    if question is None:
        return None
    ctx.session.delete(question)
    ctx.session.flush()
    return question if question.expires_at > ctx.clock.now() else None


def clear(ctx: BotContext) -> None:
    """Forget the sender's question (a new message supersedes it)."""
    ctx.session.execute(
        delete(PendingQuestion).where(
            PendingQuestion.shop_id == ctx.shop_id,  # type: ignore[arg-type]
            PendingQuestion.sender == ctx.sender_key,  # type: ignore[arg-type]
        )
    )
