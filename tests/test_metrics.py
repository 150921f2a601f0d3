"""Tests of mig_gym.metrics: the latency sketch, the Recorder's time integration and windows, and
the Summary it produces. The Recorder is driven by hand, with times chosen so that every expected
number can be worked out on paper."""

from __future__ import annotations

import dataclasses
import json
import math
import re

import numpy as np
import pytest

from mig_gym.metrics import (
    SKETCH_RELATIVE_ERROR,
    LatencyHistogram,
    Recorder,
    Summary,
    Unfinished,
    strict_json,
)

from .conftest import REPO

SIZES = (1, 2, 3, 4, 7)
QUANTILES = [0.0, 0.001, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0]


def recorder(window_s: float = 1e9, warmup: int = 0, models: tuple[str, ...] = ("m",)) -> Recorder:
    return Recorder(SIZES, window_s, warmup, models)


def summarise(
    rec: Recorder,
    now: float,
    queued: int = 0,
    running: int = 0,
    last_arrival_s: float = 1.0,
    unfinished: Unfinished | None = None,
) -> Summary:
    return Summary.from_run(
        rec,
        unfinished=unfinished,
        scenario="s",
        policy="p",
        seed=0,
        now=now,
        queued=queued,
        running=running,
        last_arrival_s=last_arrival_s,
    )


# --------------------------------------------------------------------------- LatencyHistogram
SAMPLES = {
    "lognormal_ms": lambda rng, n: rng.lognormal(np.log(0.02), 1.0, n),
    "uniform_wide": lambda rng, n: rng.uniform(1e-5, 10.0, n),
    "exponential": lambda rng, n: 1e-5 + rng.exponential(0.05, n),  # above the 1 us floor
    "pareto_tail": lambda rng, n: 1e-3 * (1 + rng.pareto(1.2, n)),
    "few_distinct": lambda rng, n: rng.choice([0.001, 0.0125, 0.3], n),
}


@pytest.mark.parametrize("n", [1, 7, 1000, 200_000])
@pytest.mark.parametrize("dist", SAMPLES.keys())
def test_histogram_quantile_within_stated_error_of_exact_order_statistic(dist, n):
    # The sketch reports the ceil(q n)-th smallest value (numpy's "inverted_cdf") to within
    # SKETCH_RELATIVE_ERROR (half a 0.1 % bucket); the bound is deterministic, not statistical.
    x = SAMPLES[dist](np.random.default_rng(n), n)
    h = LatencyHistogram()
    for v in x:
        h.add(float(v))
    assert h.n == n
    exact = np.quantile(x, QUANTILES, method="inverted_cdf")
    got = np.array([h.quantile(q) for q in QUANTILES])
    assert np.all(np.abs(got / exact - 1) <= SKETCH_RELATIVE_ERROR * (1 + 1e-9)), (got, exact)


def test_stated_error_is_half_a_bucket():
    assert math.isclose(SKETCH_RELATIVE_ERROR, 0.0005, rel_tol=1e-9)
    # the worst case is a value at a bucket edge, reported at the geometric middle
    assert math.sqrt(1.001) - 1 <= SKETCH_RELATIVE_ERROR
    assert 1 - 1 / math.sqrt(1.001) <= SKETCH_RELATIVE_ERROR


def test_histogram_empty_is_nan_and_out_of_range_values_clamp():
    h = LatencyHistogram()
    assert math.isnan(h.quantile(0.5))
    for v in (0.0, 1e-9, 3e6):
        h.add(v)
    assert h.quantile(0.0) == pytest.approx(1e-6, rel=SKETCH_RELATIVE_ERROR)  # the 1 us end bin
    assert h.quantile(0.5) == pytest.approx(1e-6, rel=SKETCH_RELATIVE_ERROR)
    assert 1e6 <= h.quantile(1.0) <= 1.01e6  # the 1e6 s end bin


# --------------------------------------------------------------------------- utilization
def test_utilization_is_busy_over_available_gpc_seconds():
    # A 4g and a 3g from t=0; the 4g goes away at t=6 (as when its GPU is reconfigured).
    # available: 7 GPCs x 6 s + 3 GPCs x 4 s = 54 GPC-s
    # busy: 4g over [1, 3] and [5, 6] = 4 x 3 = 12, 3g over [2, 8] = 3 x 6 = 18 -> 30 GPC-s
    rec = recorder()
    rec.capacity(0.0, 4, 4)
    rec.capacity(0.0, 3, 3)
    for t, k, secs in ((3.0, 4, 2.0), (6.0, 4, 1.0), (8.0, 3, 6.0)):  # services as they end
        rec.served(t, k, secs)
        if t == 6.0:
            rec.capacity(6.0, 4, -4)
    s = summarise(rec, now=10.0)
    assert s.utilization == pytest.approx(30 / 54)
    assert s.utilization_by_size == pytest.approx({4: 12 / 24, 3: 18 / 30})


