"""Hostile and broken files: each is refused with a clear Chinese report and changes nothing."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine

from app.dataio import read
from app.dataio.imports import ImportPlan, ImportResult
from app.dataio.report import render_preview
from app.shops.models import Shop
from tests.dataio.conftest import fingerprint


@pytest.fixture
def refused(
    engine: Engine,
    shop: Shop,
    run_import: Callable[..., ImportResult],
    templates_dir: Path,
) -> Callable[[Path], tuple[ImportPlan, str]]:
    """Import a file that must be refused; check the database did not move; return the text."""

    def check(path: Path) -> tuple[ImportPlan, str]:
        before = fingerprint(engine)
        result = run_import(shop, path)
        assert not result.written
        assert not result.plan.accepted
        assert fingerprint(engine) == before
        text = render_preview(result.plan, shop=shop, templates_dir=templates_dir)
        assert text.startswith("❌")
        return result.plan, text

    return check


def test_wrong_columns(
    write_csv: Callable[..., Path], refused: Callable[[Path], tuple[ImportPlan, str]]
) -> None:
    plan, text = refused(write_csv([["编号", "品名", "规格"], ["1", "矿泉水", "18.9L"]]))
    assert plan.rejected_kind == "wrong_columns"
    assert "没有找到能认出的表头" in text and "“编号”、“品名”、“规格”" in text
    assert "数据一点没动" in text


def test_quantities_without_a_date_column(
    write_csv: Callable[..., Path], refused: Callable[[Path], tuple[ImportPlan, str]]
) -> None:
    plan, text = refused(write_csv([["客户", "下单那天", "数量"], ["王姐", "2025-3-1", "2"]]))
    assert plan.rejected_kind == "wrong_columns"
    assert "没有找到日期列" in text


def test_mixed_date_formats_list_each_unreadable_row(
    write_csv: Callable[..., Path], refused: Callable[[Path], tuple[ImportPlan, str]]
) -> None:
    plan, text = refused(
        write_csv(
            [
                ["客户", "日期", "数量"],
                ["王姐", "2025-3-1", "2"],  # fine
                ["王姐", "2025/03/20", "2"],  # fine
                ["王姐", "3/4/2025", "2"],  # day or month first? refused
                ["王姐", "上周三", "2"],
                ["王姐", "2025-02-30", "2"],
                ["王姐", "2099-01-01", "2"],
            ]
        )
    )
    assert plan.issue_count == 4
    assert [(i.line, i.column) for i in plan.issues] == [
        (4, "日期"),
        (5, "日期"),
        (6, "日期"),
        (7, "日期"),
    ]
    assert "第4行“日期” “3/4/2025”:日期看不懂" in text
    assert "第6行“日期” “2025-02-30”:没有这一天" in text
    assert "第7行“日期” “2099-01-01”:日期在今天" in text
    assert "整份文件一行都没有写入" in text


def test_text_in_number_cells(
    write_csv: Callable[..., Path], refused: Callable[[Path], tuple[ImportPlan, str]]
) -> None:
    plan, text = refused(
        write_csv(
            [
                ["客户", "日期", "数量", "金额"],
                ["王姐", "2025-3-1", "两桶", "36"],
                ["老李", "2025-3-1", "1", "免费"],
                ["老张", "2025-3-1", "2.5", "-18"],
            ],
            encoding="gbk",
        )
    )
    assert [(i.line, i.column, i.value) for i in plan.issues] == [
        (2, "数量", "两桶"), (3, "金额", "免费"), (4, "数量", "2.5"), (4, "金额", "-18"),
    ]  # fmt: skip
    assert "数量不是数字" in text and "金额不是数字" in text and "金额不能为负数" in text


def test_duplicate_rows(
    write_csv: Callable[..., Path], refused: Callable[[Path], tuple[ImportPlan, str]]
) -> None:
    plan, text = refused(
        write_csv(
            [
                ["客户", "日期", "数量", "金额"],
                ["王姐", "2025-3-1", "2", "36"],
                ["老李", "2025-3-1", "2", "36"],
                ["王姐", "2025/03/01", "2", "36"],  # the same order written another way
                ["王姐", "2025-3-1", "2", "36"],
            ]
        )
    )
    assert [i.line for i in plan.issues] == [4, 5]
    assert "第4行 “王姐”:与第2行完全相同" in text


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "0 字节"),
        (b"\n\n ,, \n", "没有内容"),
        ("客户,日期,数量\n".encode(), "只有表头"),
        ("\ufeff客户,日期,数量\n,,\n".encode(), "只有表头"),
    ],
    ids=["zero-byte", "blank-lines", "header-only", "bom-header-blank-row"],
)
def test_empty_files(
    content: bytes,
    reason: str,
    tmp_path: Path,
    refused: Callable[[Path], tuple[ImportPlan, str]],
) -> None:
    path = tmp_path / "orders.csv"
    path.write_bytes(content)
    _, text = refused(path)
    assert reason in text


def test_empty_workbook(
    write_xlsx: Callable[..., Path], refused: Callable[[Path], tuple[ImportPlan, str]]
) -> None:
    _, text = refused(write_xlsx([]))
    assert "没有内容" in text


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("orders.csv", PNG, "不是表格"),
        ("orders.xlsx", PNG, "不是 Excel 表格"),
        ("orders.xlsx", "客户,日期\n王姐,2025-3-1\n".encode(), "不是 Excel 表格"),
        ("orders.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600, "旧版 Excel"),
        ("orders.csv", bytes(range(128, 256)) * 40, "编码"),
    ],
    ids=["png-as-csv", "png-as-xlsx", "text-as-xlsx", "old-xls", "undecodable"],
)
def test_non_spreadsheet_bytes(
    name: str,
    content: bytes,
    reason: str,
    tmp_path: Path,
    refused: Callable[[Path], tuple[ImportPlan, str]],
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    _, text = refused(path)
    assert reason in text


def test_a_zip_that_is_not_a_workbook(
    tmp_path: Path, refused: Callable[[Path], tuple[ImportPlan, str]]
) -> None:
    path = tmp_path / "orders.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    _, text = refused(path)
    assert "不是 Excel 表格" in text


def test_a_corrupt_workbook(
    tmp_path: Path, refused: Callable[[Path], tuple[ImportPlan, str]]
) -> None:
    path = tmp_path / "orders.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<not really a workbook")
    _, text = refused(path)
    assert "Excel 文件内容有误" in text or "损坏" in text


@pytest.fixture
def openpyxl_must_not_open(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bomb must be refused from the zip directory, before openpyxl touches it."""

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("openpyxl opened a file that should have been refused")

    monkeypatch.setattr("openpyxl.load_workbook", boom)


