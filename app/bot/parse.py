"""Reading what the owner typed. All Chinese parsing lives in this module.

`parse` turns a message into an Intent: a command word, an order, a customer name to
look up, an answer to a question the bot asked, or "not understood". It never writes.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field

import cn2an

MAX_MESSAGE_CHARS = 500
MAX_NAME_CHARS = 20
DEFAULT_UNITS = ("桶", "箱", "瓶", "次", "单", "件", "个")
CANCEL_WORDS = frozenset({"取消", "算了", "不用了", "不要了", "0"})

# Trailing punctuation and decoration owners add (????, ~, 。, !, emoji) that carry no meaning.
_TRAILING_NOISE = re.compile(r"[\s?？!！。.,，~～…、;；:：\U0001F000-\U0001FAFF\u2600-\u27BF]+$")
_LEADING_NOISE = re.compile(r"^[\s,，.。、;；:：\U0001F000-\U0001FAFF\u2600-\u27BF]+")
_CN_NUMBER = "零一二两俩三四五六七八九十百"
_AMOUNT = re.compile(r"^(?:¥|￥)?\s*(\d+(?:\.\d{1,2})?)\s*(?:元|块钱|块)?$")
_PHONE = re.compile(r"1[3-9]\d{9}")


@dataclass(frozen=True)
class OrderItem:
    """One customer's order as read from the message."""

    customer: str
    quantity: int
    unit: str
    amount_cents: int | None = None


@dataclass(frozen=True)
class Intent:
    """What the message asks for; `kind` is a command name from the registry or a built-in."""

    kind: str
    text: str
    args: str = ""
    items: tuple[OrderItem, ...] = ()
    number: int | None = None
    fields: Mapping[str, str | None] = field(default_factory=dict)


def normalize(text: str) -> str:
    """Full-width to half-width (NFKC), whitespace collapsed, decoration trimmed."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C" or ch in "\n\t")
    text = re.sub(r"\s+", " ", text).strip()
    text = _TRAILING_NOISE.sub("", text)
    return _LEADING_NOISE.sub("", text)


def chinese_quantity(token: str) -> int | None:
    """'2' -> 2, '两' -> 2, '俩' -> 2, '十二' -> 12; None when it is not a count."""
    if token.isdigit():
        return int(token)
    token = token.replace("俩", "两")
    try:
        value = cn2an.cn2an(token, "smart")
    except (ValueError, KeyError):
        return None
    return int(value) if float(value).is_integer() and value > 0 else None


def parse_amount_cents(token: str) -> int | None:
    """'36', '36元', '¥36.5', '45块' -> cents; None when it is not an amount."""
    match = _AMOUNT.match(token.strip())
    if not match:
        return None
    return round(float(match.group(1)) * 100)


def _order_pattern(units: tuple[str, ...]) -> re.Pattern[str]:
    unit_alt = "|".join(re.escape(u) for u in units)
    return re.compile(
        rf"^(?P<name>.+?)\s*(?:送|要|订|买|来)?\s*"
        rf"(?P<qty>\d+|[{_CN_NUMBER}]+)\s*(?P<unit>{unit_alt})"
        rf"(?:\s*(?P<amount>(?:¥|￥)?\s*\d+(?:\.\d{{1,2}})?\s*(?:元|块钱|块)?))?$"
    )


def _parse_order(text: str, units: tuple[str, ...]) -> OrderItem | None:
    match = _order_pattern(units).match(text)
    if not match:
        return None
    name = match.group("name").strip()
    quantity = chinese_quantity(match.group("qty"))
    if not name or quantity is None or len(name) > MAX_NAME_CHARS:
        return None
    amount = parse_amount_cents(match.group("amount")) if match.group("amount") else None
    return OrderItem(
        customer=name, quantity=quantity, unit=match.group("unit"), amount_cents=amount
    )


def _parse_new_customer(args: str) -> dict[str, str | None]:
    """'王姐 13800001234 幸福小区3栋' -> name, phone, address (phone and address optional)."""
    phone_match = _PHONE.search(args)
    phone = phone_match.group(0) if phone_match else None
    rest = _PHONE.sub(" ", args) if phone else args
    parts = rest.split()
    name = parts[0] if parts else ""
    address = " ".join(parts[1:]) or None
    return {"name": name, "phone": phone, "address": address}


def _looks_like_name(text: str) -> bool:
    # A name is short and holds at least one CJK character or letter; "？？" or "123" is not.
    if not 1 <= len(text) <= MAX_NAME_CHARS or " " in text:
        return False
    return any(unicodedata.category(ch).startswith("L") for ch in text)


def parse(
    text: str,
    *,
    phrases: Mapping[str, str],
    prefixes: Mapping[str, str],
    units: tuple[str, ...] = DEFAULT_UNITS,
) -> Intent:
    """Classify one message; `phrases`/`prefixes` map command words to registry names."""
    raw = text
    if len(raw) > MAX_MESSAGE_CHARS:
        return Intent(kind="too_long", text=raw[:MAX_MESSAGE_CHARS])
    clean = normalize(raw)
    if not clean:
        return Intent(kind="empty", text=raw)
    lowered = clean.lower()
    if lowered in phrases:
        return Intent(kind=phrases[lowered], text=clean)
    for word, kind in prefixes.items():
        if lowered.startswith(word) and len(lowered) > len(word):
            args = clean[len(word) :].strip(" :：,，")
            fields = _parse_new_customer(args) if kind == "new_customer" else {}
            return Intent(kind=kind, text=clean, args=args, fields=fields)
    if clean in CANCEL_WORDS:
        return Intent(kind="cancel", text=clean)
    if clean.isdigit() and len(clean) <= 2:
        return Intent(kind="choice", text=clean, number=int(clean))
    order = _parse_order(clean, units)
    if order is not None:
        return Intent(kind="order", text=clean, items=(order,))
    if _looks_like_name(clean):
        return Intent(kind="card", text=clean, args=clean)
    return Intent(kind="unknown", text=clean)
