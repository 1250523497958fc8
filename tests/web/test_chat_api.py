"""The web chat's JSON endpoint and the health check, through HTTP (no browser)."""

from __future__ import annotations

from collections.abc import Iterator

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
from tests.factories import LOCAL


@pytest.fixture
def client(
    engine: Engine, settings: Settings, clock: FixedClock, demo_shop: Shop
) -> Iterator[TestClient]:
    with TestClient(create_app(settings=settings, engine=engine, clock=clock), base_url=LOCAL) as c:
        yield c


def order_count(engine: Engine) -> int:
    with read_session(engine) as s:
        return s.exec(select(func.count()).select_from(Order)).one()


def post(client: TestClient, text: str, msg_id: str = "msg-00000001") -> dict[str, object]:
    response = client.post("/api/chat/demo", json={"text": text, "client_msg_id": msg_id})
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_health(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_root_redirects_to_the_demo_chat(client: TestClient) -> None:
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "/chat/demo"


def test_chat_page_is_served_with_the_shop_name(client: TestClient) -> None:
    page = client.get("/chat/demo")
    assert page.status_code == 200
    assert "清泉送水站(演示)" in page.text
    assert "/api/chat/demo" in page.text
    assert client.get("/static/chat.js").status_code == 200


def test_four_commands_over_http(client: TestClient) -> None:
    replies = post(client, "今天该跟进谁", "m-followups")["replies"]
    assert "王姐 38天没订(平时25天)" in replies[0]["text"]  # type: ignore[index]
    assert post(client, "王姐 2桶", "m-order-01")["replies"][0]["text"].startswith("已记:王姐 2桶")  # type: ignore[index]
    assert post(client, "王姐", "m-card-0001")["replies"][0]["text"].startswith("📇 王姐")  # type: ignore[index]
    assert "今天该跟进谁" in post(client, "帮助", "m-help-0001")["replies"][0]["text"]  # type: ignore[index]


def test_a_retried_message_is_answered_the_same_and_recorded_once(
    client: TestClient, engine: Engine
) -> None:
    before = order_count(engine)
    first = post(client, "王姐 2桶", "retry-me-123")
    second = post(client, "王姐 2桶", "retry-me-123")
    assert first["replies"] == second["replies"]
    assert (first["duplicate"], second["duplicate"]) == (False, True)
    assert order_count(engine) == before + 1


@pytest.mark.parametrize(
    "body",
    [
        {"text": "王姐 2桶"},
        {"text": "王姐 2桶", "client_msg_id": "short"},
        {"text": "王姐 2桶", "client_msg_id": "../../etc/passwd"},
        {"text": "x" * 2001, "client_msg_id": "toolong-123"},
        {"client_msg_id": "no-text-123"},
    ],
)
def test_malformed_requests_are_refused_and_change_nothing(
    client: TestClient, engine: Engine, body: dict[str, str]
) -> None:
    before = order_count(engine)
    response = client.post("/api/chat/demo", json=body)
    assert response.status_code == 422
    assert order_count(engine) == before


def test_unknown_shop_is_404(client: TestClient) -> None:
    assert client.get("/chat/nope").status_code == 404
    response = client.post("/api/chat/nope", json={"text": "帮助", "client_msg_id": "abc-12345"})
    assert response.status_code == 404


def test_webchat_can_be_turned_off(
    engine: Engine, settings: Settings, clock: FixedClock, demo_shop: Shop
) -> None:
    closed = settings.model_copy(update={"webchat_enabled": False})
    with TestClient(create_app(settings=closed, engine=engine, clock=clock), base_url=LOCAL) as c:
        assert c.get("/chat/demo").status_code == 404
        assert (
            c.post(
                "/api/chat/demo", json={"text": "帮助", "client_msg_id": "abc-12345"}
            ).status_code
            == 404
        )
        assert c.get("/healthz").status_code == 200


def test_fastapis_opentelemetry_is_off_unless_the_operator_turns_it_on(
    engine: Engine, settings: Settings, clock: FixedClock
) -> None:
    switches = ("tracing", "metrics", "logs", "operation_spans")
    quiet = create_app(settings=settings, engine=engine, clock=clock)
    assert not any(quiet._telemetry[name] for name in switches)  # type: ignore[literal-required]
    assert not quiet._native_telemetry.enabled()
    traced = create_app(
        settings=settings.model_copy(update={"otel_enabled": True}), engine=engine, clock=clock
    )
    assert all(traced._telemetry[name] for name in switches)  # type: ignore[literal-required]
