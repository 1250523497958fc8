"""The real app, served by uvicorn as a deployment serves it, refuses the owner pages to
anyone not signed in: bound to 0.0.0.0 (every address; the test connects over loopback
only), or on loopback behind a proxy. Runs on SQLite and, in the PostgreSQL pass, there.
"""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import FastAPI, routing
from fastapi.routing import APIRoute
from sqlalchemy import Engine, func, select

from app.clock import FixedClock
from app.db import read_session
from app.orders.models import Order
from app.shops.websessions import COOKIE_NAME
from app.web.access import require_owner
from tests.conftest import ChatDriver

CSV = "客户,日期,数量\n李四,2026-06-01,2\n"
# Customer names and the shop name of the demo: none may appear in a refusal.
DEMO_DATA = ("王姐", "老郭", "顾嫂", "清泉")


def owner_requests(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every owner page for the demo shop, read from the app's routes.

    A route that names a shop in its path is an owner page and must depend on require_owner;
    "/" (which shop to open) is one too.
    """

    def depends_on_owner(dependant) -> bool:  # type: ignore[no-untyped-def]
        return any(d.call is require_owner or depends_on_owner(d) for d in dependant.dependencies)

    found = [("GET", "/")]
    for context in routing.iter_route_contexts(app.routes):
        route = context.route
        if isinstance(route, APIRoute) and "{slug}" in context.path:
            assert depends_on_owner(route.dependant), f"{context.path} is not guarded"
            for method in sorted(set(context.methods or ()) - {"HEAD"}):
                found.append((method, context.path.replace("{slug}", "demo")))
    return found


def call(client: httpx.Client, method: str, path: str, **headers: str) -> httpx.Response:
    if method == "GET":
        return client.get(path, headers=headers)
    if path.startswith("/api/"):
        return client.post(
            path, json={"text": "王姐 2桶", "client_msg_id": "exposed-0001"}, headers=headers
        )
    if path.endswith("/confirm"):
        return client.post(path, data={"token": "x" * 32}, headers=headers)
    return client.post(path, files={"file": ("a.csv", CSV)}, headers=headers)


def orders(engine: Engine) -> int:
    with read_session(engine) as session:
        return int(session.execute(select(func.count()).select_from(Order)).scalar())


def assert_refused(response: httpx.Response, method: str, path: str) -> None:
    assert response.status_code == 401, (method, path, response.status_code, response.text[:300])
    for secret in DEMO_DATA:
        assert secret not in response.text, (method, path, secret)
    if path.startswith("/api/"):
        assert "登录网页版" in response.json()["detail"]
    else:
        assert "登录网页版" in response.text and "text/html" in response.headers["content-type"]


def test_bound_to_every_address_every_owner_page_needs_a_sign_in(serve, engine: Engine) -> None:
    served = serve("0.0.0.0")
    before = orders(engine)
    requests = owner_requests(served.app)
    assert len(requests) >= 6
    with httpx.Client(base_url=served.base_url, timeout=10) as client:
        for method, path in requests:
            assert_refused(call(client, method, path), method, path)
            # Naming our own origin changes nothing without a session.
            origin = {"Origin": served.base_url}
            assert_refused(call(client, method, path, **origin), method, path)
        # A cookie that is not a live session is refused the same way.
        client.cookies.set(COOKIE_NAME, "made-up-session-id")
        assert_refused(call(client, "GET", "/chat/demo"), "GET", "/chat/demo")
    assert orders(engine) == before


@pytest.mark.parametrize(
    "proxy_header",
    [
        {"X-Forwarded-For": "203.0.113.9"},
        {"Forwarded": "for=203.0.113.9;proto=https"},
        {"X-Real-IP": "203.0.113.9"},
        {"X-Forwarded-For": "127.0.0.1"},  # even a proxy that claims loopback
    ],
    ids=["x-forwarded-for", "forwarded", "x-real-ip", "x-forwarded-for-loopback"],
)
def test_behind_a_proxy_every_owner_page_needs_a_sign_in(
    serve, engine: Engine, proxy_header: dict[str, str]
) -> None:
    served = serve("127.0.0.1")
    before = orders(engine)
    with httpx.Client(base_url=served.base_url, timeout=10) as client:
        # The control: straight from this machine, the page answers without a sign-in.
        assert client.get("/chat/demo").status_code == 200
        for method, path in owner_requests(served.app):
            assert_refused(call(client, method, path, **proxy_header), method, path)
    assert orders(engine) == before


def test_bound_to_every_address_a_sign_in_link_opens_the_chat(
    serve, engine: Engine, clock: FixedClock
) -> None:
    served = serve("0.0.0.0")
    owner = ChatDriver(engine=engine, settings=served.settings, clock=clock, shop_ref="demo")
    found = re.search(r"http://127\.0\.0\.1:\d+(/login/\S+)", owner.say("登录网页版"))
    assert found
    origin = {"Origin": served.base_url}
    before = orders(engine)
    with httpx.Client(base_url=served.base_url, timeout=10) as client:
        assert client.get(found.group(1)).status_code == 200
        signed = client.post(found.group(1), headers=origin)
        assert signed.status_code == 303
        assert "httponly" in signed.headers["set-cookie"].lower()
        page = client.get("/chat/demo")
        assert page.status_code == 200 and "清泉" in page.text
        reply = client.post(
            "/api/chat/demo",
            json={"text": "王姐 2桶", "client_msg_id": "exposed-0002"},
            headers=origin,
        )
        assert reply.status_code == 200, reply.text
        assert "王姐" in reply.json()["replies"][0]["text"]
        assert client.get("/import/demo").status_code == 200
    assert orders(engine) == before + 1
