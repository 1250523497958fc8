"""An explicit command registry: each command's words, help text and handler in one place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.bot.context import BotContext
    from app.bot.parse import Intent

Handler = Callable[["BotContext", "Intent"], list[str]]


@dataclass(frozen=True)
class Command:
    """One thing the bot understands."""

    name: str
    summary: str  # one line for 帮助
    example: str  # what the owner would type
    handler: Handler
    # Whole messages that trigger it ("今天该跟进谁"); compared after normalisation.
    phrases: tuple[str, ...] = ()
    # Leading words that trigger it with arguments ("新客户 王姐 138…").
    prefixes: tuple[str, ...] = ()
    # Words that follow a customer's name ("王姐 回复了", "王姐 流失 价格").
    verbs: tuple[str, ...] = ()
    # How parse.py reads what follows a verb: "text", "items", "reaction", "reason",
    # "until", "score".
    reader: str = "text"
    # Listed in 帮助 (internal intents such as "empty" are not).
    listed: bool = True


class Registry:
    """Commands by name; the parser gets its word tables from here."""

    def __init__(self) -> None:
        self._commands: dict[str, Command] = {}

    def command(
        self,
        name: str,
        *,
        summary: str = "",
        example: str = "",
        phrases: tuple[str, ...] = (),
        prefixes: tuple[str, ...] = (),
        verbs: tuple[str, ...] = (),
        reader: str = "text",
        listed: bool = True,
    ) -> Callable[[Handler], Handler]:
        """Register the decorated function as the handler of command `name`."""

        def decorate(handler: Handler) -> Handler:
            if name in self._commands:
                raise ValueError(f"command {name!r} registered twice")
            taken = {*self.phrases(), *self.prefixes(), *self.verbs()}
            clash = [w for w in (*phrases, *prefixes, *verbs) if w.lower() in taken]
            if clash:
                raise ValueError(f"command {name!r}: words already taken: {clash}")
            self._commands[name] = Command(
                name=name,
                summary=summary,
                example=example,
                handler=handler,
                phrases=phrases,
                prefixes=prefixes,
                verbs=verbs,
                reader=reader,
                listed=listed,
            )
            return handler

        return decorate

    def get(self, name: str) -> Command | None:
        return self._commands.get(name)

    def listed(self) -> list[Command]:
        return [c for c in self._commands.values() if c.listed]

    def phrases(self) -> dict[str, str]:
        return {p.lower(): c.name for c in self._commands.values() for p in c.phrases}

    def prefixes(self) -> dict[str, str]:
        # Longest first, so "新客户" is tried before a shorter word it starts with.
        pairs = [(p.lower(), c.name) for c in self._commands.values() for p in c.prefixes]
        return dict(sorted(pairs, key=lambda pair: -len(pair[0])))

    def verbs(self) -> dict[str, tuple[str, str]]:
        return {v.lower(): (c.name, c.reader) for c in self._commands.values() for v in c.verbs}


registry = Registry()
