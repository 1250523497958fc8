"""Creating shops, their owner, and one-time binding codes."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta
from typing import Any

from sqlmodel import Session, select

from app.clock import Clock
from app.shops.models import INDUSTRIES, Shop, Staff, StaffIdentity

BINDING_CODE_TTL = timedelta(hours=24)
LOCAL_OWNER_ID = "local-owner"

# Per-industry defaults a shop starts with; the owner can change any of them later. The car
# pack's risk thresholds (service cycle, CLV horizon) are app.risk.config's industry
# defaults instead: read at every assessment, so car shops created earlier get them too.
INDUSTRY_DEFAULTS: dict[str, dict[str, Any]] = {
    "water": {"unit": "桶", "unit_price_cents": 1800, "default_interval_days": 20.0},
    "car": {"unit": "次", "unit_price_cents": None},
    "retail": {"unit": "单", "unit_price_cents": None, "default_interval_days": 30.0},
}


class ShopError(ValueError):
    """A shop operation that cannot be done as asked (bad industry, unknown shop)."""


def slugify(name: str) -> str:
    """An ASCII slug from a name; Chinese names get a random slug since pinyin can collide."""
    ascii_part = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return ascii_part[:40] if len(ascii_part) >= 3 else f"shop-{secrets.token_hex(3)}"


def create_shop(
    *,
    session: Session,
    name: str,
    industry: str,
    clock: Clock,
    slug: str | None = None,
    owner_name: str = "店主",
    timezone: str = "Asia/Shanghai",
) -> Shop:
    """Create a shop with its owner (who may use the local channels at once)."""
    name = name.strip()
    if not name:
        raise ShopError("店名不能为空")
    if industry not in INDUSTRIES:
        raise ShopError(f"行业只能是 {', '.join(INDUSTRIES)} 之一,收到:{industry}")
    slug = slug or slugify(name)
    if session.exec(select(Shop).where(Shop.slug == slug)).first():
        raise ShopError(f"已有标识为 {slug} 的店铺")
    now = clock.now()
    shop = Shop(
        slug=slug,
        name=name,
        industry=industry,
        timezone=timezone,
        settings=dict(INDUSTRY_DEFAULTS[industry]),
        created_at=now,
    )
    session.add(shop)
    session.flush()
    assert shop.id is not None
    owner = Staff(shop_id=shop.id, name=owner_name, role="owner", created_at=now)
    session.add(owner)
    session.flush()
    assert owner.id is not None
    session.add(
        StaffIdentity(
            shop_id=shop.id,
            staff_id=owner.id,
            channel="local",
            external_id=f"{shop.id}:{LOCAL_OWNER_ID}",
            created_at=now,
        )
    )
    session.flush()
    return shop


def get_shop(*, session: Session, ref: str) -> Shop:
    """Find a shop by slug or numeric id; raise ShopError when there is none."""
    shop = session.exec(select(Shop).where(Shop.slug == ref)).first()
    # isdigit() is also true for "²" or "٣", which int() refuses: only ASCII digits are an id.
    if shop is None and ref.isascii() and ref.isdigit() and len(ref) <= 18:
        shop = session.get(Shop, int(ref))
    if shop is None:
        raise ShopError(f"没有这个店铺:{ref}")
    return shop


def list_shops(*, session: Session) -> list[Shop]:
    return list(session.exec(select(Shop).order_by(Shop.id)))  # type: ignore[arg-type]


def _hash_code(shop_id: int, code: str) -> str:
    return hashlib.sha256(f"{shop_id}:{code}".encode()).hexdigest()


def issue_binding_code(*, session: Session, shop: Shop, clock: Clock) -> str:
    """A fresh one-time 6-digit code (valid 24 h); any earlier code stops working."""
    assert shop.id is not None
    code = f"{secrets.randbelow(1_000_000):06d}"
    shop.binding_code_hash = _hash_code(shop.id, code)
    shop.binding_code_expires_at = clock.now() + BINDING_CODE_TTL
    session.add(shop)
    session.flush()
    return code


def consume_binding_code(*, session: Session, shop: Shop, code: str, clock: Clock) -> bool:
    """True (and the code is spent) when `code` is this shop's live binding code."""
    assert shop.id is not None
    if not shop.binding_code_hash or shop.binding_code_expires_at is None:
        return False
    if clock.now() >= shop.binding_code_expires_at:
        return False
    if not secrets.compare_digest(shop.binding_code_hash, _hash_code(shop.id, code.strip())):
        return False
    shop.binding_code_hash = None
    shop.binding_code_expires_at = None
    session.add(shop)
    session.flush()
    return True


def owner_of(*, session: Session, shop: Shop) -> Staff:
    """The shop's owner (every shop has one from creation)."""
    owner = session.exec(
        select(Staff).where(Staff.shop_id == shop.id, Staff.role == "owner").order_by(Staff.id)  # type: ignore[arg-type]
    ).first()
    if owner is None:
        raise ShopError(f"店铺 {shop.slug} 没有店主")
    return owner
