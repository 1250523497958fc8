"""The `huitou` command line: shops, demo, and the console channel."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, func
from sqlmodel import select
from typer.testing import CliRunner

from app.cli import cli
from app.config import get_settings
from app.customers.models import Customer, CustomerSummary
from app.customers.service import due_list
from app.db import make_engine, read_session, write_session
from app.shops.models import Shop
from app.shops.service import consume_binding_code, get_shop
from tests.conftest import TEST_TODAY, ChatDriver

runner = CliRunner()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, database_url: str) -> Iterator[str]:
    """Point the CLI's settings at this test's database, with today frozen."""
    monkeypatch.setenv("HUITOU_DATABASE_URL", database_url)
    monkeypatch.setenv("HUITOU_TODAY", TEST_TODAY.isoformat())
    get_settings.cache_clear()
    yield database_url
    get_settings.cache_clear()


def invoke(*args: str, input: str | None = None) -> str:
    result = runner.invoke(cli, list(args), input=input)
    assert result.exit_code == 0, result.output
    return result.output


def test_demo_loads_once_and_is_idempotent(cli_env: str) -> None:
    assert "已载入" in invoke("demo")
    assert "已存在" in invoke("demo")
    with read_session(make_engine(cli_env)) as s:
        shop = get_shop(session=s, ref="demo")
        count = s.exec(select(func.count()).select_from(Customer)).one()
    assert shop.industry == "water"
    assert 290 <= count <= 310


def test_console_chat_answers_one_message(cli_env: str) -> None:
    invoke("demo")
    out = invoke("chat", "今天该跟进谁", "--shop", "demo")
    assert "王姐 38天没订(平时25天)" in out
    assert invoke("chat", "王姐 2桶").startswith("已记:王姐 2桶 36元")
    assert invoke("chat", "王姐").startswith("📇 王姐")
    assert "今天该跟进谁" in invoke("chat", "帮助")


def test_console_chat_without_message_opens_a_prompt(cli_env: str) -> None:
    invoke("demo")
    out = invoke("chat", "--shop", "demo", input="今天该跟进谁\n王姐 2桶\n退出\n")
    assert "已进入对话" in out
    assert "王姐 38天没订" in out
    assert "已记:王姐 2桶" in out


def test_console_prompt_ends_cleanly_on_end_of_input(cli_env: str) -> None:
    invoke("demo")
    assert "已进入对话" in invoke("chat", input="帮助\n")


def test_console_chat_to_an_unknown_shop_fails_clearly(cli_env: str) -> None:
    result = runner.invoke(cli, ["chat", "帮助", "--shop", "nope"])
    assert result.exit_code == 1
    assert "没有这个店铺:nope" in result.output


def test_shop_create_prints_id_and_a_working_binding_code(cli_env: str) -> None:
    out = invoke("shop", "create", "阳光洗车", "--industry", "car", "--slug", "sunwash")
    assert "标识 sunwash" in out
    code = re.search(r"绑定码.*?(\d{6})", out)
    assert code is not None
    engine = make_engine(cli_env)
    with write_session(engine) as s:
        shop = get_shop(session=s, ref="sunwash")
        assert shop.industry == "car"
        assert shop.settings["unit"] == "次"
        from app.clock import clock_for

        clock = clock_for(TEST_TODAY, "Asia/Shanghai")
        assert consume_binding_code(session=s, shop=shop, code=code.group(1), clock=clock)


def test_shop_code_issues_a_fresh_code(cli_env: str) -> None:
    invoke("shop", "create", "二号店", "--slug", "second")
    out = invoke("shop", "code", "second")
    assert re.search(r"\d{6}", out)


def test_shop_create_refuses_an_unknown_industry(cli_env: str) -> None:
    result = runner.invoke(cli, ["shop", "create", "面包店", "--industry", "bakery"])
    assert result.exit_code == 1
    assert "行业只能是" in result.output


def test_shop_list_shows_every_shop(cli_env: str) -> None:
    assert "还没有店铺" in invoke("shop", "list")
    invoke("demo")
    invoke("shop", "create", "二号店", "--slug", "second")
    out = invoke("shop", "list")
    assert "demo" in out and "second" in out


def test_db_upgrade_is_idempotent(cli_env: str) -> None:
    assert "最新" in invoke("db", "upgrade")
    assert "最新" in invoke("db", "upgrade")


def _commands(command: object, path: tuple[str, ...] = ()) -> Iterator[tuple[str, object]]:
    yield " ".join(("huitou", *path)), command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def test_every_command_and_option_explains_itself_in_chinese() -> None:
    import typer.main

    english = re.compile(r"[A-Za-z]{2,}[\s,;]+[A-Za-z]{2,}")  # two English words in a row
    problems = []
    for where, command in _commands(typer.main.get_command(cli)):
        texts = [getattr(command, "help", None)]
        texts += [getattr(p, "help", None) for p in getattr(command, "params", [])]
        for text in texts:
            plain = re.sub(r"huitou [a-z]+", "", text or "")  # naming a command is fine
            if not re.search(r"[\u4e00-\u9fff]", plain) or english.search(plain):
                problems.append(f"{where}: {text!r}")
    assert not problems, "\n".join(problems)
    listing = invoke("--help")
    assert "载入演示送水站" in listing and "用店里自己的历史回放" in listing
    assert "Load the demo" not in listing and "Replay the shop" not in listing


# --- huitou backtest --shop: the suggested reminder multiple, applied on one confirmation ---

BACKTEST = ("backtest", "--shop", "demo", "--step", "28")


def _suggested(out: str) -> float:
    found = re.search(r"在聊天里发:设置 提醒倍数 (\d(?:\.\d)?)$", out, re.M)
    assert found, out
    return float(found.group(1))


def _lists(engine: Engine, shop: Shop) -> tuple[dict[str, Any], dict[int, object], int]:
    """The shop's own settings, each customer's yellow day, and today's follow-up count."""
    with read_session(engine) as s:
        own = get_shop(session=s, ref=shop.slug)
        yellow = dict(
            s.exec(
                select(CustomerSummary.customer_id, CustomerSummary.check_on).where(
                    CustomerSummary.shop_id == own.id
                )
            ).all()
        )
        due = len(due_list(session=s, shop=own, today=TEST_TODAY))
    return dict(own.settings), yellow, due


