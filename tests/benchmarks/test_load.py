"""Smoke test of the load script at a tiny size: it runs, verifies every reply, prints the
table, and the orders it got acknowledged are the orders stored (figures not judged)."""

from __future__ import annotations

import re

import pytest

from benchmarks import load


@pytest.mark.slow
def test_load_script_runs_small_and_every_acknowledged_order_is_stored_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert load.main(["--owners", "4", "--duration", "5", "--max-requests", "40"]) == 0
    out = capsys.readouterr().out
    row = re.search(r"^  sqlite +1 +(\d+) +(\d+) +[\d.]+ +[\d.]+ +[\d.]+ +(\d+)/(\d+)$", out, re.M)
    assert row is not None, out
    requests, errors, acked, stored = map(int, row.groups())
    assert requests == 40 and errors == 0
    assert acked == stored > 0
    assert "every acknowledged order stored exactly once" in out
