"""End to end: the real `huitou serve` process (and scripts/serve), killed and restarted.

Each test starts the server as a child process on a free port against a fresh database:
PostgreSQL when HUITOU_TEST_DATABASE_URL is set, otherwise the SQLite file the server
creates itself under HUITOU_DATA_DIR. Every child is killed in the fixture's teardown.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from app.config import PROJECT_ROOT
from app.customers.models import Customer
from app.db import make_engine
from app.events.models import InboxMessage
from app.orders.models import Order
from app.shops.models import Shop
from tests.conftest import PG_URL

TODAY = "2026-06-17"
HUITOU = PROJECT_ROOT / ".venv" / "bin" / "huitou"
SERVE_SCRIPT = PROJECT_ROOT / "scripts" / "serve"
START_DEADLINE_S = 60.0
STOP_DEADLINE_S = 15.0
DEMO_LOADED = "已载入演示店铺"

BURST_SIZE = 300
BURST_WORKERS = 8
KILL_AFTER_ACKS = 80
ORDER_TEXT = "王姐 1桶"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    stdout_path: Path
    stderr_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def output_tail(self, chars: int = 3000) -> str:
        return f"--- stdout ---\n{self.stdout()[-chars:]}\n--- stderr ---\n{self.stderr()[-chars:]}"

    def stop(self) -> None:
        """SIGTERM; fail unless it shuts down gracefully within STOP_DEADLINE_S.

        uvicorn re-raises the captured SIGTERM after its graceful shutdown, so a clean exit
        is -SIGTERM (or 0), with uvicorn's "Finished server process" logged.
        """
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"server did not exit within {STOP_DEADLINE_S:.0f} s of SIGTERM")
        assert code in (0, -signal.SIGTERM), f"exit code {code}\n{self.output_tail()}"
        assert "Application shutdown complete" in self.stderr(), self.output_tail()
        assert "Finished server process" in self.stderr(), self.output_tail()


@dataclass
class Launcher:
    """Starts servers against one database; the fixture kills whatever is still running."""

    env: dict[str, str]
    database_url: str  # what the server will use, for reading the database directly
    logs_dir: Path
    servers: list[Server] = field(default_factory=list)

    def start(self, *, script: bool = False, host: str | None = None) -> Server:
        port = _free_port()
        n = len(self.servers)
        stdout_path = self.logs_dir / f"server{n}.out"
        stderr_path = self.logs_dir / f"server{n}.err"
        argv = [str(SERVE_SCRIPT) if script else str(HUITOU), "--port", str(port)]
        if host is not None:
            argv += ["--host", host]
        if not script:
            argv.insert(1, "serve")
        with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
            proc = subprocess.Popen(
                argv,
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )
        server = Server(proc=proc, port=port, stdout_path=stdout_path, stderr_path=stderr_path)
        self.servers.append(server)
        self._wait_healthy(server)
        return server

    def _wait_healthy(self, server: Server) -> None:
        deadline = time.monotonic() + START_DEADLINE_S
        with httpx.Client(timeout=2.0) as client:
            while True:
                code = server.proc.poll()
                if code is not None:
                    pytest.fail(f"server exited with {code} while starting\n{server.output_tail()}")
                try:
                    response = client.get(f"{server.base_url}/healthz")
                    if response.status_code == 200 and response.json() == {"status": "ok"}:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"server not healthy on {server.base_url} within "
                        f"{START_DEADLINE_S:.0f} s\n{server.output_tail()}"
                    )
                time.sleep(0.1)

    def kill_all(self) -> None:
        for server in self.servers:
            if server.proc.poll() is None:
                server.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.proc.wait(timeout=10)


@pytest.fixture
def launcher(database_url: str, tmp_path: Path) -> Iterator[Launcher]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUITOU_")}
    env["HUITOU_TODAY"] = TODAY
    env["PYTHONUNBUFFERED"] = "1"
    # The demo's lived past takes half a minute per start; tests/demo/test_past.py covers it.
    env["HUITOU_DEMO_PAST"] = "false"
    if PG_URL:
        env["HUITOU_DATABASE_URL"] = database_url  # migrated and emptied by the fixture
        server_url = database_url
    else:
        data_dir = tmp_path / "data"
        env["HUITOU_DATA_DIR"] = str(data_dir)  # the server creates its own SQLite file
        server_url = f"sqlite:///{data_dir / 'huitou.db'}"
    logs_dir = tmp_path / "logs"
    logs_dir.mkdir()
    launch = Launcher(env=env, database_url=server_url, logs_dir=logs_dir)
    try:
        yield launch
    finally:
        launch.kill_all()


def chat(client: httpx.Client, base_url: str, text: str, msg_id: str) -> httpx.Response:
    return client.post(f"{base_url}/api/chat/demo", json={"text": text, "client_msg_id": msg_id})


def run_concurrently(task: Callable[[httpx.Client, str], None], ids: list[str]) -> None:
    """Run task(client, id) for every id from BURST_WORKERS threads, one httpx client each."""
    local = threading.local()
    clients: list[httpx.Client] = []
    lock = threading.Lock()

    def run(msg_id: str) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(timeout=15.0)
            with lock:
                clients.append(client)
        task(client, msg_id)

    try:
        with ThreadPoolExecutor(max_workers=BURST_WORKERS) as pool:
            list(pool.map(run, ids))  # re-raises the first exception of a task
    finally:
        for client in clients:
            client.close()


def reply_texts(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [r["text"] for r in response.json()["replies"]]


# -- reading the database directly ------------------------------------------------


@dataclass
class Counts:
    shops: int
    customers: int
    orders: int


def table_counts(url: str) -> Counts:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return Counts(
                shops=conn.execute(select(func.count()).select_from(Shop)).scalar_one(),
                customers=conn.execute(select(func.count()).select_from(Customer)).scalar_one(),
                orders=conn.execute(select(func.count()).select_from(Order)).scalar_one(),
            )
    finally:
        engine.dispose()


@dataclass
class BurstState:
    """What the database holds for the burst's message ids (keyed by client_msg_id)."""

    handled: dict[str, list[str]]  # handled inbox rows -> their stored replies
    unhandled: set[str]  # inbox rows stored but never handled
    orders: Counter[str]  # orders with raw_text ORDER_TEXT, per message id
    stray_orders: list[int]  # ORDER_TEXT orders with no inbox row among the burst's ids


