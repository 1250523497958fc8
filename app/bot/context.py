"""What a command handler gets: the session, the shop, who is talking, the time.

Besides its list of reply texts a handler can attach images (a report chart) with
`ctx.attach_image`. They are collected on `ctx.images`; a channel that can send pictures
reads them after `handle()` returns (the image is rendered on first read of `.png`, so the
drawing happens after the message's transaction, not while it holds the write lock).
app.channels.inbox returns them with the replies; `capture_side_output()` collects them
(and lends settings) around code that calls `handle()` without the inbox, such as tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any

from sqlmodel import Session

from app.clock import Clock, local_today
from app.config import Settings, get_settings
from app.shops.models import Shop, Staff
from app.templating import render_message


@dataclass(eq=False)
class ChatImage:
    """A picture for the chat: PNG bytes (drawn on first use), its alt text and a file name."""

    alt: str  # what the picture shows, in the owner's words (also the text fallback)
    filename: str  # e.g. "report-2026-06.png"
    draw: Callable[[], bytes] = field(repr=False)

    @cached_property
    def png(self) -> bytes:
        return self.draw()

    def save(self, directory: Path) -> Path:
        """Write the PNG into `directory` (created if needed) and return its path."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / Path(self.filename).name  # never outside `directory`
        path.write_bytes(self.png)
        return path


@dataclass
class SideOutput:
    """What a local channel receives besides the texts while one message is handled."""

    settings: Settings | None = None
    images: list[ChatImage] = field(default_factory=list)
    # The capture this one is nested in (it sees the images too).
    parent: SideOutput | None = None


_SIDE_OUTPUT: ContextVar[SideOutput | None] = ContextVar("huitou_side_output", default=None)


@contextmanager
def capture_side_output(settings: Settings | None = None) -> Iterator[SideOutput]:
    """Collect the images of messages handled inside this block (and lend them `settings`)."""
    side = SideOutput(settings=settings, parent=_SIDE_OUTPUT.get())
    token = _SIDE_OUTPUT.set(side)
    try:
        yield side
    finally:
        _SIDE_OUTPUT.reset(token)


@dataclass
class BotContext:
    """Per-message context; handlers write through `session`, which the caller commits."""

    session: Session
    shop: Shop
    staff: Staff
    sender_key: str  # the channel identity, e.g. "local:1:local-owner"
    clock: Clock
    templates_dir: Path
    pending_ttl_seconds: int = 600
    inbox_id: int | None = None
    # Set by every write, so the reply can offer 撤销 exactly when there is something to undo.
    changed: bool = False
    # Pictures to send after the replies (see the module docstring).
    images: list[ChatImage] = field(default_factory=list)
    # The service settings (signed links); None means the capture's, else the process's.
    settings: Settings | None = None
    # Whether the sender has a question stored (app/bot/pending.py), when the caller read it
    # together with the shop (the channels' inbox does); None: unknown, ask the database.
    # pending.ask / take / clear keep it true to the session's writes.
    question_waiting: bool | None = None

    @property
    def shop_id(self) -> int:
        assert self.shop.id is not None
        return self.shop.id

    @property
    def today(self) -> date:
        return local_today(self.clock, self.shop.timezone)

    def attach_image(self, image: ChatImage) -> None:
        """Send `image` after this message's replies, on channels that can show pictures."""
        self.images.append(image)
        side = _SIDE_OUTPUT.get()
        while side is not None:
            side.images.append(image)
            side = side.parent

    def service_settings(self) -> Settings:
        """The settings links are signed with: given, lent by the channel, or the process's."""
        if self.settings is not None:
            return self.settings
        side = _SIDE_OUTPUT.get()
        if side is not None and side.settings is not None:
            return side.settings
        return get_settings()

    def render(self, template: str, /, **context: Any) -> str:
        """Render message_templates/<pack>/bot/<name>.txt.j2 for this shop."""
        return render_message(
            self.templates_dir,
            self.shop.industry,
            self.shop.slug,
            f"bot/{template}.txt.j2",
            shop=self.shop,
            **context,
        )
