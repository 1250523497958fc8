"""Fixtures for the browser tests: the real app served in-process, and a headless Chromium."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from playwright.sync_api import sync_playwright

from app.config import Settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 375, "height": 812}


def require_chromium() -> None:
    """Skip (or, under HUITOU_REQUIRE_TOOLS=1, fail loudly) when Chromium is not installed."""
    if CHROMIUM.exists():
        return
    message = f"Chromium not installed at {CHROMIUM}: browser tests NOT run"
    if os.environ.get("HUITOU_REQUIRE_TOOLS") == "1":
        pytest.fail(message + " (HUITOU_REQUIRE_TOOLS=1 requires it)", pytrace=False)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live_server(engine, clock, demo_shop, settings) -> Iterator[str]:
    """The real app (demo shop loaded) served by uvicorn on a free port in a background thread."""
    from app.main import create_app

    app = create_app(settings=settings, engine=engine, clock=clock)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="auto")
    )
    thread = threading.Thread(target=server.run, name="huitou-live-server", daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    try:
        while True:
            if not thread.is_alive():
                pytest.fail("the live server thread died while starting (see log above)")
            if server.started:
                try:
                    httpx.get(f"{base_url}/static/chat.js", timeout=1.0)
                    break
                except httpx.HTTPError:
                    pass
            if time.monotonic() > deadline:
                pytest.fail(f"the live server did not answer on {base_url} within 15 s")
            time.sleep(0.05)
        yield base_url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def chromium_browser():
    """One headless Debian Chromium for the whole session (never a downloaded Playwright build)."""
    require_chromium()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def phone_context(chromium_browser):
    """A fresh browser context (own sessionStorage) the size of a phone."""
    context = chromium_browser.new_context(
        viewport=PHONE,
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        locale="zh-CN",
    )
    context.set_default_timeout(15_000)
    try:
        yield context
    finally:
        context.close()


@dataclass
class Served:
    app: FastAPI
    settings: Settings
    base_url: str  # always loopback


@pytest.fixture
def serve(engine, clock, demo_shop, settings):
    """serve(host) -> the real app on uvicorn bound to `host`, reached over 127.0.0.1."""
    from app.main import create_app

    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(host: str) -> Served:
        port = _free_port()
        # The public URL is where links point: this server, as phones would reach it.
        public_url = f"http://127.0.0.1:{port}"
        configured = settings.model_copy(
            update={"host": host, "port": port, "public_url": public_url}
        )
        app = create_app(settings=configured, engine=engine, clock=clock)
        server = uvicorn.Server(
            uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="auto")
        )
        thread = threading.Thread(target=server.run, name=f"huitou-{host}", daemon=True)
        thread.start()
        servers.append((server, thread))
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while True:
            assert thread.is_alive(), "the server thread died while starting"
            if server.started:
                try:
                    httpx.get(f"{base_url}/healthz", timeout=1.0).raise_for_status()
                    return Served(app=app, settings=configured, base_url=base_url)
                except httpx.HTTPError:
                    pass
            assert time.monotonic() < deadline, f"no answer on {base_url} within 15 s"
            time.sleep(0.05)

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)
