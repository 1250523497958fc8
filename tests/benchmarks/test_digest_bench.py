"""Smoke test of the digest benchmark at a tiny size (the figures themselves are not judged)."""

from __future__ import annotations

import re

import pytest

from benchmarks import digest_bench


def test_digest_bench_runs_small(capsys: pytest.CaptureFixture[str]) -> None:
    assert digest_bench.main(["--customers", "80", "--runs", "2", "--staff", "1"]) == 0
    out = capsys.readouterr().out
    assert "80 customers" in out
    for name in ("baseline A: due_customers", "baseline B: read all summaries",
                 "build_digest(persist=False)", "build_digest(persist=True)"):  # fmt: skip
        assert re.search(rf"{re.escape(name)}.*p50 +[\d.]+ ms +max +[\d.]+ ms +\(n=2\)", out), out
    items = re.search(r"items on today's list: (\d+)", out)
    assert items is not None and int(items.group(1)) > 0
    assert re.search(r"^(PASS|MISS): digest build for 80 customers .*target < 1 s", out, re.M)
