"""Smoke test of the import benchmark's pieces on a few hundred rows (in-process)."""

from __future__ import annotations

from pathlib import Path

from benchmarks import import_bench


def test_generated_export_is_an_importable_order_history(tmp_path: Path) -> None:
    rows = import_bench.generate_rows(500)
    assert len(rows) == 500
    assert [r[3] for r in rows] == sorted(r[3] for r in rows)  # in date order
    keys = {(r[0], r[3]) for r in rows}
    assert len(keys) == 500  # one order per customer and day: no duplicate rows
    csv_path, xlsx_path = import_bench.write_files(rows, tmp_path, "small")
    ours = import_bench.child_import(csv_path, trace=True)
    assert ours["orders"] == 500 and ours["customers"] == 20
    assert ours["tracemalloc_peak"] > 0
    assert import_bench.child_import(xlsx_path, trace=False)["orders"] == 500
    base = import_bench.child_baseline(csv_path)
    assert (base["orders"], base["customers"]) == (500, 20)
