"""Importing customers and order history from an owner's spreadsheet: check, preview, write.

`analyse_import` reads the file once, streaming, and checks every row against the shop's
data without writing anything: the result is both the preview the owner confirms and the
validation report (each bad cell with its row, column, value and why). `import_file` does
the same inside the caller's write transaction and, when the file is clean, writes it:
new customers, then the orders in bulk, then each affected summary refreshed once (or the
whole shop rescored for a big file). Any error rolls the caller's transaction back, so an
import is all or nothing.

Idempotent twice over: the file's sha256 is logged in an "import" event (the same file
again adds nothing), and rows whose (customer, date, quantity, amount) already exist as
imported orders are skipped (an overlapping later export adds only its new rows).
"""

from __future__ import annotations

from array import array
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlmodel import Session, col, select

from app.clock import Clock, from_utc, local_today
from app.customers.models import Customer
from app.customers.risk import refresh_customer, rescore_shop, stored_priors
from app.customers.service import create_customer, mask_phone
from app.dataio.cells import (
    FIELD_LABELS,
    HEADER_SEARCH_ROWS,
    CellError,
    ColumnMap,
    cell_text,
    is_blank,
    is_usable,
    map_columns,
    parse_date,
    read_amount_cents,
    read_name,
    read_phone,
    read_quantity,
    read_text,
    read_unit,
)
from app.dataio.read import MAX_ROWS, FileRejected, Source, Table, file_sha256, open_table
from app.events.models import Event
from app.events.service import log_event
from app.orders.models import Order
from app.outreach.models import FollowUp
from app.outreach.outcomes import on_order
from app.shops.models import Shop

IMPORT_SOURCE = "import"
MAX_ISSUES_KEPT = 200  # listed one by one; the rest are counted
PREVIEW_ROWS = 5
BATCH_ROWS = 5_000  # orders per INSERT executemany
# Above this many customers touched, rescoring the whole shop (vectorised, and it refits the
# shop's priors on the new history) is cheaper than refreshing them one by one.
RESCORE_ABOVE = 100
ORDER_HOUR = time(12)
_ORDERS = Order.__table__  # type: ignore[attr-defined]  # imported orders have a day, not a time: noon, shop time


@dataclass(frozen=True)
class RowIssue:
    """One bad cell (or row): where it is, what it says, and why it cannot be imported."""

    line: int
    column: str
    value: str
    reason: str

    def describe(self) -> str:
        where = f"第{self.line}行" + (f"“{self.column}”" if self.column else "")
        shown = f"“{self.value}”" if self.value else "(空)"
        return f"{where} {shown}:{self.reason}"


@dataclass
class Person:
    """A customer the file refers to: an existing one (customer_id) or one to create."""

    name: str | None
    phone: str | None
    address: str | None
    line: int
    customer_id: int | None = None  # set for existing customers, and once a new one exists
    new: bool = False  # not in the shop before this file


@dataclass(frozen=True)
class PreviewRow:
    line: int
    name: str
    phone: str  # masked
    day: date | None
    quantity: int | None
    amount_cents: int | None
    status: str  # 新客户 / 已有客户


