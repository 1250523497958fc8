"""The channel-agnostic bot: one message in, replies out."""

from __future__ import annotations

import app.bot.commands  # (registers the commands)
import app.bot.outreach_commands  # (replies to the digest)
import app.bot.report_commands  # (统计图, 报表, 本周名单)
import app.bot.sms_commands  # (发短信)
import app.bot.web_commands  # noqa: F401  (登录网页版, 退出网页版)
from app.bot import pending
from app.bot.context import BotContext
from app.bot.parse import parse
from app.bot.registry import registry

# The registry is complete once the command modules above are imported: importers of
# `vocabulary` from here get the full word tables.
from app.bot.vocab import vocabulary as vocabulary
from app.bot.vocab import vocabulary_for
from app.customers.risk import refreshes_deferred

# Intents that answer a question rather than start something new.
_ANSWERS = frozenset({"choice", "cancel"})


def handle(ctx: BotContext, message: str) -> list[str]:
    """Understand `message` from ctx.staff in ctx.shop and act on it; return the replies."""
    intent = parse(message, vocab=vocabulary_for(ctx), today=ctx.today)
    if intent.kind not in _ANSWERS:
        # A new request supersedes an unanswered question, so a stray "1" later is harmless.
        pending.clear(ctx)
    command = registry.get(intent.kind)
    assert command is not None, f"parser produced unregistered intent {intent.kind}"
    # Every customer the message touches is reassessed once, after the handler's writes.
    with refreshes_deferred(ctx.session):
        replies = command.handler(ctx, intent)
    if ctx.changed and replies:
        # Every write can be taken back; say so once, under the last confirmation.
        replies[-1] = f"{replies[-1]}\n{ctx.render('undo_hint')}"
    return replies