def test_backtest_shop_yes_applies_the_suggestion_and_rescores(
    cli_env: str, demo_shop: Shop, engine: Engine
) -> None:
    _, yellow_before, due_before = _lists(engine, demo_shop)
    out = invoke(*BACKTEST, input="y\n")
    ratio = _suggested(out)
    assert f"把「{demo_shop.name}」的提醒倍数从 1.5 改成 {ratio:g}?" in out
    own, yellow_after, due_after = _lists(engine, demo_shop)
    assert own["quiet_ratio"] == ratio
    # Rescored: the yellow days moved, and the reply counts the list as the chat does.
    assert yellow_after != yellow_before
    assert f"已改:提醒倍数 1.5 → {ratio:g} ✓" in out
    assert f"跟进名单现在{due_after}位(改之前{due_before}位)" in out


def test_backtest_shop_no_changes_nothing(cli_env: str, demo_shop: Shop, engine: Engine) -> None:
    before = _lists(engine, demo_shop)
    assert "quiet_ratio" not in before[0]
    out = invoke(*BACKTEST, input="n\n")
    assert f"改成 {_suggested(out):g}?" in out
    assert "没改,提醒倍数还是 1.5。" in out and "已改" not in out
    assert _lists(engine, demo_shop) == before


def test_backtest_shop_yes_flag_applies_without_asking(
    cli_env: str, demo_shop: Shop, engine: Engine
) -> None:
    out = invoke(*BACKTEST, "--yes")
    assert "[y/N]" not in out
    assert _lists(engine, demo_shop)[0]["quiet_ratio"] == _suggested(out)
    # Run again: the shop's own (new) multiple is what is replayed, and it now fits.
    assert f"现在的提醒倍数 {_suggested(out):g} 就合适" in invoke(*BACKTEST)


def test_backtest_shop_refuses_an_out_of_bounds_suggestion_as_the_chat_does(
    cli_env: str, demo_shop: Shop, engine: Engine, chat: ChatDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    import app.risk.backtest as backtest

    monkeypatch.setattr(backtest, "owner_choice", lambda report: (3.5, report.alerts[0]))
    before = _lists(engine, demo_shop)
    result = runner.invoke(cli, [*BACKTEST, "--yes"])
    assert result.exit_code == 1
    refusal = chat.say("设置 提醒倍数 3.5")
    assert refusal.startswith("没改:提醒倍数只能设1.2到3,您发的是3.5。")
    assert result.output.rstrip().endswith(refusal)
    assert _lists(engine, demo_shop) == before
