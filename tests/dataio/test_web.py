"""Upload on the web page: form, preview with a one-time token, confirm, guarded like the chat."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func
from sqlmodel import select

from app.clock import FixedClock
from app.config import Settings
from app.db import read_session
from app.main import create_app
from app.orders.models import Order
from app.shops.models import Shop
from tests.dataio.conftest import fingerprint
from tests.factories import LOCAL

ROWS = [
    ["客户", "电话", "日期", "数量", "金额"],
    ["王姐", "13800001234", "2025-3-1", 2, 36],
    ["老李", "", "2025-3-9", 1, 18],
]


@pytest.fixture
def client(
    engine: Engine, settings: Settings, clock: FixedClock, shop: Shop
) -> Iterator[TestClient]:
    with TestClient(create_app(settings=settings, engine=engine, clock=clock), base_url=LOCAL) as c:
        yield c


def order_count(engine: Engine) -> int:
    with read_session(engine) as s:
        return s.exec(select(func.count()).select_from(Order)).one()


def upload(client: TestClient, path: Path) -> tuple[int, str, str | None]:
    with path.open("rb") as handle:
        response = client.post("/import/water", files={"file": (path.name, handle)})
    token = re.search(r'name="token" value="([^"]+)"', response.text)
    return response.status_code, response.text, token.group(1) if token else None


def test_form_is_served(client: TestClient) -> None:
    page = client.get("/import/water")
    assert page.status_code == 200
    assert 'enctype="multipart/form-data"' in page.text and "测试水站" in page.text


def test_upload_previews_and_confirm_imports_once(
    client: TestClient, engine: Engine, write_xlsx: Callable[..., Path], settings: Settings
) -> None:
    status, text, token = upload(client, write_xlsx(ROWS))
    assert status == 200
    assert "导入预览:orders.xlsx" in text and "138****1234" in text
    assert token is not None
    assert order_count(engine) == 0  # a preview writes nothing
    done = client.post("/import/water/confirm", data={"token": token})
    assert done.status_code == 200
    assert "导入完成:新增客户 2 位、订单 2 单" in done.text
    assert order_count(engine) == 2
    # The token works once; the staged upload is gone.
    again = client.post("/import/water/confirm", data={"token": token})
    assert again.status_code == 410 and "用过或过期" in again.text
    assert list((settings.data_dir / "imports").iterdir()) == []
    assert order_count(engine) == 2


def test_the_same_file_uploaded_again_offers_nothing_to_confirm(
    client: TestClient, engine: Engine, write_xlsx: Callable[..., Path]
) -> None:
    path = write_xlsx(ROWS)
    _, _, token = upload(client, path)
    client.post("/import/water/confirm", data={"token": token})
    status, text, token = upload(client, path)
    assert status == 200 and token is None and "已经导入过了" in text
    assert order_count(engine) == 2


def test_a_bad_file_shows_the_report_and_no_confirm_button(
    client: TestClient, engine: Engine, write_csv: Callable[..., Path]
) -> None:
    before = fingerprint(engine)
    status, text, token = upload(
        client, write_csv([["客户", "日期", "数量"], ["王姐", "2025-13-01", "两桶"]])
    )
    assert status == 422 and token is None
    assert "没有这一天" in text and "数量不是数字" in text
    assert fingerprint(engine) == before


def test_wrong_kind_of_file_and_forged_tokens_are_refused(
    client: TestClient, engine: Engine, tmp_path: Path
) -> None:
    exe = tmp_path / "virus.exe"
    exe.write_bytes(b"MZ\x90\x00")
    status, text, _ = upload(client, exe)
    assert status == 400 and ".xlsx 或 .csv" in text
    assert (
        client.post("/import/water/confirm", data={"token": "../../etc/passwd"}).status_code == 400
    )
    assert client.post("/import/water/confirm", data={"token": "A" * 32}).status_code == 410
    assert order_count(engine) == 0


def test_a_token_is_only_good_for_its_own_shop(
    client: TestClient, engine: Engine, clock: FixedClock, write_xlsx: Callable[..., Path]
) -> None:
    from tests.factories import make_shop

    make_shop(engine, clock, slug="other", name="别家水站")
    _, _, token = upload(client, write_xlsx(ROWS))
    response = client.post("/import/other/confirm", data={"token": token})
    assert response.status_code == 410
    assert order_count(engine) == 0


def test_upload_is_off_when_the_web_chat_is_off(
    engine: Engine,
    settings: Settings,
    clock: FixedClock,
    shop: Shop,
    write_xlsx: Callable[..., Path],
) -> None:
    closed = settings.model_copy(update={"webchat_enabled": False})
    with TestClient(create_app(settings=closed, engine=engine, clock=clock), base_url=LOCAL) as c:
        assert c.get("/import/water").status_code == 404
        status, _, _ = upload(c, write_xlsx(ROWS))
        assert status == 404
        assert c.post("/import/water/confirm", data={"token": "A" * 32}).status_code == 404
    assert order_count(engine) == 0


def test_unknown_shop_is_404(client: TestClient) -> None:
    assert client.get("/import/nope").status_code == 404
