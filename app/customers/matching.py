"""Which customer the owner means: by name, alias, phone tail, address, sound or near spelling.

Tiers, strongest first: exact name, alias, phone number/tail, same pinyin (汪姐 for 王姐, or
typed "wangjie"), containment (name, alias or address holds what was typed), then fuzzy
spelling. Only the best tier that matched anyone counts, so an exact name is never
out-voted by a fuzzy one. Within the tier, one candidate (or, for fuzzy, one well ahead of
the rest) is a clear answer; anything else is a choice the owner must make.
Only this shop's customers are ever read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from pypinyin import lazy_pinyin
from rapidfuzz import fuzz
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.customers.models import Customer
from app.shops.models import Shop

TIERS = ("name", "alias", "phone", "pinyin", "contains", "address", "fuzzy")
FUZZY_MIN_SCORE = 75.0
PINYIN_FUZZY_MIN_SCORE = 85.0
# A fuzzy best guess is only taken when this far ahead of the next one.
FUZZY_CLEAR_MARGIN = 10.0
_PHONE_QUERY = re.compile(r"^(?:手机尾号|电话尾号|尾号|手机|电话|tel)?:?(\d{4,11})$")
_ASCII_LETTERS = re.compile(r"^[a-z]+$")


@dataclass(frozen=True)
class CustomerRow:
    """The columns matching reads (lighter than loading every Customer object)."""

    id: int
    name: str
    aliases: tuple[str, ...]
    phone: str | None
    address: str | None


@dataclass(frozen=True)
class Match:
    """One candidate and why it matched."""

    customer_id: int
    how: str  # one of TIERS
    matched: str  # the alias, phone tail, address or text that matched
    score: float = 100.0


@lru_cache(maxsize=16384)
def pinyin_key(text: str) -> str:
    """'王姐' -> 'wangjie', 'Wang Jie' -> 'wangjie' (tones and spaces dropped)."""
    lowered = re.sub(r"\s+", "", text.lower())
    if _ASCII_LETTERS.match(lowered):
        return lowered
    return "".join(lazy_pinyin(lowered))


def _tier(query: str, row: CustomerRow) -> Match | None:
    """The strongest way `row` matches `query`, or None."""
    if row.name == query:
        return Match(row.id, "name", row.name)
    lowered = query.lower()
    for alias in row.aliases:
        if alias.lower() == lowered:
            return Match(row.id, "alias", alias)
    phone = _PHONE_QUERY.match(lowered)
    if phone and row.phone:
        digits = phone.group(1)
        if row.phone == digits or (len(digits) <= 8 and row.phone.endswith(digits)):
            return Match(row.id, "phone", f"尾号{row.phone[-4:]}")
        return None
    key = pinyin_key(query)
    if key and any(pinyin_key(n) == key for n in (row.name, *row.aliases)):
        return Match(row.id, "pinyin", query)
    for text in (row.name, *row.aliases):
        if query in text or (len(text) >= 2 and text in query):
            return Match(row.id, "contains", query, -abs(len(text) - len(query)))
    if len(query) >= 2 and row.address and query in row.address:
        return Match(row.id, "address", row.address, -abs(len(row.address) - len(query)))
    best = 0.0
    for text in (row.name, *row.aliases):
        best = max(best, fuzz.ratio(query, text))
        pinyin_score = fuzz.ratio(key, pinyin_key(text))
        if pinyin_score >= PINYIN_FUZZY_MIN_SCORE:
            best = max(best, pinyin_score)
    if best >= FUZZY_MIN_SCORE:
        return Match(row.id, "fuzzy", query, best)
    return None


def rank(query: str, rows: list[CustomerRow]) -> list[Match]:
    """Candidates in the best tier that matched anyone, best first."""
    query = query.strip()
    if not query:
        return []
    found = [m for m in (_tier(query, row) for row in rows) if m is not None]
    if not found:
        return []
    best_tier = min(TIERS.index(m.how) for m in found)
    # Containment and address are one tier in strength; keep both when they are the best.
    tiers = {TIERS[best_tier]}
    if TIERS[best_tier] == "contains":
        tiers.add("address")
    in_tier = [m for m in found if m.how in tiers]
    in_tier.sort(key=lambda m: (TIERS.index(m.how), -m.score, m.customer_id))
    return in_tier


def is_clear(matches: list[Match]) -> bool:
    """One candidate, or a fuzzy one far enough ahead of the next: safe to act on."""
    if len(matches) == 1:
        return True
    if len(matches) >= 2 and matches[0].how == "fuzzy" == matches[1].how:
        return matches[0].score - matches[1].score >= FUZZY_CLEAR_MARGIN
    return False


def shop_rows(*, session: Session, shop: Shop) -> list[CustomerRow]:
    """This shop's findable customers (not forgotten), as light rows."""
    result = session.execute(
        sa_select(
            col(Customer.id),
            col(Customer.name),
            col(Customer.aliases),
            col(Customer.phone),
            col(Customer.address),
        ).where(col(Customer.shop_id) == shop.id, col(Customer.status) != "forgotten")
    )
    return [
        CustomerRow(id=i, name=n, aliases=tuple(a or ()), phone=p, address=ad)
        for i, n, a, p, ad in result
        if i is not None
    ]


def match_customers(*, session: Session, shop: Shop, query: str) -> list[Match]:
    """Who `query` may mean in this shop, best tier only (exact names use the index)."""
    query = query.strip()
    if not query:
        return []
    # Whole rows, not ids: they land in the session's identity map, so the caller's
    # session.get(Customer, id) costs no second query.
    exact = session.exec(
        select(Customer).where(
            Customer.shop_id == shop.id, Customer.name == query, Customer.status != "forgotten"
        )
    ).all()
    if exact:
        return [Match(c.id, "name", query) for c in exact if c.id is not None]
    return rank(query, shop_rows(session=session, shop=shop))
