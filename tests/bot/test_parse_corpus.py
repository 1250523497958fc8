"""The corpus: every message is read into exactly the intent and fields listed for it."""

from __future__ import annotations

from typing import Any

import pytest

from app.bot.core import vocabulary
from app.bot.parse import parse
from tests.bot.parse_corpus import CASES
from tests.conftest import TEST_TODAY

WATER = vocabulary("water", "桶")


def test_the_corpus_is_large_and_has_no_duplicates() -> None:
    messages = [m for m, _ in CASES]
    assert len(messages) >= 200
    assert len(set(messages)) == len(messages)


@pytest.mark.parametrize(("message", "expected"), CASES, ids=[repr(m) for m, _ in CASES])
def test_message_is_understood(message: str, expected: dict[str, Any]) -> None:
    assert parse(message, vocab=WATER, today=TEST_TODAY).describe() == expected


@pytest.mark.parametrize(
    ("industry", "unit", "message", "expected_unit"),
    [
        ("car", "次", "王先生 1次 300元", "次"),
        ("car", "次", "王先生 保养1单", "单"),
        ("retail", "单", "小李 3件", "件"),
        ("retail", "单", "小李 2单 88", "单"),
    ],
)
def test_units_of_other_industries(
    industry: str, unit: str, message: str, expected_unit: str
) -> None:
    intent = parse(message, vocab=vocabulary(industry, unit), today=TEST_TODAY)
    assert intent.kind == "order"
    assert intent.items[0].unit == expected_unit


def test_car_shop_reasons_use_its_own_list() -> None:
    intent = parse("王先生 流失 忘了", vocab=vocabulary("car", "次"), today=TEST_TODAY)
    assert intent.fields["reason"] == "忘了"
