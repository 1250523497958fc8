"""What the owner records changes the risk at once, and the chat says why."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import select

from app.customers.models import Customer, CustomerSummary
from app.db import read_session
from tests.conftest import ChatDriver


def wang(engine: Engine) -> CustomerSummary:
    with read_session(engine) as s:
        customer = s.exec(select(Customer).where(Customer.name == "王姐")).one()
        summary = s.get(CustomerSummary, customer.id)
        assert summary is not None
        return summary


def test_a_complaint_makes_her_high_risk_at_once_and_the_list_says_why(
    chat: ChatDriver, engine: Engine
) -> None:
    chat.say("王姐 2桶")
    assert wang(engine).stage == "active"
    chat.say("王姐 投诉 送水慢")
    summary = wang(engine)
    assert summary.stage == "at_risk"
    assert any(f["code"] == "complaint_open" for f in summary.findings)
    assert chat.say("王姐").startswith("📇 王姐 · 高风险")
    line = next(x for x in chat.say("今天该跟进谁").splitlines() if "王姐" in x)
    assert "🔴王姐 投诉未解决(平时" in line


def test_resolving_the_complaint_takes_her_off_the_list(chat: ChatDriver, engine: Engine) -> None:
    chat.say("王姐 2桶")
    chat.say("王姐 投诉 送水慢")
    chat.say("王姐 投诉已解决")
    assert wang(engine).stage == "active"
    assert "王姐" not in chat.say("今天该跟进谁")


def test_undoing_the_complaint_restores_the_assessment(chat: ChatDriver, engine: Engine) -> None:
    chat.say("王姐 2桶")
    before = wang(engine)
    chat.say("王姐 投诉 送水慢")
    chat.say("撤销")
    after = wang(engine)
    assert after.stage == before.stage == "active"
    assert after.churn_probability == before.churn_probability


def test_a_returned_bucket_puts_her_on_the_call_list_at_once(
    chat: ChatDriver, engine: Engine
) -> None:
    """Buckets coming back mean she is about to leave, not gone: call now and ask why."""
    chat.say("王姐 押桶 2个 100元")
    chat.say("王姐 退桶 2个")
    summary = wang(engine)
    assert summary.stage == "at_risk"
    assert any(f["code"] == "deposit_refunded" for f in summary.findings)
    assert "🔴王姐 退桶退押金" in chat.say("今天该跟进谁")


def test_the_card_keeps_each_figure_on_its_own_line(chat: ChatDriver) -> None:
    chat.say("王姐 2桶")
    lines = chat.say("王姐").splitlines()
    assert "上次下单 6月17日,就是今天" in lines
    assert any(line.startswith("累计 ") for line in lines)


def test_a_second_order_the_same_day_says_so(chat: ChatDriver) -> None:
    chat.say("王姐 2桶")
    assert "今天已经给王姐记过单了" in chat.say("王姐 1桶")


def test_deliveries_paid_with_tickets_are_not_a_smaller_bill(
    chat: ChatDriver, engine: Engine
) -> None:
    """A ticket-paid delivery carries 0 money (the tickets were the revenue); it is still an
    order of the usual size, not a collapsed 客单价."""
    chat.say("王姐 买水票 20张 300元")
    for _ in range(3):
        chat.say("王姐 用水票 2桶")
    summary = wang(engine)
    assert not any(f["code"] == "ticket_drop" for f in summary.findings), summary.findings
    assert "客单价下降" not in chat.say("王姐")
