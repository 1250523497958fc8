"""The owner's own calls (issue 17): set a customer aside and bring them back, a value class
by hand, the reminder thresholds; and the order words that used to go wrong (上周拿了,
一桶半). Through the chat on the demo shop (today: Wed 2026-06-17), read back from the rows."""

from __future__ import annotations

import re
from datetime import date

from sqlalchemy import Engine
from sqlmodel import col, select

from app.clock import FixedClock
from app.customers.models import OWNER_CLASS_TAG, Customer
from app.customers.risk import rescore_shop
from app.db import read_session, write_session
from app.events.models import Event
from app.orders.models import Order
from app.outreach.service import plan_day
from app.shops.models import Shop
from tests.bot.test_chat_loop import counts
from tests.conftest import TEST_TODAY, ChatDriver


def customer(engine: Engine, name: str) -> Customer:
    with read_session(engine) as s:
        return s.exec(select(Customer).where(Customer.name == name)).one()


def shop_settings(engine: Engine, shop: Shop) -> dict[str, object]:
    with read_session(engine) as s:
        stored = s.get(Shop, shop.id)
        assert stored is not None
        return dict(stored.settings)


def orders_of(engine: Engine, name: str) -> list[Order]:
    cid = customer(engine, name).id
    with read_session(engine) as s:
        return list(
            s.exec(select(Order).where(Order.customer_id == cid).order_by(col(Order.id).desc()))
        )


def listed(chat: ChatDriver, name: str) -> bool:
    """Whether 今天该跟进谁 names the customer (the list shows up to 20; the demo has ~18)."""
    line = re.compile(rf"^\d+\. \W*{re.escape(name)} ", re.MULTILINE)  # "3. 🔴顾嫂 50天没订…"
    return line.search(chat.say("今天该跟进谁")) is not None


def planned(engine: Engine, shop: Shop, name: str) -> bool:
    """Whether the morning digest's plan for today holds the customer."""
    with read_session(engine) as s:
        stored = s.get(Shop, shop.id)
        assert stored is not None
        return name in {i.customer.name for i in plan_day(session=s, shop=stored, today=TEST_TODAY)}


def nightly_rescore(engine: Engine, shop: Shop, clock: FixedClock) -> None:
    with write_session(engine) as s:
        stored = s.get(Shop, shop.id)
        assert stored is not None
        rescore_shop(session=s, shop=stored, clock=clock)


# --- set aside and bring back -----------------------------------------------------------------


def test_set_aside_takes_the_customer_off_the_list_and_back_on_after_restore(
    chat: ChatDriver, engine: Engine
) -> None:
    assert listed(chat, "顾嫂")
    reply = chat.say("顾嫂 不用追了")
    assert reply.startswith("已记:顾嫂 不用追了(D类)✓")
    assert "跟进名单、早上的提醒、本周名单里都不会再有" in reply
    assert customer(engine, "顾嫂").value_class == "D"
    assert not listed(chat, "顾嫂")

    back = chat.say("顾嫂 恢复提醒")
    assert back.startswith("已记:顾嫂 恢复提醒 ✓ 按B类算。")  # the class she had
    assert customer(engine, "顾嫂").value_class == "B"
    assert listed(chat, "顾嫂")


def test_set_aside_customer_is_off_the_morning_digest_until_restored(
    chat: ChatDriver, engine: Engine, demo_shop: Shop
) -> None:
    assert planned(engine, demo_shop, "顾嫂")
    chat.say("顾嫂 不用提醒了")
    assert not planned(engine, demo_shop, "顾嫂")
    chat.say("顾嫂 恢复")
    assert planned(engine, demo_shop, "顾嫂")


def test_d_class_sets_aside_like_the_words_do(chat: ChatDriver, engine: Engine) -> None:
    assert chat.say("顾嫂 D类").startswith("已记:顾嫂 不用追了(D类)✓")
    assert customer(engine, "顾嫂").value_class == "D"
    assert not listed(chat, "顾嫂")


def test_restore_goes_back_to_the_class_the_customer_had(chat: ChatDriver, engine: Engine) -> None:
    assert customer(engine, "雷会计").value_class == "A"  # the engine's class
    chat.say("雷会计 不用追了")
    assert chat.say("雷会计 恢复提醒").startswith("已记:雷会计 恢复提醒 ✓ 按A类算。")
    restored = customer(engine, "雷会计")
    assert restored.value_class == "A"
    assert OWNER_CLASS_TAG not in restored.tags  # still the engine's to rank


