"""Read a shop's order export (.csv or .xlsx) into the engine's arrays, or refuse it clearly.

This is the file side of `huitou score` and `huitou backtest`; the engine (app/risk) only
sees the `OrderArrays` built here. Columns: customer_id, date, and optional quantity, amount,
spelt as the import spells them (`cells.HEADER_ALIASES`, plus customer ids and headers in 分
such as 金额(分), converted to yuan). Text encoding and delimiter are decided by `read.py`,
as for the import. Dates may be 2025-03-01, 2025/3/1, 2025年3月1日, 20250301, or Excel
serials/date cells.

Policy: a file with any unreadable date, missing customer, or bad quantity/amount is refused
as a whole with an `OrderFileError` naming the file, column, rows and sample values;
nothing is silently dropped. Big CSVs go through pyarrow with column types and
dictionary-encoded customer ids (15M rows / 1M customers in seconds).
"""

from __future__ import annotations

import codecs
import csv
import math
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from app.dataio.cells import (
    CENT_AMOUNT_ALIASES,
    CUSTOMER_ID_ALIASES,
    HEADER_ALIASES,
    HEADER_SEARCH_ROWS,
    match_headers,
    normalise_header,
)
from app.dataio.read import FileRejected, detect_text_encoding, sniff_delimiter
from app.risk.history import OrderArrays
from app.risk.season import epoch_day, from_epoch_day

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

# Progress callback: (units done, units total) for the reading phase (bytes or rows).
Progress = Callable[[int, int], None]

REQUIRED = ("customer_id", "date")
OPTIONAL = ("quantity", "amount")
COLUMN_LABELS = {"customer_id": "客户", "date": "日期", "quantity": "数量", "amount": "金额"}
# Header spellings per column, as the import knows them (earlier spellings win when a file
# has several: 客户编号 beats 客户名称).
ALIASES: dict[str, tuple[str, ...]] = {
    "customer_id": CUSTOMER_ID_ALIASES,
    "date": HEADER_ALIASES["date"],
    "quantity": HEADER_ALIASES["quantity"],
    "amount": HEADER_ALIASES["amount"] + CENT_AMOUNT_ALIASES,
}
# Amount headers in cents (分): the engine works in yuan, so these are divided by 100.
CENT_HEADERS = frozenset(CENT_AMOUNT_ALIASES)

MAX_SAMPLES = 5
SNIFF_BYTES = 1 << 20
BLOCK_SIZE = 16 << 20
EXCEL_EPOCH_SERIAL = 25569  # Excel's serial number of 1970-01-01 (1900 date system)
MIN_YEAR, MAX_YEAR = 1900, 2100

_YMD = re.compile(
    r"^(?P<y>\d{4})\s*[-/.年]\s*(?P<m>\d{1,2})\s*[-/.月]\s*(?P<d>\d{1,2})\s*日?"
    r"(?:(?:\s+|T)\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$"
)
_COMPACT = re.compile(r"^(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})$")
_SERIAL = re.compile(r"^(?P<n>\d{5})(?:\.\d*)?$")
_NUMBER = r"^\+?-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$"
_CURRENCY = r"^[¥￥]|元$|RMB|rmb"


class OrderFileError(Exception):
    """An order file that cannot be used; `str()` is a Chinese line then an English one."""

    def __init__(
        self,
        path: Path | str,
        kind: str,
        zh: str,
        en: str,
        *,
        column: str | None = None,
        rows: Sequence[int] = (),
        samples: Sequence[str] = (),
        count: int = 0,
    ) -> None:
        self.path = Path(path)
        self.kind = kind
        self.column = column
        self.rows = list(rows)
        self.samples = list(samples)
        self.count = count
        self.zh = f"订单文件 {self.path.name} 无法导入:{zh}"
        self.en = f"Cannot import order file {self.path.name}: {en}"
        super().__init__(f"{self.zh}\n{self.en}")


