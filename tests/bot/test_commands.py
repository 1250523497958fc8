"""Every command end to end through the chat, on the demo shop (today: Wed 2026-06-17)."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import Engine, event
from sqlmodel import col, select

from app.customers.models import Customer, CustomerSummary
from app.db import read_session
from app.events.models import Event
from app.orders.models import Order
from tests.bot.test_chat_loop import counts
from tests.conftest import TEST_TODAY, ChatDriver
from tests.factories import make_customer, make_shop

NO_PENDING = '现在没有等您选择的问题。\n发"帮助"看看我能做什么。'


def customer(engine: Engine, name: str) -> Customer:
    with read_session(engine) as s:
        return s.exec(select(Customer).where(Customer.name == name)).one()


def last_order(engine: Engine) -> Order:
    with read_session(engine) as s:
        order = s.exec(select(Order).order_by(col(Order.id).desc())).first()
        assert order is not None
        return order


def events_of(engine: Engine, kind: str) -> list[Event]:
    with read_session(engine) as s:
        return list(s.exec(select(Event).where(Event.kind == kind).order_by(col(Event.id))))


# --- finding the customer -------------------------------------------------------------------


def test_alias_is_used_and_the_reply_says_who(chat: ChatDriver, engine: Engine) -> None:
    reply = chat.say("王丽 2桶")
    assert reply.startswith("已记:王姐(王丽) 2桶 36元(6月17日)✓")
    assert last_order(engine).customer_id == customer(engine, "王姐").id


def test_phone_tail_finds_the_customer(chat: ChatDriver, engine: Engine) -> None:
    assert chat.say("尾号6385 2桶").startswith("已记:王姐(尾号6385) 2桶")


def test_address_fragment_finds_the_card(chat: ChatDriver) -> None:
    assert chat.say("幸福小区3栋502").startswith("📇 王姐")


def test_same_sound_finds_the_only_customer_and_says_what_was_typed(chat: ChatDriver) -> None:
    # 汪静 is the only "wang jing"; 王静 is how a pinyin keyboard may spell her.
    assert chat.say("王静 1桶").startswith('已记:汪静(您写的"王静") 1桶')


def test_near_spelling_with_one_clear_winner(chat: ChatDriver) -> None:
    assert chat.say("3号李会计 5桶").startswith('已记:3号楼李会计(您写的"3号李会计") 5桶')


def test_typed_pinyin_matching_two_customers_asks_and_accepts_a_number(
    chat: ChatDriver, engine: Engine
) -> None:
    before = counts(engine)
    question = chat.say("wangjie 2桶")
    assert "是哪一位" in question
    assert "1. 王姐" in question and "2. 汪姐" in question
    assert counts(engine) == {**before, "pending": 1}  # only the question is stored
    assert chat.say("2").startswith("已记:汪姐 2桶")
    assert last_order(engine).customer_id == customer(engine, "汪姐").id


def test_exact_name_beats_a_same_sounding_one(chat: ChatDriver, engine: Engine) -> None:
    assert chat.say("汪姐 1桶").startswith("已记:汪姐 1桶")
    assert chat.say("王姐 1桶").startswith("已记:王姐 1桶")


def test_customers_of_another_shop_are_never_candidates(chat: ChatDriver, engine: Engine) -> None:
    other = make_shop(engine, chat.clock, slug="other")
    make_customer(engine, chat.clock, other, "隔壁老宋", phone="13900007777")
    assert "没找到" in chat.say("隔壁老宋")
    assert "还没有" in chat.say("尾号7777 1桶")


# --- orders ---------------------------------------------------------------------------------


def test_several_orders_in_one_message(chat: ChatDriver, engine: Engine) -> None:
    before = counts(engine)
    replies = chat.send("王姐2桶，3号楼李会计 5桶 100元")
    assert replies[0].startswith("已记:王姐 2桶 36元")
    assert replies[1].startswith("已记:3号楼李会计 5桶 100元")
    assert "撤销" in replies[1] and "撤销" not in replies[0]  # the undo hint comes once
    assert counts(engine)["orders"] == before["orders"] + 2


def test_unknown_names_in_a_multi_order_are_asked_one_at_a_time(
    chat: ChatDriver, engine: Engine
) -> None:
    before = counts(engine)
    first = chat.say("王姐2桶 赵六3桶 钱七1桶")
    assert first.startswith("已记:王姐 2桶")
    assert '还没有"赵六"' in first and "钱七" not in first
    second = chat.say("1")
    assert "已新建客户:赵六" in second and "已记:赵六 3桶 54元" in second
    assert '还没有"钱七"' in second
    third = chat.say("0")
    assert "已取消" in third
    after = counts(engine)
    assert after["orders"] == before["orders"] + 2
    assert after["customers"] == before["customers"] + 1


def test_forwarded_customer_message_for_tomorrow_is_todays_order(
    chat: ChatDriver, engine: Engine
) -> None:
    reply = chat.say("王姐:明天送两桶水哈")
    assert reply.startswith("已记:王姐 2桶 36元(6月17日)✓")
    assert "6月18日 送" in reply
    order = last_order(engine)
    assert order.order_date == TEST_TODAY
    assert order.delivery_on == TEST_TODAY + timedelta(days=1)
    assert order.raw_text == "王姐:明天送两桶水哈"


def test_order_dated_yesterday(chat: ChatDriver, engine: Engine) -> None:
    assert "(6月16日)" in chat.say("昨天 王姐 2桶 40元")
    order = last_order(engine)
    assert (order.order_date, order.amount_cents) == (date(2026, 6, 16), 4000)


def test_amount_after_unit_without_yuan(chat: ChatDriver, engine: Engine) -> None:
    assert chat.say("老张 3箱 45").startswith("已记:老张 3箱 45元")


def test_a_quantity_without_a_name_is_kept_as_a_note(chat: ChatDriver, engine: Engine) -> None:
    before = counts(engine)
    reply = chat.say("2桶")
    assert "记在店铺的记事里" in reply
    assert counts(engine)["orders"] == before["orders"]
    assert events_of(engine, "note")[-1].data == {"text": "2桶"}


# --- water tickets and bucket deposits ------------------------------------------------------


def test_tickets_bought_then_used(chat: ChatDriver, engine: Engine) -> None:
    bought = chat.say("王姐 买水票 20张 300元")
    assert bought.startswith("已记:王姐 买水票 20张 300元 ✓")
    assert "共 20 张" in bought
    used = chat.say("王姐 用水票 2桶")
    assert used.startswith("已记:王姐 2桶 用水票付")
    assert "还剩 18 张" in used
    order = last_order(engine)
    assert (order.amount_cents, order.paid_by, order.quantity) == (0, "tickets", 2)
    changes = [e.data["change"] for e in events_of(engine, "tickets")]
    assert changes == [20, -2]
    assert "水票余 18 张" in chat.say("王姐")


def test_deposit_and_return_warns_of_leaving(chat: ChatDriver, engine: Engine) -> None:
    assert chat.say("王姐 押桶 2个 100元").startswith("已记:王姐 押桶 2个 押金100元 ✓")
    returned = chat.say("王姐 退桶 1个")
    assert returned.startswith("已记:王姐 退桶 1个 ✓")
    assert "还押着 1 个桶" in returned and "不打算再订" in returned
    data = [e.data for e in events_of(engine, "deposit")]
    assert data == [
        {"change": 2, "amount_cents": 10000, "returned": False},
        {"change": -1, "amount_cents": None, "returned": True},
    ]


def test_deposit_return_without_a_count_asks(chat: ChatDriver, engine: Engine) -> None:
    before = counts(engine)
    assert "退了几个桶" in chat.say("王姐 退桶")
    assert counts(engine) == before


# --- what happened with a customer ----------------------------------------------------------


def test_reactions_are_interaction_events(chat: ChatDriver, engine: Engine) -> None:
    assert chat.say("王姐 回复了").startswith("已记:王姐 回复了")
    assert chat.say("王姐 没回").startswith("已记:王姐 没回")
    assert chat.say("王姐 冷淡").startswith("已记:王姐 态度冷淡")
    reactions = [(e.data["reaction"], e.customer_id) for e in events_of(engine, "interaction")]
    wang = customer(engine, "王姐").id
    assert reactions == [("warm", wang), ("none", wang), ("cold", wang)]


def test_lost_with_reason_then_recovered(chat: ChatDriver, engine: Engine) -> None:
    reply = chat.say("王姐 流失 送水慢")
    assert reply.startswith("已记:王姐 流失,原因:服务不及时 ✓")
    assert customer(engine, "王姐").status == "lost"
    assert "王姐 " not in chat.say("今天该跟进谁")
    assert chat.say("王姐 已挽回").startswith("已记:王姐 已挽回")
    assert customer(engine, "王姐").status == "active"
    outcomes = [e.data["outcome"] for e in events_of(engine, "outcome")]
    assert outcomes == ["lost", "recovered"]


def test_lost_without_a_reason_asks_from_the_shops_list(chat: ChatDriver, engine: Engine) -> None:
    question = chat.say("王姐 流失")
    assert "1. 价格" in question and "5. 搬家/倒闭" in question
    assert customer(engine, "王姐").status == "active"
    assert chat.say("5").startswith("已记:王姐 流失,原因:搬家/倒闭")
    assert events_of(engine, "outcome")[-1].data["unavoidable"] is True


def test_pause_until_month_end_takes_them_off_the_list(chat: ChatDriver, engine: Engine) -> None:
    first_line = next(line for line in chat.say("今天该跟进谁").splitlines() if "天没订" in line)
    name = first_line.split(". ", 1)[1][1:].split(" ", 1)[0]  # "1. 🔴吴玉兰 20天没订…"
    reply = chat.say(f"{name} 暂停 到月底")
    assert reply.startswith(f"已记:{name} 暂停到 6月30日(共14天)✓")
    assert customer(engine, name).paused_until == date(2026, 6, 30)
    assert f"{name} " not in chat.say("今天该跟进谁")


def test_pause_without_a_date_asks(chat: ChatDriver, engine: Engine) -> None:
    before = counts(engine)
    assert "暂停到哪天" in chat.say("王姐 暂停")
    assert counts(engine) == before


def test_complaint_until_resolved(chat: ChatDriver, engine: Engine) -> None:
    assert chat.say("王姐 投诉 送水慢").startswith('已记:王姐 投诉"送水慢" ✓')
    assert "1 条投诉没解决" in chat.say("王姐")
    assert chat.say("王姐 投诉已解决").startswith("已记:王姐 的投诉已解决")
    assert "投诉没解决" not in chat.say("王姐")
    assert "没有没解决的投诉" in chat.say("王姐 投诉已解决")


def test_satisfaction_score(chat: ChatDriver, engine: Engine) -> None:
    reply = chat.say("王姐 满意度 6")
    assert reply.startswith("已记:王姐 满意度 6分 ✓") and "低于8分" in reply
    assert events_of(engine, "satisfaction")[-1].data == {"score": 6, "text": "6"}
    before = counts(engine)
    assert "0 到 10" in chat.say("王姐 满意度 12")
    assert counts(engine) == before


def test_command_for_two_candidates_asks_then_acts(chat: ChatDriver, engine: Engine) -> None:
    assert "是哪一位" in chat.say("wangjie 满意度 9")
    assert chat.say("1").startswith("已记:王姐 满意度 9分")


def test_command_without_a_name_asks_for_one(chat: ChatDriver, engine: Engine) -> None:
    before = counts(engine)
    assert "是哪位客户" in chat.say("流失·价格")
    assert counts(engine) == before


# --- undo -----------------------------------------------------------------------------------


def test_undo_removes_the_order_and_restores_the_summary(chat: ChatDriver, engine: Engine) -> None:
    with read_session(engine) as s:
        before = s.get(CustomerSummary, customer(engine, "王姐").id)
    orders_before = counts(engine)["orders"]
    assert "撤销" in chat.say("王姐 2桶")
    reply = chat.say("撤销")
    assert reply.startswith('已撤销:"王姐 2桶" ✓')
    assert "删掉了 王姐 2桶(6月17日)" in reply
    assert counts(engine)["orders"] == orders_before
    with read_session(engine) as s:
        after = s.get(CustomerSummary, customer(engine, "王姐").id)
    assert before is not None and after is not None
    assert (after.last_order_on, after.order_count) == (before.last_order_on, before.order_count)
    undo = events_of(engine, "undo")[-1]
    assert undo.data["orders"][0]["quantity"] == 2
    assert "最近没有可以撤销的" in chat.say("撤销")


def test_undo_restores_pause_and_status_and_readers_skip_the_event(
    chat: ChatDriver, engine: Engine
) -> None:
    chat.say("王姐 暂停 两周")
    chat.say("王姐 流失 价格")
    chat.say("撤销")
    assert customer(engine, "王姐").status == "active"
    assert customer(engine, "王姐").paused_until == date(2026, 7, 1)
    chat.say("撤销")
    assert customer(engine, "王姐").paused_until is None
    # The undone mark is not among the month's losses (the engine's own judgements are).
    assert "· 价格" not in chat.say("本月统计")


def test_undo_of_a_multi_order_message_takes_back_all_of_it(
    chat: ChatDriver, engine: Engine
) -> None:
    before = counts(engine)["orders"]
    chat.say("王姐2桶 老张1桶")
    assert "删掉了 老张 1桶" in chat.say("撤销")
    assert counts(engine)["orders"] == before


def test_undo_of_a_created_customer_hides_them(chat: ChatDriver, engine: Engine) -> None:
    chat.say("赵六 3桶")
    chat.say("1")
    chat.say("撤销")
    assert customer(engine, "赵六").status == "forgotten"
    assert "没找到" in chat.say("赵六")


def test_undo_after_the_window_is_refused(chat: ChatDriver, engine: Engine) -> None:
    chat.say("王姐 2桶")
    orders = counts(engine)["orders"]
    chat.clock.advance(minutes=11)
    reply = chat.say("撤销")
    assert "超过10分钟" in reply
    assert counts(engine)["orders"] == orders


def test_undo_skips_notes_and_reaches_the_order(chat: ChatDriver, engine: Engine) -> None:
    chat.say("王姐 2桶")
    chat.say("asdf qwer")
    assert "删掉了 王姐 2桶" in chat.say("撤销")


# --- help -----------------------------------------------------------------------------------


def test_help_lists_the_new_commands(chat: ChatDriver) -> None:
    reply = chat.say("帮助")
    for example in ("王姐 回复了", "王姐 流失 价格", "王姐 暂停 到月底", "撤销", "本月统计"):
        assert example in reply


def test_a_new_message_clears_a_stored_question_and_only_then_deletes(
    chat: ChatDriver, engine: Engine
) -> None:
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        chat.say("王姐 2桶")  # no question stored: the inbox read says so, no DELETE runs
        assert not [s for s in statements if s.startswith("DELETE FROM pending_question")]
        assert "是哪一位" in chat.say("wangjie 2桶")
        assert counts(engine)["pending"] == 1
        statements.clear()
        assert chat.say("王姐 回复了").startswith("已记")  # a new request supersedes it
        assert [s for s in statements if s.startswith("DELETE FROM pending_question")]
        assert counts(engine)["pending"] == 0
        # The old question is gone: a stray "1" now records nothing.
        before = counts(engine)
        assert chat.say("1") == NO_PENDING
        assert counts(engine) == before
    finally:
        event.remove(engine, "before_cursor_execute", seen)
