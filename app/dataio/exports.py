"""A shop's data out, for a backup or for leaving: CSV files and one Excel workbook.

`export_shop` writes customers.csv, orders.csv, followups.csv (UTF-8 with a BOM, so Excel
opens them as Chinese text) and huitou-export.xlsx with the same sheets plus the warning
and win-back log (客户流失预警与挽回记录表). Rows stream from the database to both files,
so a big shop does not sit in memory.

Every text cell that a spreadsheet would run as a formula (starting with = + - @, a tab or
a carriage return) is prefixed with an apostrophe: a customer named
=HYPERLINK("http://x","点我") stays text. Phones are masked unless the owner asks for a full
backup (`with_phones`).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.clock import from_utc
from app.customers.models import Customer, CustomerSummary
from app.customers.service import mask_phone
from app.events.models import Event
from app.events.service import undone_event_ids
from app.orders.models import Order
from app.outreach.models import FollowUp
from app.outreach.outcomes import REASON_WORDS
from app.risk.assess import STAGE_LABELS, Stage, stage_on
from app.shops.models import Shop

WORKBOOK_NAME = "huitou-export.xlsx"
FOLLOWUP_KINDS = ("outreach", "interaction", "outcome")
# Cells a spreadsheet treats as a formula or a command (OWASP "CSV injection").
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
STREAM_ROWS = 2_000
_ORDERS = Order.__table__  # type: ignore[attr-defined]

KIND_LABELS = {"outreach": "联系", "interaction": "客户反应", "outcome": "结果"}
STATUS_LABELS = {"active": "正常", "paused": "暂停", "lost": "已流失", "forgotten": "已删除"}
# The demo writes "office"; "business" is the older spelling of the same kind.
KIND_OF_CUSTOMER = {"household": "家庭", "office": "单位", "business": "单位"}
VALUE_LABELS = {
    "warm": "回复了(热情)",
    "none": "没回",
    "cold": "回得冷淡",
    "sent": "已发消息",
    "called": "打过电话",
    "visited": "上门/给了优惠",
    "recovered": "已挽回",
    "returned": "自己回来了",
    "lost": "已流失",
    "away": "暂时不在",
    # How a follow-up reached the customer (FollowUp.kind, the outreach event's "kind").
    "message": "发微信",
    "call": "打电话",
    "visit": "上门/优惠",
    "care": "回访关怀",
}
# The only event details a person reads, in this order; the rest (template paths, undo
# snapshots, ids) is bookkeeping and stays out of the file.
DETAIL_LABELS = {
    "kind": "方式",
    "reaction": "反应",
    "outcome": "结果",
    "reason": "原因",
    "cost_cents": "花费",
    "text": "备注",
}


def neutralise(value: Any) -> Any:
    """Text that would run as a formula gets a leading apostrophe; other values pass."""
    if isinstance(value, str):
        value = ILLEGAL_CHARACTERS_RE.sub("", value)
        if value.startswith(FORMULA_TRIGGERS):
            return "'" + value
    return value


def _yuan(cents: int | None) -> float | None:
    return None if cents is None else round(cents / 100, 2)


def _csv_cell(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    if isinstance(value, date):
        return value.isoformat()
    return "" if value is None else value


@dataclass
class ExportResult:
    """The files written and how many rows each sheet got."""

    directory: Path
    files: list[Path] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)


class _Sheet:
    """One table written to a CSV file and a workbook sheet at once."""

    def __init__(self, workbook: Workbook, title: str, csv_path: Path | None, header: list[str]):
        self.sheet = workbook.create_sheet(title)
        self.handle: TextIO | None = None
        self.writer: Any = None
        if csv_path is not None:
            # utf-8-sig: the BOM makes Excel read the file as UTF-8, not the local code page.
            self.handle = csv_path.open("w", encoding="utf-8-sig", newline="")
            self.writer = csv.writer(self.handle)
        self.count = 0
        self.append(header, header=True)

    def append(self, values: Sequence[Any], *, header: bool = False) -> None:
        cells = [neutralise(v) for v in values]
        self.sheet.append(cells)
        if self.writer is not None:
            self.writer.writerow([_csv_cell(v) for v in cells])
        if not header:
            self.count += 1

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


def export_shop(
    *, session: Session, shop: Shop, out_dir: Path, today: date, with_phones: bool = False
) -> ExportResult:
    """Write the shop's customers, orders, follow-ups and warning log into `out_dir`."""
    assert shop.id is not None
    out_dir.mkdir(parents=True, exist_ok=True)
    result = ExportResult(directory=out_dir)
    # write_only: rows go to a temporary file as they come, not into a tree in memory.
    workbook = Workbook(write_only=True)
    phone = (lambda p: p or "") if with_phones else mask_phone
    names = _customer_names(session, shop.id)
    undone = undone_event_ids(session, shop.id)
    tz = ZoneInfo(shop.timezone)
    sheets = (
        ("客户", "customers.csv", _customer_rows(session, shop, today, phone)),
        ("订单", "orders.csv", _order_rows(session, shop, names)),
        ("跟进记录", "followups.csv", _followup_rows(session, shop, names, undone, tz)),
        (
            "客户流失预警与挽回记录表",
            None,
            _warning_log_rows(session, shop, today, phone, undone, tz),
        ),
    )
    for title, filename, (header, rows) in sheets:
        path = out_dir / filename if filename else None
        sheet = _Sheet(workbook, title, path, header)
        try:
            for row in rows:
                sheet.append(row)
        finally:
            sheet.close()
        result.rows[title] = sheet.count
        if path is not None:
            result.files.append(path)
    workbook_path = out_dir / WORKBOOK_NAME
    workbook.save(workbook_path)
    result.files.append(workbook_path)
    return result