def test_restore_of_a_customer_never_set_aside_changes_nothing(
    chat: ChatDriver, engine: Engine
) -> None:
    before = counts(engine)
    assert chat.say("王姐 恢复提醒") == "王姐 没有设成不追,一直在提醒里(C类),这次没有改动。"
    assert counts(engine) == before


def test_setting_aside_twice_records_once(chat: ChatDriver, engine: Engine) -> None:
    chat.say("顾嫂 不用追了")
    before = counts(engine)
    assert chat.say("顾嫂 不用追了") == "顾嫂 本来就是D类(不用追),这次没有改动。"
    assert counts(engine) == before


def test_undo_of_set_aside_puts_the_customer_back_on_the_list(
    chat: ChatDriver, engine: Engine
) -> None:
    chat.say("顾嫂 不用追了")
    assert chat.say("撤销").startswith('已撤销:"顾嫂 不用追了" ✓')
    assert customer(engine, "顾嫂").value_class == "B"
    assert listed(chat, "顾嫂")


def test_undo_of_restore_sets_the_customer_aside_again(chat: ChatDriver, engine: Engine) -> None:
    chat.say("顾嫂 不用追了")
    chat.say("顾嫂 恢复提醒")
    assert chat.say("撤销").startswith('已撤销:"顾嫂 恢复提醒" ✓')
    assert customer(engine, "顾嫂").value_class == "D"
    assert not listed(chat, "顾嫂")


# --- value class by hand ----------------------------------------------------------------------


def test_hand_set_class_is_recorded_and_said_back(chat: ChatDriver, engine: Engine) -> None:
    reply = chat.say("王姐 A类")
    assert reply.startswith("已记:王姐 定为A类 ✓(原来是C类)\n这是您定的,系统以后不会自动改。")
    wang = customer(engine, "王姐")
    assert wang.value_class == "A"
    assert OWNER_CLASS_TAG in wang.tags
    with read_session(engine) as s:
        event = s.exec(select(Event).where(Event.kind == "value_class")).one()
    assert event.customer_id == wang.id
    assert event.data["value_class"] == "A"
    assert event.data["before"] == {"value_class": "C", "by_owner": False}


def test_hand_set_class_survives_the_nightly_rescore(
    chat: ChatDriver, engine: Engine, demo_shop: Shop, clock: FixedClock
) -> None:
    chat.say("雷会计 C类")  # the engine ranks him A
    nightly_rescore(engine, demo_shop, clock)
    assert customer(engine, "雷会计").value_class == "C"


def test_undo_of_a_class_gives_the_engine_its_class_back(
    chat: ChatDriver, engine: Engine, demo_shop: Shop, clock: FixedClock
) -> None:
    chat.say("雷会计 C类")
    assert chat.say("撤销").startswith('已撤销:"雷会计 C类" ✓')
    undone = customer(engine, "雷会计")
    assert undone.value_class == "A"
    assert OWNER_CLASS_TAG not in undone.tags
    nightly_rescore(engine, demo_shop, clock)
    assert customer(engine, "雷会计").value_class == "A"


def test_a_class_on_a_set_aside_customer_brings_them_back(chat: ChatDriver, engine: Engine) -> None:
    chat.say("顾嫂 不用追了")
    reply = chat.say("顾嫂 A类")
    assert "(原来是D类)" in reply and "顾嫂 也恢复提醒了。" in reply
    assert customer(engine, "顾嫂").value_class == "A"
    assert listed(chat, "顾嫂")


# --- reminder thresholds ----------------------------------------------------------------------


def test_settings_shows_the_thresholds_in_plain_words(chat: ChatDriver) -> None:
    reply = chat.say("设置")
    assert "· 提醒倍数 1.5:超过平时间隔的1.5倍还没来,提醒您跟进🟡(可设1.2到3)" in reply
    assert "· 高风险倍数 2:超过平时间隔的2倍,算高风险🔴(可设1.5到5)" in reply
    assert "· 流失倍数 3:超过平时间隔的3倍,算流失,不再提醒(可设2到8)" in reply
    assert "· 流失天数 60:离上次下单不满60天,不算流失(可设30到365)" in reply


def test_raising_the_reminder_multiple_drops_a_customer_from_the_next_list(
    chat: ChatDriver, engine: Engine, demo_shop: Shop
) -> None:
    assert listed(chat, "陈春花")  # 18 days since, usually 12: past 1.5x, not past 1.8x
    reply = chat.say("设置 提醒倍数 1.8")
    assert reply.startswith(
        "已改:提醒倍数 1.5 → 1.8 ✓\n以后超过平时间隔的1.8倍还没来,提醒您跟进🟡。"
    )
    assert "跟进名单现在13位(改之前17位)" in reply
    assert shop_settings(engine, demo_shop)["quiet_ratio"] == 1.8
    assert not listed(chat, "陈春花")