@dataclass(frozen=True)
class LoadedOrders:
    """An order file as engine arrays, plus what the owner should know about it."""

    path: Path
    orders: OrderArrays
    customer_ids: pa.Array  # string, sorted; element i is the id of customer index i
    n_rows: int  # data rows read (every row became an order)
    n_after_as_of: int  # rows dated after as_of (kept; the engine ignores them)
    as_of: date  # the given as_of, or the latest order date in the file
    first_date: date
    last_date: date
    columns: dict[str, str]  # canonical column -> header found in the file
    encoding: str | None  # CSV text encoding, None for .xlsx
    problems: list[str] = field(default_factory=list)  # notes, not errors

    @property
    def n_customers(self) -> int:
        return self.orders.n_customers

    def customer_id(self, index: int) -> str:
        return str(self.customer_ids[index].as_py())


# --- entry point ----------------------------------------------------------------------------


def read_orders(
    path: Path | str, *, as_of: date | None = None, progress: Progress | None = None
) -> LoadedOrders:
    """Read an order export; refuse it with an `OrderFileError` if anything is wrong."""
    path = Path(path)
    if not path.exists():
        raise OrderFileError(path, "not_found", "找不到这个文件。", "the file does not exist.")
    if path.is_dir():
        raise OrderFileError(path, "not_found", "这是一个文件夹。", "this is a directory.")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt"):
        # Bytes read are two thirds of the work; encoding and checking the columns the rest.
        raw = _read_csv(path, None if progress is None else _scaled(progress, 1.5))
    elif suffix in (".xlsx", ".xlsm"):
        raw = _read_xlsx(path, progress)
    elif suffix == ".xls":
        raise OrderFileError(
            path,
            "unknown_format",
            "不支持旧版 .xls,请在 Excel 里“另存为” .xlsx 或 .csv。",
            "old .xls files are not supported; save as .xlsx or .csv in Excel.",
        )
    else:
        raise OrderFileError(
            path,
            "unknown_format",
            f"不认识的文件类型“{path.suffix or '(无扩展名)'}”,请用 .csv 或 .xlsx。",
            f"unknown file type {path.suffix or '(no extension)'!r}; use .csv or .xlsx.",
        )
    loaded = _assemble(raw, as_of)
    if progress is not None:
        progress(1, 1)
    return loaded


def _scaled(progress: Progress, factor: float) -> Progress:
    return lambda done, total: progress(done, int(total * factor))


# --- shared pieces ----------------------------------------------------------------------------


@dataclass
class _Raw:
    """Columns as read, before validation. Row i of the data is file line `line_of(i)`."""

    path: Path
    columns: dict[str, str]
    customer: pa.ChunkedArray  # string, or dictionary of strings
    date: pa.ChunkedArray  # string, or dictionary of strings
    quantity: pa.ChunkedArray | None  # numbers or strings
    amount: pa.ChunkedArray | None
    first_line: int  # file line / sheet row of data row 0
    line_numbers: I64 | None  # explicit line per data row (xlsx skips empty rows)
    encoding: str | None
    where: str  # "" or " (工作表 Sheet1)" for messages
    problems: list[str]

    def line_of(self, rows: I64) -> list[int]:
        if self.line_numbers is not None:
            return [int(x) for x in self.line_numbers[rows]]
        return [int(x) + self.first_line for x in rows]


def _match_columns(header: Sequence[object]) -> tuple[dict[str, int], list[str]]:
    """Canonical column -> position in the header; notes about ambiguous choices."""
    found, rivals = match_headers(header, ALIASES)
    notes = []
    for canonical, others in rivals.items():
        chosen = header[found[canonical]]
        rest = "、".join(str(header[p]) for p in others)
        notes.append(
            f"{COLUMN_LABELS[canonical]}用了“{chosen}”列,没用 {rest} / "
            f"used column {chosen!r} for {canonical}, not {rest}"
        )
    return found, notes