def test_utilization_without_capacity_is_zero():
    s = summarise(recorder(), now=5.0)
    assert s.utilization == 0.0 and s.utilization_by_size == {}


# --------------------------------------------------------------------------- windows
def test_window_rows_by_hand():
    # Windows of 1 s on one 7g. q0 arrives 0.2, runs [0.2, 0.7] (late: 0.5 > SLA 0.4); q1 arrives
    # 1.5, runs [1.5, 1.9] (0.4, on time); q2 arrives 1.6, runs [1.9, 3.2] (late).
    rec = recorder(window_s=1.0)
    rec.capacity(0.0, 7, 7)
    events = [  # (time, what, query id, arrival)
        (0.2, "arrive", 0, 0.2),
        (0.7, "done", 0, 0.2),
        (1.5, "arrive", 1, 1.5),
        (1.6, "arrive", 2, 1.6),
        (1.9, "done", 1, 1.5),
        (3.2, "done", 2, 1.6),
    ]
    starts = {0: 0.2, 1: 1.5, 2: 1.9}
    for t, what, qid, arr in events:
        if what == "arrive":
            rec.on_arrival(t)
        else:
            rec.served(t, 7, t - starts[qid])
            rec.on_complete(qid, 0, arr, t, 0.4)
    rec.finish(3.5)
    rows = rec.series
    assert [r["t_s"] for r in rows] == [1.0, 2.0, 3.0, 3.5]
    assert [r["arrived"] for r in rows] == [1, 2, 0, 0]
    assert [r["completed"] for r in rows] == [1, 1, 0, 1]
    assert [r["throughput_qps"] for r in rows] == pytest.approx([1.0, 1.0, 0.0, 2.0])
    assert [r["goodput_qps"] for r in rows] == pytest.approx([0.0, 1.0, 0.0, 0.0])
    assert [r["sla_violation_rate"] for r in rows] == [1.0, 0.0, 0.0, 1.0]
    # busy [0.2, 0.7] | [1.5, 2] | [2, 3] | [3, 3.2] of 3.5 s available in the last half window
    assert [r["utilization"] for r in rows] == pytest.approx([0.5, 0.5, 1.0, 0.4])
    assert [r["busy_gpc_s_7g"] for r in rows] == pytest.approx([3.5, 3.5, 7.0, 1.4])
    assert [r["latency_p50_ms"] for r in rows[:2]] + [rows[3]["latency_p50_ms"]] == pytest.approx(
        [500.0, 400.0, 1600.0]
    )
    assert math.isnan(rows[2]["latency_p95_ms"]) and math.isnan(rows[2]["latency_mean_ms"])
    assert {k for r in rows for k in r if k.startswith("busy_gpc_s_")} == {
        f"busy_gpc_s_{k}g" for k in SIZES
    }


@pytest.mark.parametrize("n", [501, 5000])  # below and above the size numpy sorts
def test_window_percentiles_are_exact(n):
    lat = np.random.default_rng(3).lognormal(-3, 1, n)
    rec = recorder(window_s=10.0)
    for i, x in enumerate(lat):
        rec.on_complete(i, 0, 1.0, 1.0 + float(x), 1.0)
    rec.advance(25.0)
    assert len(rec.series) == 2 and rec.series[1]["completed"] == 0
    row = rec.series[0]
    for name, q in (("latency_p50_ms", 50), ("latency_p95_ms", 95), ("latency_p99_ms", 99)):
        assert row[name] == pytest.approx(np.percentile(lat, q) * 1e3, rel=1e-12)
    assert row["latency_mean_ms"] == pytest.approx(lat.mean() * 1e3, rel=1e-12)


def test_large_windows_sorted_by_numpy_give_the_plain_python_results(monkeypatch):
    from mig_gym.metrics import series

    for n in (1, 2, 511, 512, 513, 20_000):
        lat = np.random.default_rng(n).lognormal(-3, 1, n).tolist()
        fast = series._percentiles(lat)
        monkeypatch.setattr(series, "_NUMPY_SORT", 10**9)  # sorted() at every size
        assert series._percentiles(lat) == fast and all(type(x) is float for x in fast)
        monkeypatch.undo()


