"""Open an owner's spreadsheet (.xlsx or .csv) safely and stream its rows, or refuse it clearly.

Nothing here knows what the columns mean: `open_table` finds what kind of file it really is
(by its bytes, not its name), checks it against size limits before anything parses it (a zip
bomb is refused from the zip's own directory, before any XML in it is parsed), and yields rows of
cells with their line numbers. Mapping headers and checking values is `columns.py` and
`imports.py`.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.dataio.cells import HEADER_SEARCH_ROWS

# Limits: a small shop's history is a few MB; anything far beyond is a mistake or an attack.
MAX_FILE_BYTES = 50 << 20
MAX_ROWS = 200_000
MAX_COLUMNS = 200
MAX_CELL_CHARS = 1_000
# An .xlsx is a zip: its directory declares every entry's uncompressed size. A 50,000-row
# sheet is ~15 MB of XML; a typical workbook has 10-30 entries.
MAX_ZIP_ENTRIES = 500
MAX_ZIP_UNCOMPRESSED = 200 << 20
MAX_ZIP_RATIO = 200  # uncompressed / compressed for any entry over 1 MB

ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # old .xls (and .doc)
SNIFF_BYTES = 64 << 10

Cell = Any  # str | int | float | datetime | date | time | bool | None


class FileRejected(Exception):
    """A file that cannot be read at all; `reason` is a Chinese sentence for the owner."""

    def __init__(self, reason: str, *, kind: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


@dataclass(frozen=True)
class Source:
    """The file as received: a display name and the path of its bytes on disk."""

    path: Path
    name: str

    @classmethod
    def of(cls, path: Path | str, name: str | None = None) -> Source:
        path = Path(path)
        return cls(path=path, name=name or path.name)


def file_sha256(path: Path) -> str:
    """The file's sha256 (hex): the same bytes are the same import."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Table:
    """An opened spreadsheet: its format and a fresh row iterator per `rows()` call."""

    source: Source
    format: str  # "xlsx" or "csv"
    encoding: str | None  # CSV text encoding as people call it ("UTF-8", "GBK")
    sheet: str | None  # the sheet read, for .xlsx

    def rows(self) -> Iterator[tuple[int, list[Cell]]]:
        """(line number, cells) per row (1-based, as Excel shows); blank rows may be absent."""
        if self.format == "xlsx":
            return _xlsx_rows(self.source.path, self.sheet)
        assert self.encoding is not None
        return _csv_rows(self.source.path, _CODECS[self.encoding])


_CODECS = {"UTF-8": "utf-8-sig", "GBK": "gb18030", "UTF-16": "utf-16"}


def open_table(source: Source) -> Table:
    """Identify and check the file; raise `FileRejected` with a Chinese reason if unusable."""
    path = source.path
    if not path.is_file():
        raise FileRejected("找不到这个文件。", kind="not_found")
    size = path.stat().st_size
    if size == 0:
        raise FileRejected("文件是空的(0 字节),里面什么都没有。", kind="empty")
    if size > MAX_FILE_BYTES:
        raise FileRejected(
            f"文件太大({size / (1 << 20):.0f} MB),一次最多导入 {MAX_FILE_BYTES >> 20} MB。"
            "可以按年份拆成几份再导入。",
            kind="too_large",
        )
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    suffix = Path(source.name).suffix.lower()
    if head.startswith((ZIP_MAGIC, EMPTY_ZIP_MAGIC)):
        check_zip(path)
        return Table(source=source, format="xlsx", encoding=None, sheet=_first_sheet(path))
    if head.startswith(OLE_MAGIC):
        raise FileRejected(
            "这是旧版 Excel(.xls)文件,请在 Excel 或 WPS 里“另存为” .xlsx 或 .csv 再导入。",
            kind="old_xls",
        )
    if suffix in (".xlsx", ".xlsm"):
        raise FileRejected(
            "文件名是 .xlsx,但内容不是 Excel 表格(可能损坏了,或只是改了扩展名)。"
            "请用 Excel 或 WPS 打开后重新保存为 .xlsx。",
            kind="not_spreadsheet",
        )
    encoding = detect_text_encoding(head)
    return Table(source=source, format="csv", encoding=encoding, sheet=None)


