"""The dashboard behind its signed link: shown for the right shop and month, refused otherwise."""

from __future__ import annotations

import base64
import json
from datetime import date, timedelta

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from app.outreach.links import (
    LinkError,
    item_token,
    link_secret,
    list_token,
    read_item,
    read_list,
    read_report,
    report_token,
)
from tests.factories import make_shop
from tests.reports.conftest import Scenario

JUNE = date(2026, 6, 1)
TTL = timedelta(hours=72)


@pytest.fixture
def client(scenario: Scenario, settings: Settings) -> TestClient:
    return TestClient(create_app(settings=settings, engine=scenario.engine, clock=scenario.clock))


def token_for(scenario: Scenario, settings: Settings, shop_id: int | None = None) -> str:
    return report_token(
        link_secret(settings),
        shop_id=shop_id if shop_id is not None else scenario.shop.id,  # type: ignore[arg-type]
        month=JUNE,
        now=scenario.clock.now(),
        ttl=TTL,
    )


def _forge_shop(token: str, shop_id: int) -> str:
    """The same token with another shop id in its payload (and the old signature)."""
    body, mac = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["s"] = shop_id
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode() + "." + mac


def test_dashboard_shows_the_shops_month(
    client: TestClient, scenario: Scenario, settings: Settings
) -> None:
    response = client.get(f"/r/{token_for(scenario, settings)}")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    page = response.text
    assert "测试水站" in page and "2026年6月 报表" in page
    assert "33.3%" in page and "本月流失 3 位 ÷ 月初老客户 9 位" in page
    assert "月流失率 = 本月流失的客户 ÷ 月初老客户" in page  # the definition
    assert page.count('data-testid="chart"') == 5
    assert page.count("data:image/png;base64,") == 5
    assert "二级·电话" in page  # win-back by template
    assert "冯阿姨" in page and "有 2 位都是因为“价格”" in page  # the last lost
    assert "http://" not in page.split("<body>")[1]  # nothing fetched from elsewhere


def test_expired_link_is_refused(
    client: TestClient, scenario: Scenario, settings: Settings
) -> None:
    token = token_for(scenario, settings)
    scenario.clock.advance(hours=72, seconds=1)
    response = client.get(f"/r/{token}")
    assert response.status_code == 403 and "过期" in response.text
    assert "测试水站" not in response.text


def test_tampered_link_is_refused(
    client: TestClient, scenario: Scenario, settings: Settings
) -> None:
    token = token_for(scenario, settings)
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    for bad in (flipped, token + "x", token.replace(".", ""), "abc.def", "x" * 600):
        response = client.get(f"/r/{bad}")
        assert response.status_code in (403, 404), bad
        assert "测试水站" not in response.text


def test_other_shops_link_and_forged_shop_are_refused(
    client: TestClient, scenario: Scenario, settings: Settings
) -> None:
    other = make_shop(scenario.engine, scenario.clock, slug="other", name="别家水站")
    assert other.id is not None
    theirs = client.get(f"/r/{token_for(scenario, settings, other.id)}")
    assert theirs.status_code == 200
    assert "别家水站" in theirs.text and "测试水站" not in theirs.text
    assert "冯阿姨" not in theirs.text  # nothing of our shop leaks into theirs
    forged = _forge_shop(token_for(scenario, settings, other.id), scenario.shop.id)  # type: ignore[arg-type]
    response = client.get(f"/r/{forged}")
    assert response.status_code == 403 and "测试水站" not in response.text
    missing = client.get(f"/r/{token_for(scenario, settings, 99999)}")
    assert missing.status_code == 403


def test_other_purposes_do_not_open_the_dashboard(
    client: TestClient, scenario: Scenario, settings: Settings
) -> None:
    secret = link_secret(settings)
    now = scenario.clock.now()
    shop_id = scenario.shop.id
    assert shop_id is not None
    item = item_token(secret, shop_id=shop_id, followup_id=1, now=now, ttl=TTL)
    day_list = list_token(secret, shop_id=shop_id, staff_id=1, day=JUNE, now=now, ttl=TTL)
    for token in (item, day_list):
        assert client.get(f"/r/{token}").status_code == 403
        with pytest.raises(LinkError):
            read_report(secret, token, now=now)
    # …and a report link opens neither a tap page nor a list.
    report = token_for(scenario, settings)
    with pytest.raises(LinkError):
        read_item(secret, report, now=now)
    with pytest.raises(LinkError):
        read_list(secret, report, now=now)
    assert client.get(f"/t/{report}").status_code == 403
    assert client.get(f"/d/{report}").status_code == 403


def test_a_link_signed_with_another_key_is_refused(scenario: Scenario, settings: Settings) -> None:
    token = report_token(
        b"another-secret-key-another-secret-key",
        shop_id=scenario.shop.id,  # type: ignore[arg-type]
        month=JUNE,
        now=scenario.clock.now(),
        ttl=TTL,
    )
    with pytest.raises(LinkError, match="无效"):
        read_report(link_secret(settings), token, now=scenario.clock.now())


def test_dashboard_is_read_only(client: TestClient, scenario: Scenario, settings: Settings) -> None:
    token = token_for(scenario, settings)
    assert client.post(f"/r/{token}").status_code == 405
    page = client.get(f"/r/{token}").text
    assert "<form" not in page and "<button" not in page


def test_without_the_cjk_font_the_dashboard_shows_the_figures_and_says_why(
    client: TestClient, scenario: Scenario, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.reports import charts

    def no_font() -> None:
        raise charts.ChartError("CJK font not found (install fonts-noto-cjk)")

    monkeypatch.setattr(charts, "_setup", no_font)
    response = client.get(f"/r/{token_for(scenario, settings)}")
    assert response.status_code == 200
    page = response.text
    assert page.count('data-testid="chart"') == 0
    assert page.count('data-testid="nochart"') == 5 and "没装中文字体" in page
    assert "本月流失 3 位 ÷ 月初老客户 9 位" in page  # the figures are all still there