def test_lowering_the_reminder_multiple_adds_a_customer_to_the_next_list(
    chat: ChatDriver,
) -> None:
    assert not listed(chat, "郭佳怡")  # 22 days since, usually 19: under 1.5x
    chat.say("设置 提醒倍数 1.3")
    assert listed(chat, "郭佳怡")


def test_a_threshold_out_of_bounds_is_refused_with_the_range(
    chat: ChatDriver, engine: Engine, demo_shop: Shop
) -> None:
    before = counts(engine)
    assert chat.say("设置 提醒倍数 5") == (
        '没改:提醒倍数只能设1.2到3,您发的是5。\n现在还是1.5。发"设置"看全部标准。'
    )
    assert chat.say("设置 流失天数 7").startswith("没改:流失天数只能设30到365之间的整数天")
    assert counts(engine) == before
    assert "quiet_ratio" not in shop_settings(engine, demo_shop)


def test_a_multiple_that_would_pass_its_neighbour_is_refused(
    chat: ChatDriver, engine: Engine, demo_shop: Shop
) -> None:
    reply = chat.say("设置 高风险倍数 1.5")
    assert reply.startswith("没改:高风险倍数要大于提醒倍数(现在是1.5),您发的是1.5。")
    assert "at_risk_ratio" not in shop_settings(engine, demo_shop)


def test_a_setting_without_a_number_asks_for_it(chat: ChatDriver, engine: Engine) -> None:
    before = counts(engine)
    assert chat.say("设置 提醒倍数") == (
        '要把提醒倍数改成多少?例如"设置 提醒倍数 1.8"。这次什么都没改。'
    )
    assert counts(engine) == before


def test_undo_of_a_threshold_puts_the_default_and_the_list_back(
    chat: ChatDriver, engine: Engine, demo_shop: Shop
) -> None:
    chat.say("设置 提醒倍数 1.8")
    assert chat.say("撤销").startswith('已撤销:"设置 提醒倍数 1.8" ✓')
    assert "quiet_ratio" not in shop_settings(engine, demo_shop)
    assert listed(chat, "陈春花")


def test_help_lists_the_owner_commands(chat: ChatDriver) -> None:
    reply = chat.say("帮助")
    for line in (
        "· 王姐 不用追了 —— ",
        "· 王姐 恢复提醒 —— ",
        "· 王姐 A类 —— ",
        "· 设置 提醒倍数 1.8 —— ",
    ):
        assert line in reply


# --- order words: a day inside the name, half quantities --------------------------------------


def test_last_week_order_is_dated_a_week_back_and_the_reply_says_so(
    chat: ChatDriver, engine: Engine
) -> None:
    before = counts(engine)
    reply = chat.say("老王上周拿了两桶")
    assert reply.startswith("已记:老王 2桶 36元(6月10日)✓")
    assert '"上周"没说是哪一天,我按6月10日记的。' in reply
    assert counts(engine)["customers"] == before["customers"]  # no "老王上周拿了"
    assert orders_of(engine, "老王")[0].order_date == date(2026, 6, 10)


def test_day_before_yesterday_with_a_verb_is_the_date_not_the_name(
    chat: ChatDriver, engine: Engine
) -> None:
    assert chat.say("老王前天要了两桶").startswith("已记:老王 2桶 36元(6月15日)✓")
    assert orders_of(engine, "老王")[0].order_date == date(2026, 6, 15)


def test_one_and_a_half_is_asked_about_and_recorded_as_chosen(
    chat: ChatDriver, engine: Engine
) -> None:
    before = counts(engine)
    question = chat.say("王姐 一桶半")
    assert question == (
        '数量只能记整桶(间隔和统计都按整数算),"一桶半"记成几桶?\n'
        "回复 1:记 王姐 1桶\n回复 2:记 王姐 2桶\n回复 0:先不记"
    )
    assert counts(engine) == {**before, "pending": 1}  # nothing recorded yet
    assert chat.say("2").startswith("已记:王姐 2桶 36元(6月17日)✓")
    latest = orders_of(engine, "王姐")[0]
    assert (latest.quantity, latest.raw_text) == (2, "王姐 一桶半")


def test_half_a_bucket_offers_one_and_zero_records_nothing(
    chat: ChatDriver, engine: Engine
) -> None:
    before = counts(engine)
    question = chat.say("王姐 半桶")
    assert "回复 1:记 王姐 1桶\n回复 0:先不记" in question
    assert chat.say("0") == "好的,已取消,什么都没记。"
    assert counts(engine) == before
