"""Reading order exports: every accepted format, and every bad file refused clearly."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import numpy as np
import pytest
from openpyxl import Workbook

from app.dataio import orders_file
from app.dataio.cells import map_columns
from app.dataio.orders_file import OrderFileError, read_orders
from app.risk.season import epoch_day

D = epoch_day


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def xlsx(path: Path, rows: list[list[object]], title: str | None = None) -> Path:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    if title:
        sheet.append([title])
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


# --- accepted files ---------------------------------------------------------------------------


def test_plain_utf8_csv(tmp_path: Path) -> None:
    f = write(
        tmp_path / "o.csv",
        "customer_id,date,quantity,amount\n"
        "A,2025-03-01,2,36\nB,2025-03-02,1,18.5\nA,2025-03-11,3,54\n",
    )
    loaded = read_orders(f)
    assert loaded.customer_ids.to_pylist() == ["A", "B"]
    o = loaded.orders
    assert o.n_customers == 2
    assert o.customer.tolist() == [0, 1, 0]
    assert o.day.tolist() == [D(date(2025, 3, 1)), D(date(2025, 3, 2)), D(date(2025, 3, 11))]
    assert o.quantity.tolist() == [2.0, 1.0, 3.0]
    assert o.amount.tolist() == [36.0, 18.5, 54.0]
    # Narrow integers keep a 15M-row file under 2 GB; values are what matter.
    assert o.customer.dtype == np.int32 and o.day.dtype == np.int32
    assert loaded.n_rows == 3 and loaded.n_after_as_of == 0
    assert loaded.as_of == date(2025, 3, 11)  # the latest order, not today
    assert loaded.encoding == "utf-8"
    assert loaded.problems == []


def test_bom_and_chinese_headers(tmp_path: Path) -> None:
    f = write(tmp_path / "o.csv", "\ufeff客户编号,下单日期,桶数,金额\n王姐,2025/3/1,2,36\n")
    loaded = read_orders(f)
    assert loaded.customer_ids.to_pylist() == ["王姐"]
    assert loaded.columns == {
        "customer_id": "客户编号", "date": "下单日期", "quantity": "桶数", "amount": "金额",
    }  # fmt: skip
    assert loaded.orders.quantity.tolist() == [2.0]


def test_gbk_csv(tmp_path: Path) -> None:
    f = write(tmp_path / "o.csv", "客户,日期,数量\n王姐,2025-03-01,2\n李会计,2025-03-02,1\n", "gbk")
    loaded = read_orders(f)
    assert loaded.encoding == "gbk"
    assert loaded.customer_ids.to_pylist() == ["李会计", "王姐"]  # customers numbered in id order
    assert loaded.orders.customer.tolist() == [1, 0]
    assert loaded.orders.amount.tolist() == [0.0, 0.0]  # no amount column


def test_gbk_after_a_plain_ascii_first_megabyte(tmp_path: Path) -> None:
    ascii_rows = "".join(f"C{i},2025-03-01,1\n" for i in range(80_000))  # > 1 MB of ASCII
    f = write(tmp_path / "o.csv", "customer,date,qty\n" + ascii_rows + "王姐,2025-03-02,2\n", "gbk")
    loaded = read_orders(f)
    assert loaded.encoding == "gbk"
    assert loaded.customer_id(loaded.orders.n_customers - 1) == "王姐"


@pytest.mark.parametrize(
    "text",
    ["2025-03-01", "2025/3/1", "20250301", "45717", "2025年3月1日", "2025-03-01 14:30:00",
     " 2025.3.1 ", "2025-03-01T08:00:00"],
)  # fmt: skip
def test_date_formats(tmp_path: Path, text: str) -> None:
    f = write(tmp_path / "o.csv", f'customer,date\nA,"{text}"\n')
    assert read_orders(f).orders.day.tolist() == [D(date(2025, 3, 1))]


def test_case_insensitive_headers_and_title_row(tmp_path: Path) -> None:
    f = write(tmp_path / "o.csv", "2025年订单明细,,\nCustomer_ID,DATE,Amount\nA,2025-03-01,18\n")
    loaded = read_orders(f)
    assert loaded.customer_ids.to_pylist() == ["A"]
    assert loaded.orders.amount.tolist() == [18.0]


def test_row_order_does_not_change_the_numbering(tmp_path: Path) -> None:
    a = read_orders(write(tmp_path / "a.csv", "customer,date\nB,2025-03-01\nA,2025-03-02\n"))
    b = read_orders(write(tmp_path / "b.csv", "customer,date\nA,2025-03-02\nB,2025-03-01\n"))
    assert a.customer_ids.to_pylist() == b.customer_ids.to_pylist() == ["A", "B"]
    assert a.orders.customer.tolist() == [1, 0] and b.orders.customer.tolist() == [0, 1]


def test_ids_are_trimmed_and_kept_as_text(tmp_path: Path) -> None:
    f = write(tmp_path / "o.csv", "customer,date\n007,2025-03-01\n 007 ,2025-03-02\n7,2025-03-03\n")
    loaded = read_orders(f)
    assert loaded.customer_ids.to_pylist() == ["007", "7"]
    assert loaded.orders.customer.tolist() == [0, 0, 1]


def test_empty_optional_cells_default_and_are_noted(tmp_path: Path) -> None:
    f = write(
        tmp_path / "o.csv", "customer,date,quantity,amount\nA,2025-03-01,,\nA,2025-03-09,2,¥36\n"
    )
    loaded = read_orders(f)
    assert loaded.orders.quantity.tolist() == [1.0, 2.0]
    assert loaded.orders.amount.tolist() == [0.0, 36.0]
    assert len(loaded.problems) == 2


def test_rows_after_as_of_are_kept_and_counted(tmp_path: Path) -> None:
    f = write(tmp_path / "o.csv", "customer,date\nA,2025-03-01\nA,2025-04-01\nB,2025-05-01\n")
    loaded = read_orders(f, as_of=date(2025, 3, 15))
    assert loaded.n_rows == 3 and loaded.n_after_as_of == 2
    assert loaded.as_of == date(2025, 3, 15)
    assert any("2025-03-15" in p for p in loaded.problems)


def test_numeric_ids_take_the_integer_path_and_round_trip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(orders_file, "PARALLEL_ROWS", 3)
    rows = "".join(
        f"{13800000000 + (i % 50) * 7},2025-03-{1 + i % 28:02d}\n" for i in range(200_000)
    )
    f = write(tmp_path / "o.csv", "customer_id,date\n" + rows)
    loaded = read_orders(f)
    assert loaded.n_customers == 50
    assert loaded.customer_ids.to_pylist()[:2] == ["13800000000", "13800000007"]
    ids = np.array(loaded.customer_ids.to_pylist())[loaded.orders.customer]
    assert ids[123] == str(13800000000 + (123 % 50) * 7)


def test_parallel_and_serial_encoding_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow as pa

    column = pa.chunked_array([pa.array(["b", "a", "b"]), pa.array(["c", "a", "d", "b", "e"])])
    serial = orders_file._dictionary_encode(column, parallel=False)
    monkeypatch.setattr(orders_file, "PARALLEL_ROWS", 2)
    parallel = orders_file._dictionary_encode(column)
    assert serial[0].tolist() == parallel[0].tolist() == [0, 1, 0, 2, 1, 3, 0, 4]
    assert serial[1].to_pylist() == parallel[1].to_pylist() == ["b", "a", "c", "d", "e"]


def test_xlsx_with_datetime_cells_serials_and_text(tmp_path: Path) -> None:
    f = xlsx(
        tmp_path / "o.xlsx",
        [
            ["客户", "日期", "数量", "金额"],
            ["王姐", datetime(2025, 3, 1, 9, 30), 2, 36],
            ["王姐", date(2025, 3, 11), 2, 36.0],
            [13800000000, 45727, 1, 18],  # an Excel serial number and a numeric id
            ["老张", "2025/3/20", "3", " 54 "],
            [None, None, None, None],  # an empty row is skipped
            ["老张", 20250330, 1, 18],
        ],
        title="三月订单",
    )
    loaded = read_orders(f)
    assert loaded.encoding is None
    assert loaded.customer_ids.to_pylist() == ["13800000000", "王姐", "老张"]
    assert loaded.orders.customer.tolist() == [1, 1, 0, 2, 2]
    assert loaded.orders.day.tolist() == [
        D(date(2025, 3, 1)), D(date(2025, 3, 11)), D(date(2025, 3, 11)),
        D(date(2025, 3, 20)), D(date(2025, 3, 30)),
    ]  # fmt: skip
    assert loaded.orders.quantity.tolist() == [2, 2, 1, 3, 1]
    assert loaded.orders.amount.tolist() == [36, 36, 18, 54, 18]


def test_score_reads_the_header_spellings_the_import_knows(tmp_path: Path) -> None:
    header = ["顾客", "消费日期", "箱数", "消费金额"]
    f = write(tmp_path / "o.csv", ",".join(header) + "\nA,2025-03-01,2,36\n")
    loaded = read_orders(f)
    assert loaded.columns == {
        "customer_id": "顾客", "date": "消费日期", "quantity": "箱数", "amount": "消费金额",
    }  # fmt: skip
    imported = map_columns(header)
    assert [imported.headers[f] for f in ("name", "date", "quantity", "amount")] == header
    assert loaded.orders.quantity.tolist() == [2] and loaded.orders.amount.tolist() == [36]


def test_semicolon_and_tab_files_are_split_like_the_import_splits_them(tmp_path: Path) -> None:
    for delimiter in (";", "\t"):
        lines = [delimiter.join(["客户", "日期", "桶数"]), delimiter.join(["A", "2025-03-01", "3"])]
        loaded = read_orders(write(tmp_path / "o.csv", "\n".join(lines) + "\n"))
        assert loaded.orders.quantity.tolist() == [3]


def test_utf16_csv_with_bom(tmp_path: Path) -> None:
    f = write(tmp_path / "o.csv", "\ufeff客户,日期\n王姐,2025-03-01\n", encoding="utf-16-le")
    loaded = read_orders(f)
    assert loaded.encoding == "utf-16" and loaded.customer_id(0) == "王姐"


# --- refused files ----------------------------------------------------------------------------


def refused(path: Path, kind: str) -> OrderFileError:
    with pytest.raises(OrderFileError) as info:
        read_orders(path)
    error = info.value
    assert error.kind == kind, str(error)
    text = str(error)
    assert path.name in text and "无法导入" in text and "Cannot import" in text
    return error


def test_missing_columns_lists_what_was_found(tmp_path: Path) -> None:
    error = refused(write(tmp_path / "o.csv", "name,when,qty\nA,2025-03-01,1\n"), "missing_columns")
    assert "'name'" in str(error) and "'when'" in str(error) and "customer_id" in str(error)


def test_missing_date_column_only(tmp_path: Path) -> None:
    error = refused(write(tmp_path / "o.csv", "客户,金额\nA,1\n"), "missing_columns")
    assert error.column == "date" and "date" in str(error) and "'客户'" in str(error)


def test_bad_dates_refuse_the_whole_file(tmp_path: Path) -> None:
    rows = ["A,2025-03-01"] * 3 + ["B,2025-02-30", "C,昨天", "D,2025-13-01", "E,", "F,3/1/2025"]
    rows += ["G,2025-03-05", "H,1st March", "I,99999999"]
    error = refused(
        write(tmp_path / "o.csv", "customer,date\n" + "\n".join(rows) + "\n"), "bad_date"
    )
    assert error.count == 7
    assert error.rows == [5, 6, 7, 8, 9]  # file lines; the header is line 1
    assert error.samples[:2] == ["'2025-02-30'", "'昨天'"]
    assert error.column == "date"
    assert "7 行" in str(error) and "7 row(s)" in str(error)


def test_zero_byte_file(tmp_path: Path) -> None:
    refused(write(tmp_path / "o.csv", ""), "empty")


def test_blank_file(tmp_path: Path) -> None:
    refused(write(tmp_path / "o.csv", "\n\n  \n"), "empty")


def test_header_only(tmp_path: Path) -> None:
    refused(write(tmp_path / "o.csv", "customer_id,date,quantity,amount\n"), "no_rows")


def test_negative_quantity(tmp_path: Path) -> None:
    error = refused(
        write(tmp_path / "o.csv", "customer,date,quantity\nA,2025-03-01,2\nA,2025-03-02,-1\n"),
        "negative",
    )
    assert error.rows == [3] and error.column == "quantity"


def test_text_in_number_cells(tmp_path: Path) -> None:
    error = refused(
        write(tmp_path / "o.csv", "customer,date,amount\nA,2025-03-01,36\nA,2025-03-02,两桶\n"),
        "bad_number",
    )
    assert error.rows == [3] and error.samples == ["'两桶'"]


def test_missing_customer(tmp_path: Path) -> None:
    error = refused(
        write(tmp_path / "o.csv", "customer,date\nA,2025-03-01\n  ,2025-03-02\n"),
        "missing_customer",
    )
    assert error.rows == [3]


def test_unknown_extension_and_old_xls(tmp_path: Path) -> None:
    refused(write(tmp_path / "o.json", "{}"), "unknown_format")
    error = refused(write(tmp_path / "o.xls", "x"), "unknown_format")
    assert ".xlsx" in str(error)


def test_missing_file(tmp_path: Path) -> None:
    refused(tmp_path / "nope.csv", "not_found")


def test_malformed_row(tmp_path: Path) -> None:
    refused(
        write(tmp_path / "o.csv", "customer,date\nA,2025-03-01\nB,2025-03-02,x,y\n"), "unreadable"
    )


def test_xlsx_bad_date_reports_sheet_rows(tmp_path: Path) -> None:
    f = xlsx(
        tmp_path / "o.xlsx",
        [["customer", "date"], ["A", date(2025, 3, 1)], [None, None], ["B", "下周"]],
    )
    error = refused(f, "bad_date")
    assert error.rows == [4] and error.samples == ["'下周'"]


def test_xlsx_text_in_number_cell(tmp_path: Path) -> None:
    f = xlsx(tmp_path / "o.xlsx", [["客户", "日期", "桶数"], ["A", date(2025, 3, 1), "两桶"]])
    error = refused(f, "bad_number")
    assert error.rows == [2]


def test_xlsx_header_only_and_empty(tmp_path: Path) -> None:
    refused(xlsx(tmp_path / "h.xlsx", [["客户", "日期"]]), "no_rows")
    refused(xlsx(tmp_path / "e.xlsx", []), "empty")
    refused(write(tmp_path / "z.xlsx", ""), "empty")


def test_xlsx_missing_columns(tmp_path: Path) -> None:
    error = refused(xlsx(tmp_path / "o.xlsx", [["姓名", "电话"], ["A", "1"]]), "missing_columns")
    assert "'姓名'" in str(error)


def test_corrupt_xlsx(tmp_path: Path) -> None:
    refused(write(tmp_path / "o.xlsx", "not a zip"), "unreadable")


def test_binary_file_named_csv_is_refused_as_not_a_table(tmp_path: Path) -> None:
    f = tmp_path / "o.csv"
    f.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    error = refused(f, "not_spreadsheet")
    assert "不是表格" in str(error)