def burst_state(url: str, ids: list[str]) -> BurstState:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            shop_id = conn.execute(select(Shop.id).where(Shop.slug == "demo")).scalar_one()
            by_external = {f"{shop_id}:{i}": i for i in ids}
            inbox = conn.execute(
                select(
                    InboxMessage.external_id, InboxMessage.handled_at, InboxMessage.replies
                ).where(InboxMessage.channel == "web")
            ).all()
            orders = conn.execute(
                select(Order.id, InboxMessage.external_id)
                .select_from(Order)
                .outerjoin(InboxMessage, Order.inbox_id == InboxMessage.id)
                .where(Order.raw_text == ORDER_TEXT)
            ).all()
    finally:
        engine.dispose()
    state = BurstState(handled={}, unhandled=set(), orders=Counter(), stray_orders=[])
    for external_id, handled_at, replies in inbox:
        msg_id = by_external.get(external_id)
        if msg_id is None:
            continue
        if handled_at is None:
            state.unhandled.add(msg_id)
        else:
            state.handled[msg_id] = list(replies or [])
    for order_id, external_id in orders:
        msg_id = by_external.get(external_id) if external_id else None
        if msg_id is None:
            state.stray_orders.append(order_id)
        else:
            state.orders[msg_id] += 1
    return state


# -- the tests ------------------------------------------------------------------------