@dataclass
class ImportPlan:
    """Everything learnt from reading the file against the shop: preview and report."""

    source_name: str
    sha256: str = ""
    format: str = ""
    encoding: str | None = None
    sheet: str | None = None
    columns: ColumnMap | None = None
    header_line: int = 0
    rejected: str | None = None  # the whole file is unusable: why
    rejected_kind: str | None = None
    rows_read: int = 0
    issues: list[RowIssue] = field(default_factory=list)
    issue_count: int = 0
    people: list[Person] = field(default_factory=list)
    # One entry per order row to write, as compact C int arrays (not Python objects): index
    # into people, day ordinal, quantity, amount in cents (-1 when none), unit index, line.
    person: array[int] = field(default_factory=lambda: array("i"))
    day: array[int] = field(default_factory=lambda: array("i"))
    quantity: array[int] = field(default_factory=lambda: array("i"))
    amount: array[int] = field(default_factory=lambda: array("i"))
    unit: array[int] = field(default_factory=lambda: array("i"))
    line: array[int] = field(default_factory=lambda: array("i"))
    units: list[str] = field(default_factory=list)
    keep: np.ndarray | None = None  # rows to write (False: already imported before)
    skipped_existing: int = 0
    first_rows: list[PreviewRow] = field(default_factory=list)
    already_imported_at: datetime | None = None

    @property
    def has_orders(self) -> bool:
        return self.columns is not None and self.columns.has_orders

    @property
    def accepted(self) -> bool:
        """True when the file can be imported as it is (nothing wrong anywhere)."""
        return self.rejected is None and self.issue_count == 0

    @property
    def order_rows(self) -> int:
        return len(self.day)

    @property
    def orders_to_add(self) -> int:
        return 0 if self.keep is None else int(self.keep.sum())

    @property
    def new_customers(self) -> list[Person]:
        return [p for p in self.people if p.new]

    @property
    def existing_customers(self) -> int:
        return sum(1 for p in self.people if not p.new)

    @property
    def first_day(self) -> date | None:
        return date.fromordinal(min(self.day)) if len(self.day) else None

    @property
    def last_day(self) -> date | None:
        return date.fromordinal(max(self.day)) if len(self.day) else None

    def add_issue(self, issue: RowIssue) -> None:
        self.issue_count += 1
        if len(self.issues) < MAX_ISSUES_KEPT:
            self.issues.append(issue)


@dataclass(frozen=True)
class ImportResult:
    """What an import wrote (all zeros when it was refused or already done)."""

    plan: ImportPlan
    written: bool
    customers_added: int = 0
    orders_added: int = 0
    event_id: int | None = None


class _Directory:
    """The shop's customers, to match a row by phone first, then by exact name."""

    def __init__(self, session: Session, shop_id: int) -> None:
        self.by_phone: dict[str, int] = {}
        self.by_name: dict[str, list[tuple[int, str | None]]] = defaultdict(list)
        self.names: dict[int, str] = {}
        rows = session.exec(
            select(Customer.id, Customer.name, Customer.phone).where(
                Customer.shop_id == shop_id, col(Customer.status) != "forgotten"
            )
        )
        for cid, name, phone in rows:
            assert cid is not None
            digits = _digits(phone)
            if digits:
                self.by_phone.setdefault(digits, cid)
            self.by_name[name].append((cid, digits))
            self.names[cid] = name


def _digits(phone: str | None) -> str | None:
    if not phone:
        return None
    try:
        return read_phone(phone)
    except CellError:
        return None


class _People:
    """Resolves each row to one Person, creating each new customer once per file."""

    def __init__(self, directory: _Directory, plan: ImportPlan) -> None:
        self.directory = directory
        self.plan = plan
        self.existing: dict[int, int] = {}  # customer id -> people index
        self.new_by_phone: dict[str, int] = {}
        self.new_by_name: dict[str, list[int]] = defaultdict(list)

    def _existing(self, cid: int, line: int) -> int:
        if cid not in self.existing:
            self.existing[cid] = len(self.plan.people)
            name = self.directory.names.get(cid)
            self.plan.people.append(Person(name, None, None, line, customer_id=cid))
        return self.existing[cid]

    def resolve(
        self, *, name: str | None, phone: str | None, address: str | None, line: int
    ) -> int | str:
        """The people index for a row, or the reason it cannot be matched."""
        if phone is not None:
            cid = self.directory.by_phone.get(phone)
            if cid is not None:
                return self._existing(cid, line)
            if phone in self.new_by_phone:
                return self.new_by_phone[phone]
        if name is None:
            return "这个电话不是已有客户的,新客户需要填名字"
        # Same name counts as the same person unless both have a phone and they differ.
        same = [cid for cid, known in self.directory.by_name.get(name, []) if not (phone and known)]
        if len(same) > 1:
            return f"店里有 {len(same)} 位叫“{name}”的客户,请在文件里填上电话以区分"
        if same:
            return self._existing(same[0], line)
        for index in self.new_by_name.get(name, []):
            person = self.plan.people[index]
            if phone is None or person.phone is None or person.phone == phone:
                if phone is not None and person.phone is None:
                    person.phone = phone
                    self.new_by_phone[phone] = index
                person.address = person.address or address
                return index
        index = len(self.plan.people)
        self.plan.people.append(Person(name, phone, address, line, new=True))
        self.new_by_name[name].append(index)
        if phone is not None:
            self.new_by_phone[phone] = index
        return index