Rows = tuple[list[str], Iterator[list[Any]]]


def _customer_names(session: Session, shop_id: int) -> dict[int, str]:
    return {
        cid: name
        for cid, name in session.exec(
            select(Customer.id, Customer.name).where(Customer.shop_id == shop_id)
        )
        if cid is not None
    }


def _stage(summary: CustomerSummary, today: date) -> Stage:
    return stage_on(
        stored=summary.stage,
        check_on=summary.check_on,
        red_on=summary.red_on,
        lost_on=summary.lost_on,
        today=today,
    )


def _days(value: float | None) -> int | None:
    return None if value is None else round(value)


def _customer_rows(session: Session, shop: Shop, today: date, phone: Any) -> Rows:
    header = [
        "客户编号", "客户", "电话", "地址", "别名", "类型", "价值等级", "状态", "阶段",
        "首单日期", "最近下单日期", "距上次下单(天)", "下单次数", "累计数量", "累计金额(元)",
        "平时间隔(天)", "流失概率", "风险金额(元)", "备注", "建档日期",
    ]  # fmt: skip

    def rows() -> Iterator[list[Any]]:
        query = (
            select(Customer, CustomerSummary)
            .join(CustomerSummary, col(CustomerSummary.customer_id) == col(Customer.id))
            .where(Customer.shop_id == shop.id)
            .order_by(col(Customer.id))
            .execution_options(yield_per=STREAM_ROWS)
        )
        for customer, summary in session.exec(query):
            last = summary.last_order_on
            yield [
                customer.id,
                customer.name,
                phone(customer.phone),
                customer.address,
                "、".join(customer.aliases),
                _kind_of_customer(customer.kind),
                customer.value_class,
                STATUS_LABELS.get(customer.status, customer.status),
                STAGE_LABELS[_stage(summary, today)],
                summary.first_order_on,
                last,
                (today - last).days if last else None,
                summary.order_count,
                summary.total_quantity,
                _yuan(summary.total_amount_cents),
                _days(summary.expected_interval_days),
                None if summary.churn_probability is None else round(summary.churn_probability, 3),
                _yuan(summary.value_at_risk_cents),
                customer.note,
                from_utc(customer.created_at).astimezone(ZoneInfo(shop.timezone)).date(),
            ]

    return header, rows()


