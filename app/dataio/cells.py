"""What an owner's columns mean and how their cells read: headers, dates, numbers, phones.

Pure functions. Each cell reader returns a value or raises `CellError` with the reason in
Chinese, so the import can list every bad cell with its row, column and value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation

FIELDS = ("name", "phone", "address", "date", "quantity", "amount", "unit")
FIELD_LABELS = {
    "name": "客户",
    "phone": "电话",
    "address": "地址",
    "date": "日期",
    "quantity": "数量",
    "amount": "金额",
    "unit": "单位",
}
# Header spellings per field, normalised (see `normalise_header`); earlier ones win when a
# file has several candidates for one field.
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "name": (
        "客户", "客户名称", "客户名", "客户姓名", "姓名", "名字", "名称", "联系人", "会员",
        "会员名", "会员姓名", "顾客", "顾客姓名", "收货人", "name", "customer", "customername",
        "client", "clientname",
    ),
    "phone": (
        "电话", "手机", "手机号", "手机号码", "电话号码", "联系电话", "联系方式", "客户电话",
        "phone", "mobile", "tel", "telephone", "phonenumber", "cell",
    ),
    "address": (
        "地址", "送货地址", "配送地址", "收货地址", "住址", "客户地址", "详细地址", "address",
    ),
    "date": (
        "日期", "下单日期", "订单日期", "送货日期", "配送日期", "消费日期", "购买日期",
        "下单时间", "订单时间", "时间", "下单日", "date", "orderdate", "day",
    ),
    "quantity": (
        "数量", "桶数", "件数", "箱数", "订购数量", "次数", "qty", "quantity", "count",
        "buckets",
    ),
    # Huitou's own orders.csv says 金额(元); "元" in a header names the unit.
    "amount": (
        "金额", "金额元", "订单金额", "订单金额元", "实付金额", "实付金额元", "实收金额",
        "实收金额元", "实付", "实收", "实收元", "总金额", "总金额元", "合计", "总价", "消费金额",
        "amount", "total", "amountyuan",
    ),
    "unit": ("单位", "unit"),
}  # fmt: skip
# An order file scored by `huitou score` names customers by id first, then by name.
CUSTOMER_ID_ALIASES = (
    "customerid", "客户编号", "客户id", "客户代码", "会员编号", "会员id", "clientid",
) + HEADER_ALIASES["name"]  # fmt: skip
# Amount headers in 分 (cents): only the order-file reader divides them by 100; the import
# leaves such a column unmapped rather than read cents as yuan.
CENT_AMOUNT_ALIASES = (
    "金额分", "订单金额分", "实付金额分", "实收金额分", "实收分", "amountcents",
)  # fmt: skip

HEADER_SEARCH_ROWS = 20  # a title line or two above the header is common
MIN_YEAR = 1990
MAX_QUANTITY = 10_000
MAX_AMOUNT_CENTS = 100_000_000  # a million yuan for one order is a typo
EXCEL_EPOCH = date(1899, 12, 30)  # serial 1 = 1900-01-01 (with Excel's 1900 leap-year bug)
MIN_SERIAL, MAX_SERIAL = 32_874, 73_050  # 1990-01-01 .. 2099-12-31


class CellError(ValueError):
    """A cell that cannot be used; the message is the reason, in Chinese."""


def normalise_header(value: object) -> str:
    """Lower case, no spaces/underscores/brackets: '下单 日期(必填)' -> '下单日期必填'."""
    text = "" if value is None else str(value)
    return re.sub(r"[\s_\-()()\[\]【】::*/.]", "", text).lower()


@dataclass(frozen=True)
class ColumnMap:
    """Which position holds each field; what was ignored or chosen over a rival."""

    positions: dict[str, int]
    headers: dict[str, str]  # field -> the header text as written in the file
    ignored: list[str]  # headers that mean nothing to us
    notes: list[str]

    @property
    def has_orders(self) -> bool:
        return "date" in self.positions


def match_headers(
    header: Sequence[object], aliases: dict[str, tuple[str, ...]]
) -> tuple[dict[str, int], dict[str, list[int]]]:
    """Field -> position (earlier aliases win, one field per column), and the passed-over rivals.

    The one header matcher: the import and `huitou score` differ only in their alias tables.
    """
    normalised = [normalise_header(h) for h in header]
    positions: dict[str, int] = {}
    rivals: dict[str, list[int]] = {}
    for field, spellings in aliases.items():
        taken = set(positions.values())
        candidates = sorted(
            (spellings.index(name), pos)
            for pos, name in enumerate(normalised)
            if name in spellings and pos not in taken
        )
        if not candidates:
            continue
        positions[field] = candidates[0][1]
        if len(candidates) > 1:
            rivals[field] = [pos for _, pos in candidates[1:]]
    return positions, rivals


def map_columns(header: Sequence[object]) -> ColumnMap:
    """Match a header row to our fields (earlier aliases win, one field per column)."""
    positions, rivals = match_headers(header, HEADER_ALIASES)
    notes = [
        f"{FIELD_LABELS[field]}用的是“{header[positions[field]]}”列,没有用 "
        + "、".join(f"“{header[p]}”" for p in others)
        + "。"
        for field, others in rivals.items()
    ]
    used = set(positions.values())
    ignored = [
        str(h).strip()
        for pos, h in enumerate(header)
        if pos not in used and h is not None and str(h).strip()
    ]
    return ColumnMap(
        positions=positions,
        headers={f: str(header[p]).strip() for f, p in positions.items()},
        ignored=ignored,
        notes=notes,
    )


def is_usable(columns: ColumnMap) -> bool:
    """A header we can import from: who (name or phone), and for orders a date."""
    return "name" in columns.positions or "phone" in columns.positions


def is_blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def cell_text(value: object) -> str:
    """A cell as the owner would read it (for reports)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M") if value.time() != time(0) else str(value.date())
    text = str(value).strip()
    return text if len(text) <= 40 else text[:37] + "..."