def _find_header(path: Path, rows: Iterable[Sequence[object]], where: str) -> tuple[int, list[Any]]:
    """(index of the header row, its cells); refuse with the columns seen if none fits."""
    first_nonempty: list[Any] | None = None
    for index, row in enumerate(rows):
        if index >= HEADER_SEARCH_ROWS:
            break
        cells = list(row)
        if not any(c not in (None, "") and str(c).strip() for c in cells):
            continue
        if first_nonempty is None:
            first_nonempty = cells
        found, _ = _match_columns(cells)
        if all(c in found for c in REQUIRED):
            return index, cells
    if first_nonempty is None:
        raise OrderFileError(
            path, "empty", f"文件{where}是空的,没有表头也没有订单。", "the file is empty."
        )
    found, _ = _match_columns(first_nonempty)
    missing = [c for c in REQUIRED if c not in found]
    seen = ", ".join(repr(str(c)) for c in first_nonempty if c not in (None, "")) or "(无)"
    zh_missing = "、".join(f"{c}({COLUMN_LABELS[c]})" for c in missing)
    raise OrderFileError(
        path,
        "missing_columns",
        f"缺少必需的列 {zh_missing}{where}。文件里的列是:{seen}。"
        "需要 customer_id(或 客户/客户编号)和 date(或 日期/下单日期)两列。",
        f"missing required column(s) {', '.join(missing)}; found columns: {seen}. "
        "Needs customer_id (or 客户/客户编号) and date (or 日期/下单日期).",
        column=missing[0],
    )


def _bad_rows_error(
    raw: _Raw, kind: str, column: str, bad: B, values: pa.Array | Sequence[object],
    zh_what: str, en_what: str, zh_hint: str, en_hint: str,
) -> OrderFileError:  # fmt: skip
    rows = np.flatnonzero(bad)
    first = rows[:MAX_SAMPLES]
    lines = raw.line_of(first)
    samples = [_show(values[int(i)]) for i in first]
    header = raw.columns.get(column, column)
    zh_list = "、".join(f"第{ln}行 {s}" for ln, s in zip(lines, samples, strict=True))
    en_list = ", ".join(f"line {ln}: {s}" for ln, s in zip(lines, samples, strict=True))
    more_zh = " 等" if rows.size > first.size else ""
    more_en = ", ..." if rows.size > first.size else ""
    return OrderFileError(
        raw.path,
        kind,
        f"“{header}”列{raw.where}有 {rows.size} 行{zh_what}:{zh_list}{more_zh}。{zh_hint}"
        "整份文件未导入,请改正后再试。",
        f"column {header!r} has {rows.size} row(s) with {en_what} ({en_list}{more_en}). "
        f"{en_hint} Nothing was imported.",
        column=column,
        rows=lines,
        samples=samples,
        count=int(rows.size),
    )


def _show(value: object) -> str:
    if isinstance(value, pa.Scalar):
        value = value.as_py()
    if value is None:
        return "(空)"
    text = str(value)
    if text.strip() == "":
        return "(空)"
    return repr(text if len(text) <= 40 else text[:37] + "...")


# --- dates ------------------------------------------------------------------------------------


def _civil_days(y: I64, m: I64, d: I64) -> tuple[I64, B]:
    """Epoch days of (y, m, d) arrays, and which triples are real calendar dates."""
    ok = (y >= MIN_YEAR) & (y <= MAX_YEAR) & (m >= 1) & (m <= 12) & (d >= 1)
    months = np.where(ok, (y - 1970) * 12 + (m - 1), 0)
    start = months.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    end = (months + 1).astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    ok &= d <= end - start
    days: I64 = np.where(ok, start + d - 1, 0)
    return days, ok


def parse_date_strings(values: pa.Array) -> tuple[I64, B]:
    """Epoch days for date texts (vectorised), and which ones parsed.

    Accepts 2025-03-01, 2025/3/1, 2025.3.1, 2025年3月1日 (optionally with a time),
    20250301, and Excel serial numbers (45717 or 45717.5).
    """
    n = len(values)
    days = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=bool)
    if n == 0:
        return days, ok
    text = pc.utf8_trim_whitespace(values.cast(pa.string()))
    for pattern in (_YMD, _COMPACT):
        todo = ~ok
        if not todo.any():
            break
        parts = pc.extract_regex(text, pattern.pattern)
        valid = np.asarray(parts.is_valid().to_numpy(zero_copy_only=False), dtype=bool) & todo
        if not valid.any():
            continue

        def field_of(name: str, parts: pa.StructArray = parts, valid: B = valid) -> I64:
            column = pc.struct_field(parts, name).fill_null("0")
            return np.where(valid, column.cast(pa.int64()).to_numpy(), 0)

        got, real = _civil_days(field_of("y"), field_of("m"), field_of("d"))
        real &= valid
        days[real] = got[real]
        ok |= real
    todo = ~ok
    if todo.any():
        parts = pc.extract_regex(text, _SERIAL.pattern)
        valid = np.asarray(parts.is_valid().to_numpy(zero_copy_only=False), dtype=bool) & todo
        if valid.any():
            serial = pc.struct_field(parts, "n").fill_null("0").cast(pa.int64()).to_numpy()
            got = serial - EXCEL_EPOCH_SERIAL
            real = valid & (got >= epoch_day(date(MIN_YEAR, 1, 1)))
            real &= got <= epoch_day(date(MAX_YEAR, 12, 31))
            days[real] = got[real]
            ok |= real
    return days, ok