def _find_header(rows: Iterator[tuple[int, list[Any]]]) -> tuple[int, list[Any], ColumnMap]:
    """The header row (within the first rows) or a FileRejected saying what was seen."""
    first: list[Any] | None = None
    nonblank = 0
    for line, cells in rows:
        if all(is_blank(c) for c in cells):
            continue
        nonblank += 1
        first = first if first is not None else cells
        columns = map_columns(cells)
        if is_usable(columns):
            return line, cells, columns
        if nonblank >= HEADER_SEARCH_ROWS:
            break
    if first is None:
        raise FileRejected("文件里没有内容(只有空行)。", kind="empty")
    seen = "、".join(f"“{cell_text(c)}”" for c in first if not is_blank(c)) or "(无)"
    raise FileRejected(
        f"没有找到能认出的表头。文件第一行是:{seen}。"
        "需要有“客户”(或 姓名/客户名称/name)或“电话”(或 手机/phone)列;"
        "导入订单还需要“日期”(或 下单日期/date)列,可选“数量”(桶数/qty)、“金额”(amount)、“地址”。",
        kind="wrong_columns",
    )


def analyse_import(*, session: Session, shop: Shop, source: Source, clock: Clock) -> ImportPlan:
    """Read and check the whole file against the shop; writes nothing."""
    assert shop.id is not None
    plan = ImportPlan(source_name=source.name)
    try:
        table = open_table(source)
        plan.format, plan.encoding, plan.sheet = table.format, table.encoding, table.sheet
        plan.sha256 = file_sha256(source.path)
        _read_rows(session=session, shop=shop, table=table, plan=plan, clock=clock)
    except FileRejected as exc:
        plan.rejected, plan.rejected_kind = exc.reason, exc.kind
        return plan
    _mark_duplicates(plan)
    _skip_already_imported(session=session, shop=shop, plan=plan)
    plan.already_imported_at = _imported_before(session=session, shop=shop, sha256=plan.sha256)
    return plan