def test_zip_bomb_disguised_as_xlsx(
    tmp_path: Path,
    refused: Callable[[Path], tuple[ImportPlan, str]],
    openpyxl_must_not_open: None,
) -> None:
    path = tmp_path / "orders.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
        with archive.open("xl/worksheets/sheet1.xml", "w") as sheet:
            block = b"\x00" * (1 << 20)
            for _ in range(64):  # 64 MB of zeros in about 64 KB
                sheet.write(block)
    assert path.stat().st_size < 1 << 20
    plan, text = refused(path)
    assert plan.rejected_kind == "zip_bomb"
    assert "压缩炸弹" in text


def test_zip_with_too_many_entries(
    tmp_path: Path,
    refused: Callable[[Path], tuple[ImportPlan, str]],
    openpyxl_must_not_open: None,
) -> None:
    path = tmp_path / "orders.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
        for i in range(read.MAX_ZIP_ENTRIES + 1):
            archive.writestr(f"xl/media/{i}.bin", b"x")
    plan, text = refused(path)
    assert plan.rejected_kind == "zip_bomb" and "内部文件" in text


def test_zip_declaring_too_many_bytes(
    tmp_path: Path,
    refused: Callable[[Path], tuple[ImportPlan, str]],
    openpyxl_must_not_open: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(read, "MAX_ZIP_UNCOMPRESSED", 50_000)
    path = tmp_path / "orders.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr("xl/worksheets/sheet1.xml", b"<x/>" * 20_000)  # 80 KB, ratio 1
    plan, text = refused(path)
    assert plan.rejected_kind == "zip_bomb" and "超过上限" in text


def test_formula_cells(
    write_xlsx: Callable[..., Path], refused: Callable[[Path], tuple[ImportPlan, str]]
) -> None:
    plan, text = refused(
        write_xlsx(
            [
                ["客户", "日期", "数量", "金额"],
                ["王姐", "2025-3-1", 2, "=C2*18"],
                ['=HYPERLINK("http://x","点我")', "2025-3-2", 1, 18],
                ["老李", "=TODAY()", 1, 18],
            ]
        )
    )
    assert [(i.line, i.column) for i in plan.issues] == [(2, "金额"), (3, "客户"), (4, "日期")]
    assert "是公式,不是数值" in text and "选择性粘贴" in text


def test_too_many_rows(
    write_csv: Callable[..., Path],
    refused: Callable[[Path], tuple[ImportPlan, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.dataio import imports

    monkeypatch.setattr(imports, "MAX_ROWS", 3)
    rows = [["客户", "日期"]] + [["王姐", f"2025-3-{d}"] for d in range(1, 6)]
    _, text = refused(write_csv(rows))
    assert "行数太多" in text


def test_many_bad_rows_are_counted_beyond_the_listed_ones(
    write_csv: Callable[..., Path], refused: Callable[[Path], tuple[ImportPlan, str]]
) -> None:
    rows = [["客户", "日期"]] + [["王姐", "不是日期"] for _ in range(250)]
    plan, text = refused(write_csv(rows))
    assert plan.issue_count == 250 and len(plan.issues) == 200
    assert "还有 50 处没有列出" in text


def test_a_file_that_does_not_exist(
    tmp_path: Path, refused: Callable[[Path], tuple[ImportPlan, str]]
) -> None:
    _, text = refused(tmp_path / "missing.csv")
    assert "找不到这个文件" in text
