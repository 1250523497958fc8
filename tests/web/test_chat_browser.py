"""The local web chat driven in a real headless Chromium at phone size, against the real app."""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Dialog, Page, Request, Response, Route, expect

pytestmark = pytest.mark.browser

API_PATH = "/api/chat/demo"
API_GLOB = "**/api/chat/demo"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PHONE = {"width": 375, "height": 812}  # the viewport of the `phone_context` fixture


@dataclass
class ChatPage:
    """The chat page under test, with what it did that a test may want to check."""

    page: Page
    base_url: str
    dialogs: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    api_posts: list[dict] = field(default_factory=list)


@pytest.fixture
def chat_page(phone_context, live_server) -> Iterator[ChatPage]:
    """The demo shop's chat page, open at 375x812; fails if the page threw a JS error."""
    page = phone_context.new_page()
    chat = ChatPage(page=page, base_url=live_server)

    def on_dialog(dialog: Dialog) -> None:
        chat.dialogs.append(dialog.message)
        dialog.dismiss()

    def on_request(request: Request) -> None:
        if request.method == "POST" and "/api/chat/" in request.url:
            chat.api_posts.append(json.loads(request.post_data or "{}"))

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda err: chat.page_errors.append(str(err)))
    page.on("request", on_request)
    page.goto(f"{live_server}/chat/demo")
    yield chat
    assert chat.page_errors == [], f"JavaScript errors on the chat page: {chat.page_errors}"


def _is_chat_post(response: Response) -> bool:
    return response.request.method == "POST" and response.url.endswith(API_PATH)


def _trigger(page: Page, text: str, via: str) -> None:
    chat_input = page.get_by_test_id("chat-input")
    if via == "enter":
        chat_input.fill(text)
        chat_input.press("Enter")
    elif via == "button":
        chat_input.fill(text)
        page.get_by_test_id("send-button").click()
    elif via == "chip":
        chip = page.get_by_test_id("suggestion").filter(
            has_text=re.compile(rf"^\s*{re.escape(text)}\s*$")
        )
        expect(chip).to_have_count(1)
        chip.click()
    else:  # pragma: no cover - a typo in a test
        raise ValueError(via)


def send(chat: ChatPage, text: str, *, via: str = "enter") -> list[str]:
    """Send `text`, wait for the answer, check every reply became one bubble; return them."""
    page = chat.page
    bots = page.get_by_test_id("msg-bot")
    owners = page.get_by_test_id("msg-owner")
    bots_before, owners_before = bots.count(), owners.count()
    with page.expect_response(_is_chat_post) as answered:
        _trigger(page, text, via)
    response = answered.value
    assert response.status == 200, f"{text!r} -> HTTP {response.status}: {response.text()}"
    replies = [reply["text"] for reply in response.json()["replies"]]
    assert replies, f"the bot gave no reply to {text!r}"
    expect(owners).to_have_count(owners_before + 1)
    expect(owners.last).to_have_text(text.strip(), use_inner_text=False)
    expect(bots).to_have_count(bots_before + len(replies))
    expect(page.get_by_test_id("typing")).to_have_count(0)
    shown = bots.all_text_contents()[bots_before:]
    assert shown == replies, "each assistant bubble's text must be exactly one reply, in order"
    return shown


def test_four_commands_typed_with_enter_show_the_bots_replies(chat_page: ChatPage) -> None:
    page = chat_page.page
    expect(page).to_have_title(re.compile("回头客助手"))
    expect(page.get_by_text(re.compile(r"回头客助手 · \S"))).to_be_visible()

    follow_up = "\n".join(send(chat_page, "今天该跟进谁"))
    assert "王姐" in follow_up and "38天" in follow_up

    recorded = "\n".join(send(chat_page, "王姐 2桶"))
    assert "已记" in recorded and "王姐" in recorded and "2桶" in recorded

    card = "\n".join(send(chat_page, "王姐"))
    assert "王姐" in card

    help_text = "\n".join(send(chat_page, "帮助"))
    assert "今天该跟进谁" in help_text

    # Multi-line replies keep their line breaks on screen, not only in the DOM.
    bots = page.get_by_test_id("msg-bot")
    for i in range(bots.count()):
        bubble = bots.nth(i)
        assert bubble.evaluate("el => getComputedStyle(el).whiteSpace") == "pre-wrap"
        if "\n" in (bubble.text_content() or "").strip():
            assert "\n" in bubble.inner_text()
    # The owner's input is cleared after each send.
    expect(page.get_by_test_id("chat-input")).to_have_value("")
    assert len({post["client_msg_id"] for post in chat_page.api_posts}) == 4


