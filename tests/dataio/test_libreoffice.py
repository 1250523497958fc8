"""An .xlsx made by LibreOffice (not openpyxl) from a CSV imports the same way.

LibreOffice writes its own flavour of the format (shared strings, styles, real date cells
typed from the CSV). scripts/test installs it from Debian packages (libreoffice-calc-nogui);
locally the test skips loudly when it is missing, under HUITOU_REQUIRE_TOOLS=1 it fails.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from datetime import date
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import col, select

from app.customers.models import Customer
from app.dataio.imports import ImportResult
from app.db import read_session
from app.orders.models import Order
from app.shops.models import Shop
from tests.conftest import missing_tool


def soffice() -> str:
    found = shutil.which("soffice") or shutil.which("libreoffice")
    if found is None:
        missing_tool(
            "LibreOffice (soffice) is not installed: the LibreOffice .xlsx import test did not "
            "run (apt-get install libreoffice-calc-nogui)"
        )
    assert found is not None
    return found


def convert_to_xlsx(csv_path: Path, out_dir: Path) -> Path:
    """soffice --headless --convert-to xlsx, with a private profile so runs cannot collide."""
    profile = out_dir / "lo-profile"
    subprocess.run(
        [
            soffice(),
            f"-env:UserInstallation=file://{profile}",
            "--headless",
            "--norestore",
            # CSV import filter: comma, double quote, UTF-8 (76), from line 1.
            "--infilter=CSV:44,34,76,1",
            "--convert-to",
            "xlsx",
            "--outdir",
            str(out_dir),
            str(csv_path),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    converted = out_dir / (csv_path.stem + ".xlsx")
    assert converted.exists(), "soffice ran but wrote no .xlsx"
    return converted


def test_xlsx_converted_by_libreoffice_imports(
    engine: Engine,
    shop: Shop,
    tmp_path: Path,
    run_import: Callable[..., ImportResult],
) -> None:
    source = tmp_path / "lo_orders.csv"
    source.write_text(
        "客户,电话,地址,日期,数量,金额\n"
        "王姐,13800001234,幸福小区3栋,2025-03-01,2,36\n"
        "王姐,13800001234,幸福小区3栋,2025-03-26,2,36\n"
        "李会计,,3号楼,2025-04-02,5,90.5\n",
        encoding="utf-8",
    )
    out = tmp_path / "lo"
    out.mkdir()
    converted = convert_to_xlsx(source, out)
    result = run_import(shop, converted)
    assert result.written, result.plan.issues or result.plan.rejected
    assert result.plan.format == "xlsx"
    assert (result.customers_added, result.orders_added) == (2, 3)
    with read_session(engine) as s:
        rows = list(s.exec(select(Order).order_by(col(Order.order_date))))
        wang = s.exec(select(Customer).where(Customer.name == "王姐")).one()
    assert [o.order_date for o in rows] == [date(2025, 3, 1), date(2025, 3, 26), date(2025, 4, 2)]
    assert rows[2].amount_cents == 9050
    # LibreOffice types the phone as a number; it must come back as the same digits.
    assert wang.phone == "13800001234"
