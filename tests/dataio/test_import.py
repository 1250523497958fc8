"""Importing customers and orders: mapping, matching, summaries, idempotency, atomicity."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func
from sqlmodel import col, select

from app.clock import FixedClock
from app.customers.models import Customer, CustomerSummary
from app.customers.risk import rescore_shop
from app.dataio import imports
from app.dataio.imports import ImportResult, analyse_import, import_file
from app.dataio.read import Source
from app.dataio.report import render_done, render_preview
from app.db import read_session, write_session
from app.events.models import Event
from app.orders.models import Order
from app.shops.models import Shop
from tests.dataio.conftest import fingerprint
from tests.factories import add_orders, make_customer

HEADER = ["姓名", "手机", "地址", "下单日期", "桶数", "金额"]
ROWS = [
    HEADER,
    ["王姐", "138-0000-1234", "幸福小区3栋", "2025-3-1", 2, 36],
    ["王姐", "13800001234", "", "2025/03/26", 2, 36],
    ["李会计", "", "3号楼", "2025.4.2", 5, 90],
    ["老张", "139 0000 5678", "", "2025年4月20日", 1, ""],
    ["老张", "", "", "5月18日", 1, 18],
]


def customers(engine: Engine, shop: Shop) -> dict[str, Customer]:
    with read_session(engine) as s:
        return {c.name: c for c in s.exec(select(Customer).where(Customer.shop_id == shop.id))}


def orders(engine: Engine, shop: Shop) -> list[Order]:
    with read_session(engine) as s:
        return list(
            s.exec(select(Order).where(Order.shop_id == shop.id).order_by(col(Order.order_date)))
        )


def summary(engine: Engine, customer_id: int | None) -> CustomerSummary:
    with read_session(engine) as s:
        found = s.get(CustomerSummary, customer_id)
        assert found is not None
        return found


def test_xlsx_written_by_openpyxl_imports_customers_and_orders(
    engine: Engine,
    shop: Shop,
    write_xlsx: Callable[..., Path],
    run_import: Callable[..., ImportResult],
) -> None:
    result = run_import(shop, write_xlsx(ROWS))
    assert result.written, result.plan.issues
    assert (result.customers_added, result.orders_added) == (3, 5)
    found = customers(engine, shop)
    assert set(found) == {"王姐", "李会计", "老张"}
    assert found["王姐"].phone == "13800001234"
    assert found["王姐"].address == "幸福小区3栋"
    assert found["老张"].phone == "13900005678"
    imported = orders(engine, shop)
    assert [o.order_date for o in imported] == [
        date(2025, 3, 1), date(2025, 3, 26), date(2025, 4, 2), date(2025, 4, 20),
        date(2026, 5, 18),
    ]  # fmt: skip
    assert {o.source for o in imported} == {"import"}
    # A blank amount is priced like a chat order: the shop's 18 元 a bucket.
    assert next(o for o in imported if o.order_date == date(2025, 4, 20)).amount_cents == 1800
    wang = summary(engine, found["王姐"].id)
    assert (wang.order_count, wang.total_quantity, wang.total_amount_cents) == (2, 4, 7200)
    assert (wang.first_order_on, wang.last_order_on) == (date(2025, 3, 1), date(2025, 3, 26))
    assert wang.mean_interval_days == 25
    assert wang.stage != "new"  # assessed


def test_real_date_cells_and_serial_numbers_in_xlsx(
    engine: Engine,
    shop: Shop,
    write_xlsx: Callable[..., Path],
    run_import: Callable[..., ImportResult],
) -> None:
    path = write_xlsx(
        [
            ["客户", "日期", "数量"],
            ["王姐", datetime(2025, 3, 1, 9, 30), 2],
            ["王姐", date(2025, 3, 20), 2.0],
            ["王姐", 45757, 1],  # Excel serial of 2025-04-10
        ]
    )
    assert run_import(shop, path).written
    assert [o.order_date for o in orders(engine, shop)] == [
        date(2025, 3, 1), date(2025, 3, 20), date(2025, 4, 10),
    ]  # fmt: skip


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030"])
def test_csv_in_utf8_with_and_without_bom_and_in_gbk(
    encoding: str,
    engine: Engine,
    shop: Shop,
    write_csv: Callable[..., Path],
    run_import: Callable[..., ImportResult],
) -> None:
    rows = [[*r[:4], str(r[4]), str(r[5])] if i else r for i, r in enumerate(ROWS)]
    result = run_import(shop, write_csv(rows, encoding=encoding))
    assert result.written, result.plan.issues
    expected = "GBK" if encoding.startswith("gb") else "UTF-8"
    assert result.plan.encoding == expected
    assert set(customers(engine, shop)) == {"王姐", "李会计", "老张"}
    assert len(orders(engine, shop)) == 5


def test_english_headers_and_a_title_line_above_the_header(
    engine: Engine,
    shop: Shop,
    write_csv: Callable[..., Path],
    run_import: Callable[..., ImportResult],
) -> None:
    path = write_csv(
        [
            ["清泉水站 2025 年订单"],
            [],
            ["Name", "Phone", "Date", "Qty", "Amount"],
            ["Wang", "13800001234", "2025-03-01", "2", "36"],
        ]
    )
    result = run_import(shop, path)
    assert result.written
    assert result.plan.header_line == 3
    assert set(customers(engine, shop)) == {"Wang"}


def test_customer_list_without_orders(
    engine: Engine,
    shop: Shop,
    write_csv: Callable[..., Path],
    run_import: Callable[..., ImportResult],
) -> None:
    path = write_csv(
        [["客户", "电话", "地址"], ["王姐", "13800001234", "幸福小区"], ["老李", "", ""]]
    )
    result = run_import(shop, path)
    assert (result.written, result.customers_added, result.orders_added) == (True, 2, 0)
    assert orders(engine, shop) == []
    again = run_import(shop, path)
    assert not again.written and again.plan.already_imported_at is not None


def test_existing_customers_matched_by_phone_first_then_exact_name(
    engine: Engine,
    clock: FixedClock,
    shop: Shop,
    write_csv: Callable[..., Path],
    run_import: Callable[..., ImportResult],
) -> None:
    wang = make_customer(engine, clock, shop, "王丽", phone="13800001234")
    li = make_customer(engine, clock, shop, "李会计")
    zhao = make_customer(engine, clock, shop, "赵六", phone="13700000000")
    path = write_csv(
        [
            ["客户", "电话", "日期", "数量"],
            ["王姐", "138 0000 1234", "2025-3-1", "2"],  # phone wins over a different name
            ["李会计", "", "2025-3-2", "5"],  # exact name
            ["李会计", "13600000000", "2025-3-3", "1"],  # name, and she had no phone on file
            ["赵六", "13500000000", "2025-3-4", "1"],  # same name, another phone: someone else
        ]
    )
    plan = run_import(shop, path, dry_run=True).plan
    assert plan.accepted
    assert (len(plan.new_customers), plan.existing_customers) == (1, 2)
    result = run_import(shop, path)
    assert result.customers_added == 1
    by_customer: dict[int, int] = {}
    for order in orders(engine, shop):
        by_customer[order.customer_id] = by_customer.get(order.customer_id, 0) + 1
    assert by_customer[wang.id or 0] == 1
    assert by_customer[li.id or 0] == 2
    assert zhao.id not in by_customer
    assert customers(engine, shop)["王丽"].name == "王丽"  # existing data is not rewritten


def test_same_name_customers_need_a_phone_to_tell_apart(
    engine: Engine,
    clock: FixedClock,
    shop: Shop,
    write_csv: Callable[..., Path],
    run_import: Callable[..., ImportResult],
) -> None:
    make_customer(engine, clock, shop, "王姐")
    make_customer(engine, clock, shop, "王姐")
    before = fingerprint(engine)
    plan = run_import(shop, write_csv([["客户", "日期"], ["王姐", "2025-3-1"]])).plan
    assert not plan.accepted
    assert "2 位叫“王姐”的客户" in plan.issues[0].reason
    assert fingerprint(engine) == before


def test_preview_shows_columns_counts_first_rows_and_new_vs_existing(
    engine: Engine,
    clock: FixedClock,
    shop: Shop,
    write_xlsx: Callable[..., Path],
    templates_dir: Path,
) -> None:
    make_customer(engine, clock, shop, "李会计")
    path = write_xlsx([*ROWS, ["", "", "", "", "", ""]])  # a trailing blank row is not a row
    before = fingerprint(engine)
    with read_session(engine) as s:
        plan = analyse_import(session=s, shop=shop, source=Source.of(path), clock=clock)
    text = render_preview(plan, shop=shop, templates_dir=templates_dir)
    assert fingerprint(engine) == before
    assert "导入预览:orders.xlsx(Excel,工作表 订单)" in text
    assert "客户 ← “姓名”" in text and "数量 ← “桶数”" in text
    assert "共 5 行,订单 5 单(2025年3月1日 至 2026年5月18日)" in text
    assert "客户 3 位:新客户 2 位,已有客户 1 位" in text
    assert "第2行 王姐 138****1234 2025-03-01 2桶 36元(新客户)" in text
    assert "第4行 李会计 2025-04-02 5桶 90元(已有客户)" in text
    assert "13800001234" not in text  # phones are masked in the preview


def test_same_file_twice_adds_nothing(
    engine: Engine,
    shop: Shop,
    write_xlsx: Callable[..., Path],
    run_import: Callable[..., ImportResult],
    templates_dir: Path,
) -> None:
    path = write_xlsx(ROWS)
    first = run_import(shop, path)
    assert first.written
    after_first = fingerprint(engine)
    second = run_import(shop, path)
    assert not second.written
    assert fingerprint(engine) == after_first
    assert "已经导入过了" in render_preview(second.plan, shop=shop, templates_dir=templates_dir)
    with read_session(engine) as s:
        event = s.exec(select(Event).where(Event.kind == "import")).one()
    assert event.data["orders_added"] == 5 and len(event.data["sha256"]) == 64


def test_overlapping_second_file_adds_only_new_rows(
    engine: Engine,
    shop: Shop,
    write_csv: Callable[..., Path],
    run_import: Callable[..., ImportResult],
) -> None:
    header = ["客户", "电话", "日期", "数量", "金额"]
    january = [
        header,
        ["王姐", "13800001234", "2025-01-05", 2, 36],
        ["老李", "", "2025-01-09", 1, 18],
    ]
    run_import(shop, write_csv(january, name="jan.csv"))
    # The February export starts with January's rows again (another file: other bytes).
    both = [
        *january,
        ["王姐", "13800001234", "2025-02-01", 2, 36],
        ["老李", "", "2025-02-11", 1, 18],
    ]
    result = run_import(shop, write_csv(both, name="jan-feb.csv"))
    assert result.written
    assert (result.orders_added, result.plan.skipped_existing, result.customers_added) == (2, 2, 0)
    assert len(orders(engine, shop)) == 4
    wang = customers(engine, shop)["王姐"]
    assert summary(engine, wang.id).order_count == 2


def test_chat_orders_do_not_block_the_same_day_in_an_import(
    engine: Engine,
    clock: FixedClock,
    shop: Shop,
    write_csv: Callable[..., Path],
    run_import: Callable[..., ImportResult],
) -> None:
    """Only imported rows count as "already there": a chat order is the owner's own record."""
    wang = make_customer(engine, clock, shop, "王姐")
    add_orders(engine, clock, shop, wang, [date(2025, 3, 1)], quantity=2)
    result = run_import(shop, write_csv([["客户", "日期", "数量"], ["王姐", "2025-3-1", "2"]]))
    assert result.orders_added == 1