def check_zip(path: Path) -> None:
    """Refuse a zip whose directory declares too many entries or too many bytes (zip bomb)."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise FileRejected(
            "文件损坏了,打不开(不是完整的 .xlsx)。请用 Excel 或 WPS 重新保存后再导入。",
            kind="not_spreadsheet",
        ) from exc
    if len(entries) > MAX_ZIP_ENTRIES:
        raise FileRejected(
            f"这个 .xlsx 里有 {len(entries)} 个内部文件,远超正常表格,为安全起见没有打开。",
            kind="zip_bomb",
        )
    total = 0
    for entry in entries:
        total += entry.file_size
        ratio = entry.file_size / max(entry.compress_size, 1)
        if entry.file_size > (1 << 20) and ratio > MAX_ZIP_RATIO:
            raise FileRejected(
                "这个 .xlsx 解压后会异常膨胀(疑似“压缩炸弹”),为安全起见没有打开。",
                kind="zip_bomb",
            )
    if total > MAX_ZIP_UNCOMPRESSED:
        raise FileRejected(
            f"这个 .xlsx 解压后有 {total / (1 << 20):.0f} MB,超过上限 "
            f"{MAX_ZIP_UNCOMPRESSED >> 20} MB,为安全起见没有打开。",
            kind="zip_bomb",
        )
    names = {e.filename for e in entries}
    if "xl/workbook.xml" not in names:
        raise FileRejected(
            "这是一个压缩包,但不是 Excel 表格(.xlsx)。请导入 .xlsx 或 .csv 文件。",
            kind="not_spreadsheet",
        )


_BROKEN_XLSX = "Excel 文件内容有误,读不出来。请用 Excel 或 WPS 打开后重新保存为 .xlsx 再导入。"


def _first_sheet(path: Path) -> str:
    """The first worksheet's title; refuse if the workbook's structure cannot be read."""
    from app.dataio.xlsx import Workbook

    try:
        with zipfile.ZipFile(path) as archive:
            return Workbook(archive).title
    except Exception as exc:  # any malformed part: XlsxError, ParseError, KeyError, ...
        raise FileRejected(_BROKEN_XLSX, kind="not_spreadsheet") from exc


def _xlsx_rows(path: Path, sheet: str | None) -> Iterator[tuple[int, list[Cell]]]:
    from app.dataio.xlsx import Workbook

    try:
        with zipfile.ZipFile(path) as archive:
            workbook = Workbook(archive)
            for count, (line, row) in enumerate(workbook.rows(), start=1):
                if count > MAX_ROWS + 50:
                    raise FileRejected(
                        f"行数太多,一次最多导入 {MAX_ROWS} 行。可以按年份拆开再导入。",
                        kind="too_many_rows",
                    )
                yield (
                    line,
                    [c[:MAX_CELL_CHARS] if isinstance(c, str) else c for c in row[:MAX_COLUMNS]],
                )
    except FileRejected:
        raise
    except Exception as exc:
        raise FileRejected(
            "Excel 文件读到一半出错了(内容可能损坏)。请用 Excel 或 WPS 重新保存后再导入。",
            kind="not_spreadsheet",
        ) from exc


def detect_text_encoding(head: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 (BOM), or GBK/GB18030; refuse binary bytes.

    `head` is the file's first bytes; the import and `huitou score` both decide here.
    """
    if head.startswith(codecs.BOM_UTF8):
        return "UTF-8"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "UTF-16"
    if b"\x00" in head[:SNIFF_BYTES] or _looks_binary(head[:SNIFF_BYTES]):
        raise FileRejected(
            "这个文件不是表格(看起来是图片、压缩包或其他二进制文件)。请导入 .xlsx 或 .csv 文件。",
            kind="not_spreadsheet",
        )
    for label, codec in (("UTF-8", "utf-8"), ("GBK", "gb18030")):
        try:
            codecs.getincrementaldecoder(codec)().decode(head, final=False)
            return label
        except UnicodeDecodeError:
            continue
    raise FileRejected(
        "文件的文字编码认不出来(既不是 UTF-8 也不是 GBK)。请在 Excel 里“另存为 CSV UTF-8”再导入。",
        kind="encoding",
    )


def _looks_binary(head: bytes) -> bool:
    control = sum(1 for b in head if b < 32 and b not in (9, 10, 13))
    return control > max(8, len(head) // 100)


def _csv_rows(path: Path, codec: str) -> Iterator[tuple[int, list[Cell]]]:
    try:
        with path.open("r", encoding=codec, newline="") as handle:
            sample = handle.read(SNIFF_BYTES)
            handle.seek(0)
            delimiter = sniff_delimiter(sample.splitlines())
            reader = csv.reader(handle, delimiter=delimiter)
            for line, row in enumerate(reader, start=1):
                if line > MAX_ROWS + 50:
                    raise FileRejected(
                        f"行数太多,一次最多导入 {MAX_ROWS} 行。可以按年份拆开再导入。",
                        kind="too_many_rows",
                    )
                yield line, [c[:MAX_CELL_CHARS] for c in row[:MAX_COLUMNS]]
    except UnicodeDecodeError as exc:
        raise FileRejected(
            "文件里有认不出的文字(编码不一致)。请在 Excel 里“另存为 CSV UTF-8”再导入。",
            kind="encoding",
        ) from exc
    except csv.Error as exc:
        raise FileRejected(f"CSV 格式有误:{exc}。", kind="not_spreadsheet") from exc


DELIMITERS = (",", "\t", ";")


def sniff_delimiter(lines: Sequence[str]) -> str:
    """The delimiter used most in the first lines (where the header is); "," if none."""
    first_lines = "\n".join(lines[:HEADER_SEARCH_ROWS])
    counts = {d: first_lines.count(d) for d in DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","
