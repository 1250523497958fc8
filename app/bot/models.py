"""What the bot keeps between two messages of one sender: the question it is waiting on."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel


class PendingQuestion(SQLModel, table=True):
    """A question the bot asked a sender and is waiting on (create this customer? which one?)."""

    __tablename__ = "pending_question"

    shop_id: int = Field(foreign_key="shop.id", primary_key=True)
    sender: str = Field(max_length=128, primary_key=True)
    kind: str = Field(max_length=32)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    asked_at: datetime
    expires_at: datetime
