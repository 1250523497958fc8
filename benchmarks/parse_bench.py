"""Where a message's time goes: parse and handle for typical owner messages. Not a timed test.

Loads the demo shop into a throwaway SQLite file, then for each message measures, N times:
- baseline: the bare normalize() call (the floor any message pays), and an echo handler:
  one DELETE and one template render with no bot logic (the floor any message through the
  database pays on this machine);
- parse: parse() alone (pure, no database);
- handle: the handle() call itself (parse, handler, every read and write, every render),
  on the demo shop, in a write transaction rolled back afterwards so every run sees the
  same data. The context (shop and staff read, as app/channels/inbox.handle builds it)
  is made inside a transaction already begun, as the inbox claim leaves it; that harness
  (session, BEGIN, the context read, rollback, close) is timed apart and printed on the
  last line, not in the figures.

    .venv/bin/python -m benchmarks.parse_bench [runs]

A diagnostic, with no target of its own: the per-message < 5 ms target was retired (issue
18) for what users see, the webhook reply p99 under load (benchmarks.webhook_latency and
benchmarks.load). Repeat runs: this 2-core VM's speed drifts by up to x1.7 within the hour.
"""

from __future__ import annotations

import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from sqlmodel import Session

from app.bot import pending
from app.bot.context import BotContext
from app.bot.core import handle, vocabulary
from app.bot.parse import normalize, parse
from app.clock import FixedClock, local_today
from app.config import PROJECT_ROOT
from app.db import WRITE_OPTION, make_engine, upgrade, with_option
from app.demo.load import load_demo
from app.shops.models import Shop, Staff
from app.shops.service import owner_of

TYPICAL = [
    "王姐 2桶",
    "王姐两桶",
    "王姐 送2桶 明天",
    "3号楼李会计 5桶 100元",
    "老张 3箱 45",
    "王姐2桶 老李1桶",
    "王姐:明天送两桶水哈",
    "昨天 王姐 2桶",
    "王丽 2桶",
    "尾号6385 2桶",
    "王姐 用水票 2桶",
    "王姐 买水票 20张 300元",
    "王姐 回复了",
    "王姐 流失 价格",
    "王姐 暂停 到月底",
    "王姐 满意度 6",
    "今天该跟进谁",
    "王姐",
    "本月统计",
    "asdf qwer",
]


