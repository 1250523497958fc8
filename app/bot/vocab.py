"""The parser's word tables for a shop, from the command registry (built once per kind)."""

from __future__ import annotations

from functools import lru_cache

from app.bot.context import BotContext
from app.bot.parse import DEFAULT_UNITS, INDUSTRY_UNITS, Vocabulary
from app.bot.registry import registry


@lru_cache(maxsize=64)
def vocabulary(industry: str, unit: str) -> Vocabulary:
    """The word tables for a shop of this industry whose main unit is `unit` (cached)."""
    units = tuple(dict.fromkeys((unit, *INDUSTRY_UNITS.get(industry, ()), *DEFAULT_UNITS)))
    return Vocabulary(
        phrases=registry.phrases(),
        prefixes=registry.prefixes(),
        verbs=registry.verbs(),
        units=units,
        industry=industry,
    )


def vocabulary_for(ctx: BotContext) -> Vocabulary:
    return vocabulary(ctx.shop.industry, str(ctx.shop.settings.get("unit", "桶")))
