"""Smoke test of the report benchmark at a tiny size (the figures themselves are not judged)."""

from __future__ import annotations

import re

import pytest

from benchmarks import report_bench


def test_report_bench_runs_small(capsys: pytest.CaptureFixture[str]) -> None:
    assert report_bench.main(["--customers", "60", "--runs", "1"]) == 0
    out = capsys.readouterr().out
    assert "60 customers" in out
    for name in (
        "baseline A: month_summary",
        "baseline B: naive per-customer report",
        "build_report (all figures + weekly list)",
        "build_report + report_png",
        "dashboard: 5 chart_png",
    ):
        assert re.search(rf"{re.escape(name)}.*p50 +[\d.]+ ms +max +[\d.]+ ms +\(n=1\)", out), out
    # The set-based report and the per-customer loop count the same figures.
    assert "naive per-customer figures agree with build_report: yes" in out
    assert re.search(r"ratio build_report/baseline A: x[\d.]+; baseline B/build_report: x", out)
    assert re.search(r"^(PASS|MISS): monthly report for 60 customers .*target < 1 s", out, re.M)