def _column_days(raw: _Raw) -> I64:
    """Epoch day of every row; refuse the file if any date is unreadable."""
    n = raw.date.length()
    days = np.empty(n, dtype=np.int64)
    bad: B | None = None
    offset = 0
    for chunk in raw.date.chunks:
        size = len(chunk)
        if pa.types.is_dictionary(chunk.type):
            # A few hundred distinct dates per block: parse those, then look rows up.
            parsed, ok = parse_date_strings(chunk.dictionary)
            indices = chunk.indices
            if indices.null_count:
                indices = indices.fill_null(0)
            idx = indices.to_numpy()
            days[offset : offset + size] = parsed[idx]
            chunk_bad = ~ok[idx] if not ok.all() else None
        else:
            parsed, ok = parse_date_strings(chunk)
            days[offset : offset + size] = parsed
            chunk_bad = ~ok if not ok.all() else None
        if chunk.null_count:
            null = np.asarray(chunk.is_null().to_numpy(zero_copy_only=False), dtype=bool)
            chunk_bad = null if chunk_bad is None else chunk_bad | null
        if chunk_bad is not None:
            if bad is None:
                bad = np.zeros(n, dtype=bool)
            bad[offset : offset + size] = chunk_bad
        offset += size
    if bad is not None:
        raise _bad_rows_error(
            raw, "bad_date", "date", bad, _Lazy(raw.date),
            "无法识别的日期", "unreadable dates",
            "日期请写成 2025-03-01、2025/3/1 或 20250301 这样的格式。",
            "Write dates like 2025-03-01, 2025/3/1 or 20250301.",
        )  # fmt: skip
    return days


class _Lazy:
    """Index a chunked array by row without materialising it (for error samples)."""

    def __init__(self, column: pa.ChunkedArray) -> None:
        self.column = column

    def __getitem__(self, i: int) -> object:
        return self.column[i].as_py()


# --- numbers ----------------------------------------------------------------------------------


def _column_numbers(raw: _Raw, name: str, default: float, n: int) -> F64:
    """Non-negative finite numbers; empty cells take `default` (noted); refuse anything else."""
    column = raw.quantity if name == "quantity" else raw.amount
    if column is None:
        return np.full(n, default)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        text = pc.utf8_trim_whitespace(column)
        cleaned = pc.replace_substring_regex(text, _CURRENCY, "")
        grouped = pc.match_substring_regex(cleaned, r"^\d{1,3}(?:,\d{3})+(?:\.\d*)?$")
        cleaned = pc.if_else(grouped, pc.replace_substring(cleaned, ",", ""), cleaned)
        empty = np.asarray(
            pc.equal(cleaned, "").fill_null(True).to_numpy(zero_copy_only=False), dtype=bool
        )
        numeric = np.asarray(
            pc.match_substring_regex(cleaned, _NUMBER)
            .fill_null(False)
            .to_numpy(zero_copy_only=False),
            dtype=bool,
        )
        bad = ~numeric & ~empty
        if bad.any():
            raise _bad_rows_error(
                raw, "bad_number", name, bad, _Lazy(column),
                "不是数字的内容", "non-numeric values",
                f"{COLUMN_LABELS[name]}只能填数字(如 2 或 36.5)。",
                "Use plain numbers such as 2 or 36.5.",
            )  # fmt: skip
        filled = pc.if_else(pa.array(numeric), cleaned, pa.scalar("nan"))
        values = filled.cast(pa.float64()).to_numpy()
    else:
        column = column.cast(pa.float64())
        values = np.empty(n, dtype=np.float64)
        offset = 0
        for chunk in column.chunks:
            values[offset : offset + len(chunk)] = chunk.to_numpy(zero_copy_only=False)
            offset += len(chunk)
        if column.null_count == 0 and (n == 0 or _in_range(column)):
            return values  # the common case
        empty = np.isnan(values)
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        bad = (values < 0) | np.isinf(values)
    if bad.any():
        raise _bad_rows_error(
            raw, "negative", name, bad, _Lazy(column),
            "负数或无穷大", "negative or infinite values",
            f"{COLUMN_LABELS[name]}不能是负数;退货/退款请从导出里去掉。",
            "Quantities and amounts must not be negative; leave refunds out of the export.",
        )  # fmt: skip
    empty = empty | np.isnan(values)
    if empty.any():
        count = int(empty.sum())
        raw.problems.append(
            f"“{raw.columns[name]}”列有 {count} 个空格,按 {default:g} 计 / "
            f"{count} empty {name} cell(s) counted as {default:g}"
        )
        values = np.where(empty, default, values)
    return values


