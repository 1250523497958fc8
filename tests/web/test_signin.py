"""The web chat as a 网页版 behind sign-in: one-time links, sessions, another shop, CSRF.

The app here is configured as a deployment is (listening on every address, a public https
URL), so nothing is local and every owner page needs a session. The requests come through
an in-process client named after the public URL; tests/web/test_owner_pages_exposed.py
does the same against a real server bound to 0.0.0.0.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlmodel import col

from app.clock import FixedClock
from app.config import Settings
from app.db import read_session, write_session
from app.events.models import InboxMessage
from app.main import create_app
from app.orders.models import Order
from app.outreach.links import link_secret, signin_token
from app.shops.models import Shop, Staff, WebSession
from app.shops.websessions import COOKIE_NAME
from app.web.access import owner_pages_mode
from tests.conftest import ChatDriver
from tests.factories import LOCAL, make_shop
from tests.web.test_tap_links import build_digest_for

PUBLIC = "https://huitou.example.com"
ORIGIN = {"Origin": PUBLIC}
LINK = re.compile(r"https://huitou\.example\.com(/login/[A-Za-z0-9_.-]+)")


@pytest.fixture
def public_settings(settings: Settings) -> Settings:
    """As deployed: every address, a public https URL (so sign-in is required)."""
    return settings.model_copy(update={"host": "0.0.0.0", "public_url": PUBLIC})


@pytest.fixture
def app(public_settings: Settings, engine: Engine, clock: FixedClock, demo_shop: Shop) -> FastAPI:
    return create_app(settings=public_settings, engine=engine, clock=clock)


def browser(app: FastAPI) -> TestClient:
    """A fresh browser (own cookie jar) on the public URL."""
    return TestClient(app, base_url=PUBLIC, follow_redirects=False)


@pytest.fixture
def owner_chat(engine: Engine, public_settings: Settings, clock: FixedClock, demo_shop: Shop):
    return ChatDriver(engine=engine, settings=public_settings, clock=clock, shop_ref="demo")


def link_from(chat: ChatDriver) -> str:
    """The path of the sign-in link the bot sends for 登录网页版."""
    reply = chat.say("登录网页版")
    found = LINK.search(reply)
    assert found, reply
    assert "10 分钟内有效" in reply and "只能用一次" in reply
    return found.group(1)


def sign_in(client: TestClient, path: str) -> None:
    response = client.post(path, headers=ORIGIN)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/chat/demo"


def say(client: TestClient, text: str, msg_id: str, slug: str = "demo", **headers: str):
    return client.post(
        f"/api/chat/{slug}",
        json={"text": text, "client_msg_id": msg_id},
        headers={**ORIGIN, **headers},
    )


def count(engine: Engine, model: type, *where: object) -> int:
    with read_session(engine) as session:
        return int(session.execute(select(func.count()).select_from(model).where(*where)).scalar())


def test_the_deployed_configuration_requires_sign_in(public_settings: Settings) -> None:
    assert owner_pages_mode(public_settings) == "signin"
    assert owner_pages_mode(Settings()) == "local"
    # Loopback but with a public URL phones reach: a proxy on this machine forwards to it.
    behind = Settings(public_url="https://shop.example.com")
    assert owner_pages_mode(behind) == "signin"
    assert owner_pages_mode(Settings(webchat_enabled=False)) == "off"
    for host in ("::1", "localhost", "127.0.0.2"):
        assert owner_pages_mode(Settings(host=host)) == "local", host
    for host in ("0.0.0.0", "::", "192.168.1.5", "evil.localhost.example"):
        assert owner_pages_mode(Settings(host=host)) == "signin", host


def test_a_sign_in_link_opens_the_chat_once_with_a_safe_cookie(
    app: FastAPI, owner_chat: ChatDriver, engine: Engine
) -> None:
    path = link_from(owner_chat)
    with browser(app) as b:
        page = b.get(path)
        assert page.status_code == 200
        assert "进入网页版" in page.text and "清泉送水站(演示) · 店主" in page.text
        assert count(engine, WebSession) == 0, "opening the link (GET) must not use it up"
        response = b.post(path, headers=ORIGIN)
        assert response.status_code == 303
        assert response.headers["location"] == "/chat/demo"
        cookie = SimpleCookie(response.headers["set-cookie"])[COOKIE_NAME]
        assert cookie["httponly"] is True
        assert cookie["secure"] is True
        assert cookie["samesite"].lower() == "lax"
        assert cookie["path"] == "/"
        assert int(cookie["max-age"]) == 30 * 24 * 3600
        assert len(cookie.value) >= 40
        # Only the cookie's hash is stored.
        with read_session(engine) as session:
            ids = session.execute(select(WebSession.id)).scalars().all()  # type: ignore[call-overload]
        assert len(ids) == 1 and cookie.value not in ids
        chat = b.get("/chat/demo")
        assert chat.status_code == 200 and "回头客助手" in chat.text
        assert chat.headers["cache-control"] == "no-store"
        reply = say(b, "今天该跟进谁", "signin-0001")
        assert reply.status_code == 200
        assert "今天该跟进" in reply.json()["replies"][0]["text"]
        assert b.get("/", follow_redirects=False).headers["location"] == "/chat/demo"
    # The same link in another browser: used.
    with browser(app) as other:
        again = other.post(path, headers=ORIGIN)
        assert again.status_code == 410 and "已经用过" in again.text
        assert COOKIE_NAME not in again.cookies
        assert other.get(path).status_code == 410
        assert say(other, "今天该跟进谁", "signin-0002").status_code == 401
    assert count(engine, WebSession) == 1


def test_the_cookie_is_not_secure_when_the_public_url_is_plain_http(
    settings: Settings, engine: Engine, clock: FixedClock, demo_shop: Shop
) -> None:
    plain = settings.model_copy(update={"host": "0.0.0.0", "public_url": "http://10.0.0.8:8000"})
    chat = ChatDriver(engine=engine, settings=plain, clock=clock, shop_ref="demo")
    path = re.search(r"http://10\.0\.0\.8:8000(/login/\S+)", chat.say("登录网页版"))
    assert path
    app = create_app(settings=plain, engine=engine, clock=clock)
    with TestClient(app, base_url="http://10.0.0.8:8000", follow_redirects=False) as b:
        response = b.post(path.group(1), headers={"Origin": "http://10.0.0.8:8000"})
        assert response.status_code == 303
        cookie = SimpleCookie(response.headers["set-cookie"])[COOKIE_NAME]
        assert cookie["secure"] == "" and cookie["httponly"] is True


def test_a_sign_in_link_expires(app: FastAPI, owner_chat: ChatDriver, clock: FixedClock) -> None:
    path = link_from(owner_chat)
    clock.advance(minutes=10, seconds=1)
    with browser(app) as b:
        assert "已过期" in b.get(path).text
        response = b.post(path, headers=ORIGIN)
        assert response.status_code == 403 and "已过期" in response.text
        assert COOKIE_NAME not in response.cookies
        assert say(b, "今天该跟进谁", "expired-0001").status_code == 401


@pytest.mark.parametrize("damage", ["tamper", "other_secret", "garbage", "other_purpose"])
def test_forged_or_damaged_sign_in_links_are_refused(
    app: FastAPI,
    owner_chat: ChatDriver,
    public_settings: Settings,
    clock: FixedClock,
    demo_shop: Shop,
    engine: Engine,
    damage: str,
) -> None:
    path = link_from(owner_chat)
    token = path.removeprefix("/login/")
    if damage == "tamper":
        token = token[:5] + ("A" if token[5] != "A" else "B") + token[6:]
    elif damage == "other_secret":
        assert demo_shop.id is not None
        token = signin_token(
            b"x" * 64, shop_id=demo_shop.id, staff_id=1, now=clock.now(), ttl=timedelta(minutes=10)
        )
    elif damage == "garbage":
        token = "not-a-token"
    else:
        from app.outreach.links import report_token

        assert demo_shop.id is not None
        token = report_token(
            link_secret(public_settings),
            shop_id=demo_shop.id,
            month=clock.now().date(),
            now=clock.now(),
            ttl=timedelta(hours=1),
        )
    with browser(app) as b:
        assert b.get(f"/login/{token}").status_code == 403
        response = b.post(f"/login/{token}", headers=ORIGIN)
        assert response.status_code == 403 and COOKIE_NAME not in response.cookies
    assert count(engine, WebSession) == 0


def test_a_signed_in_browser_cannot_reach_another_shop(
    app: FastAPI, owner_chat: ChatDriver, engine: Engine, clock: FixedClock
) -> None:
    other = make_shop(engine, clock, slug="shop-a", name="阿明水站")
    assert other.id is not None
    with browser(app) as b:
        sign_in(b, link_from(owner_chat))
        for ref in ("shop-a", str(other.id)):
            page = b.get(f"/chat/{ref}")
            assert page.status_code == 403 and "另一家店" in page.text
            assert "阿明水站" not in page.text
            assert b.get(f"/import/{ref}").status_code == 403
            response = say(b, "新客户 李四 13900001111", f"cross-{ref}", slug=ref)
            assert response.status_code == 403
            assert "另一家店" in response.json()["detail"]
        upload = b.post(
            "/import/shop-a",
            files={"file": ("a.csv", "客户,日期,数量\n李四,2026-06-01,2\n")},
            headers=ORIGIN,
        )
        assert upload.status_code == 403
        assert b.get("/chat/demo").status_code == 200
    assert count(engine, InboxMessage, col(InboxMessage.shop_id) == other.id) == 0
    assert count(engine, Order, col(Order.shop_id) == other.id) == 0


def test_a_link_naming_a_person_of_another_shop_signs_nobody_in(
    app: FastAPI, public_settings: Settings, engine: Engine, clock: FixedClock, demo_shop: Shop
) -> None:
    other = make_shop(engine, clock, slug="shop-a")
    with read_session(engine) as session:
        stranger = session.execute(
            select(Staff.id).where(col(Staff.shop_id) == other.id)  # type: ignore[call-overload]
        ).scalar_one()
    assert demo_shop.id is not None
    token = signin_token(
        link_secret(public_settings),
        shop_id=demo_shop.id,
        staff_id=stranger,
        now=clock.now(),
        ttl=timedelta(minutes=10),
    )
    with browser(app) as b:
        assert b.get(f"/login/{token}").status_code == 403
        response = b.post(f"/login/{token}", headers=ORIGIN)
        assert response.status_code == 403 and COOKIE_NAME not in response.cookies
    assert count(engine, WebSession) == 0


@pytest.fixture
def courier(engine: Engine, clock: FixedClock, demo_shop: Shop) -> Staff:
    with write_session(engine) as session:
        staff = Staff(shop_id=demo_shop.id, name="小刘", role="staff", created_at=clock.now())
        session.add(staff)
        session.flush()
        return staff


def test_a_staff_members_session_acts_as_that_person(
    app: FastAPI,
    public_settings: Settings,
    engine: Engine,
    clock: FixedClock,
    demo_shop: Shop,
    courier: Staff,
) -> None:
    assert demo_shop.id is not None and courier.id is not None
    # The morning digest goes to the owner; a numbered reply refers to the sender's own.
    build_digest_for(engine, demo_shop.id, public_settings, clock)
    owner_chat = ChatDriver(engine=engine, settings=public_settings, clock=clock, shop_ref="demo")
    token = signin_token(
        link_secret(public_settings),
        shop_id=demo_shop.id,
        staff_id=courier.id,
        now=clock.now(),
        ttl=timedelta(minutes=10),
    )
    with browser(app) as b:
        page = b.get(f"/login/{token}")
        assert "小刘" in page.text
        sign_in(b, f"/login/{token}")
        assert "网页版 · 小刘" in b.get("/chat/demo").text
        response = say(b, "1 已发", "courier-0001")
        assert response.status_code == 200
        assert "还没有发过跟进提醒" in response.json()["replies"][0]["text"]
        assert "还没有发过跟进提醒" not in owner_chat.say("1 已发")
        # Importing thousands of rows is the owner's or a manager's job.
        refused = b.get("/import/demo")
        assert refused.status_code == 403 and "店主或店长" in refused.text
    with read_session(engine) as session:
        row = session.execute(
            select(InboxMessage).where(col(InboxMessage.external_id).endswith(":courier-0001"))
        ).scalar_one()
    assert row.sender == f"web:{demo_shop.id}:{courier.id}" and row.channel == "web"


def test_signing_in_anew_and_signing_out_end_the_old_sessions(
    app: FastAPI, owner_chat: ChatDriver, engine: Engine
) -> None:
    with browser(app) as phone, browser(app) as computer:
        sign_in(phone, link_from(owner_chat))
        assert say(phone, "帮助", "phone-0001").status_code == 200
        sign_in(computer, link_from(owner_chat))
        ended = say(phone, "帮助", "phone-0002")
        assert ended.status_code == 401 and "已退出" in ended.json()["detail"]
        page = phone.get("/chat/demo")
        assert page.status_code == 401 and "登录网页版" in page.text
        assert say(computer, "帮助", "computer-0001").status_code == 200
        bye = say(computer, "退出网页版", "computer-0002")
        assert bye.status_code == 200
        assert "已退出网页版" in bye.json()["replies"][0]["text"]
        assert say(computer, "帮助", "computer-0003").status_code == 401
    assert count(engine, WebSession, col(WebSession.ended_at).is_(None)) == 0
    # 退出网页版 with nothing signed in says so.
    assert "没有登录着的网页版" in owner_chat.say("退出网页版")


def test_a_session_expires(app: FastAPI, owner_chat: ChatDriver, clock: FixedClock) -> None:
    with browser(app) as b:
        sign_in(b, link_from(owner_chat))
        clock.advance(days=29)
        assert say(b, "帮助", "late-0001").status_code == 200
        clock.advance(days=1, seconds=1)
        assert say(b, "帮助", "late-0002").status_code == 401


def test_sessions_are_shared_by_every_app_process(
    app: FastAPI,
    public_settings: Settings,
    owner_chat: ChatDriver,
    engine: Engine,
    clock: FixedClock,
) -> None:
    second = create_app(settings=public_settings, engine=engine, clock=clock)
    with browser(app) as b:
        sign_in(b, link_from(owner_chat))
        cookie = b.cookies[COOKIE_NAME]
    with browser(second) as same_browser:
        same_browser.cookies.set(COOKIE_NAME, cookie, domain=urlsplit(PUBLIC).hostname)
        assert say(same_browser, "帮助", "second-0001").status_code == 200


# --- CSRF ----------------------------------------------------------------------------------


@pytest.fixture
def signed_in(app: FastAPI, owner_chat: ChatDriver) -> Iterator[TestClient]:
    with browser(app) as b:
        sign_in(b, link_from(owner_chat))
        yield b


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": PUBLIC, "Sec-Fetch-Site": "cross-site"},
        {"Origin": PUBLIC, "Sec-Fetch-Site": "same-site"},
        {"Origin": "", "Referer": "https://evil.example/page"},
        {"Origin": ""},  # neither Origin nor Referer: a signed-in write must name its origin
    ],
    ids=["other-origin", "null-origin", "cross-site", "same-site", "other-referer", "none"],
)
def test_a_signed_in_write_from_another_site_is_refused(
    signed_in: TestClient, engine: Engine, demo_shop: Shop, headers: dict[str, str]
) -> None:
    before = count(engine, Order)
    sent = {k: v for k, v in headers.items() if v}
    response = signed_in.post(
        "/api/chat/demo",
        json={"text": "王姐 2桶", "client_msg_id": "csrf-0001"},
        headers=sent,
    )
    assert response.status_code == 403
    assert "不是从回头客自己的页面" in response.json()["detail"]
    assert count(engine, Order) == before
    assert count(engine, InboxMessage, col(InboxMessage.external_id).endswith(":csrf-0001")) == 0
    upload = signed_in.post(
        "/import/demo",
        files={"file": ("a.csv", "客户,日期,数量\n李四,2026-06-01,2\n")},
        headers=sent,
    )
    assert upload.status_code == 403


def test_a_signed_in_write_from_our_own_page_is_accepted(
    signed_in: TestClient, engine: Engine
) -> None:
    before = count(engine, Order)
    by_referer = signed_in.post(
        "/api/chat/demo",
        json={"text": "王姐 2桶", "client_msg_id": "csrf-0002"},
        headers={"Referer": f"{PUBLIC}/chat/demo", "Sec-Fetch-Site": "same-origin"},
    )
    assert by_referer.status_code == 200
    assert count(engine, Order) == before + 1


def test_a_sign_in_post_from_another_site_does_not_use_the_link(
    app: FastAPI, owner_chat: ChatDriver, engine: Engine
) -> None:
    path = link_from(owner_chat)
    with browser(app) as b:
        forged = b.post(path, headers={"Origin": "https://evil.example"})
        assert forged.status_code == 403 and COOKIE_NAME not in forged.cookies
        assert count(engine, WebSession) == 0
        sign_in(b, path)


def test_a_local_page_refuses_a_post_from_another_site(
    settings: Settings, engine: Engine, clock: FixedClock, demo_shop: Shop
) -> None:
    """Loopback without sign-in still refuses another site's form or fetch (and rebinding)."""
    app = create_app(settings=settings, engine=engine, clock=clock)
    with TestClient(app, base_url=LOCAL) as local:
        ok = local.post(
            "/api/chat/demo",
            json={"text": "帮助", "client_msg_id": "local-0001"},
            headers={"Origin": LOCAL},
        )
        assert ok.status_code == 200
        evil = local.post(
            "/api/chat/demo",
            json={"text": "王姐 2桶", "client_msg_id": "local-0002"},
            headers={"Origin": "https://evil.example"},
        )
        assert evil.status_code == 403
        upload = local.post(
            "/import/demo",
            headers={"Origin": "https://evil.example"},
            files={"file": ("a.csv", "客户,日期,数量\n李四,2026-06-01,2\n")},
        )
        assert upload.status_code == 403
    # A page whose host name was rebound to 127.0.0.1 still names its own host.
    with TestClient(app, base_url="http://evil.example:8000") as rebound:
        page = rebound.get("/chat/demo")
        assert page.status_code == 401 and "王姐" not in page.text
    assert count(engine, Order, col(Order.shop_id) == demo_shop.id) > 0


def test_the_start_up_log_names_the_mode(
    settings: Settings, engine: Engine, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="app")
    create_app(settings=settings, engine=engine, clock=clock)
    create_app(settings=settings.model_copy(update={"host": "0.0.0.0"}), engine=engine, clock=clock)
    create_app(
        settings=settings.model_copy(update={"webchat_enabled": False}), engine=engine, clock=clock
    )
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("owner pages")]
    assert len(lines) == 3
    assert "local, no sign-in" in lines[0]
    assert "sign-in required" in lines[1] and "0.0.0.0" in lines[1]
    assert "off" in lines[2]
