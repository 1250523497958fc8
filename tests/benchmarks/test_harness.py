"""Smoke tests of the benchmark harness: metrics, labels, CDNOW loading, BG/NBD, CLI runs."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from benchmarks import risk_quality
from benchmarks.baselines import (
    bgnbd_predict,
    fit_bgnbd,
    huitou_available,
    recency,
    rfm,
    rule_1_5x,
    rule_1_5x_flag,
)
from benchmarks.datasets import (
    Orders,
    load_cdnow,
    load_cdnow_sample_ids,
    make_labels,
    simulated_water_stations,
    to_day,
    truncate,
)
from benchmarks.metrics import (
    average_ranks,
    brier,
    expected_calibration_error,
    precision_at,
    reliability_table,
    roc_auc,
)

# --- metrics ---------------------------------------------------------------------------------


def test_average_ranks_ties() -> None:
    assert average_ranks(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [3.5, 1.0, 3.5, 2.0]


def test_auc_perfect_inverted_tied() -> None:
    y = np.array([0, 0, 1, 1, 0, 1])
    perfect = y * 10.0 + np.arange(6) * 0.1
    assert roc_auc(y, perfect) == 1.0
    assert roc_auc(y, -perfect) == 0.0
    assert roc_auc(y, np.ones(6)) == 0.5  # all tied


def test_auc_hand_computed() -> None:
    # positives 0.8, 0.4; negatives 0.4, 0.1: pairs (0.8>0.4) 1, (0.8>0.1) 1,
    # (0.4=0.4) 0.5, (0.4>0.1) 1 -> 3.5 / 4.
    y = np.array([1, 1, 0, 0])
    s = np.array([0.8, 0.4, 0.4, 0.1])
    assert roc_auc(y, s) == pytest.approx(0.875)
    assert np.isnan(roc_auc(np.ones(3), np.array([1.0, 2.0, 3.0])))


def test_precision_at_top_10_percent() -> None:
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 0] * 2)  # 20 customers, k = 2
    s = np.arange(20, 0, -1).astype(float)  # customers 0 and 1 on top
    assert precision_at(y, s, 0.10) == 0.5
    s2 = s.copy()
    s2[2] = 100.0  # customer 2 (positive) and customer 0 (positive) on top
    assert precision_at(y, s2, 0.10) == 1.0


def test_precision_at_ties_use_expected_share() -> None:
    # 10 customers, k = 1, every score tied: expected precision = base rate.
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    assert precision_at(y, np.zeros(10), 0.10) == pytest.approx(0.3)


def test_brier_and_reliability() -> None:
    y = np.array([1, 0, 1, 0])
    p = np.array([0.9, 0.1, 0.6, 0.6])
    assert brier(y, p) == pytest.approx((0.01 + 0.01 + 0.16 + 0.36) / 4)
    bins = reliability_table(y, p)
    assert len(bins) == 10
    # Bins are [low, high): 0.1 lies in the second bin.
    assert bins[0].count == 0 and np.isnan(bins[0].mean_predicted)
    assert bins[1].count == 1 and bins[1].observed_rate == 0.0
    assert bins[6].count == 2 and bins[6].mean_predicted == pytest.approx(0.6)
    assert bins[6].observed_rate == pytest.approx(0.5)
    assert bins[9].count == 1  # 0.9 falls in the last bin
    # p = 1.0 belongs to the last bin, not an 11th one.
    assert reliability_table(np.array([1]), np.array([1.0]))[9].count == 1
    # ECE: (1/4)|0.1-0| + (2/4)|0.6-0.5| + (1/4)|0.9-1| = 0.025 + 0.05 + 0.025
    assert expected_calibration_error(y, p) == pytest.approx(0.1)


# --- labels ------------------------------------------------------------------------------------


def _orders(rows: list[tuple[int, date]]) -> Orders:
    cust = np.array([r[0] for r in rows])
    day = np.array([to_day(r[1]) for r in rows])
    n = len(rows)
    return Orders(cust, day, np.ones(n), np.full(n, 18.0), int(cust.max()) + 1)


def test_labels_eligibility_and_window_bounds() -> None:
    c = date(2025, 3, 31)
    d = timedelta
    orders = _orders(
        [
            # 0: two purchase days before C, buys on C + 90 (window end, inclusive) -> 0
            (0, c - d(40)),
            (0, c - d(10)),
            (0, c + d(90)),
            # 1: two days before C, next on C + 91 (outside) -> 1
            (1, c - d(40)),
            (1, c - d(10)),
            (1, c + d(91)),
            # 2: two orders but on the same day -> not eligible
            (2, c - d(5)),
            (2, c - d(5)),
            (2, c + d(3)),
            # 3: second day is the cutoff itself (counts as history, not as the window)
            (3, c - d(30)),
            (3, c),
            # 4: buys the day after C -> 0
            (4, c - d(60)),
            (4, c - d(30)),
            (4, c + d(1)),
            # 5: only future orders -> not eligible
            (5, c + d(10)),
            (5, c + d(20)),
        ]
    )
    eligible, label = make_labels(orders, c)
    assert eligible.tolist() == [True, True, False, True, True, False]
    assert label[eligible].tolist() == [False, True, True, False]
    seen = truncate(orders, c)
    assert seen.day.max() == to_day(c)
    assert seen.n_customers == orders.n_customers


def test_rule_and_recency() -> None:
    c = date(2025, 3, 31)
    orders = _orders(
        [
            (0, c - timedelta(60)),
            (0, c - timedelta(40)),
            (0, c - timedelta(20)),
            (1, c - timedelta(100)),
            (1, c - timedelta(90)),
        ]
    )
    assert recency(orders, c).tolist() == [20.0, 90.0]
    assert rule_1_5x(orders, c).tolist() == [1.0, 9.0]  # 20/20, 90/10
    assert rule_1_5x_flag(orders, c).tolist() == [False, True]


# --- CDNOW and BG/NBD --------------------------------------------------------------------------


def test_cdnow_loads_and_reproduces_published_bgnbd_fit() -> None:
    orders = load_cdnow()
    assert orders.n_customers == 23_570
    assert len(orders) == 69_659
    assert orders.day.min() == to_day(date(1997, 1, 1))
    assert orders.day.max() == to_day(date(1998, 6, 30))
    # The 2,357-customer sample, calibration period to 1997-09-30 (39 weeks).
    ids = load_cdnow_sample_ids()
    assert len(ids) == 2_357
    pos = np.searchsorted(orders.customer_ids, ids)
    keep = np.zeros(orders.n_customers, dtype=bool)
    keep[pos] = True
    summary = rfm(orders.customers_subset(keep), date(1997, 9, 30))
    # Same figures as lifetimes' cdnow_customers_summary.csv (in sample-id order).
    from lifetimes.datasets import load_cdnow_summary

    ref = load_cdnow_summary()
    rank = np.argsort(np.argsort(ids))
    assert (summary.frequency[rank] == ref["frequency"].to_numpy()).all()
    assert np.abs(summary.recency_days[rank] / 7 - ref["recency"].to_numpy()).max() < 0.006
    assert np.abs(summary.age_days[rank] / 7 - ref["T"].to_numpy()).max() < 0.006
    p = fit_bgnbd(summary)
    assert p.r == pytest.approx(0.243, abs=0.001)
    assert p.alpha == pytest.approx(4.414, abs=0.005)
    assert p.a == pytest.approx(0.793, abs=0.001)
    assert p.b == pytest.approx(2.426, abs=0.005)
    # Our P(alive) matches lifetimes' own.
    from lifetimes import BetaGeoFitter

    bgf = BetaGeoFitter()
    bgf.params_ = {"r": p.r, "alpha": p.alpha, "a": p.a, "b": p.b}
    import pandas as pd

    bgf.params_ = pd.Series(bgf.params_)
    ours, _ = bgnbd_predict(p, summary)
    theirs = bgf.conditional_probability_alive(
        summary.frequency, summary.recency_days / 7, summary.age_days / 7
    )
    assert np.abs(ours - theirs).max() < 1e-9


def test_rfm_matches_lifetimes_summary() -> None:
    import pandas as pd
    from lifetimes.utils import summary_data_from_transaction_data

    orders = load_cdnow()
    keep = np.zeros(orders.n_customers, dtype=bool)
    keep[:500] = True
    sub = orders.customers_subset(keep)
    end = date(1997, 12, 31)
    df = pd.DataFrame({"id": sub.customer, "date": pd.to_datetime(sub.day.astype("datetime64[D]"))})
    ref = summary_data_from_transaction_data(
        df[df["date"] <= pd.Timestamp(end)], "id", "date", observation_period_end=end, freq="D"
    )
    ours = rfm(sub, end)
    idx = ref.index.to_numpy()
    assert (ours.frequency[idx] == ref["frequency"].to_numpy()).all()
    assert (ours.recency_days[idx] == ref["recency"].to_numpy()).all()
    assert (ours.age_days[idx] == ref["T"].to_numpy()).all()


def test_p_no_purchase_is_at_least_p_dead() -> None:
    orders = load_cdnow()
    s = rfm(truncate(orders, date(1997, 9, 30)), date(1997, 9, 30))
    p = fit_bgnbd(s)
    p_alive, p_none = bgnbd_predict(p, s)
    has = s.n_days > 0
    assert (p_none[has] >= 1 - p_alive[has] - 1e-12).all()
    assert ((p_none >= 0) & (p_none <= 1)).all()


# --- simulated shops and the CLI ---------------------------------------------------------------


def test_simulated_shops_are_concatenated_with_unique_customers() -> None:
    shops = simulated_water_stations(n_shops=2, customers_per_shop=40, seed=1, months=14)
    assert shops.orders.n_customers == 80
    assert shops.shop.tolist() == [0] * 40 + [1] * 40
    sub, idx = shops.shop_orders(1)
    assert sub.n_customers == 40 and idx.tolist() == list(range(40, 80))
    c = shops.cutoffs(0, 3)
    assert c[0] == shops.as_of[0] - timedelta(days=90)
    assert c[2] == shops.as_of[0] - timedelta(days=210)


def test_risk_quality_quick_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert risk_quality.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "CDNOW" in out and "Simulated water stations" in out
    assert "bgnbd_p_no_purchase_90" in out
    assert out.count("VERDICT") >= 2
    if huitou_available():
        assert "huitou " in out


def test_speed_data_generator_and_timeout() -> None:
    from benchmarks import risk_speed

    data = risk_speed.generate_orders(2_000, 15.0, seed=3)
    n = len(data["customer"])
    assert 13 * 2_000 < n < 17 * 2_000
    assert (np.diff(data["day"]) >= 0).all()  # an export in date order
    assert data["day"].max() <= to_day(risk_speed.AS_OF)
    assert set(np.unique(data["customer"]).tolist()) == set(range(2_000))
    run = risk_speed.run_measured("test_sleep", ["sleep", "5"], timeout=0.3)
    assert run.timed_out and run.wall < 3
    done = risk_speed.run_measured("test_true", ["true"], timeout=10)
    assert done.ok and done.max_rss_bytes > 0