def _read_rows(
    *, session: Session, shop: Shop, table: Table, plan: ImportPlan, clock: Clock
) -> None:
    today = local_today(clock, shop.timezone)
    rows = table.rows()
    plan.header_line, header, columns = _find_header(rows)
    plan.columns = columns
    pos = columns.positions
    label = {f: columns.headers.get(f, FIELD_LABELS[f]) for f in FIELD_LABELS}
    if not columns.has_orders and ("quantity" in pos or "amount" in pos):
        raise FileRejected(
            f"找到了{'数量' if 'quantity' in pos else '金额'}列,但没有找到日期列,"
            "不知道每一单是哪天的。请把日期那一列的表头写成“日期”或“下单日期”。",
            kind="wrong_columns",
        )
    people = _People(_Directory(session, shop.id or 0), plan)
    default_unit = str(shop.settings.get("unit", "桶"))
    unit_price = shop.settings.get("unit_price_cents")
    unit_index: dict[str, int] = {}
    width = len(header)
    by_field = _cell_readers(today)
    readers = [(name, pos[name], by_field[name]) for name in FIELD_LABELS if name in pos]
    for line, cells in rows:
        if all(is_blank(c) for c in cells):
            continue
        plan.rows_read += 1
        if plan.rows_read > MAX_ROWS:
            raise FileRejected(
                f"行数太多,一次最多导入 {MAX_ROWS} 行。可以按年份拆开再导入。",
                kind="too_many_rows",
            )
        if len(cells) < width:
            cells = cells + [None] * (width - len(cells))
        values = dict.fromkeys(FIELD_LABELS)
        bad = False
        for name, position, reader in readers:
            raw = cells[position]
            try:
                values[name] = reader(raw)
            except CellError as exc:
                plan.add_issue(RowIssue(line, label[name], cell_text(raw), str(exc)))
                bad = True
        if bad:
            continue
        if values["name"] is None and values["phone"] is None:
            plan.add_issue(RowIssue(line, label["name"], "", "缺少客户名字(或电话)"))
            continue
        found = people.resolve(
            name=values["name"], phone=values["phone"], address=values["address"], line=line
        )
        if isinstance(found, str):
            column = label["phone"] if values["name"] is None else label["name"]
            shown = values["name"] or values["phone"] or ""
            plan.add_issue(RowIssue(line, column, shown, found))
            continue
        day: date | None = values["date"]
        quantity = values["quantity"] or 1
        amount = values["amount"]
        if amount is None and unit_price and day is not None:
            amount = int(unit_price) * quantity
        if day is not None:
            unit = values["unit"] or default_unit
            plan.person.append(found)
            plan.day.append(day.toordinal())
            plan.quantity.append(quantity)
            plan.amount.append(-1 if amount is None else amount)
            plan.unit.append(unit_index.setdefault(unit, len(unit_index)))
            plan.line.append(line)
        if len(plan.first_rows) < PREVIEW_ROWS:
            person = plan.people[found]
            plan.first_rows.append(
                PreviewRow(
                    line=line,
                    name=values["name"] or person.name or "",
                    phone=mask_phone(values["phone"]),
                    day=day,
                    quantity=quantity if day is not None else None,
                    amount_cents=amount,
                    status="新客户" if person.new else "已有客户",
                )
            )
    plan.units = list(unit_index)
    if plan.rows_read == 0:
        raise FileRejected("只有表头,没有数据行。", kind="empty")


def _cell_readers(today: date) -> dict[str, Callable[[Any], Any]]:
    """A reader per field; each raises CellError with the reason."""

    def read_day(raw: Any) -> date:
        return parse_date(raw, today=today)

    def read_address(raw: Any) -> str | None:
        return read_text(raw, limit=200, what="地址")

    return {
        "name": read_name,
        "phone": read_phone,
        "address": read_address,
        # An export repeats a few hundred distinct days over thousands of rows.
        "date": _memoised(read_day),
        "quantity": _memoised(read_quantity),
        "amount": _memoised(read_amount_cents),
        "unit": read_unit,
    }