def test_summaries_match_a_full_rescore(
    engine: Engine,
    clock: FixedClock,
    shop: Shop,
    write_csv: Callable[..., Path],
    run_import: Callable[..., ImportResult],
) -> None:
    """Bulk insert + one refresh per customer leaves the same figures as a whole rescore."""

    def rows(months: range) -> list[list[object]]:
        header: list[object] = ["客户", "日期", "数量", "金额"]
        return [header] + [
            [f"客户{i}", f"2025-{m}-{1 + i}", 1 + i % 3, 18 * (1 + i % 3)]
            for i in range(6)
            for m in months
        ]

    run_import(shop, write_csv(rows(range(1, 4)), name="q1.csv"))  # fits the priors
    second = run_import(shop, write_csv(rows(range(4, 6)), name="q2.csv"))  # refresh path
    assert second.orders_added == 12

    def figures() -> dict[int, tuple[object, ...]]:
        with read_session(engine) as s:
            return {
                x.customer_id: (
                    x.order_count, x.total_quantity, x.total_amount_cents, x.first_order_on,
                    x.last_order_on, x.last_quantity, x.mean_interval_days,
                )
                for x in s.exec(select(CustomerSummary))
            }  # fmt: skip

    fresh = figures()
    with write_session(engine) as s:
        own = s.get(Shop, shop.id)
        assert own is not None
        rescore_shop(session=s, shop=own, clock=clock)
    assert fresh == figures()
    assert sorted(v[0] for v in fresh.values()) == [5] * 6