def test_arrival_counts_in_the_window_it_falls_in():
    # Arrivals only (no busy or capacity calls move the clock): each is counted in its own
    # window; the runs of empty windows (1, 2] and (3, 6] are one row each.
    rec = recorder(window_s=1.0)
    for t in (0.5, 2.5, 2.7, 6.1):
        rec.on_arrival(t)
    rec.finish(6.5)
    assert [r["arrived"] for r in rec.series] == [1, 0, 2, 0, 1]
    assert [r["t_s"] for r in rec.series] == [1.0, 2.0, 3.0, 6.0, 6.5]
    assert [r["span_s"] for r in rec.series] == pytest.approx([1.0, 1.0, 1.0, 3.0, 0.5])


@pytest.mark.parametrize("window_s", [1e-6, 1e-3, 10.0])
def test_rows_are_bounded_by_events_and_tile_the_timeline(window_s):
    # 50 arrivals spread over 5e7 s on one 7g, each served for 1 ms: whatever window_s, at
    # most two rows per event (its window, then the run of empty windows after it), and the
    # rows cover (0, end] without gap or overlap, so their available GPC-s add up.
    rec = recorder(window_s=window_s)
    rec.capacity(0.0, 7, 7)
    for i in range(50):
        t = 1e6 * (i + 1)
        rec.on_arrival(t)
        rec.served(t + 1e-3, 7, 1e-3)
        rec.on_complete(i, 0, t, t + 1e-3, 1.0)
    end = 5e7 + 10.0
    rec.finish(end)
    rows = rec.series
    assert len(rows) <= 4 * 50 + 2
    assert sum(r["completed"] for r in rows) == 50 and sum(r["arrived"] for r in rows) == 50
    starts = [r["t_s"] - r["span_s"] for r in rows]
    assert starts[0] == 0.0 and rows[-1]["t_s"] == end
    assert starts[1:] == pytest.approx([r["t_s"] for r in rows[:-1]], rel=1e-12, abs=1e-9)
    assert sum(r["avail_gpc_s"] for r in rows) == pytest.approx(7 * end, rel=1e-9)
    assert sum(r["busy_gpc_s_7g"] for r in rows) == pytest.approx(7 * 50e-3, rel=1e-6)


# --------------------------------------------------------------------------- summary
def test_summary_excludes_warmup_and_counts_rejections_as_violations():
    rec = recorder(warmup=2, models=("a", "b"))
    for _ in range(6):
        rec.on_arrival()
    rec.on_complete(0, 0, 0.0, 9.0, 1.0)  # warm-up: ignored by the latency statistics
    rec.on_complete(1, 1, 0.5, 9.5, 1.0)
    rec.on_complete(2, 0, 1.0, 1.2, 1.0)  # 0.2 s, on time
    rec.on_complete(3, 1, 1.5, 3.0, 1.0)  # 1.5 s, late
    rec.on_reject(4, 0, "model_not_hosted", 2.0)  # measured: a violation
    # q5 (model a, arrived 9.5) is still queued at 10, within its 1 s SLA: measured, not late
    left = Unfinished(np.array([5]), np.array([0]), np.array([False]))
    s = summarise(rec, now=10.0, queued=1, last_arrival_s=3.0, unfinished=left)
    assert (s.arrived, s.completed, s.rejected, s.unfinished, s.unfinished_late) == (6, 4, 1, 1, 0)
    assert (s.measured, s.violations) == (4, 2)  # q2..q5; q3 late and q4 rejected
    assert s.conserved and s.to_dict()["conserved"] is True
    assert s.rejected_by_reason == {"model_not_hosted": 1}
    assert s.latency_mean_ms == pytest.approx(850.0)
    assert s.latency_max_ms == pytest.approx(1500.0)
    assert s.latency_p50_ms == pytest.approx(200.0, rel=SKETCH_RELATIVE_ERROR)
    assert s.latency_p99_ms == pytest.approx(1500.0, rel=SKETCH_RELATIVE_ERROR)
    assert s.sla_violation_rate == pytest.approx(2 / 4)
    # throughput over [first measured arrival 1.0, end 10.0]
    assert s.throughput_qps == pytest.approx(2 / 9.0)
    assert s.goodput_qps == pytest.approx(1 / 9.0)
    assert s.offered_qps == pytest.approx(6 / 3.0)
    # model a: q2 on time, q4 rejected, q5 unfinished; model b: q3 late
    assert s.by_model["a"] == pytest.approx(
        {"measured": 3, "completed": 1, "rejected": 1, "unfinished": 1, "unfinished_late": 0,
         "violations": 1, "sla_violation_rate": 1 / 3, "latency_mean_ms": 200.0}
    )  # fmt: skip
    assert s.by_model["b"] == pytest.approx(
        {"measured": 1, "completed": 1, "rejected": 0, "unfinished": 0, "unfinished_late": 0,
         "violations": 1, "sla_violation_rate": 1.0, "latency_mean_ms": 1500.0}
    )  # fmt: skip
    assert not dataclasses.replace(s, unfinished=0).conserved


