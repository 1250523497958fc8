"""A water station starts with its spreadsheet; some regulars had already stopped coming.

Nobody marks anyone lost: the churn rate must show them anyway (issue 17, churn that needs
no marking), the reasons ask to be filled, and a reason typed later fills its loss.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

from tests.scenarios.harness import ShopLife

# Six regulars every 10 days since January; three stopped in mid-April, three go on.
STOPPED = ("刘姐", "马叔", "钱阿姨")
GOING_ON = ("孙哥", "周姐", "吴老师")


def orders_csv(path: Path) -> Path:
    lines = ["客户,日期,数量,金额"]
    for n, name in enumerate(STOPPED + GOING_ON):
        last = date(2026, 4, 12 + n) if name in STOPPED else date(2026, 6, 14)
        day = date(2026, 1, 3 + n)
        while day <= last:
            lines.append(f"{name},{day.isoformat()},2,36")
            day += timedelta(days=10)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_an_imported_shop_whose_regulars_stopped_shows_churn_without_marking(
    new_shop: Callable[..., ShopLife], tmp_path: Path
) -> None:
    life = new_shop("imported")
    life.on("6/17", 10).upload(orders_csv(tmp_path / "orders.csv")).shows("导入")
    # 61 days after their last order (the least the engine waits), mid-June: lost in June.
    month = life.says("本月统计")
    month.shows("流失 3 位", "· 原因未记 3位(100%)", "其中 3 位还没记原因")
    month.shows("月流失率 50.0%(本月流失 3 位 ÷ 月初老客户 6 位)")
    # The owner knows why one of them left: the reason fills that loss, not a new one.
    life.on("6/17", 11).says("刘姐 流失 价格").shows("刘姐")
    life.says("本月统计").shows("流失 3 位", "· 原因未记 2位", "· 价格 1位")
    # May: nobody was lost yet.
    life.says("上月统计").shows("流失 0 位", "月流失率 0.0%")