def _in_range(column: pa.ChunkedArray) -> bool:
    """Every value finite and >= 0 (NaN fails: min_max skips it, so check it apart)."""
    bounds = pc.min_max(column)
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    if low is None or low < 0 or not math.isfinite(high):
        return False
    return not pc.any(pc.is_nan(column)).as_py()


# --- customers --------------------------------------------------------------------------------


def _encode_customers(raw: _Raw) -> tuple[I64, pa.Array]:
    """Index 0..n-1 per distinct id (in id order) and the ids in index order.

    The column is hashed once as read; trimming and validation then work on the distinct
    values only (1M, not 15M). Phone-number-like ids hash far faster as integers.
    """
    column = raw.customer
    if any(pa.types.is_dictionary(c.type) for c in column.chunks):
        column = column.cast(pa.string())
    if _plain_integers(column):
        index, values = _sorted_codes(*_dictionary_encode(column.cast(pa.int64())))
        values = values.cast(pa.string())
    else:
        index, values = _sorted_codes(*_dictionary_encode(column))

    trimmed = pc.utf8_trim_whitespace(values)
    blank = np.asarray(pc.equal(trimmed, "").to_numpy(zero_copy_only=False), dtype=bool)
    if blank.any():
        raise _bad_rows_error(
            raw, "missing_customer", "customer_id", blank[index], _Lazy(column),
            "没有填客户", "no customer",
            "每一行都要有客户编号或名字。", "Every row needs a customer id or name.",
        )  # fmt: skip
    if not pc.all(pc.equal(trimmed, values)).as_py():
        # " 王姐" and "王姐" are the same customer.
        ids = pc.unique(trimmed)
        remap = pc.index_in(trimmed, value_set=ids).to_numpy().astype(np.int64)
        return _sorted_codes(remap[index], ids)
    return index, values


def _sorted_codes(codes: I64, values: pa.Array) -> tuple[I64, pa.Array]:
    """Number customers in id order, so the same orders in any row order give the same input."""
    order = pc.sort_indices(values).to_numpy()
    if order.size and np.array_equal(order, np.arange(order.size)):
        return codes, values
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size, dtype=np.int64)
    return rank[codes], values.take(pa.array(order))


PARALLEL_ROWS = 2_000_000


def _dictionary_encode(column: pa.ChunkedArray, *, parallel: bool = True) -> tuple[I64, pa.Array]:
    """(int64 codes in first-appearance order, distinct values), hashing halves in parallel.

    Hashing 15M strings is the slowest step of reading; pyarrow releases the GIL, so two
    halves are encoded on two threads and their (much smaller) dictionaries merged.
    """
    n = column.length()
    codes = np.empty(n, dtype=np.int64)
    if not parallel or n < PARALLEL_ROWS or (pa.cpu_count() or 1) < 2:
        parts = [column]
    else:
        half = n // 2
        parts = [column.slice(0, half), column.slice(half)]
    with ThreadPoolExecutor(max_workers=len(parts)) as pool:
        encoded = list(pool.map(pc.dictionary_encode, parts))
    dictionaries = [_shared_dictionary(e, column.type) for e in encoded]
    if len(parts) == 1:
        values = dictionaries[0]
        remaps: list[I64 | None] = [None]
    else:
        # Merge: codes of the second half's dictionary in the combined first-appearance order.
        merged_index, values = _dictionary_encode(pa.chunked_array(dictionaries), parallel=False)
        first_size = len(dictionaries[0])
        remaps = [None, merged_index[first_size:]]
    offset = 0
    for part, remap in zip(encoded, remaps, strict=True):
        for chunk in part.chunks:
            local = chunk.indices.to_numpy()
            codes[offset : offset + len(chunk)] = local if remap is None else remap[local]
            offset += len(chunk)
    return codes, values