@pytest.mark.slow
def test_scripts_serve_starts_loads_demo_and_answers_the_four_commands(
    launcher: Launcher,
) -> None:
    server = launcher.start(script=True)
    base = server.base_url

    stdout = server.stdout()
    assert f"http://127.0.0.1:{server.port}" in stdout
    assert "今天该跟进谁" in stdout
    assert DEMO_LOADED in stdout

    with httpx.Client(timeout=15.0) as client:
        root = client.get(f"{base}/", follow_redirects=False)
        assert root.status_code == 307
        assert root.headers["location"] == "/chat/demo"

        page = client.get(f"{base}/chat/demo")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "回头客" in page.text

        follow_up = "\n".join(reply_texts(chat(client, base, "今天该跟进谁", "e2e-cmd-1")))
        assert "王姐 38天没订(平时25天)" in follow_up

        order = reply_texts(chat(client, base, "王姐 2桶", "e2e-cmd-2"))
        assert order[0].startswith("已记:王姐 2桶"), order

        card = reply_texts(chat(client, base, "王姐", "e2e-cmd-3"))
        assert card[0].startswith("📇 王姐"), card

        help_text = "\n".join(reply_texts(chat(client, base, "帮助", "e2e-cmd-4")))
        assert "今天该跟进谁" in help_text

        # Without HUITOU_PUBLIC_URL the report link points where this server listens.
        report = "\n".join(reply_texts(chat(client, base, "报表", "e2e-cmd-5")))
        link = re.search(r"http://\S+/r/\S+", report)
        assert link is not None and link.group().startswith(f"{base}/r/"), report
        assert client.get(link.group()).status_code == 200

    server.stop()


@pytest.mark.slow
def test_kill_9_mid_burst_loses_no_acknowledged_order_and_doubles_none(
    launcher: Launcher,
) -> None:
    ids = [f"burst-{n:04d}" for n in range(BURST_SIZE)]
    server = launcher.start()

    # -- the burst, with SIGKILL once KILL_AFTER_ACKS orders were acknowledged ---------
    lock = threading.Lock()
    acked: dict[str, list[str]] = {}  # id -> replies of its 200 response
    failed: dict[str, str] = {}  # id -> why the client saw no acknowledgement
    killed = threading.Event()

    def send(client: httpx.Client, msg_id: str) -> None:
        try:
            response = chat(client, server.base_url, ORDER_TEXT, msg_id)
        except httpx.HTTPError as exc:
            with lock:
                failed[msg_id] = type(exc).__name__
            return
        with lock:
            if response.status_code != 200:
                failed[msg_id] = f"HTTP {response.status_code}"
                return
            body = response.json()
            acked[msg_id] = [r["text"] for r in body["replies"]]
            assert body["duplicate"] is False, (msg_id, body)
            if len(acked) >= KILL_AFTER_ACKS and not killed.is_set():
                killed.set()
                server.proc.kill()  # SIGKILL: no shutdown, no flush, mid-request

    run_concurrently(send, ids)

    assert killed.is_set(), f"only {len(acked)} acknowledgements before the burst ended"
    assert server.proc.wait(timeout=STOP_DEADLINE_S) == -signal.SIGKILL
    assert set(acked) | set(failed) == set(ids)
    assert len(acked) >= KILL_AFTER_ACKS
    assert failed, "the kill came after every request was answered: nothing was tested"
    for msg_id, replies in acked.items():
        assert replies[0].startswith(f"已记:{ORDER_TEXT}"), (msg_id, replies)

    # -- restart on the same database: the demo is there and must not be reloaded ----
    restarted = launcher.start()
    assert DEMO_LOADED not in restarted.stdout()
    assert table_counts(launcher.database_url).shops == 1

    after_kill = burst_state(launcher.database_url, ids)
    assert after_kill.stray_orders == [], "orders not tied to a handled burst message"
    lost = sorted(set(acked) - set(after_kill.handled))
    assert lost == [], f"acknowledged but not in the database after kill -9: {lost}"
    doubled = sorted(i for i, n in after_kill.orders.items() if n != 1)
    assert doubled == [], f"more than one order for one message: {doubled}"
    assert sum(after_kill.orders.values()) == len(after_kill.handled)
    assert set(after_kill.orders) == set(after_kill.handled), (
        "handled inbox rows and their orders disagree: "
        f"{sorted(set(after_kill.orders) ^ set(after_kill.handled))}"
    )
    for msg_id, replies in acked.items():
        assert after_kill.handled[msg_id] == replies, msg_id
    print(
        f"kill -9 after {len(acked)} acknowledged, {len(failed)} unacknowledged "
        f"({dict(Counter(failed.values()))}), of which "
        f"{len(set(after_kill.handled) - set(acked))} recorded anyway"
    )

    # -- every client retries every message it sent ------------------------------------
    retried: dict[str, tuple[int, dict]] = {}

    def retry(client: httpx.Client, msg_id: str) -> None:
        response = chat(client, restarted.base_url, ORDER_TEXT, msg_id)
        body = response.json() if response.status_code == 200 else {"error": response.text}
        with lock:
            retried[msg_id] = (response.status_code, body)

    run_concurrently(retry, ids)

    for msg_id in ids:
        status, body = retried[msg_id]
        assert status == 200, (msg_id, status, body)
        replies = [r["text"] for r in body["replies"]]
        if msg_id in after_kill.handled:
            assert body["duplicate"] is True, (msg_id, body)
            assert replies == after_kill.handled[msg_id], msg_id
        else:
            assert body["duplicate"] is False, (msg_id, body)
            assert replies[0].startswith(f"已记:{ORDER_TEXT}"), (msg_id, replies)

    final = burst_state(launcher.database_url, ids)
    assert final.stray_orders == []
    assert final.unhandled == set()
    assert set(final.handled) == set(ids)
    assert final.orders == Counter(dict.fromkeys(ids, 1)), "an order lost or doubled by retries"
    assert sum(final.orders.values()) == BURST_SIZE
    for msg_id, replies in after_kill.handled.items():
        assert final.handled[msg_id] == replies, msg_id

    restarted.stop()