def test_send_button_sends_the_typed_message(chat_page: ChatPage) -> None:
    help_text = "\n".join(send(chat_page, "帮助", via="button"))
    assert "今天该跟进谁" in help_text


def test_tapping_a_suggestion_chip_sends_it(chat_page: ChatPage) -> None:
    page = chat_page.page
    chips = page.get_by_test_id("suggestion")
    expect(chips.first).to_be_visible()
    assert {"今天该跟进谁", "帮助"} <= {c.strip() for c in chips.all_text_contents()}

    help_text = "\n".join(send(chat_page, "帮助", via="chip"))
    assert "今天该跟进谁" in help_text
    follow_up = "\n".join(send(chat_page, "今天该跟进谁", via="chip"))
    assert "王姐" in follow_up and "38天" in follow_up
    assert [p["text"] for p in chat_page.api_posts] == ["帮助", "今天该跟进谁"]


def test_script_tag_in_a_message_is_shown_literally(chat_page: ChatPage) -> None:
    page = chat_page.page
    payload = "<script>alert(1)</script>"
    send(chat_page, payload)

    owner = page.get_by_test_id("msg-owner").last
    assert owner.text_content() == payload
    assert owner.evaluate("el => el.children.length") == 0, "message text must not become markup"
    assert page.locator("#chat-messages script").count() == 0
    for i in range(page.get_by_test_id("msg-bot").count()):
        assert page.get_by_test_id("msg-bot").nth(i).evaluate("el => el.children.length") == 0
    page.wait_for_timeout(300)
    assert chat_page.dialogs == [], f"a dialog fired: {chat_page.dialogs}"

    # Still literal after the conversation is restored from sessionStorage.
    page.reload()
    expect(page.get_by_test_id("msg-owner").last).to_have_text(payload)
    page.wait_for_timeout(300)
    assert chat_page.dialogs == []


def test_conversation_is_still_there_after_a_reload(chat_page: ChatPage) -> None:
    page = chat_page.page
    send(chat_page, "今天该跟进谁")
    send(chat_page, "王姐 2桶")
    owners_before = page.get_by_test_id("msg-owner").all_text_contents()
    bots_before = page.get_by_test_id("msg-bot").all_text_contents()

    page.reload()
    expect(page.get_by_test_id("msg-bot")).to_have_count(len(bots_before))
    assert page.get_by_test_id("msg-owner").all_text_contents() == owners_before
    assert page.get_by_test_id("msg-bot").all_text_contents() == bots_before
    page.wait_for_timeout(500)
    assert len(chat_page.api_posts) == 2, "a reload must not send answered messages again"

    # And the conversation goes on below the restored part.
    send(chat_page, "帮助")


def test_message_in_flight_during_a_reload_is_resent_with_its_own_id(chat_page: ChatPage) -> None:
    page = chat_page.page
    held: list[Route] = []

    def hold_first(route: Route) -> None:
        if not held:
            held.append(route)  # never answered: the page goes away while it waits
        else:
            route.continue_()

    page.route(API_GLOB, hold_first)
    page.get_by_test_id("chat-input").fill("帮助")
    page.get_by_test_id("chat-input").press("Enter")
    expect(page.get_by_test_id("typing")).to_have_count(1)
    expect(page.get_by_test_id("msg-owner")).to_have_count(1)

    with page.expect_response(_is_chat_post):
        page.reload()
    expect(page.get_by_test_id("msg-bot").first).to_contain_text("今天该跟进谁")
    expect(page.get_by_test_id("msg-owner")).to_have_count(1)
    ids = {post["client_msg_id"] for post in chat_page.api_posts}
    assert len(chat_page.api_posts) == 2 and len(ids) == 1


