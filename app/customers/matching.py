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
import threading
import weakref
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pypinyin import lazy_pinyin
from rapidfuzz import fuzz, process
from sqlalchemy import and_, bindparam
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from app.customers.models import Customer, ShopMatchTag
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


def _light_rows(session: Session, shop_id: int) -> list[CustomerRow]:
    result = session.execute(
        sa_select(
            col(Customer.id),
            col(Customer.name),
            col(Customer.aliases),
            col(Customer.phone),
            col(Customer.address),
        ).where(col(Customer.shop_id) == shop_id, col(Customer.status) != "forgotten")
    )
    return [
        CustomerRow(id=i, name=n, aliases=tuple(a or ()), phone=p, address=ad)
        for i, n, a, p, ad in result
        if i is not None
    ]


def shop_rows(*, session: Session, shop: Shop) -> list[CustomerRow]:
    """This shop's findable customers (not forgotten), as light rows."""
    assert shop.id is not None
    return _light_rows(session, shop.id)


class MatchIndex:
    """One shop's findable customers, prepared once for fast ranking.

    `rank_indexed` gives exactly what `rank(query, rows)` gives for the same rows (a test
    checks this over the bot corpus): tiers are tried strongest first, so each row only
    reaches a tier when no row matched a stronger one, as in `_tier`.
    """

    def __init__(self, rows: list[CustomerRow]) -> None:
        self.rows = rows
        self.aliases: dict[str, list[tuple[int, str]]] = {}
        self.pinyin: dict[str, set[int]] = {}
        self.flat_texts: list[str] = []
        self.flat_keys: list[str] = []
        self.flat_owner: list[int] = []
        for ordinal, row in enumerate(rows):
            seen: set[str] = set()
            for alias in row.aliases:
                lowered = alias.lower()
                if lowered not in seen:  # the first alias that matches is the one named
                    seen.add(lowered)
                    self.aliases.setdefault(lowered, []).append((ordinal, alias))
            for text in (row.name, *row.aliases):
                key = pinyin_key(text)
                self.pinyin.setdefault(key, set()).add(ordinal)
                self.flat_texts.append(text)
                self.flat_keys.append(key)
                self.flat_owner.append(ordinal)
        self.with_phone = [i for i, r in enumerate(rows) if r.phone]
        # The name and contains tiers without a Python loop over every row: names to rows,
        # every text to its flat positions, and the texts and addresses each joined by a
        # NUL and searched with str.find (a query holding a NUL is looked up text by text).
        # The same answers: a test compares `rank` with ranking every row over the bot corpus.
        self.by_name: dict[str, list[int]] = {}
        for ordinal, row in enumerate(rows):
            self.by_name.setdefault(row.name, []).append(ordinal)
        self.text_positions: dict[str, list[int]] = {}
        for j, text in enumerate(self.flat_texts):
            self.text_positions.setdefault(text, []).append(j)
        self.joined_texts, self.text_starts = _joined(self.flat_texts)
        self.address_owner = [i for i, r in enumerate(rows) if r.address]
        self.joined_addresses, self.address_starts = _joined(
            [rows[i].address or "" for i in self.address_owner]
        )
        # The fuzzy tier's texts by length, typed and in pinyin: fuzz.ratio of texts of
        # lengths a and b is at most 200 * min(a, b) / (a + b), so only the lengths that can
        # reach the cutoff are scored (the same matches and scores, a fraction of the work).
        self.typed_by_length = _by_length(self.flat_texts)
        self.keys_by_length = _by_length(self.flat_keys)

    def rank(self, query: str) -> list[Match]:
        """Candidates in the best tier that matched anyone, best first (as `rank`)."""
        query = query.strip()
        if not query:
            return []
        rows = self.rows
        found = [Match(rows[i].id, "name", query) for i in self.by_name.get(query, ())]
        if found:
            return _sorted(found)
        lowered = query.lower()
        found = [Match(rows[i].id, "alias", alias) for i, alias in self.aliases.get(lowered, ())]
        if found:
            return _sorted(found)
        phone = _PHONE_QUERY.match(lowered)
        # A row with a phone answers a phone-like query by its phone or not at all.
        skip: set[int] = set()
        if phone:
            digits = phone.group(1)
            skip = set(self.with_phone)
            for i in self.with_phone:
                number = rows[i].phone or ""
                if number == digits or (len(digits) <= 8 and number.endswith(digits)):
                    found.append(Match(rows[i].id, "phone", f"尾号{number[-4:]}"))
            if found:
                return _sorted(found)
        key = pinyin_key(query)
        if key:
            found = [
                Match(rows[i].id, "pinyin", query)
                for i in sorted(self.pinyin.get(key, ()))
                if i not in skip
            ]
            if found:
                return _sorted(found)
        # Contains: per row its first text (name, then aliases) that holds the query or,
        # two characters or more, lies inside it; else its address holding a 2+ query.
        first: dict[int, int] = {}
        for j in self._texts_containing(query):
            i = self.flat_owner[j]
            if i not in skip and j < first.get(i, len(self.flat_texts)):
                first[i] = j
        for i, j in first.items():
            text = self.flat_texts[j]
            found.append(Match(rows[i].id, "contains", query, -abs(len(text) - len(query))))
        if len(query) >= 2:
            for k in _positions(self.joined_addresses, self.address_starts, query):
                i = self.address_owner[k]
                if i not in skip and i not in first:
                    address = rows[i].address or ""
                    found.append(
                        Match(rows[i].id, "address", address, -abs(len(address) - len(query)))
                    )
        if found:
            return _sorted(found)
        best: dict[int, float] = {}
        # The characters as typed, then their pinyin: a customer's best score of either.
        for typed, by_length, cutoff in (
            (query, self.typed_by_length, FUZZY_MIN_SCORE),
            (key, self.keys_by_length, PINYIN_FUZZY_MIN_SCORE),
        ):
            n = len(typed)
            for length, (choices, positions) in by_length.items():
                if 200 * min(n, length) < cutoff * (n + length):
                    continue  # no text of this length can reach the cutoff
                for _, score, k in process.extract(
                    typed,
                    choices,
                    scorer=fuzz.ratio,
                    processor=None,
                    score_cutoff=cutoff,
                    limit=None,
                ):
                    i = self.flat_owner[positions[k]]
                    best[i] = max(best.get(i, 0.0), score)
        found = [
            Match(rows[i].id, "fuzzy", query, score)
            for i, score in best.items()
            if i not in skip and score >= FUZZY_MIN_SCORE
        ]
        return _sorted(found)

    def _texts_containing(self, query: str) -> set[int]:
        """Flat positions of the texts that hold `query`, or (2+ characters) lie inside it."""
        hits = set(_positions(self.joined_texts, self.text_starts, query))
        n = len(query)
        if n * (n - 1) // 2 <= len(self.flat_texts):  # a short query: look its pieces up
            for a in range(n - 1):
                for b in range(a + 2, n + 1):
                    hits.update(self.text_positions.get(query[a:b], ()))
        else:
            hits.update(j for j, t in enumerate(self.flat_texts) if len(t) >= 2 and t in query)
        return hits