@pytest.mark.slow
def test_a_second_start_does_not_reload_the_demo(launcher: Launcher) -> None:
    first = launcher.start()
    assert DEMO_LOADED in first.stdout()
    first.stop()
    before = table_counts(launcher.database_url)
    assert before.shops == 1
    assert before.customers > 0

    second = launcher.start()
    assert DEMO_LOADED not in second.stdout()
    assert f"http://127.0.0.1:{second.port}" in second.stdout()
    with httpx.Client(timeout=15.0) as client:
        root = client.get(f"{second.base_url}/", follow_redirects=False)
        assert root.status_code == 307
        assert root.headers["location"] == "/chat/demo"
    assert table_counts(launcher.database_url) == before
    second.stop()


@pytest.mark.slow
def test_serve_on_every_address_asks_for_sign_in_and_the_console_link_signs_in(
    launcher: Launcher,
) -> None:
    """`huitou serve --host 0.0.0.0` (the Dockerfile's address): owner pages refuse strangers,
    the start-up output and log say so, and a link from `huitou chat 登录网页版` signs in."""
    server = launcher.start(host="0.0.0.0")
    assert "网页版需要登录" in server.stdout(), server.output_tail()
    assert "sign-in required" in server.stderr(), server.output_tail()
    with httpx.Client(timeout=15.0, base_url=server.base_url) as client:
        for path in ("/", "/chat/demo", "/import/demo"):
            page = client.get(path, follow_redirects=False)
            assert page.status_code == 401 and "登录网页版" in page.text, path
            assert "王姐" not in page.text
        assert chat(client, server.base_url, "今天该跟进谁", "serve-0001").status_code == 401
    # The operator's way in on the server itself: the console channel sends the link.
    env = {**launcher.env, "HUITOU_PUBLIC_URL": server.base_url}
    console = subprocess.run(
        [str(HUITOU), "chat", "登录网页版", "--shop", "demo"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert console.returncode == 0, console.stderr
    link = re.search(rf"{re.escape(server.base_url)}(/login/\S+)", console.stdout)
    assert link, console.stdout
    origin = {"Origin": server.base_url}
    with httpx.Client(timeout=15.0, base_url=server.base_url) as browser:
        signed = browser.post(link.group(1), headers=origin)
        assert signed.status_code == 303, signed.text
        reply = browser.post(
            "/api/chat/demo",
            json={"text": "今天该跟进谁", "client_msg_id": "serve-0002"},
            headers=origin,
        )
        assert reply.status_code == 200, reply.text
        assert "王姐" in reply.json()["replies"][0]["text"]
    server.stop()