def test_server_errors_are_retried_with_the_same_client_msg_id(chat_page: ChatPage) -> None:
    page = chat_page.page
    seen: list[dict] = []

    def flaky(route: Route) -> None:
        seen.append(json.loads(route.request.post_data or "{}"))
        if len(seen) <= 2:
            route.fulfill(status=503, json={"detail": "busy"})
        else:
            route.continue_()

    page.route(API_GLOB, flaky)
    page.get_by_test_id("chat-input").fill("帮助")
    page.get_by_test_id("chat-input").press("Enter")
    expect(page.get_by_test_id("msg-bot").first).to_contain_text("今天该跟进谁")
    expect(page.get_by_test_id("typing")).to_have_count(0)
    assert len(seen) == 3
    assert len({s["client_msg_id"] for s in seen}) == 1
    assert {s["text"] for s in seen} == {"帮助"}
    expect(page.get_by_test_id("msg-owner")).to_have_count(1)
    expect(page.get_by_test_id("send-failed")).to_have_count(0)


def test_failed_send_shows_a_retry_marker_that_resends_the_same_id(chat_page: ChatPage) -> None:
    page = chat_page.page
    page.route(API_GLOB, lambda route: route.abort("connectionrefused"))
    page.get_by_test_id("chat-input").fill("帮助")
    page.get_by_test_id("send-button").click()

    marker = page.get_by_test_id("send-failed")
    expect(marker).to_be_visible(timeout=20_000)
    expect(marker).to_have_text("发送失败,点此重试")
    assert len(chat_page.api_posts) == 4, "one try and three retries before giving up"
    expect(page.get_by_test_id("msg-bot")).to_have_count(0)
    expect(page.get_by_test_id("typing")).to_have_count(0)

    page.unroute(API_GLOB)
    marker.click()
    expect(page.get_by_test_id("msg-bot").first).to_contain_text("今天该跟进谁")
    expect(marker).to_have_count(0)
    expect(page.get_by_test_id("msg-owner")).to_have_count(1)
    assert len(chat_page.api_posts) == 5
    assert len({post["client_msg_id"] for post in chat_page.api_posts}) == 1


def test_a_4xx_detail_is_shown_as_a_system_notice(chat_page: ChatPage) -> None:
    page = chat_page.page
    page.route(
        API_GLOB, lambda route: route.fulfill(status=400, json={"detail": "消息太长了<b>!</b>"})
    )
    page.get_by_test_id("chat-input").fill("王姐 2桶")
    page.get_by_test_id("chat-input").press("Enter")
    notice = page.get_by_test_id("system-notice")
    expect(notice).to_have_text("消息太长了<b>!</b>")
    expect(page.get_by_test_id("msg-bot")).to_have_count(0)
    expect(page.get_by_test_id("send-failed")).to_have_count(0)
    assert len(chat_page.api_posts) == 1, "a 4xx is not retried"


def test_blank_input_is_not_sent(chat_page: ChatPage) -> None:
    page = chat_page.page
    chat_input = page.get_by_test_id("chat-input")
    chat_input.fill("   \n  ")
    chat_input.press("Enter")
    page.get_by_test_id("send-button").click()
    page.wait_for_timeout(300)
    expect(page.get_by_test_id("msg-owner")).to_have_count(0)
    assert chat_page.api_posts == []


def test_screenshot_at_phone_size_is_a_png(chat_page: ChatPage, tmp_path: Path) -> None:
    page = chat_page.page
    send(chat_page, "今天该跟进谁")
    send(chat_page, "王姐")

    # Fits a 375px phone: nothing sticks out sideways, the input bar is on screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    for testid in ("chat-input", "send-button"):
        box = page.get_by_test_id(testid).bounding_box()
        assert box is not None and box["y"] + box["height"] <= PHONE["height"]
    # WeChat colours: green owner bubbles, white assistant bubbles on grey.
    owner_bg = page.get_by_test_id("msg-owner").first.evaluate(
        "el => getComputedStyle(el).backgroundColor"
    )
    bot_bg = page.get_by_test_id("msg-bot").first.evaluate(
        "el => getComputedStyle(el).backgroundColor"
    )
    assert owner_bg == "rgb(149, 236, 105)"
    assert bot_bg == "rgb(255, 255, 255)"

    shot = tmp_path / "chat-375.png"
    page.screenshot(path=str(shot))
    data = shot.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 5_000
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (PHONE["width"] * 2, PHONE["height"] * 2)


def test_desktop_shows_a_centred_column(chromium_browser, live_server: str) -> None:
    context = chromium_browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        page.goto(f"{live_server}/chat/demo")
        box = page.locator("#chat-app").bounding_box()
        assert box is not None
        assert box["width"] <= 480
        assert abs((box["x"] + box["width"] / 2) - 640) <= 2
        expect(page.get_by_test_id("chat-input")).to_be_visible()
    finally:
        context.close()
