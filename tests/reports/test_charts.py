"""The report's PNGs: valid, a sensible size, drawn, and with every Chinese glyph in the font.

matplotlib warns "Glyph … missing from font(s)" and draws a box when a character is not in
the font; these tests turn that warning into an error.
"""

from __future__ import annotations

import io
import struct
import warnings
from collections.abc import Iterator
from datetime import date

import pytest

from app.config import PROJECT_ROOT
from app.db import read_session
from app.reports.charts import DASHBOARD_CHARTS, chart_png, report_png
from app.reports.metrics import ShopReport, build_report
from app.reports.wording import Labels, report_labels
from app.shops.models import Shop
from tests.reports.conftest import Scenario

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def drawn(scenario: Scenario) -> tuple[ShopReport, Labels]:
    with read_session(scenario.engine) as session:
        shop = session.get(Shop, scenario.shop.id)
        assert shop is not None
        report = build_report(
            session=session, shop=shop, first_day=date(2026, 6, 1), clock=scenario.clock
        )
    return report, report_labels(PROJECT_ROOT / "message_templates", shop)


@pytest.fixture
def glyphs_must_exist() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=r".*[Gg]lyph.*missing from font.*")
        yield


def png_size(png: bytes) -> tuple[int, int]:
    assert png.startswith(PNG_SIGNATURE)
    assert png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return int(width), int(height)


def ink_share(png: bytes) -> float:
    """Share of pixels that are not (near) white."""
    from PIL import Image

    histogram = Image.open(io.BytesIO(png)).convert("L").histogram()
    return sum(histogram[:230]) / sum(histogram)


def test_chat_picture_is_a_tall_phone_png(
    drawn: tuple[ShopReport, Labels], glyphs_must_exist: None
) -> None:
    png = report_png(*drawn)
    width, height = png_size(png)
    assert width == 864 and 1200 < height < 2400  # 7.2 in at 120 dpi, panels stacked
    assert 20_000 < len(png) < 1_000_000
    assert ink_share(png) > 0.02


@pytest.mark.parametrize("name", DASHBOARD_CHARTS)
def test_each_dashboard_chart(
    drawn: tuple[ShopReport, Labels], glyphs_must_exist: None, name: str
) -> None:
    png = chart_png(*drawn, name)
    width, height = png_size(png)
    assert width == 960 and 200 < height < 600  # 6.4 in at 150 dpi
    assert ink_share(png) > 0.01


def test_empty_report_draws_its_no_data_note(scenario: Scenario, glyphs_must_exist: None) -> None:
    from tests.factories import make_shop

    shop = make_shop(scenario.engine, scenario.clock, slug="blank")
    with read_session(scenario.engine) as session:
        fresh = session.get(Shop, shop.id)
        assert fresh is not None
        report = build_report(
            session=session, shop=fresh, first_day=date(2026, 6, 1), clock=scenario.clock
        )
    labels = report_labels(PROJECT_ROOT / "message_templates", fresh)
    assert png_size(report_png(report, labels))[0] == 864


def test_the_glyph_check_catches_a_missing_glyph(
    drawn: tuple[ShopReport, Labels], glyphs_must_exist: None
) -> None:
    """Proof the guard works: an emoji is not in Noto Sans CJK, so drawing it must fail."""
    report, labels = drawn
    broken = Labels(raw={**labels.raw, "trend_title": "流失率 \U0001f4ca"})
    with pytest.raises(UserWarning, match="missing from font"):
        chart_png(report, broken, "trend")
