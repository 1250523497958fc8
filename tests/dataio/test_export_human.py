"""The export is for people: Chinese labels, real dates up to today, every recorded outcome."""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from sqlalchemy import Engine

from app.channels.outbox import OutboxPusher
from app.clock import FixedClock, local_today
from app.config import Settings
from app.dataio.exports import WORKBOOK_NAME, export_shop
from app.db import read_session
from app.digest.service import run_digest
from app.shops.models import Shop
from tests.conftest import TEST_TODAY, ChatDriver

LOG = "客户流失预警与挽回记录表"


def _recorded_name(reply: str) -> str:
    found = re.match(r"已记:(\S+) ", reply)
    assert found, reply
    return found.group(1)


def _sheets(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    workbook = load_workbook(path / WORKBOOK_NAME)
    return {ws.title: list(ws.iter_rows(values_only=True)) for ws in workbook.worksheets}


def _log_row(log: list[tuple[Any, ...]], name: str) -> dict[str, Any]:
    header = log[0]
    rows = [dict(zip(header, row, strict=True)) for row in log[1:] if row[0] == name]
    assert len(rows) == 1, (name, rows)
    return rows[0]


def test_export_after_a_morning_of_follow_ups_reads_as_plain_chinese(
    engine: Engine,
    settings: Settings,
    clock: FixedClock,
    demo_shop: Shop,
    chat: ChatDriver,
    tmp_path: Path,
) -> None:
    assert demo_shop.id is not None
    sent = run_digest(
        engine=engine, shop_id=demo_shop.id, day=local_today(clock, demo_shop.timezone),
        settings=settings, clock=clock, pushers=[OutboxPusher(engine=engine, clock=clock)],
    )  # fmt: skip
    assert sent.status == "sent"
    called = _recorded_name(chat.say("1 打了 嫌贵"))
    silent = _recorded_name(chat.say("2 没回"))
    won_back = _recorded_name(chat.say("3 已发"))
    assert "已记" in chat.say(f"{won_back} 2桶")
    assert "已记:王姐 流失" in chat.say("王姐 流失 价格")
    with read_session(engine) as s:
        export_shop(session=s, shop=demo_shop, out_dir=tmp_path, today=TEST_TODAY)
    sheets = _sheets(tmp_path)

    cells = [c for rows in sheets.values() for row in rows for c in row]
    texts = [c for c in cells if isinstance(c, str)]
    assert not [t for t in texts if ".j2" in t or "{" in t or "followup" in t], "internal data"
    days = [c.date() if isinstance(c, datetime) else c for c in cells if isinstance(c, date)]
    assert days and max(days) <= TEST_TODAY, "no date after the export day"
    kinds = {row[5] for row in sheets["客户"][1:]}
    assert kinds == {"家庭", "单位"}

    log = sheets[LOG]
    row = _log_row(log, called)
    assert (row["跟进结果"], row["流失原因"], row["联系次数"]) == ("打过电话", "价格", 1)
    assert _log_row(log, silent)["跟进结果"] == "没回"
    wang = _log_row(log, "王姐")
    assert (wang["阶段"], wang["跟进结果"], wang["流失原因"]) == ("已流失", "已流失", "价格")
    back = _log_row(log, won_back)
    assert back["跟进结果"] == "已挽回"
    assert back["首次预警日期"] is not None  # the warning that was followed up, not a future day

    contacts = [r for r in sheets["跟进记录"][1:] if r[2] == called]
    assert [r[4] for r in contacts] == ["方式 打电话;原因 价格"]
    lost = [r for r in sheets["跟进记录"][1:] if r[2] == "王姐"]
    assert [r[4] for r in lost] == ["结果 已流失;原因 价格"]