_SEPARATOR = "\x00"


def _by_length(texts: list[str]) -> dict[int, tuple[list[str], list[int]]]:
    """The texts grouped by length, each with its positions in `texts`."""
    groups: dict[int, tuple[list[str], list[int]]] = {}
    for j, text in enumerate(texts):
        choices, positions = groups.setdefault(len(text), ([], []))
        choices.append(text)
        positions.append(j)
    return groups


def _joined(texts: list[str]) -> tuple[str, list[int]]:
    """The texts joined by a separator, and where each one starts."""
    starts, offset = [], 0
    for text in texts:
        starts.append(offset)
        offset += len(text) + 1
    return _SEPARATOR.join(texts), starts


def _positions(joined: str, starts: list[int], query: str) -> Iterator[int]:
    """Which of the joined texts hold `query` (each once)."""
    if not query:
        return
    if _SEPARATOR in query:  # (not from a keyboard) could span texts: split and look
        yield from (k for k, text in enumerate(joined.split(_SEPARATOR)) if query in text)
        return
    last = -1
    at = joined.find(query)
    while at != -1:
        k = bisect_right(starts, at) - 1
        if k != last:
            yield k
            last = k
        at = joined.find(query, at + 1)


def _sorted(found: list[Match]) -> list[Match]:
    found.sort(key=lambda m: (TIERS.index(m.how), -m.score, m.customer_id))
    return found


