"""The channel-agnostic bot: one message in, replies out."""

from __future__ import annotations

import app.bot.commands  # noqa: F401  (registers the commands)
from app.bot import pending
from app.bot.context import BotContext
from app.bot.parse import DEFAULT_UNITS, parse
from app.bot.registry import registry

# Intents that answer a question rather than start something new.
_ANSWERS = frozenset({"choice", "cancel"})


def handle(ctx: BotContext, message: str) -> list[str]:
    """Understand `message` from ctx.staff in ctx.shop and act on it; return the replies."""
    units = tuple(dict.fromkeys((str(ctx.shop.settings.get("unit", "桶")), *DEFAULT_UNITS)))
    intent = parse(message, phrases=registry.phrases(), prefixes=registry.prefixes(), units=units)
    if intent.kind not in _ANSWERS:
        # A new request supersedes an unanswered question, so a stray "1" later is harmless.
        pending.clear(ctx)
    command = registry.get(intent.kind)
    assert command is not None, f"parser produced unregistered intent {intent.kind}"
    return command.handler(ctx, intent)