def _order_rows(session: Session, shop: Shop, names: dict[int, str]) -> Rows:
    header = ["客户编号", "客户", "日期", "数量", "单位", "金额(元)"]

    def rows() -> Iterator[list[Any]]:
        # Core select: five columns is past sqlmodel's typed overloads.
        query = (
            sa_select(
                _ORDERS.c.customer_id,
                _ORDERS.c.order_date,
                _ORDERS.c.quantity,
                _ORDERS.c.unit,
                _ORDERS.c.amount_cents,
            )
            .where(_ORDERS.c.shop_id == shop.id)
            .order_by(_ORDERS.c.order_date, _ORDERS.c.id)
            .execution_options(yield_per=STREAM_ROWS)
        )
        for customer_id, day, quantity, unit, amount in session.execute(query):
            yield [customer_id, names.get(customer_id, ""), day, quantity, unit, _yuan(amount)]

    return header, rows()


def _label(value: Any) -> str:
    return VALUE_LABELS.get(value, str(value)) if isinstance(value, str) else str(value)


def _kind_of_customer(kind: str) -> str:
    """家庭 / 单位; a code this file does not know shows as 其他, never in English."""
    return KIND_OF_CUSTOMER.get(kind, "其他" if kind.isascii() else kind)


def followup_details(data: dict[str, Any], *, reason: str | None = None) -> str:
    """An event's data as a short readable line: 方式 打电话;原因 价格.

    `reason` is a loss reason kept on the follow-up only (a call that found one out).
    """
    values = {**data, "reason": data.get("reason") or reason}
    parts: list[str] = []
    for key, name in DETAIL_LABELS.items():
        value = values.get(key)
        if value in (None, "") or isinstance(value, bool | dict | list):
            continue
        if key == "cost_cents":
            if not isinstance(value, int):
                continue
            shown = f"{value / 100:g}元"
        elif key == "text":
            if value == values["reason"]:  # "王姐 流失 价格": the reason, said once
                continue
            shown = str(value)
        elif key == "reason":
            shown = _reason_word(value) or ""
        else:
            shown = _label(value)
        parts.append(f"{name} {shown}")
    return ";".join(parts)


def _followup_events(session: Session, shop: Shop, undone: set[int]) -> Iterator[Event]:
    query = (
        select(Event)
        .where(Event.shop_id == shop.id, col(Event.kind).in_(FOLLOWUP_KINDS))
        .order_by(col(Event.occurred_at), col(Event.id))
        .execution_options(yield_per=STREAM_ROWS)
    )
    for event in session.exec(query):
        # "reached" only marks that a call or visit got through; its outreach row says so.
        if event.kind == "interaction" and (event.data or {}).get("reaction") == "reached":
            continue
        if event.id not in undone:
            yield event


def _followups(session: Session, shop: Shop) -> Iterator[FollowUp]:
    query = (
        select(FollowUp)
        .where(FollowUp.shop_id == shop.id)
        .order_by(col(FollowUp.created_on), col(FollowUp.id))
        .execution_options(yield_per=STREAM_ROWS)
    )
    yield from session.exec(query)


def _reason_word(reason: Any) -> str | None:
    """A loss reason in words: a follow-up's code (price) or an event's own words (价格)."""
    if not reason or not isinstance(reason, str):
        return None
    if reason in REASON_WORDS:
        return REASON_WORDS[reason]
    return "其他" if reason.isascii() else reason


def _followup_rows(
    session: Session, shop: Shop, names: dict[int, str], undone: set[int], tz: ZoneInfo
) -> Rows:
    header = ["日期", "客户编号", "客户", "类型", "内容"]

    def rows() -> Iterator[list[Any]]:
        # A reason learnt on a contact (a call: "1 打了 嫌贵") is kept on the follow-up, not
        # in an event: it goes on that follow-up's contact row. A loss carries its own.
        found_out = {
            f.id: _reason_word(f.outcome_reason)
            for f in _followups(session, shop)
            if f.outcome_reason and f.outcome != "lost"
        }
        for event in _followup_events(session, shop, undone):
            followup_id = event.data.get("followup_id")
            reason = found_out.get(followup_id) if event.kind == "outreach" else None
            yield [
                from_utc(event.occurred_at).astimezone(tz).date(),
                event.customer_id,
                names.get(event.customer_id or 0, ""),
                KIND_LABELS.get(event.kind, event.kind),
                followup_details(event.data, reason=reason),
            ]

    return header, rows()