def _stats(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.fmean(ordered) * 1000, statistics.median(ordered) * 1000, p99 * 1000


# CPU time of this thread for every timed call: free of other processes on a shared machine.
_CPU: list[float] = []
# Per handled message, the wall time of the harness around handle() (not in the figures).
_HARNESS: list[float] = []


def _time(fn: Callable[[], object], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.thread_time()
        fn()
        samples.append(time.perf_counter() - start)
        _CPU.append(time.thread_time() - start_cpu)
    return samples


def _time_inside(
    fn: Callable[[Callable[[Callable[[], object]], None]], None], runs: int
) -> list[float]:
    """Time only the call `fn` hands to its argument: `fn` sets up and tears down around it."""
    samples: list[float] = []

    def timing(call: Callable[[], object]) -> None:
        start, start_cpu = time.perf_counter(), time.thread_time()
        call()
        samples.append(time.perf_counter() - start)
        _CPU.append(time.thread_time() - start_cpu)

    for _ in range(runs):
        outer = time.perf_counter()
        fn(timing)
        _HARNESS.append(time.perf_counter() - outer - samples[-1])
    return samples


def main(runs: int = 50) -> None:
    clock = FixedClock.at_local(date(2026, 6, 17), hour=10)
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        upgrade(engine)
        shop, _ = load_demo(engine=engine, clock=clock)
        vocab = vocabulary(shop.industry, str(shop.settings.get("unit", "桶")))
        today = local_today(clock, shop.timezone)
        with Session(engine) as session:
            owner = owner_of(session=session, shop=shop)
        templates = PROJECT_ROOT / "message_templates"

        writing = with_option(engine, WRITE_OPTION)

        def begun(session: Session, message: str) -> BotContext:
            """The context for a message, in a write transaction the inbox claim has begun."""
            session.connection()
            here, person = session.get(Shop, shop.id), session.get(Staff, owner.id)
            assert here is not None and person is not None
            return BotContext(
                session=session, shop=here, staff=person, sender_key="bench",
                clock=clock, templates_dir=templates, question_waiting=False,
            )  # fmt: skip

        def run_handle(message: str, timing: Callable[[Callable[[], object]], None]) -> None:
            with Session(writing) as session:
                ctx = begun(session, message)
                timing(lambda: handle(ctx, message))
                session.rollback()

        def run_echo(timing: Callable[[Callable[[], object]], None]) -> None:
            with Session(writing) as session:
                ctx = begun(session, "王姐 2桶")
                ctx.question_waiting = None  # unknown: the DELETE runs

                def echo() -> None:
                    pending.clear(ctx)
                    ctx.render("undo_hint")

                timing(echo)
                session.rollback()

        for message in TYPICAL:  # warm caches (templates, pinyin, regexes) once
            run_handle(message, lambda call: call())
        # As the server does after start-up (app/main.py): the demo load and the caches are
        # long-lived; full GC passes over them would be timed as part of some message.
        gc.collect()
        gc.freeze()
        print(f"{runs} runs per message; times in ms (mean / p50 / p99)")
        echo = _time_inside(run_echo, runs * 5)
        print(
            "echo handler (one DELETE + one render): {:.3f} / {:.3f} / {:.3f}".format(*_stats(echo))
        )
        print(f"{'message':<26}{'normalize':>22}{'parse':>22}{'handle':>22}")
        all_parse: list[float] = []
        all_handle: list[float] = []
        all_base: list[float] = []
        all_handle_cpu: list[float] = []
        per_message: dict[str, float] = {}
        for message in TYPICAL:
            base = _time(lambda m=message: normalize(m), runs)
            parsed = _time(lambda m=message: parse(m, vocab=vocab, today=today), runs)
            _CPU.clear()
            handled = _time_inside(lambda timing, m=message: run_handle(m, timing), runs)
            all_handle_cpu += _CPU
            all_base += base
            all_parse += parsed
            all_handle += handled
            per_message[message] = _stats(handled)[0]
            cells = ["{:6.3f} {:6.3f} {:6.3f}".format(*_stats(s)) for s in (base, parsed, handled)]
            label = message if len(message) <= 12 else message[:11] + "…"
            print(f"{label:<26}" + "".join(f"{c:>22}" for c in cells))
        cells = [
            "{:6.3f} {:6.3f} {:6.3f}".format(*_stats(s)) for s in (all_base, all_parse, all_handle)
        ]
        print(f"{'ALL':<26}" + "".join(f"{c:>22}" for c in cells))
        parse_mean, handle_mean = _stats(all_parse)[0], _stats(all_handle)[0]
        print(f"parse alone, mean over all: {parse_mean:.3f} ms")
        print(
            f"handle, mean over all: {handle_mean:.3f} ms; "
            f"minus the echo floor: {handle_mean - _stats(echo)[0]:.3f} ms"
        )
        slowest = max(per_message, key=per_message.__getitem__)
        print(f"handle, slowest message (mean): {slowest} {per_message[slowest]:.3f} ms")
        cpu_mean, cpu_p50, _ = _stats(all_handle_cpu)
        print(f"handle, CPU time of this thread only: mean {cpu_mean:.3f} ms, p50 {cpu_p50:.3f} ms")
        harness = _stats(_HARNESS[-len(all_handle) :])
        print(
            "harness around each handle() (session, BEGIN, shop+staff read, rollback, close; "
            "not in the "
            "figures above): {:.3f} / {:.3f} / {:.3f} ms".format(*harness)
        )
        engine.dispose()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50)