def check_formula(value: object) -> None:
    """A formula ("=C2*18") has no value we can trust: the owner must paste values."""
    if isinstance(value, str) and value.lstrip().startswith("="):
        raise CellError("是公式,不是数值。请在表格里复制这一列,“选择性粘贴 → 数值”后再导入")


# --- text -----------------------------------------------------------------------------------


def read_name(value: object) -> str | None:
    """A customer's name, trimmed; None when blank."""
    if is_blank(value):
        return None
    check_formula(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    name = re.sub(r"\s+", " ", str(value)).strip()
    if len(name) > 50:
        raise CellError("名字太长(最多50个字)")
    return name


def read_text(value: object, *, limit: int, what: str) -> str | None:
    """Free text such as an address; None when blank."""
    if is_blank(value):
        return None
    check_formula(value)
    text = re.sub(r"\s+", " ", str(value)).strip()
    if len(text) > limit:
        raise CellError(f"{what}太长(最多{limit}个字)")
    return text


_PHONE_JUNK = re.compile(r"[\s\-()()+.]")


def read_phone(value: object) -> str | None:
    """Digits of a phone number ("+86 138-0000-1234" -> "13800001234"); None when blank.

    A masked phone from an export ("138****1234") carries no number: treated as blank.
    """
    if is_blank(value):
        return None
    check_formula(value)
    if isinstance(value, bool):
        raise CellError("电话看不懂")
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        if not value.is_integer():
            raise CellError("电话看不懂")
        text = str(int(value))
    else:
        text = str(value).strip()
        if "*" in text:
            return None
        if re.fullmatch(r"\d(?:\.\d+)?[eE]\+?\d+", text):
            raise CellError(
                "电话被表格显示成了科学计数法,后几位已经丢了。请把电话列设成“文本”格式后重新填写"
            )
        text = _PHONE_JUNK.sub("", text)
    if text.startswith("0086"):
        text = text[4:]
    elif text.startswith("86") and len(text) == 13:
        text = text[2:]
    if not text.isdigit() or not 5 <= len(text) <= 20:
        raise CellError("电话看不懂(应为手机号或座机号)")
    return text


# --- numbers --------------------------------------------------------------------------------

_QTY_UNITS = "桶件箱次个瓶单份张袋台辆只"
_QTY = re.compile(rf"^(?P<n>\d+(?:\.\d+)?)\s*(?:[{_QTY_UNITS}])?$")
_MONEY = re.compile(r"^(?:[¥￥]|RMB|rmb)?\s*(?P<n>-?[\d,,]*\.?\d+)\s*(?:元|块)?$")


def _number(value: object) -> Decimal | None:
    """A number cell as a Decimal; None if the cell is not a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else None
    return None


def read_quantity(value: object) -> int | None:
    """A whole quantity 1..10000 ("2", 2.0, "2桶"); None when blank."""
    if is_blank(value):
        return None
    check_formula(value)
    number = _number(value)
    if number is None:
        if not isinstance(value, str):
            raise CellError("数量不是数字")
        match = _QTY.match(value.strip())
        if not match:
            raise CellError("数量不是数字")
        number = Decimal(match["n"])
    if number != number.to_integral_value():
        raise CellError("数量需为整数")
    if not 1 <= number <= MAX_QUANTITY:
        raise CellError(f"数量需在1到{MAX_QUANTITY}之间")
    return int(number)


def read_amount_cents(value: object) -> int | None:
    """An amount in yuan ("36", "¥1,200.50", "36元") as cents; None when blank."""
    if is_blank(value):
        return None
    check_formula(value)
    number = _number(value)
    if number is None:
        if not isinstance(value, str):
            raise CellError("金额不是数字")
        match = _MONEY.match(value.strip())
        if not match:
            raise CellError("金额不是数字")
        try:
            number = Decimal(match["n"].replace(",", "").replace(",", ""))
        except InvalidOperation as exc:
            raise CellError("金额不是数字") from exc
    if number < 0:
        raise CellError("金额不能为负数")
    cents = int((number * 100).quantize(Decimal(1)))
    if cents > MAX_AMOUNT_CENTS:
        raise CellError("金额大得不合常理(超过100万元)")
    return cents


def read_unit(value: object) -> str | None:
    if is_blank(value):
        return None
    check_formula(value)
    unit = str(value).strip()
    if len(unit) > 8:
        raise CellError("单位太长(最多8个字)")
    return unit


# --- dates ----------------------------------------------------------------------------------

_TIME = r"(?:(?:\s+|T)\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?"
_YMD = re.compile(
    r"^(?P<y>\d{4})\s*(?P<sep>[-/.年])\s*(?P<m>\d{1,2})\s*[-/.月]\s*(?P<d>\d{1,2})\s*[日号]?"
    + _TIME
    + "$"
)
_MD = re.compile(r"^(?P<m>\d{1,2})\s*月\s*(?P<d>\d{1,2})\s*[日号]?" + _TIME + "$")
_COMPACT = re.compile(r"^(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})$")
_SERIAL = re.compile(r"^(?P<n>\d{5})(?:\.\d+)?$")
DATE_HINT = "支持 2025-3-1、2025/03/01、2025.3.1、2025年3月1日、3月1日"


def _real_date(y: int, m: int, d: int) -> date:
    try:
        return date(y, m, d)
    except ValueError as exc:
        raise CellError(f"没有这一天({y}年{m}月{d}日)") from exc


def _from_serial(serial: float) -> date:
    if not MIN_SERIAL <= serial <= MAX_SERIAL:
        raise CellError(f"日期看不懂({DATE_HINT})")
    return EXCEL_EPOCH + timedelta(days=int(serial))


def _month_day(m: int, d: int, today: date) -> date:
    """3月1日 with no year: the most recent such day that is not in the future."""
    for year in range(today.year, today.year - 9, -1):  # 2月29日 may need a leap year
        try:
            day = date(year, m, d)
        except ValueError:
            continue
        if day <= today:
            return day
    raise CellError(f"没有这一天({m}月{d}日)")


def parse_date(value: object, *, today: date) -> date:
    """A date cell in any form owners use; raises CellError (blank, unreadable, future)."""
    if is_blank(value):
        raise CellError("缺少日期")
    check_formula(value)
    day = _parse_date(value, today)
    if day > today:
        raise CellError(f"日期在今天({today.month}月{today.day}日)之后,历史订单不能是将来的")
    if day.year < MIN_YEAR:
        raise CellError(f"日期太早(早于{MIN_YEAR}年)")
    return day


def _parse_date(value: object, today: date) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, time | bool):
        raise CellError(f"日期看不懂({DATE_HINT})")
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise CellError(f"日期看不懂({DATE_HINT})")
        return _from_serial(float(value))
    text = str(value).strip()
    if match := _YMD.match(text):
        return _real_date(int(match["y"]), int(match["m"]), int(match["d"]))
    if match := _MD.match(text):
        return _month_day(int(match["m"]), int(match["d"]), today)
    if match := _COMPACT.match(text):
        return _real_date(int(match["y"]), int(match["m"]), int(match["d"]))
    if match := _SERIAL.match(text):
        return _from_serial(float(text))
    raise CellError(f"日期看不懂({DATE_HINT})")
