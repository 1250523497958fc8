"""The owner's daily loop through the bot core, on the demo shop."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, func
from sqlmodel import select

from app.bot.models import PendingQuestion
from app.customers.models import Customer, CustomerSummary
from app.db import read_session
from app.events.models import Event, InboxMessage
from app.orders.models import Order
from tests.conftest import TEST_TODAY, ChatDriver


def counts(engine: Engine) -> dict[str, int]:
    """Rows of every business table: what "changes nothing" is checked against."""
    with read_session(engine) as s:
        return {
            "customers": s.exec(select(func.count()).select_from(Customer)).one(),
            "orders": s.exec(select(func.count()).select_from(Order)).one(),
            "events": s.exec(select(func.count()).select_from(Event)).one(),
            "pending": s.exec(select(func.count()).select_from(PendingQuestion)).one(),
        }


def wang_summary(engine: Engine) -> CustomerSummary:
    with read_session(engine) as s:
        wang = s.exec(select(Customer).where(Customer.name == "王姐")).one()
        summary = s.get(CustomerSummary, wang.id)
        assert summary is not None
        return summary


def test_followup_list_shows_wang_jie_38_days_over_her_25(chat: ChatDriver) -> None:
    reply = chat.say("今天该跟进谁")
    # Yellow: past 1.5x her usual 25 days. Her spread is only estimated (the predictive law is
    # Student t), so 13 days late is a warning, not yet "probably gone".
    assert "🟡王姐 38天没订(平时25天)" in reply
    assert reply.startswith("今天该跟进")
    assert "王姐 38天没订(平时25天)" in reply.replace("🟡", "")


def test_followup_list_variants_give_the_same_list(chat: ChatDriver) -> None:
    first = chat.say("今天该跟进谁")
    for variant in ("跟进名单", "谁该联系了", "今天该跟进谁?", "今天该跟进谁？！", " 跟进名单 "):
        assert chat.say(variant) == first


def test_followup_list_ranks_by_value_at_risk(chat: ChatDriver, engine: Engine) -> None:
    lines = [line for line in chat.say("今天该跟进谁").splitlines() if "天没订" in line]
    assert lines, "demo shop should have customers to follow up"
    names = [line.split(". ", 1)[1].lstrip("🔴🟡").split(" ")[0] for line in lines]
    with read_session(engine) as s:
        at_stake = {
            c.name: summary.value_at_risk_cents
            for summary, c in s.exec(
                select(CustomerSummary, Customer).join(
                    Customer, Customer.id == CustomerSummary.customer_id  # type: ignore[arg-type]
                )
            )
        }
    values = [at_stake[name] for name in names]
    assert values == sorted(values, reverse=True)


def test_order_is_recorded_and_reply_says_exactly_what(chat: ChatDriver, engine: Engine) -> None:
    before = counts(engine)
    reply = chat.say("王姐 2桶")
    assert reply.startswith("已记:王姐 2桶 36元(6月17日)✓")
    assert "隔了38天" in reply
    after = counts(engine)
    assert after["orders"] == before["orders"] + 1
    with read_session(engine) as s:
        order = s.exec(select(Order).order_by(Order.id.desc())).first()  # type: ignore[union-attr]
        assert order is not None
        assert (order.quantity, order.unit, order.amount_cents) == (2, "桶", 3600)
        assert order.order_date == TEST_TODAY
        assert order.raw_text == "王姐 2桶"
        assert order.inbox_id is not None


def test_order_updates_the_summary_and_takes_her_off_the_list(
    chat: ChatDriver, engine: Engine
) -> None:
    before = wang_summary(engine)
    chat.say("王姐 2桶")
    after = wang_summary(engine)
    assert after.order_count == before.order_count + 1
    assert after.last_order_on == TEST_TODAY
    assert after.stage == "active"
    assert after.check_on is not None and after.check_on > TEST_TODAY
    assert "王姐" not in chat.say("今天该跟进谁")


def test_order_with_amount_and_chinese_numeral(chat: ChatDriver, engine: Engine) -> None:
    assert chat.say("王姐两桶").startswith("已记:王姐 2桶 36元")
    assert chat.say("3号楼李会计 5桶 100元").startswith("已记:3号楼李会计 5桶 100元")
    assert chat.say("３号楼李会计 ５桶").startswith("已记:3号楼李会计 5桶 90元")


def test_card_shows_recent_orders_interval_and_stage(chat: ChatDriver) -> None:
    card = chat.say("王姐")
    assert card.startswith("📇 王姐 · 需关注")
    assert "平时约25天订一次" in card
    assert "已38天" in card
    assert "最近订单" in card
    # The phone is masked: three digits, four stars, four digits.
    phone_line = next(line for line in card.splitlines() if "📞" in line)
    assert "****" in phone_line


def test_card_by_alias_finds_the_same_customer(chat: ChatDriver, engine: Engine) -> None:
    with read_session(engine) as s:
        wang = s.exec(select(Customer).where(Customer.name == "王姐")).one()
    assert wang.aliases, "demo 王姐 has a full-name alias"
    assert chat.say(wang.aliases[0]).startswith("📇 王姐")


def test_help_lists_every_registered_command(chat: ChatDriver) -> None:
    from app.bot.registry import registry

    reply = chat.say("帮助")
    for command in registry.listed():
        assert command.example in reply
        assert command.summary in reply


def test_empty_messages_get_help_and_change_nothing(chat: ChatDriver, engine: Engine) -> None:
    before = counts(engine)
    for text in ["", "   ", "？？？", "😀😀"]:
        reply = chat.say(text)
        assert "今天该跟进谁" in reply, text  # every such reply shows what to type
        assert "已记" not in reply
    assert counts(engine) == before


def test_garbled_messages_are_kept_as_a_note_and_change_nothing_else(
    chat: ChatDriver, engine: Engine
) -> None:
    garbled = ["%%% ###", "asdf qwer zxcv", "12345678"]
    before = counts(engine)
    for text in garbled:
        reply = chat.say(text)
        assert "今天该跟进谁" in reply, text
        assert "记在店铺的记事里" in reply and "已记:" not in reply
    assert counts(engine) == {**before, "events": before["events"] + len(garbled)}
    with read_session(engine) as s:
        notes = s.exec(select(Event).where(Event.kind == "note").order_by(Event.id)).all()  # type: ignore[arg-type]
    assert [(n.customer_id, n.data) for n in notes] == [(None, {"text": t}) for t in garbled]


def test_unknown_name_lookup_says_so_and_changes_nothing(chat: ChatDriver, engine: Engine) -> None:
    before = counts(engine)
    reply = chat.say("赵六")
    assert reply.startswith('没找到叫"赵六"的客户')
    assert counts(engine) == before


def test_order_for_unknown_customer_asks_before_creating(chat: ChatDriver, engine: Engine) -> None:
    before = counts(engine)
    reply = chat.say("赵六 3桶")
    assert '还没有"赵六"这位客户' in reply
    assert counts(engine)["customers"] == before["customers"]
    assert counts(engine)["orders"] == before["orders"]
    confirmed = chat.say("1")
    assert "已新建客户:赵六" in confirmed
    assert "已记:赵六 3桶 54元" in confirmed
    after = counts(engine)
    assert after["customers"] == before["customers"] + 1
    assert after["orders"] == before["orders"] + 1
    assert chat.say("赵六").startswith("📇 赵六")


def test_declining_the_new_customer_records_nothing(chat: ChatDriver, engine: Engine) -> None:
    before = counts(engine)
    chat.say("赵六 3桶")
    assert "已取消" in chat.say("0")
    assert counts(engine) == before
    assert "没有等您选择" in chat.say("1")  # the question was answered; "1" is now stray
    assert counts(engine) == before


def test_a_new_message_supersedes_an_open_question(chat: ChatDriver, engine: Engine) -> None:
    chat.say("赵六 3桶")
    chat.say("王姐")
    assert "没有等您选择" in chat.say("1")
    with read_session(engine) as s:
        assert s.exec(select(Customer).where(Customer.name == "赵六")).first() is None


def test_an_expired_question_cannot_be_answered(chat: ChatDriver, engine: Engine) -> None:
    chat.say("赵六 3桶")
    chat.clock.advance(seconds=chat.settings.pending_ttl_seconds + 1)
    assert "没有等您选择" in chat.say("1")
    with read_session(engine) as s:
        assert s.exec(select(Customer).where(Customer.name == "赵六")).first() is None


def test_ambiguous_name_asks_which_and_number_picks(chat: ChatDriver, engine: Engine) -> None:
    chat.say("新客户 王姐姐 13900001111 阳光花园1栋")
    reply = chat.say("王姐姐 1桶")  # exact match: no question
    assert reply.startswith("已记:王姐姐 1桶")
    question = chat.say("姐 1桶")  # matches several customers whose names contain 姐
    assert "是哪一位" in question
    options = [line for line in question.splitlines() if line[:1].isdigit()]
    assert len(options) >= 2
    assert "回复 1 到" in chat.say("99")  # out of range: asked again, nothing written
    chosen_name = options[1].split(". ", 1)[1].split(" · ")[0]
    assert chat.say("2").startswith(f"已记:{chosen_name} 1桶")


def test_new_customer_with_phone_and_address_masks_the_phone(
    chat: ChatDriver, engine: Engine
) -> None:
    reply = chat.say("新客户 赵六 13800001234 幸福小区3栋")
    assert "138****1234" in reply and "13800001234" not in reply
    with read_session(engine) as s:
        zhao = s.exec(select(Customer).where(Customer.name == "赵六")).one()
        assert zhao.phone == "13800001234"  # stored whole so a tap can dial it
        assert zhao.address == "幸福小区3栋"
    assert "已经有一位叫" in chat.say("新客户 赵六")


def test_repeated_delivery_of_one_message_records_one_order(
    chat: ChatDriver, engine: Engine
) -> None:
    before = counts(engine)
    first = chat.send("王姐 2桶", msg_id="same-message-0001")
    again = chat.send("王姐 2桶", msg_id="same-message-0001")
    assert first == again
    assert counts(engine)["orders"] == before["orders"] + 1
    with read_session(engine) as s:
        assert s.exec(select(func.count()).select_from(InboxMessage)).one() == 1


def test_overlong_message_is_refused_without_writing(chat: ChatDriver, engine: Engine) -> None:
    before = counts(engine)
    assert "太长" in chat.say("王姐 2桶" * 200)
    assert counts(engine) == before


def test_shop_time_decides_the_order_date(chat: ChatDriver) -> None:
    # 23:30 UTC on the 17th is 07:30 on the 18th in Shanghai: the order is the 18th's.
    chat.clock.current = chat.clock.current.replace(hour=23, minute=30) - timedelta(hours=0)
    assert "(6月18日)" in chat.say("王姐 2桶")


def test_card_right_after_an_order_says_today(chat: ChatDriver) -> None:
    chat.say("王姐 2桶")
    card = chat.say("王姐")
    assert "上次下单 6月17日,就是今天" in card
    assert card.startswith("📇 王姐 · 正常")
