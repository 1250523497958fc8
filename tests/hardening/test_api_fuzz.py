"""Schemathesis against the app's own OpenAPI, in process (ASGI): no 500 on any route.

Bounded so it fits CI: 25 examples per operation, no per-example deadline. The app runs on
the demo shop with the web chat on and every channel configured, so generated requests reach
the handlers rather than stopping at "not configured".
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from sqlalchemy import Engine

from app.clock import FixedClock
from app.config import Settings
from app.main import create_app
from app.shops.models import Shop
from tests.factories import LOCAL

# Schemathesis reads the schema when this module is imported, so the app exists from then;
# each test points it at that test's database, clock and settings (see `fuzz_app`).
# (schemathesis.pytest.from_fixture fails under pytest 9: "'Function' has no '_nodeid'".)
APP: FastAPI = create_app(settings=Settings(scheduler_enabled=False, database_url="sqlite://"))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(autouse=True)
def fuzz_app(
    engine: Engine, clock: FixedClock, demo_shop: Shop, channel_settings: Settings
) -> FastAPI:
    placeholder = APP.state.engine
    APP.state.engine, APP.state.clock, APP.state.settings = engine, clock, channel_settings
    placeholder.dispose()
    return APP


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_operation_answers_500(case: Any) -> None:
    response = case.call()
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
    )


def test_the_schema_lists_the_owner_facing_operations() -> None:
    """The fuzzing above is only as wide as the schema: check it is not empty or partial."""
    paths = set(schema.raw_schema["paths"])
    assert {"/healthz", "/api/chat/{slug}", "/import/{slug}", "/import/{slug}/confirm"} <= paths


@pytest.mark.parametrize("ref", ["²", "٣", "1²", "9" * 40])
@pytest.mark.parametrize("page", ["/chat/{}", "/import/{}"])
def test_a_shop_ref_of_odd_digits_is_a_404_not_a_500(
    fuzz_app: FastAPI, page: str, ref: str
) -> None:
    """Found by the fuzzing: "²".isdigit() is true but int("²") fails (app/shops/service)."""
    with TestClient(fuzz_app, raise_server_exceptions=False, base_url=LOCAL) as client:
        assert client.get(page.format(ref)).status_code == 404


@pytest.mark.parametrize("ref", ["²", "9" * 40])
def test_web_chat_with_an_odd_digit_slug_is_a_404_not_a_500(fuzz_app: FastAPI, ref: str) -> None:
    with TestClient(fuzz_app, raise_server_exceptions=False, base_url=LOCAL) as client:
        response = client.post(
            f"/api/chat/{ref}", json={"text": "帮助", "client_msg_id": "odd-0001"}
        )
    assert response.status_code == 404
