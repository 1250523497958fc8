"""The streaming .xlsx reader on the shapes real workbooks take."""

from __future__ import annotations

import zipfile
from datetime import datetime
from pathlib import Path

import pytest
from openpyxl import Workbook
from openpyxl.cell.rich_text import CellRichText, TextBlock
from openpyxl.cell.text import InlineFont
from openpyxl.utils.datetime import CALENDAR_MAC_1904

from app.dataio.read import FileRejected, Source, open_table


def rows_of(path: Path) -> list[tuple[int, list[object]]]:
    return list(open_table(Source.of(path)).rows())


def test_values_types_gaps_and_formulas(tmp_path: Path) -> None:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "客户订单"
    sheet["A1"], sheet["C1"] = "客户", "金额"  # B1 left empty
    sheet["A3"] = CellRichText(["王", TextBlock(InlineFont(b=True), "姐")])
    sheet["B3"] = True
    sheet["C3"] = 36.5
    sheet["D3"] = "=C3*2"
    sheet["E3"] = 45717
    sheet["E3"].number_format = 'yyyy"年"m"月"d"日"'
    sheet["F3"] = 45717
    sheet["F3"].number_format = "0.00"
    path = tmp_path / "book.xlsx"
    workbook.save(path)
    table = open_table(Source.of(path))
    assert table.sheet == "客户订单"
    rows = list(table.rows())
    assert rows[0] == (1, ["客户", None, "金额"])
    line, cells = rows[1]
    assert line == 3  # the empty row 2 is simply not there; line numbers stay true
    assert cells == ["王姐", True, 36.5, "=C3*2", datetime(2025, 3, 1), 45717]


def test_the_1904_date_system(tmp_path: Path) -> None:
    workbook = Workbook()
    workbook.epoch = CALENDAR_MAC_1904
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["日期"])
    sheet.append([datetime(2025, 3, 1)])
    path = tmp_path / "mac.xlsx"
    workbook.save(path)
    assert rows_of(path)[1][1] == [datetime(2025, 3, 1)]


def test_a_workbook_declaring_a_dtd_is_refused(tmp_path: Path) -> None:
    """No DTD means no entity can expand ("billion laughs")."""
    path = tmp_path / "laughs.xlsx"
    lol = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        '<sheetData><row r="1"><c t="inlineStr"><is><t>&lol2;</t></is></c></row></sheetData>'
        "</worksheet>"
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(
            "xl/workbook.xml",
            '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
            '<sheets><sheet name="S" sheetId="1"/></sheets></workbook>',
        )
        archive.writestr("xl/worksheets/sheet1.xml", lol)
    table = open_table(Source.of(path))
    with pytest.raises(FileRejected, match="读到一半出错"):
        list(table.rows())
