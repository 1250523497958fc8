"""What a command handler gets: the session, the shop, who is talking, the time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from sqlmodel import Session

from app.clock import Clock, local_today
from app.shops.models import Shop, Staff
from app.templating import render_message


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

    @property
    def shop_id(self) -> int:
        assert self.shop.id is not None
        return self.shop.id

    @property
    def today(self) -> date:
        return local_today(self.clock, self.shop.timezone)

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
