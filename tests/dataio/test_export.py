"""Exports (CSV with BOM + one workbook), formula injection, masked phones, and forgetting."""

from __future__ import annotations

import csv
from datetime import timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import Engine, func
from sqlmodel import col, select

from app.clock import FixedClock
from app.customers.models import Customer, CustomerSummary
from app.dataio.exports import WORKBOOK_NAME, ExportResult, export_shop, neutralise
from app.dataio.privacy import forget_customer
from app.db import read_session, write_session
from app.events.models import Event, InboxMessage
from app.events.service import log_event
from app.orders.models import Order
from app.shops.models import Shop
from tests.conftest import TEST_TODAY, ChatDriver
from tests.factories import add_orders, make_customer

INJECTION = '=HYPERLINK("http://x","点我")'


def export(engine: Engine, shop: Shop, out: Path, *, with_phones: bool = False) -> ExportResult:
    with read_session(engine) as s:
        return export_shop(
            session=s, shop=shop, out_dir=out, today=TEST_TODAY, with_phones=with_phones
        )


def read_csv(path: Path) -> list[list[str]]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), "Excel needs the BOM to read UTF-8"
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.reader(handle))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+8613800001234", "'+8613800001234"),
        ("-5", "'-5"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tTAB", "'\tTAB"),
        ("\rCR", "'\rCR"),
        ("王姐", "王姐"),
        ("a=b", "a=b"),
        (-5, -5),  # a number stays a number
        (None, None),
    ],
)
def test_neutralise(value: object, expected: object) -> None:
    assert neutralise(value) == expected


@pytest.fixture
def shop_with_history(engine: Engine, clock: FixedClock, shop: Shop) -> Shop:
    wang = make_customer(engine, clock, shop, "王姐", phone="13800001234", address="幸福小区3栋")
    evil = make_customer(engine, clock, shop, INJECTION, phone="13900005678", address="-1+2")
    add_orders(engine, clock, shop, wang, [TEST_TODAY - timedelta(days=d) for d in (80, 55, 30)])
    add_orders(engine, clock, shop, evil, [TEST_TODAY - timedelta(days=200)], quantity=1)
    with write_session(engine) as s:
        for kind, data in (
            ("outreach", {"tier": 1, "kind": "message"}),
            ("interaction", {"reaction": "cold", "text": "再说吧"}),
            ("outcome", {"outcome": "lost", "reason": "价格", "text": "=cmd|' /C calc'!A0"}),
        ):
            log_event(session=s, shop_id=shop.id or 0, customer_id=evil.id, kind=kind,
                      clock=clock, data=data)  # fmt: skip
    return shop


def test_export_writes_csvs_with_bom_and_a_workbook(
    engine: Engine, shop_with_history: Shop, tmp_path: Path
) -> None:
    result = export(engine, shop_with_history, tmp_path)
    assert [p.name for p in result.files] == [
        "customers.csv", "orders.csv", "followups.csv", WORKBOOK_NAME,
    ]  # fmt: skip
    assert result.rows == {"客户": 2, "订单": 4, "跟进记录": 3, "客户流失预警与挽回记录表": 1}
    orders = read_csv(tmp_path / "orders.csv")
    assert orders[0] == ["客户编号", "客户", "日期", "数量", "单位", "金额(元)"]
    first = orders[1]
    assert first[2] == (TEST_TODAY - timedelta(days=200)).isoformat()
    assert first[3:] == ["1", "桶", "18"]
    followups = read_csv(tmp_path / "followups.csv")
    assert [row[3] for row in followups[1:]] == ["联系", "客户反应", "结果"]
    assert "反应 回得冷淡" in followups[2][4] and "原因 价格" in followups[3][4]
    workbook = load_workbook(tmp_path / WORKBOOK_NAME)
    assert workbook.sheetnames == ["客户", "订单", "跟进记录", "客户流失预警与挽回记录表"]
    log = list(workbook["客户流失预警与挽回记录表"].iter_rows(values_only=True))
    assert log[0][:10] == (
        "客户", "电话", "阶段", "距上次下单(天)", "平时间隔(天)", "首次预警日期",
        "联系次数", "最近联系日期", "跟进结果", "流失原因",
    )  # fmt: skip
    row = log[1]
    assert row[0] == "'" + INJECTION
    assert row[3] == 200 and row[6] == 1 and row[8] == "已流失" and row[9] == "价格"


def test_formula_injection_is_neutralised_in_csv_and_xlsx(
    engine: Engine, shop_with_history: Shop, tmp_path: Path
) -> None:
    export(engine, shop_with_history, tmp_path)
    customers = read_csv(tmp_path / "customers.csv")
    names = [row[1] for row in customers[1:]]
    assert "'" + INJECTION in names and INJECTION not in names
    addresses = [row[3] for row in customers[1:]]
    assert "'-1+2" in addresses
    orders = read_csv(tmp_path / "orders.csv")
    assert all(not row[1].startswith(("=", "+", "-", "@")) for row in orders)
    followups = (tmp_path / "followups.csv").read_text(encoding="utf-8-sig")
    assert "=cmd" in followups  # inside a longer cell: it does not start the cell
    workbook = load_workbook(tmp_path / WORKBOOK_NAME)
    for sheet in workbook.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", f"{sheet.title}!{cell.coordinate} is a formula"
                if isinstance(cell.value, str):
                    assert not cell.value.startswith(("=", "+", "-", "@", "\t", "\r"))
    names_xlsx = [r[1] for r in workbook["客户"].iter_rows(min_row=2, values_only=True)]
    assert "'" + INJECTION in names_xlsx