def test_refreshes_each_customer_once_or_rescores_the_shop(
    engine: Engine,
    shop: Shop,
    write_csv: Callable[..., Path],
    run_import: Callable[..., ImportResult],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    real_refresh, real_rescore = imports.refresh_customer, imports.rescore_shop
    monkeypatch.setattr(
        imports, "refresh_customer", lambda **kw: (calls.append("refresh"), real_refresh(**kw))
    )
    monkeypatch.setattr(
        imports, "rescore_shop", lambda **kw: (calls.append("rescore"), real_rescore(**kw))[1]
    )
    # A new shop has no fitted priors yet: one rescore fits them.
    rows = [["客户", "日期"]] + [[f"客户{i % 3}", f"2025-3-{1 + i}"] for i in range(9)]
    run_import(shop, write_csv(rows, name="a.csv"))
    assert calls == ["rescore"]
    calls.clear()
    rows = [["客户", "日期"]] + [[f"客户{i % 3}", f"2025-4-{1 + i}"] for i in range(9)]
    run_import(shop, write_csv(rows, name="b.csv"))
    assert calls == ["refresh"] * 3  # three customers, nine orders: once each
    calls.clear()
    monkeypatch.setattr(imports, "RESCORE_ABOVE", 2)
    rows = [["客户", "日期"]] + [[f"客户{i % 3}", f"2025-5-{1 + i}"] for i in range(9)]
    run_import(shop, write_csv(rows, name="c.csv"))
    assert calls == ["rescore"]


def test_a_failure_halfway_leaves_nothing(
    engine: Engine,
    shop: Shop,
    write_csv: Callable[..., Path],
    run_import: Callable[..., ImportResult],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows = [["客户", "电话", "日期", "数量"]] + [
        [f"客户{i % 7}", f"1380000{i % 7:04d}", f"2025-{1 + i // 28}-{1 + i % 28}", "1"]
        for i in range(100)
    ]
    path = write_csv(rows)
    before = fingerprint(engine)
    monkeypatch.setattr(imports, "BATCH_ROWS", 10)
    real_insert = imports._insert_orders
    batches: list[int] = []

    def failing_insert(session: object, batch: list[dict[str, object]]) -> int:
        batches.append(len(batch))
        if len(batches) == 5:  # half of the ten batches are in
            raise RuntimeError("disk full")
        return real_insert(session, batch)  # type: ignore[arg-type]

    monkeypatch.setattr(imports, "_insert_orders", failing_insert)
    with pytest.raises(RuntimeError, match="disk full"):
        run_import(shop, path)
    assert fingerprint(engine) == before
    monkeypatch.setattr(imports, "_insert_orders", real_insert)
    result = run_import(shop, path)  # and the same file then goes in whole
    assert result.orders_added == 100 and result.customers_added == 7


def test_done_message(
    engine: Engine,
    shop: Shop,
    write_xlsx: Callable[..., Path],
    run_import: Callable[..., ImportResult],
    templates_dir: Path,
) -> None:
    result = run_import(shop, write_xlsx(ROWS))
    text = render_done(result, shop=shop, templates_dir=templates_dir)
    assert text.startswith("✅ 导入完成:新增客户 3 位、订单 5 单")


def test_import_into_the_demo_shop_keeps_its_list_working(
    engine: Engine,
    clock: FixedClock,
    demo_shop: Shop,
    write_csv: Callable[..., Path],
) -> None:
    path = write_csv([["客户", "日期", "数量"], ["新来的刘姐", "2026-6-1", "2"]])
    with write_session(engine) as s:
        result = import_file(session=s, shop=demo_shop, source=Source.of(path), clock=clock)
    assert result.customers_added == 1 and result.orders_added == 1
    with read_session(engine) as s:
        n = s.exec(select(func.count()).select_from(Order).where(Order.source == "import")).one()
    assert n == 1
