"""The local web chat's JSON API carries the report picture after the replies."""

from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.clock import FixedClock
from app.config import Settings
from app.main import create_app
from tests.factories import LOCAL, add_orders, make_customer, make_shop


def test_chart_command_returns_a_png_data_url(
    engine: Engine, settings: Settings, clock: FixedClock
) -> None:
    from datetime import date

    shop = make_shop(engine, clock, slug="pic")
    person = make_customer(engine, clock, shop, "王姐")
    add_orders(engine, clock, shop, person, [date(2026, 4, 1), date(2026, 5, 1)])
    client = TestClient(create_app(settings=settings, engine=engine, clock=clock), base_url=LOCAL)
    body = {"text": "统计图", "client_msg_id": "chart-00000001"}
    answer = client.post("/api/chat/pic", json=body).json()
    assert answer["replies"][0]["text"].startswith("📈 2026年6月统计图")
    [image] = answer["images"]
    assert image["filename"] == "report-2026-06-pic.png"
    assert "月初老客户 1 位" in image["alt"]
    prefix = "data:image/png;base64,"
    assert image["data_url"].startswith(prefix)
    png = base64.b64decode(image["data_url"][len(prefix) :])
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000
    # A repeat of the same message replays the texts; the picture is not drawn again.
    again = client.post("/api/chat/pic", json=body).json()
    assert again["duplicate"] and again["replies"] == answer["replies"] and again["images"] == []
    # Ordinary replies carry no pictures.
    plain = client.post("/api/chat/pic", json={"text": "本月统计", "client_msg_id": "month-0001"})
    assert plain.json()["images"] == []


def test_without_the_cjk_font_the_chart_reply_keeps_its_text_and_link(
    engine: Engine, settings: Settings, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.reports import charts

    def no_font() -> None:
        raise charts.ChartError("CJK font not found (install fonts-noto-cjk)")

    monkeypatch.setattr(charts, "_setup", no_font)
    make_shop(engine, clock, slug="pic")
    client = TestClient(create_app(settings=settings, engine=engine, clock=clock), base_url=LOCAL)
    body = {"text": "统计图", "client_msg_id": "chart-00000002"}
    answer = client.post("/api/chat/pic", json=body)
    assert answer.status_code == 200
    out = answer.json()
    assert out["images"] == []
    assert "/r/" in " ".join(r["text"] for r in out["replies"])  # the dashboard link