def _memoised(reader: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Cache a reader's answers (and refusals) for hashable cells, up to a bounded size."""
    answers: dict[Any, tuple[bool, Any]] = {}

    def read(raw: Any) -> Any:
        key = (type(raw), raw)
        found = answers.get(key)
        if found is None:
            try:
                found = (True, reader(raw))
            except CellError as exc:
                found = (False, exc)
            if len(answers) < 10_000:
                answers[key] = found
        ok, value = found
        if not ok:
            raise CellError(str(value))
        return value

    return read


def _keys(plan: ImportPlan) -> np.ndarray:
    """(person, day, quantity, amount) per order row, as a structured array."""
    keys = np.empty(len(plan.day), dtype=[("p", "i4"), ("d", "i4"), ("q", "i4"), ("a", "i4")])
    keys["p"] = np.frombuffer(plan.person, dtype=np.int32)
    keys["d"] = np.frombuffer(plan.day, dtype=np.int32)
    keys["q"] = np.frombuffer(plan.quantity, dtype=np.int32)
    keys["a"] = np.frombuffer(plan.amount, dtype=np.int32)
    return keys


def _mark_duplicates(plan: ImportPlan) -> None:
    """Rows identical to an earlier row (same customer, day, quantity, amount) are reported."""
    if not len(plan.day):
        return
    keys = _keys(plan)
    order = np.argsort(keys, order=("p", "d", "q", "a"), kind="stable")
    sorted_keys = keys[order]
    same = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1]) + 1
    if not same.size:
        return
    lines = np.frombuffer(plan.line, dtype=np.int32)
    # The first row of each run of equal keys (stable sort: lowest line first).
    starts = np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]
    run_start = np.maximum.accumulate(np.where(starts, np.arange(len(order)), 0))
    for k in same:
        first_line = int(lines[order[run_start[k]]])
        line = int(lines[order[k]])
        person = plan.people[int(sorted_keys[k]["p"])]
        plan.add_issue(
            RowIssue(
                line,
                "",
                person.name or mask_phone(person.phone) or "",
                f"与第{first_line}行完全相同(客户、日期、数量、金额都一样)。"
                "如果是同一天的两单,请合成一行、数量相加;如果是重复粘贴,请删掉一行",
            )
        )
    plan.issues.sort(key=lambda i: i.line)


def _skip_already_imported(*, session: Session, shop: Shop, plan: ImportPlan) -> None:
    """Rows already in the shop as imported orders are kept out (overlapping exports)."""
    n = len(plan.day)
    plan.keep = np.ones(n, dtype=bool)
    existing_ids = {p.customer_id for p in plan.people if p.customer_id is not None}
    if not n or not existing_ids:
        return
    index = {p.customer_id: i for i, p in enumerate(plan.people) if p.customer_id is not None}
    known: set[tuple[int, int, int, int]] = set()
    ids = sorted(existing_ids)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for cid, day, quantity, amount in session.exec(
            select(
                col(Order.customer_id),
                col(Order.order_date),
                col(Order.quantity),
                col(Order.amount_cents),
            ).where(
                Order.shop_id == shop.id,
                Order.source == IMPORT_SOURCE,
                col(Order.customer_id).in_(chunk),
            )
        ):
            known.add((index[cid], day.toordinal(), quantity, -1 if amount is None else amount))
    if not known:
        return
    for i, key in enumerate(zip(plan.person, plan.day, plan.quantity, plan.amount, strict=True)):
        if key in known:
            plan.keep[i] = False
    plan.skipped_existing = int(n - plan.keep.sum())


def _imported_before(*, session: Session, shop: Shop, sha256: str) -> datetime | None:
    """When this exact file was imported into the shop, if it was."""
    for occurred_at, data in session.exec(
        select(Event.occurred_at, Event.data).where(
            Event.shop_id == shop.id, Event.kind == "import"
        )
    ):
        if (data or {}).get("sha256") == sha256:
            return from_utc(occurred_at)
    return None


def import_file(
    *,
    session: Session,
    shop: Shop,
    source: Source,
    clock: Clock,
    dry_run: bool = False,
    staff_id: int | None = None,
) -> ImportResult:
    """Check the file and, if it is clean and new, write it in the caller's transaction."""
    plan = analyse_import(session=session, shop=shop, source=source, clock=clock)
    if dry_run or not plan.accepted or plan.already_imported_at is not None:
        return ImportResult(plan=plan, written=False)
    return write_import(session=session, shop=shop, plan=plan, clock=clock, staff_id=staff_id)


