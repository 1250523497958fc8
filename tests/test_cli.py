"""The `huitou` command line: shops, demo, and the console channel."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from sqlalchemy import func
from sqlmodel import select
from typer.testing import CliRunner

from app.cli import cli
from app.config import get_settings
from app.customers.models import Customer
from app.db import make_engine, read_session, write_session
from app.shops.service import consume_binding_code, get_shop
from tests.conftest import TEST_TODAY

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
