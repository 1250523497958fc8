"""The local channels' push: a row in the outbox the web chat and console show."""

from __future__ import annotations

from sqlalchemy import Engine, select
from sqlmodel import col

from app.channels.models import OutboxMessage
from app.channels.push import PushMessage, PushReceipt
from app.clock import Clock
from app.db import insert_for, read_session, write_session


class OutboxPusher:
    """Always reachable (no credentials); a repeated key is a no-op by the unique index."""

    name = "local"

    def __init__(self, *, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock

    def can_reach(self, *, shop_id: int, staff_id: int) -> bool:
        return True

    def push(self, message: PushMessage) -> PushReceipt:
        insert = insert_for(self.engine.dialect.name)
        with write_session(self.engine) as session:
            new_id = session.execute(
                insert(OutboxMessage)
                .values(
                    shop_id=message.shop_id,
                    staff_id=message.staff_id,
                    key=message.key[:160],
                    title=message.title[:120],
                    text=message.text,
                    created_at=self.clock.now(),
                )
                .on_conflict_do_nothing(index_elements=["key"])
                .returning(col(OutboxMessage.id))
            ).scalar()
        return PushReceipt(channel=self.name, accepted=True, duplicate=new_id is None)


def outbox_for(
    *, engine: Engine, shop_id: int, staff_id: int, limit: int = 20
) -> list[OutboxMessage]:
    """The newest pushes to one person on the local channels, oldest first."""
    with read_session(engine) as session:
        rows = list(
            session.execute(
                select(OutboxMessage)
                .where(OutboxMessage.shop_id == shop_id, OutboxMessage.staff_id == staff_id)  # type: ignore[arg-type]
                .order_by(OutboxMessage.id.desc())  # type: ignore[union-attr]
                .limit(limit)
            ).scalars()
        )
    return list(reversed(rows))
