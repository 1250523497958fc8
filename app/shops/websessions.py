"""Signed-in web chat sessions (网页版), stored server-side so every app process shares them.

A one-time sign-in link (app/outreach/links.py) opens a session for the person it names; the
browser keeps a random id in an HttpOnly cookie and the table keeps only its SHA-256. Signing
in anew ends that person's earlier sessions (a leaked session dies the next time the owner
signs in), and 退出网页版 ends them all. Expired rows are removed when someone signs in.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine, delete, select, update
from sqlmodel import Session, col

from app.clock import Clock
from app.db import insert_for
from app.shops.models import Shop, Staff, WebSession

COOKIE_NAME = "huitou_session"


@dataclass(frozen=True)
class SignedIn:
    """Who a valid session cookie acts as."""

    shop_id: int
    shop_slug: str
    staff_id: int
    staff_name: str
    role: str


def _key(cookie: str) -> str:
    return hashlib.sha256(cookie.encode("utf-8", "replace")).hexdigest()


def open_session(
    *,
    session: Session,
    shop_id: int,
    staff_id: int,
    login_nonce: str,
    clock: Clock,
    ttl: timedelta,
) -> str | None:
    """Open a session for one person of one shop; the cookie value, or None when this
    link's nonce already opened one (the link was used) or the person is not in the shop."""
    staff = session.get(Staff, staff_id)
    if staff is None or staff.shop_id != shop_id:
        return None
    now = clock.now()
    cookie = secrets.token_urlsafe(32)
    key = _key(cookie)
    # Insert-or-nothing on the nonce: two tabs opening the same link at once get one session.
    inserted = session.execute(
        insert_for(session.get_bind().dialect.name)(WebSession)
        .values(
            id=key,
            shop_id=shop_id,
            staff_id=staff_id,
            login_nonce=login_nonce,
            created_at=now,
            expires_at=now + ttl,
        )
        .on_conflict_do_nothing(index_elements=["login_nonce"])
        # RETURNING, not rowcount: an ORM-enabled INSERT reports no row count on psycopg.
        .returning(col(WebSession.id))
    ).scalar()
    if inserted is None:
        return None
    session.execute(
        update(WebSession)
        .where(
            col(WebSession.shop_id) == shop_id,
            col(WebSession.staff_id) == staff_id,
            col(WebSession.ended_at).is_(None),
            col(WebSession.id) != key,
        )
        .values(ended_at=now)
    )
    # A used link's nonce must outlive the link (minutes); an expired session is far older.
    session.execute(delete(WebSession).where(col(WebSession.expires_at) < now))
    return cookie


def signed_in(*, engine: Engine, cookie: str | None, clock: Clock) -> SignedIn | None:
    """The person a session cookie signs in, if it is known, not ended and not expired."""
    if not cookie or len(cookie) > 128:
        return None
    with engine.connect() as conn:
        row = conn.execute(
            select(Shop.id, Shop.slug, Staff.id, Staff.name, Staff.role)  # type: ignore[call-overload]
            .select_from(WebSession)
            .join(Staff, col(Staff.id) == col(WebSession.staff_id))
            .join(Shop, col(Shop.id) == col(WebSession.shop_id))
            .where(
                col(WebSession.id) == _key(cookie),
                col(WebSession.ended_at).is_(None),
                col(WebSession.expires_at) > clock.now(),
                col(Staff.shop_id) == col(WebSession.shop_id),
            )
        ).first()
    if row is None:
        return None
    shop_id, slug, staff_id, name, role = row
    return SignedIn(
        shop_id=int(shop_id), shop_slug=slug, staff_id=int(staff_id), staff_name=name, role=role
    )


def nonce_used(*, session: Session, login_nonce: str) -> bool:
    """Whether a sign-in link with this nonce has already opened a session."""
    found = session.execute(
        select(WebSession.id).where(col(WebSession.login_nonce) == login_nonce)  # type: ignore[call-overload]
    ).first()
    return found is not None


def end_sessions(*, session: Session, shop_id: int, staff_id: int, clock: Clock) -> int:
    """End every open web session of one person (退出网页版); how many were open."""
    result = session.execute(
        update(WebSession)
        .where(
            col(WebSession.shop_id) == shop_id,
            col(WebSession.staff_id) == staff_id,
            col(WebSession.ended_at).is_(None),
            col(WebSession.expires_at) > clock.now(),
        )
        .values(ended_at=clock.now())
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