def test_summary_of_an_empty_run():
    s = summarise(recorder(), now=0.0, last_arrival_s=0.0)
    assert s.arrived == s.completed == s.measured == 0 and s.conserved
    assert math.isnan(s.latency_mean_ms) and math.isnan(s.latency_p95_ms)
    assert s.sla_violation_rate == 0.0 and math.isnan(s.throughput_qps)


def test_every_rejected_query_is_a_violation_rate_of_one():
    # Issue 11: with every query rejected the overall rate was 0.98 (warm-up rejections in the
    # denominator only) and the per-model rate 490 (violations over completions).
    rec = recorder(warmup=100, models=("a",))
    for i in range(5000):
        rec.on_arrival(i * 1e-3)
        rec.on_reject(i, 0, "batch_exceeds_partition_memory", i * 1e-3)
    s = summarise(rec, now=5.0)
    assert (s.measured, s.violations, s.rejected) == (4900, 4900, 5000)
    assert s.sla_violation_rate == 1.0 and s.by_model["a"]["sla_violation_rate"] == 1.0
    assert math.isnan(s.latency_mean_ms) and math.isnan(s.latency_p95_ms)


def test_unfinished_queries_past_their_deadline_are_violations():
    # Issue 11: a dead cluster reported a violation rate of 0. Two measured queries completed
    # on time; three are still waiting at the end, two of them past their deadline (one of
    # which is a warm-up query: reported in unfinished_late, not in the measured rate).
    rec = recorder(warmup=1, models=("a",))
    for i in range(6):
        rec.on_arrival(float(i))
    for i in (1, 2):
        rec.on_complete(i, 0, float(i), i + 0.5, 1.0)
    rec.on_complete(5, 0, 5.0, 5.1, 1.0)
    left = Unfinished(np.array([0, 3, 4]), np.array([0, 0, 0]), np.array([True, True, False]))
    s = summarise(rec, now=5.5, queued=3, unfinished=left)
    assert (s.unfinished, s.unfinished_late, s.measured, s.violations) == (3, 2, 5, 1)
    assert s.sla_violation_rate == pytest.approx(1 / 5) and s.conserved
    assert s.by_model["a"]["unfinished"] == 2 and s.by_model["a"]["unfinished_late"] == 1


def test_strict_json_has_null_for_nan():
    s = summarise(recorder(), now=0.0, last_arrival_s=0.0)
    text = json.dumps(strict_json(s.to_dict()), allow_nan=False)
    assert "NaN" not in text and json.loads(text)["latency_p95_ms"] is None


def test_a_long_service_is_credited_to_every_row_it_spans():
    # One 7g busy over [0.5, 5.5] (credited when it ends); an arrival in each 1 s window keeps
    # the windows apart. Busy GPC-s per row: half of the first and last, all of the others.
    rec = recorder(window_s=1.0)
    rec.capacity(0.0, 7, 7)
    for t in (0.2, 1.5, 2.5, 3.5, 4.5):
        rec.on_arrival(t)
    assert [r["busy_gpc_s_7g"] for r in rec.series] == [0.0] * 4  # not credited yet
    rec.served(5.5, 7, 5.0)
    rec.finish(6.0)
    rows = rec.series
    assert [r["busy_gpc_s_7g"] for r in rows] == pytest.approx([3.5, 7, 7, 7, 7, 3.5])
    assert [r["utilization"] for r in rows] == pytest.approx([0.5, 1, 1, 1, 1, 0.5])
    assert [r["busy_gpc_s"] for r in rows] == [r["busy_gpc_s_7g"] for r in rows]


def test_docs_metrics_md_defines_every_field_and_column():
    # docs/metrics.md is the one definition (the Summary docstring says the same): every field,
    # per-model key and time-series column must appear in it, in backticks.
    doc = (REPO / "docs" / "metrics.md").read_text(encoding="utf-8")
    rec = recorder(window_s=1.0)
    rec.capacity(0.0, 7, 7)
    rec.on_arrival(0.1)
    rec.served(0.5, 7, 0.4)
    rec.on_complete(0, 0, 0.1, 0.5, 1.0)
    rec.finish(2.0)
    s = summarise(rec, now=2.0)
    names = {f.name for f in dataclasses.fields(Summary)} | set(s.to_dict()) | set(s.by_model["m"])
    names |= {re.sub(r"_\d+g$", "_<k>g", k) for row in rec.series for k in row}

    def defined(n: str) -> bool:  # `name`, `name[...]` or ["name"]
        return f"`{n}`" in doc or f"`{n}[" in doc or f'["{n}"]' in doc

    missing = sorted(n for n in names if not defined(n))
    assert not missing, f"not defined in docs/metrics.md: {missing}"