# Per database (its connection pool) and shop: (fingerprint, index). The fingerprint is read
# in the caller's own transaction on every use, so a customer added, renamed or forgotten by
# this or any other process (or earlier in this very transaction) is seen at once.
_CACHE: weakref.WeakKeyDictionary[Any, dict[int, tuple[tuple[Any, ...], MatchIndex]]] = (
    weakref.WeakKeyDictionary()
)
_CACHE_LOCK = threading.Lock()
_SHOPS_PER_DATABASE = 256


_TAGS = ShopMatchTag.__table__  # type: ignore[attr-defined]
# Built once: every name that is not exact reads it.
_FINGERPRINT = sa_select(_TAGS.c.tag).where(_TAGS.c.shop_id == bindparam("shop"))


def _fingerprint(session: Session, shop_id: int) -> tuple[Any, ...]:
    """Changes whenever any of the shop's customers is added, deleted or has a name, alias,
    phone, address, status or shop change: triggers give the shop a new random tag then
    (migration 0008). One primary-key read, however many customers the shop has."""
    session.flush()  # customers added or renamed in this session count (as under autoflush)
    return (session.execute(_FINGERPRINT, {"shop": shop_id}).scalar(),)


def match_index(
    *, session: Session, shop: Shop, fingerprint: tuple[Any, ...] | None = None
) -> MatchIndex:
    """The shop's match index, rebuilt only when its customers changed. `fingerprint`: the
    shop's, when the caller read it in this transaction already."""
    assert shop.id is not None
    bind = session.get_bind()
    pool = getattr(bind, "pool", None) or bind.engine.pool
    if fingerprint is None:
        fingerprint = _fingerprint(session, shop.id)
    with _CACHE_LOCK:
        entry = _CACHE.get(pool, {}).get(shop.id)
    if entry is not None and entry[0] == fingerprint:
        return entry[1]
    index = MatchIndex(_light_rows(session, shop.id))
    if _fingerprint(session, shop.id) != fingerprint:
        # Another writer committed between the two reads (PostgreSQL, read committed):
        # the index is right for now but must not be filed under the older fingerprint.
        return index
    with _CACHE_LOCK:
        shops = _CACHE.setdefault(pool, {})
        shops.pop(shop.id, None)
        while len(shops) >= _SHOPS_PER_DATABASE:
            shops.pop(next(iter(shops)))
        shops[shop.id] = (fingerprint, index)
    return index


# Built once: every message that names a customer runs it first. The customers of that
# exact name (as session objects; None on the row of a shop with no such name), and the
# shop's match tag with them: a name that is not exact goes on to the cached index without
# a second read to check it. (The tag row exists once the shop has a customer; a shop
# without one gets no row, and has no one to find.)
_EXACT = (
    sa_select(Customer, _TAGS.c.tag)
    .select_from(
        _TAGS.outerjoin(
            Customer,
            and_(
                col(Customer.shop_id) == _TAGS.c.shop_id,
                col(Customer.name) == bindparam("name"),
                col(Customer.status) != "forgotten",
            ),
        )
    )
    .where(_TAGS.c.shop_id == bindparam("shop"))
)


def match_customers(*, session: Session, shop: Shop, query: str) -> list[Match]:
    """Who `query` may mean in this shop, best tier only (exact names use the index)."""
    query = query.strip()
    if not query:
        return []
    session.flush()  # as the ORM's autoflush: customers added or renamed in this session
    rows = session.execute(_EXACT, {"shop": shop.id, "name": query}).all()
    exact: list[Customer] = [customer for customer, _ in rows if customer is not None]
    if exact:
        # Kept referenced by the session (its identity map holds objects only weakly), so
        # the caller's session.get(Customer, id) costs no second query.
        session.info.setdefault("matched_customers", []).extend(exact)
        return [Match(c.id, "name", query) for c in exact if c.id is not None]
    fingerprint = (rows[0][-1] if rows else None,)
    return match_index(session=session, shop=shop, fingerprint=fingerprint).rank(query)