def test_phones_are_masked_unless_asked(
    engine: Engine, shop_with_history: Shop, tmp_path: Path
) -> None:
    export(engine, shop_with_history, tmp_path / "masked")
    masked = (tmp_path / "masked" / "customers.csv").read_text(encoding="utf-8-sig")
    assert "138****1234" in masked and "13800001234" not in masked
    workbook = load_workbook(tmp_path / "masked" / WORKBOOK_NAME)
    cells = [
        str(c)
        for sheet in workbook.worksheets
        for r in sheet.iter_rows(values_only=True)
        for c in r
    ]
    assert not any("13800001234" in c or "13900005678" in c for c in cells)
    export(engine, shop_with_history, tmp_path / "full", with_phones=True)
    full = (tmp_path / "full" / "customers.csv").read_text(encoding="utf-8-sig")
    assert "13800001234" in full


def test_exported_orders_import_back_into_another_shop(
    engine: Engine, clock: FixedClock, shop_with_history: Shop, tmp_path: Path
) -> None:
    """orders.csv is a backup the import reads back: same orders, same days, same amounts."""
    from app.dataio.imports import import_file
    from app.dataio.read import Source
    from tests.factories import make_shop

    export(engine, shop_with_history, tmp_path)
    other = make_shop(engine, clock, slug="copy", name="副本")
    with write_session(engine) as s:
        result = import_file(
            session=s, shop=other, source=Source.of(tmp_path / "orders.csv"), clock=clock
        )
    # The neutralised name starts with ' and so reads back as text, not as a formula.
    assert result.written, result.plan.issues
    assert result.orders_added == 4


def test_forget_removes_personal_data_and_keeps_the_figures(
    engine: Engine, clock: FixedClock, chat: ChatDriver, demo_shop: Shop
) -> None:
    chat.say("王姐 2桶")
    chat.say("王姐 冷淡 说再说吧")
    with read_session(engine) as s:
        wang = s.exec(
            select(Customer).where(Customer.shop_id == demo_shop.id, Customer.name == "王姐")
        ).one()
        assert wang.id is not None
        totals_before = s.exec(
            select(func.count(), func.sum(Order.quantity), func.sum(Order.amount_cents)).where(
                Order.shop_id == demo_shop.id
            )
        ).one()
        summary_before = s.get(CustomerSummary, wang.id)
        assert summary_before is not None
        order_count = summary_before.order_count
    with write_session(engine) as s:
        customer = s.get(Customer, wang.id)
        assert customer is not None
        result = forget_customer(session=s, shop=demo_shop, customer=customer, clock=clock)
    assert result.orders_kept == order_count
    with read_session(engine) as s:
        gone = s.get(Customer, wang.id)
        assert gone is not None
        assert gone.name == f"已删除客户#{wang.id}"
        assert (gone.phone, gone.address, gone.note, gone.aliases) == (None, None, None, [])
        assert gone.status == "forgotten"
        orders = list(s.exec(select(Order).where(Order.customer_id == wang.id)))
        assert orders and all(o.raw_text is None for o in orders)
        totals_after = s.exec(
            select(func.count(), func.sum(Order.quantity), func.sum(Order.amount_cents)).where(
                Order.shop_id == demo_shop.id
            )
        ).one()
        assert totals_after == totals_before  # the shop's statistics do not move
        events = list(s.exec(select(Event).where(Event.customer_id == wang.id)))
        text = repr([e.data for e in events])
        assert "王姐" not in text and "再说吧" not in text
        forget = [e for e in events if e.kind == "forget"]
        assert len(forget) == 1
        assert set(forget[0].data) == {
            "orders_kept", "events_cleared", "messages_cleared", "pushes_cleared"
        }  # fmt: skip
        bodies = [
            m.body
            for m in s.exec(select(InboxMessage).where(col(InboxMessage.shop_id) == demo_shop.id))
        ]
        assert not any("王姐" in b for b in bodies)
    # Nobody finds her any more, in chat or on the follow-up list.
    assert "王姐 38天没订" not in chat.say("今天该跟进谁")
    assert "已删除客户" not in chat.say("今天该跟进谁")


def test_forget_refuses_another_shops_customer(
    engine: Engine, clock: FixedClock, shop: Shop
) -> None:
    from app.customers.service import CustomerError
    from tests.factories import make_shop

    other = make_shop(engine, clock, slug="other")
    stranger = make_customer(engine, clock, other, "王姐")
    with write_session(engine) as s, pytest.raises(CustomerError):
        forget_customer(session=s, shop=shop, customer=stranger, clock=clock)


def test_an_empty_shop_exports_headers_only(engine: Engine, shop: Shop, tmp_path: Path) -> None:
    result = export(engine, shop, tmp_path)
    assert result.rows == {"客户": 0, "订单": 0, "跟进记录": 0, "客户流失预警与挽回记录表": 0}
    assert read_csv(tmp_path / "customers.csv")[0][:2] == ["客户编号", "客户"]
