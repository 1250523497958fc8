"""Shops (tenants) and the people who run them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

INDUSTRIES = ("water", "car", "retail")
ROLES = ("owner", "manager", "staff")


class Shop(SQLModel, table=True):
    """One tenant. Every other row carries its shop_id."""

    __tablename__ = "shop"

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=64, unique=True, index=True)
    name: str = Field(max_length=100)
    industry: str = Field(default="water", max_length=16)
    timezone: str = Field(default="Asia/Shanghai", max_length=64)
    settings: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # A one-time code an owner sends from WeChat to bind their identity; only its hash is kept.
    binding_code_hash: str | None = Field(default=None, max_length=128)
    binding_code_expires_at: datetime | None = None
    created_at: datetime


class Staff(SQLModel, table=True):
    """A person working for a shop: the owner, a manager, a delivery worker."""

    __tablename__ = "staff"

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shop.id", index=True)
    name: str = Field(max_length=50)
    role: str = Field(default="staff", max_length=16)
    # Mobile number for the SMS digest fallback (owner-provided; shown masked).
    phone: str | None = Field(default=None, max_length=32)
    created_at: datetime


class StaffIdentity(SQLModel, table=True):
    """How a staff member is known on one channel (a WeCom userid, an OpenID, a web login)."""

    __tablename__ = "staff_identity"
    __table_args__ = (UniqueConstraint("channel", "external_id", name="uq_identity_channel_ext"),)

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shop.id", index=True)
    staff_id: int = Field(foreign_key="staff.id", index=True)
    channel: str = Field(max_length=16)
    external_id: str = Field(max_length=128)
    created_at: datetime


class WebSession(SQLModel, table=True):
    """A signed-in web chat (网页版): one person of one shop, in one browser.

    Opened by a one-time sign-in link sent from WeChat; the browser holds a random id in a
    cookie and only its SHA-256 is stored here, so a copy of the database signs nobody in.
    The link's nonce is stored with the session it opened: a second use finds it taken.
    """

    __tablename__ = "web_session"

    id: str = Field(primary_key=True, max_length=64)
    shop_id: int = Field(foreign_key="shop.id", index=True)
    staff_id: int = Field(foreign_key="staff.id", index=True)
    login_nonce: str = Field(max_length=32, unique=True)
    created_at: datetime
    expires_at: datetime
    # Set by 退出网页版, or when the same person signs in anew.
    ended_at: datetime | None = None
