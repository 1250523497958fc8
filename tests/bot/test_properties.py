"""Random text and random Unicode: the parser never fails, and handle() writes nothing
that the message did not ask for."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from app.bot.core import vocabulary
from app.bot.parse import parse
from tests.bot.test_chat_loop import counts
from tests.conftest import TEST_TODAY, ChatDriver

WATER = vocabulary("water", "桶")
# Intents allowed to create orders or customers (after a clear match or a confirmed question).
WRITING = frozenset({"order", "tickets_use", "new_customer", "choice"})

# Owner-like text: names, numerals, units, command words, punctuation, emoji, full-width.
_PIECES = st.sampled_from(
    [
        "王姐",
        "老张",
        "汪",
        "李会计",
        "2",
        "两",
        "十二",
        "３",
        "桶",
        "箱",
        "张",
        "个",
        "元",
        "块",
        "¥",
        " ",
        ",",
        "，",
        ":",
        "：",
        "、",
        "\n",
        "明天",
        "昨天",
        "周三",
        "12号",
        "号",
        "流失",
        "价格",
        "暂停",
        "到月底",
        "投诉",
        "满意度",
        "撤销",
        "水票",
        "押桶",
        "退桶",
        "回复了",
        "😀",
        "👍",
        "?",
        "！",
        "[",
        "】",
        "新客户",
        "尾号",
        "1380000",
        "0",
        "1",
        "wang",
        "jie",
    ]
)
owner_like = st.lists(_PIECES, max_size=12).map("".join)
any_text = st.text(max_size=80)


@given(st.one_of(any_text, owner_like))
@settings(max_examples=600, deadline=None)
def test_parser_never_raises_and_always_names_a_registered_intent(text: str) -> None:
    from app.bot.registry import registry

    intent = parse(text, vocab=WATER, today=TEST_TODAY)
    assert registry.get(intent.kind) is not None
    for item in intent.items:
        assert item.quantity > 0 and item.customer


@given(texts=st.lists(st.one_of(any_text, owner_like), min_size=1, max_size=4))
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_handle_never_raises_and_writes_only_when_asked(
    chat: ChatDriver, engine: Engine, texts: list[str]
) -> None:
    for text in texts:
        kind = parse(text, vocab=WATER, today=TEST_TODAY).kind
        before = counts(engine)
        replies = chat.send(text)
        assert replies and all(isinstance(r, str) and r for r in replies)
        after = counts(engine)
        if kind not in WRITING:
            assert after["orders"] <= before["orders"], text  # only 撤销 may remove one
            assert after["customers"] == before["customers"], text
        if kind in ("empty", "too_long", "help", "followups", "card", "cancel"):
            assert after["events"] == before["events"], text