def _shared_dictionary(encoded: pa.ChunkedArray, value_type: pa.DataType) -> pa.Array:
    """dictionary_encode on a chunked array shares one dictionary across its chunks."""
    if encoded.num_chunks == 0:
        return pa.array([], type=value_type)
    dictionary: pa.Array = encoded.chunk(encoded.num_chunks - 1).dictionary
    return dictionary


def _plain_integers(column: pa.ChunkedArray) -> bool:
    """All ids are digits without a leading zero (so int64 round-trips them exactly)."""
    if column.length() < 100_000 or column.null_count:
        return False
    for chunk in column.chunks:
        if len(chunk) == 0:
            continue
        if not pc.all(pc.ascii_is_decimal(chunk)).as_py():
            return False
        if pc.any(pc.starts_with(chunk, "0")).as_py():
            return False
        if pc.max(pc.binary_length(chunk)).as_py() > 18:
            return False
    return True


# --- assembling -------------------------------------------------------------------------------


def _emptied(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return pa.chunked_array([], type=column.type)


def _assemble(raw: _Raw, as_of: date | None) -> LoadedOrders:
    n = raw.customer.length()
    if n == 0:
        raise OrderFileError(
            raw.path,
            "no_rows",
            f"只有表头,没有订单{raw.where}。",
            "the file has a header but no order rows.",
        )
    # Each column is let go once converted, so the text never sits beside all the arrays.
    day = _column_days(raw)
    raw.date = _emptied(raw.date)
    quantity = _column_numbers(raw, "quantity", 1.0, n)
    raw.quantity = None
    amount = _column_numbers(raw, "amount", 0.0, n)
    raw.amount = None
    if normalise_header(raw.columns.get("amount")) in CENT_HEADERS:
        amount = amount / 100
        raw.problems.append(
            f"“{raw.columns['amount']}”按分计,已换算成元 / "
            f"{raw.columns['amount']!r} is in cents; converted to yuan"
        )
    customer, ids = _encode_customers(raw)
    raw.customer = _emptied(raw.customer)
    # Arrow's allocator keeps freed pages for reuse; hand them back before the engine runs.
    pa.default_memory_pool().release_unused()
    first, last = int(day.min()), int(day.max())
    cutoff = epoch_day(as_of) if as_of is not None else last
    after = int(np.count_nonzero(day > cutoff))
    problems = raw.problems
    if after:
        problems.append(
            f"{after} 行日期晚于 {from_epoch_day(cutoff)},不参与评分 / "
            f"{after} row(s) dated after {from_epoch_day(cutoff)} are not used"
        )
    if after == n:
        problems.append(
            f"所有订单都晚于 {from_epoch_day(cutoff)} / "
            f"every order is after {from_epoch_day(cutoff)}"
        )
    # int32 indices and days halve two of the four order-sized arrays (15M rows: -120 MB
    # each here, and again in every gathered copy the engine makes).
    orders = OrderArrays(
        customer=customer.astype(np.int32),
        day=day.astype(np.int32),
        quantity=quantity,
        amount=amount,
        n_customers=len(ids),
    )
    del customer, day
    return LoadedOrders(
        path=raw.path,
        orders=orders,
        customer_ids=ids,
        n_rows=n,
        n_after_as_of=after,
        as_of=from_epoch_day(cutoff),
        first_date=from_epoch_day(first),
        last_date=from_epoch_day(last),
        columns=dict(raw.columns),
        encoding=raw.encoding,
        problems=problems,
    )


# --- CSV --------------------------------------------------------------------------------------


def _detect_encoding(path: Path, head: bytes) -> tuple[str, str]:
    """(codec for pyarrow, label for people), as `read.detect_text_encoding` decides."""
    try:
        found = detect_text_encoding(head)
    except FileRejected as exc:
        if exc.kind != "encoding":
            raise OrderFileError(
                path, exc.kind, exc.reason, "not a text table (binary content); use .csv or .xlsx."
            ) from exc
        raise OrderFileError(
            path,
            "encoding",
            "文件编码无法识别(不是 UTF-8 也不是 GBK),请在 Excel 里另存为“CSV UTF-8”。",
            "unknown text encoding (neither UTF-8 nor GBK); save as 'CSV UTF-8' in Excel.",
        ) from exc
    if found == "UTF-16":
        return "utf-16", "utf-16"
    if found == "GBK":
        return "gb18030", "gbk"
    return "utf-8", "utf-8-sig" if head.startswith(codecs.BOM_UTF8) else "utf-8"


class _CountingFile:
    """A binary file that reports how far it has been read (for the progress bar)."""

    def __init__(self, handle: BinaryIO, total: int, progress: Progress) -> None:
        self._handle = handle
        self._total = total
        self._progress = progress
        self._done = 0
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self._done += len(data)
        self._progress(self._done, self._total)
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


def _read_csv(path: Path, progress: Progress | None) -> _Raw:
    size = path.stat().st_size
    if size == 0:
        raise OrderFileError(path, "empty", "文件是空的(0 字节)。", "the file is empty (0 bytes).")
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    codec, label = _detect_encoding(path, head)
    text = head.decode(codec, errors="ignore")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.splitlines()
    if len(head) == SNIFF_BYTES and lines:
        lines = lines[:-1]  # possibly cut mid-line
    if not any(line.strip().strip(",;\t") for line in lines):
        raise OrderFileError(path, "empty", "文件里没有内容。", "the file has no content.")
    delimiter = sniff_delimiter(lines)
    parsed = list(csv.reader(lines[:HEADER_SEARCH_ROWS], delimiter=delimiter))
    header_index, header = _find_header(path, parsed, "")
    found, notes = _match_columns(header)
    names = [str(h).strip() for h in header]
    dictionary = pa.dictionary(pa.int32(), pa.string())
    # Autogenerated column names avoid trouble with blank or repeated headers.
    positions = {canonical: f"f{pos}" for canonical, pos in found.items()}

    def attempt(numbers_as_text: bool, encoding: str) -> pa.Table:
        types: dict[str, pa.DataType] = {
            positions["customer_id"]: pa.string(),
            positions["date"]: dictionary,
        }
        for canonical in OPTIONAL:
            if canonical in positions:
                types[positions[canonical]] = pa.string() if numbers_as_text else pa.float64()
        read_options = pacsv.ReadOptions(
            skip_rows=header_index + 1,
            column_names=[f"f{i}" for i in range(len(header))],
            block_size=BLOCK_SIZE,
            encoding=encoding,
        )
        convert_options = pacsv.ConvertOptions(
            column_types=types,
            include_columns=list(types),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        )
        parse_options = pacsv.ParseOptions(delimiter=delimiter)
        if progress is not None and encoding == "utf-8":
            with path.open("rb") as handle:
                counted = _CountingFile(handle, size, progress)
                return pacsv.read_csv(
                    pa.PythonFile(counted, mode="r"),
                    read_options=read_options,
                    parse_options=parse_options,
                    convert_options=convert_options,
                )
        return pacsv.read_csv(
            str(path),
            read_options=read_options,
            parse_options=parse_options,
            convert_options=convert_options,
        )

    numbers_as_text = False
    while True:
        try:
            table = attempt(numbers_as_text, codec)
            break
        except pa.ArrowInvalid as exc:
            message = str(exc)
            if "UTF8" in message and label == "utf-8":
                codec, label = "gb18030", "gbk"  # the first megabyte was plain ASCII
            elif "conversion error" in message and not numbers_as_text:
                numbers_as_text = True  # e.g. "¥36" or "2桶": read as text, then explain
            else:
                raise OrderFileError(
                    path,
                    "unreadable",
                    f"CSV 格式有误(例如某行的列数不对):{message}",
                    "the CSV is malformed (e.g. a row with the wrong number of columns): "
                    + message,
                ) from exc
    columns = {canonical: names[pos] for canonical, pos in found.items()}
    return _Raw(
        path=path,
        columns=columns,
        customer=table.column(positions["customer_id"]),
        date=table.column(positions["date"]),
        quantity=table.column(positions["quantity"]) if "quantity" in positions else None,
        amount=table.column(positions["amount"]) if "amount" in positions else None,
        first_line=header_index + 2,
        line_numbers=None,
        encoding=label,
        where="",
        problems=notes,
    )


# --- xlsx -------------------------------------------------------------------------------------


def _cell_date_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return f"时间 {value.isoformat()}"  # a bare time of day is not a date
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def _cell_number(value: object) -> float | str | None:
    if value is None or isinstance(value, bool):
        return None if value is None else str(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime | date | time):
        return str(value)
    text = str(value)
    return None if text.strip() == "" else text


def _cell_id(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _read_xlsx(path: Path, progress: Progress | None) -> _Raw:
    if path.stat().st_size == 0:
        raise OrderFileError(path, "empty", "文件是空的(0 字节)。", "the file is empty (0 bytes).")
    import zipfile

    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise OrderFileError(
            path,
            "unreadable",
            f"不是有效的 .xlsx 文件({type(exc).__name__})。",
            f"not a valid .xlsx file ({type(exc).__name__}: {exc}).",
        ) from exc
    try:
        sheets = list(workbook.worksheets)
        header_error: OrderFileError | None = None
        for sheet in sheets:
            where = f"(工作表 {sheet.title})" if len(sheets) > 1 else ""
            try:
                header_index, header = _find_header(
                    path, sheet.iter_rows(max_row=HEADER_SEARCH_ROWS, values_only=True), where
                )
            except OrderFileError as exc:
                header_error = header_error or exc
                continue
            return _read_sheet(path, sheet, header_index, header, where, progress)
        assert header_error is not None
        raise header_error
    finally:
        workbook.close()


def _read_sheet(
    path: Path, sheet: Any, header_index: int, header: list[Any], where: str,
    progress: Progress | None,
) -> _Raw:  # fmt: skip
    found, notes = _match_columns(header)
    positions = found
    ids: list[str] = []
    dates: list[str | None] = []
    numbers: dict[str, list[float | str | None]] = {c: [] for c in OPTIONAL if c in positions}
    lines: list[int] = []
    total = int(sheet.max_row or 0)
    first_row = header_index + 2  # sheet rows are 1-based
    width = max(positions.values()) + 1
    for line, row in enumerate(
        sheet.iter_rows(min_row=first_row, values_only=True), start=first_row
    ):
        cells = tuple(row[:width]) + (None,) * max(0, width - len(row))
        if all(c is None or (isinstance(c, str) and not c.strip()) for c in cells):
            continue
        lines.append(line)
        ids.append(_cell_id(cells[positions["customer_id"]]))
        dates.append(_cell_date_text(cells[positions["date"]]))
        for canonical, values in numbers.items():
            values.append(_cell_number(cells[positions[canonical]]))
        if progress is not None and len(lines) % 50_000 == 0:
            progress(line, total)
    if progress is not None:
        progress(total, total)

    def number_column(values: list[float | str | None]) -> pa.ChunkedArray:
        if all(v is None or isinstance(v, float) for v in values):
            return pa.chunked_array([pa.array(values, type=pa.float64())])
        as_text = [None if v is None else (repr(v) if isinstance(v, float) else v) for v in values]
        return pa.chunked_array([pa.array(as_text, type=pa.string())])

    return _Raw(
        path=path,
        columns={canonical: str(header[pos]).strip() for canonical, pos in positions.items()},
        customer=pa.chunked_array([pa.array(ids, type=pa.string())]),
        date=pa.chunked_array([pa.array(dates, type=pa.string())]),
        quantity=number_column(numbers["quantity"]) if "quantity" in numbers else None,
        amount=number_column(numbers["amount"]) if "amount" in numbers else None,
        first_line=first_row,
        line_numbers=np.asarray(lines, dtype=np.int64),
        encoding=None,
        where=where,
        problems=notes,
    )
