"""网页版 in a real headless Chromium at phone size: the server bound to every address (so
nothing is local), the owner signs in through the link 登录网页版 sends, chats, signs out."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.conftest import ChatDriver

pytestmark = pytest.mark.browser


def test_the_owner_signs_in_through_the_link_on_a_phone_and_chats(
    serve, phone_context, engine, clock
) -> None:
    served = serve("0.0.0.0")
    page = phone_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))

    # Without a session the chat is not there: the page says how to sign in.
    page.goto(f"{served.base_url}/chat/demo")
    expect(page.get_by_test_id("signin-needed")).to_contain_text("登录网页版")
    expect(page.get_by_test_id("chat-input")).to_have_count(0)

    owner = ChatDriver(engine=engine, settings=served.settings, clock=clock, shop_ref="demo")
    link = re.search(r"http://127\.0\.0\.1:\d+/login/\S+", owner.say("登录网页版"))
    assert link
    page.goto(link.group(0))
    expect(page.get_by_test_id("signin-who")).to_contain_text("店主")
    page.get_by_test_id("signin-button").click()
    page.wait_for_url(re.compile(r"/chat/demo$"))
    expect(page.get_by_test_id("chat-person")).to_have_text("网页版 · 店主")
    cookies = {c["name"]: c for c in phone_context.cookies()}
    assert cookies["huitou_session"]["httpOnly"] is True
    assert cookies["huitou_session"]["sameSite"] == "Lax"
    assert page.evaluate("document.cookie") == "", "the session cookie is out of scripts' reach"

    chat_input = page.get_by_test_id("chat-input")
    bots = page.get_by_test_id("msg-bot")
    with page.expect_response(lambda r: r.url.endswith("/api/chat/demo")) as answered:
        chat_input.fill("王姐 2桶")
        chat_input.press("Enter")
    assert answered.value.status == 200
    expect(bots.last).to_contain_text("王姐")
    expect(bots.last).to_contain_text("2桶")

    # The page fits the phone: no sideways scrolling.
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, width

    # The same link cannot sign in a second browser.
    again = phone_context.new_page()
    again.goto(link.group(0))
    expect(again.get_by_text(re.compile("已经用过"))).to_be_visible()
    again.close()

    # 退出网页版 from the page itself: the next message is refused with how to sign in again.
    with page.expect_response(lambda r: r.url.endswith("/api/chat/demo")):
        chat_input.fill("退出网页版")
        chat_input.press("Enter")
    expect(bots.last).to_contain_text("已退出网页版")
    with page.expect_response(lambda r: r.url.endswith("/api/chat/demo")) as refused:
        chat_input.fill("今天该跟进谁")
        chat_input.press("Enter")
    assert refused.value.status == 401
    expect(page.locator(".chat-notice.is-error").last).to_contain_text("登录网页版")
    assert errors == []
