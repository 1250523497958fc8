"""Reading single cells: dates in every form owners write, numbers, phones, headers."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.dataio.cells import (
    CellError,
    map_columns,
    parse_date,
    read_amount_cents,
    read_phone,
    read_quantity,
)

TODAY = date(2026, 6, 17)


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("2025-3-1", date(2025, 3, 1)),
        ("2025/03/01", date(2025, 3, 1)),
        ("2025.3.1", date(2025, 3, 1)),
        ("2025年3月1日", date(2025, 3, 1)),
        ("2025 年 3 月 1 号", date(2025, 3, 1)),
        ("2025-03-01 14:30", date(2025, 3, 1)),
        ("2025/3/1 9:05:00", date(2025, 3, 1)),
        ("20250301", date(2025, 3, 1)),
        (" 2025-3-1 ", date(2025, 3, 1)),
        (45717, date(2025, 3, 1)),  # Excel serial number
        (45717.75, date(2025, 3, 1)),  # serial with a time of day
        ("45717", date(2025, 3, 1)),  # serial that went through a CSV
        (datetime(2025, 3, 1, 16, 0), date(2025, 3, 1)),
        (date(2025, 3, 1), date(2025, 3, 1)),
        # No year: the most recent such day that is not in the future.
        ("3月1日", date(2026, 3, 1)),
        ("6月17日", date(2026, 6, 17)),
        ("6月18日", date(2025, 6, 18)),
        ("12月31号", date(2025, 12, 31)),
        ("2月29日", date(2024, 2, 29)),
    ],
)
def test_dates_owners_write(cell: object, expected: date) -> None:
    assert parse_date(cell, today=TODAY) == expected


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ("", "缺少日期"),
        (None, "缺少日期"),
        ("2025-13-01", "没有这一天"),
        ("2025-2-30", "没有这一天"),
        ("3/1/2025", "日期看不懂"),  # month/day order is ambiguous: refuse
        ("昨天", "日期看不懂"),
        ("abc", "日期看不懂"),
        (12, "日期看不懂"),  # a small number is not a plausible serial
        ("2027-01-01", "之后"),
        ("1985-01-01", "太早"),
        ("=TODAY()", "公式"),
    ],
)
def test_bad_dates_say_why(cell: object, reason: str) -> None:
    with pytest.raises(CellError, match=reason):
        parse_date(cell, today=TODAY)


@given(st.dates(min_value=date(1990, 1, 1), max_value=TODAY))
def test_every_written_form_of_a_day_reads_back(day: date) -> None:
    forms = [
        f"{day.year}-{day.month}-{day.day}",
        day.strftime("%Y/%m/%d"),
        f"{day.year}.{day.month}.{day.day}",
        f"{day.year}年{day.month}月{day.day}日",
        day.strftime("%Y%m%d"),
        (day - date(1899, 12, 30)).days,
    ]
    for form in forms:
        assert parse_date(form, today=TODAY) == day, form


@pytest.mark.parametrize(
    ("cell", "expected"),
    [(2, 2), (2.0, 2), ("2", 2), ("2桶", 2), (" 3 箱", 3), ("2.0", 2), (None, None), ("", None)],
)
def test_quantities(cell: object, expected: int | None) -> None:
    assert read_quantity(cell) == expected


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ("两桶", "不是数字"),
        ("abc", "不是数字"),
        (2.5, "整数"),
        (0, "1到"),
        (-1, "1到"),
        (20000, "1到"),
    ],
)
def test_bad_quantities(cell: object, reason: str) -> None:
    with pytest.raises(CellError, match=reason):
        read_quantity(cell)


@pytest.mark.parametrize(
    ("cell", "cents"),
    [
        (36, 3600),
        (36.5, 3650),
        ("36", 3600),
        ("¥1,200.50", 120050),
        ("￥18", 1800),
        ("18元", 1800),
        ("0", 0),
        (0.1 + 0.2, 30),
        (None, None),
    ],
)
def test_amounts(cell: object, cents: int | None) -> None:
    assert read_amount_cents(cell) == cents


@pytest.mark.parametrize(
    ("cell", "reason"), [("免费", "不是数字"), (-5, "负数"), ("1e9", "不是数字")]
)
def test_bad_amounts(cell: object, reason: str) -> None:
    with pytest.raises(CellError, match=reason):
        read_amount_cents(cell)


@pytest.mark.parametrize(
    ("cell", "digits"),
    [
        ("138-0000-1234", "13800001234"),
        ("138 0000 1234", "13800001234"),
        ("+86 13800001234", "13800001234"),
        (13800001234, "13800001234"),
        (13800001234.0, "13800001234"),
        ("0571-8888 1234", "057188881234"),
        ("138****1234", None),  # masked in an export: no number to use
        ("", None),
    ],
)
def test_phones(cell: object, digits: str | None) -> None:
    assert read_phone(cell) == digits


def test_phone_in_scientific_notation_is_refused_with_the_fix() -> None:
    with pytest.raises(CellError, match="科学计数法"):
        read_phone("1.38E+10")


def test_chinese_and_english_headers_map_to_fields() -> None:
    columns = map_columns(["序号", "客户名称", "手机", "送货地址", "下单日期", "桶数", "金额(元)"])
    assert columns.positions == {
        "name": 1, "phone": 2, "address": 3, "date": 4, "quantity": 5, "amount": 6,
    }  # fmt: skip
    assert columns.ignored == ["序号"]
    english = map_columns(["Name", "Phone", "Address", "Date", "Qty", "Amount"])
    assert set(english.positions) == {"name", "phone", "address", "date", "quantity", "amount"}


def test_money_headers_with_yuan_map_to_amount_and_cents_headers_stay_unmapped() -> None:
    assert map_columns(["客户", "日期", "实收(元)"]).positions["amount"] == 2
    assert map_columns(["客户", "日期", "实付金额(元)"]).positions["amount"] == 2
    # The import reads amounts as yuan; a column in 分 is left out rather than read 100x.
    cents = map_columns(["客户", "日期", "金额(分)"])
    assert "amount" not in cents.positions and cents.ignored == ["金额(分)"]


def test_the_better_header_wins_and_the_choice_is_noted() -> None:
    columns = map_columns(["姓名", "客户", "日期"])
    assert columns.positions["name"] == 1  # 客户 is listed before 姓名
    assert "没有用" in columns.notes[0]