def write_import(
    *, session: Session, shop: Shop, plan: ImportPlan, clock: Clock, staff_id: int | None = None
) -> ImportResult:
    """Write an accepted plan: customers, orders in bulk, summaries once, the import event."""
    if not plan.accepted:
        raise ValueError("refusing to write a file that failed its checks")
    assert shop.id is not None and plan.keep is not None
    added_customers = 0
    for person in plan.people:
        if person.customer_id is None:
            assert person.name is not None
            customer = create_customer(
                session=session,
                shop=shop,
                name=person.name,
                clock=clock,
                phone=person.phone,
                address=person.address,
                staff_id=staff_id,
                source=IMPORT_SOURCE,
            )
            person.customer_id = customer.id
            added_customers += 1
    tz = ZoneInfo(shop.timezone)
    now = clock.now()
    touched: set[int] = set()
    batch: list[dict[str, Any]] = []
    added_orders = 0
    for i in np.flatnonzero(plan.keep):
        customer_id = plan.people[plan.person[i]].customer_id
        assert customer_id is not None
        day = date.fromordinal(plan.day[i])
        amount = plan.amount[i]
        batch.append(
            {
                "shop_id": shop.id,
                "customer_id": customer_id,
                "ordered_at": datetime.combine(day, ORDER_HOUR, tzinfo=tz),
                "order_date": day,
                "quantity": plan.quantity[i],
                "unit": plan.units[plan.unit[i]],
                "amount_cents": None if amount < 0 else amount,
                "source": IMPORT_SOURCE,
                "created_by_staff_id": staff_id,
                "created_at": now,
            }
        )
        touched.add(customer_id)
        if len(batch) >= BATCH_ROWS:
            added_orders += _insert_orders(session, batch)
            batch = []
    if batch:
        added_orders += _insert_orders(session, batch)
    _close_followups(session=session, shop=shop, customer_ids=touched)
    _refresh(session=session, shop=shop, customer_ids=touched, clock=clock)
    event = log_event(
        session=session,
        shop_id=shop.id,
        kind="import",
        clock=clock,
        data={
            "sha256": plan.sha256,
            "file": plan.source_name[:200],
            "format": plan.format,
            "rows": plan.rows_read,
            "customers_added": added_customers,
            "orders_added": added_orders,
            "orders_skipped": plan.skipped_existing,
        },
        source=IMPORT_SOURCE,
        staff_id=staff_id,
    )
    return ImportResult(
        plan=plan,
        written=True,
        customers_added=added_customers,
        orders_added=added_orders,
        event_id=event.id,
    )


def _insert_orders(session: Session, rows: list[dict[str, Any]]) -> int:
    """One Core executemany per batch: ORM objects (or ORM bulk) would cost seconds."""
    session.connection().execute(_ORDERS.insert(), rows)
    return len(rows)


def _close_followups(*, session: Session, shop: Shop, customer_ids: set[int]) -> None:
    """An imported order on or after a pending follow-up began answers it, as a chat order
    would (a win-back if we had reached out). Older history leaves follow-ups alone."""
    pending: dict[int, date] = {}
    for customer_id, created_on in session.exec(
        select(col(FollowUp.customer_id), col(FollowUp.created_on)).where(
            FollowUp.shop_id == shop.id,
            col(FollowUp.status).in_(("open", "contacted")),
            FollowUp.tier > 0,
        )
    ):
        if customer_id in customer_ids:
            pending[customer_id] = min(created_on, pending.get(customer_id, created_on))
    for customer_id, since in sorted(pending.items()):
        order = session.exec(
            select(Order)
            .where(Order.customer_id == customer_id, col(Order.order_date) >= since)
            .order_by(col(Order.order_date).desc(), col(Order.id).desc())
            .limit(1)
        ).first()
        customer = session.get(Customer, customer_id)
        if order is not None and customer is not None:
            on_order(session=session, shop=shop, customer=customer, order=order)


def _refresh(*, session: Session, shop: Shop, customer_ids: set[int], clock: Clock) -> None:
    """Bring the touched customers' summaries up to date, each once (or the whole shop)."""
    if not customer_ids:
        return
    if len(customer_ids) > RESCORE_ABOVE or stored_priors(shop) is None:
        rescore_shop(session=session, shop=shop, clock=clock)
        return
    for customer_id in sorted(customer_ids):
        refresh_customer(session=session, shop=shop, customer_id=customer_id, clock=clock)
