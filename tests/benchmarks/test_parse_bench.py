"""Smoke test of the parse + reply benchmark at one run per message (figures not judged)."""

from __future__ import annotations

import re

import pytest

from benchmarks import parse_bench


def test_parse_bench_runs_every_typical_message(capsys: pytest.CaptureFixture[str]) -> None:
    parse_bench.main(1)
    out = capsys.readouterr().out
    for message in parse_bench.TYPICAL:
        label = message if len(message) <= 12 else message[:11] + "…"
        assert re.search(rf"^{re.escape(label)}(?: +[\d.]+){{9}}$", out, re.M), (label, out)
    assert re.search(r"^handle, slowest message \(mean\): .+ [\d.]+ ms$", out, re.M)
    assert re.search(r"^harness around each handle\(\) .*: [\d.]+ / [\d.]+ / [\d.]+ ms$", out, re.M)