@dataclass
class _Followups:
    """What was done for one customer: contacts, the latest result and loss reason."""

    contacts: int = 0
    last_contact: date | None = None
    result: str | None = None
    result_at: datetime | None = None
    reason: str | None = None
    reason_at: datetime | None = None

    def note(self, at: datetime, result: str | None, reason: str | None) -> None:
        """Keep the latest result and the latest reason, from events and follow-ups alike."""
        if result and (self.result_at is None or at >= self.result_at):
            self.result, self.result_at = result, at
        if reason and (self.reason_at is None or at >= self.reason_at):
            self.reason, self.reason_at = reason, at


def _first_warning(
    stage: Stage, check_on: date | None, followed: date | None, today: date
) -> date | None:
    """The first quiet day of the current episode, or of the last one someone followed up.

    A customer back to normal (or won back) has their next check day in the future: that is
    not a warning yet, so the date comes from their last follow-up instead. Never after today.
    """
    warned_now = stage in (Stage.QUIET, Stage.AT_RISK, Stage.LOST)
    day = check_on if warned_now and check_on is not None and check_on <= today else followed
    return day if day is not None and day <= today else None


def _warning_log_rows(
    session: Session, shop: Shop, today: date, phone: Any, undone: set[int], tz: ZoneInfo
) -> Rows:
    header = [
        "客户", "电话", "阶段", "距上次下单(天)", "平时间隔(天)", "首次预警日期",
        "联系次数", "最近联系日期", "跟进结果", "流失原因", "风险金额(元)",
    ]  # fmt: skip

    def rows() -> Iterator[list[Any]]:
        done: dict[int, _Followups] = {}
        for event in _followup_events(session, shop, undone):
            if event.customer_id is None:
                continue
            entry = done.setdefault(event.customer_id, _Followups())
            at = from_utc(event.occurred_at)
            if event.kind == "outreach":
                entry.contacts += 1
                entry.last_contact = at.astimezone(tz).date()
            elif event.kind == "interaction":
                entry.note(at, VALUE_LABELS.get(event.data.get("reaction", "")), None)
            else:
                reason = _reason_word(event.data.get("reason"))
                entry.note(at, VALUE_LABELS.get(event.data.get("outcome", "")), reason)
        # What a tap or a numbered reply recorded lives on the follow-up ("打过电话", a reason
        # found out on a call): no event carries it.
        warned_on: dict[int, date] = {}
        for followup in _followups(session, shop):
            if followup.warning_on is not None:
                warned_on[followup.customer_id] = followup.warning_on
            if followup.outcome is None or followup.outcome_at is None:
                continue
            done.setdefault(followup.customer_id, _Followups()).note(
                from_utc(followup.outcome_at),
                VALUE_LABELS.get(followup.outcome),
                _reason_word(followup.outcome_reason),
            )
        query = (
            select(Customer, CustomerSummary)
            .join(CustomerSummary, col(CustomerSummary.customer_id) == col(Customer.id))
            .where(Customer.shop_id == shop.id, col(Customer.status) != "forgotten")
            .order_by(col(CustomerSummary.value_at_risk_cents).desc(), col(Customer.id))
            .execution_options(yield_per=STREAM_ROWS)
        )
        warned = {Stage.QUIET, Stage.AT_RISK, Stage.LOST, Stage.RECOVERED}
        for customer, summary in session.exec(query):
            assert customer.id is not None
            # The owner's word (marked lost) outranks the engine's dates.
            stage = Stage.LOST if customer.status == "lost" else _stage(summary, today)
            found = done.get(customer.id)
            if stage not in warned and found is None:
                continue
            entry = found or _Followups()
            last = summary.last_order_on
            yield [
                customer.name,
                phone(customer.phone),
                STAGE_LABELS[stage],
                (today - last).days if last else None,
                _days(summary.expected_interval_days),
                _first_warning(stage, summary.check_on, warned_on.get(customer.id), today),
                entry.contacts,
                entry.last_contact,
                entry.result,
                entry.reason,
                _yuan(summary.value_at_risk_cents),
            ]

    return header, rows()


def count_by_kind(result: ExportResult) -> str:
    """ "客户 300 行、订单 9,000 行…" for the command line."""
    return "、".join(f"{title} {count:,} 行" for title, count in result.rows.items())
