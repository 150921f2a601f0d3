"""Tests of mig_gym.workload and mig_gym.workload.arrivals.

Statistical tests use fixed seeds (so they are deterministic) and state their tolerance in units of
the estimator's standard deviation where it is known; every tolerance is >= 3.5 sigma.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mig_gym.scenario.config import (
    DiurnalArrivals,
    EmpiricalBatch,
    FixedBatch,
    LognormalBatch,
    MMPPArrivals,
    PhaseConfig,
    PoissonArrivals,
    TraceArrivals,
    TraceColumnBatch,
    WorkloadConfig,
)
from mig_gym.workload import (
    QueryStream,
    WorkloadError,
    batch_pmf,
    generate,
    mean_rate_qps,
)
from mig_gym.workload.traces import read_trace

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
AZURE = DATA / "azure_llm_inference_2023"
MOONCAKE = DATA / "mooncake_fast25" / "conversation_trace.jsonl"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared trace data not found at {DATA}")


def _gen(workload: WorkloadConfig, n: int, seed: int = 0, models=("a",), shares=(1.0,)):
    return generate(workload, list(models), list(shares), seed, n)


# --------------------------------------------------------------------------- arrivals
def test_poisson_rate_and_exponential_gaps():
    # 200k gaps: rate estimate sd 0.22% -> 1% tolerance; CV sd sqrt(2/n) = 0.3% -> 0.02.
    b = _gen(WorkloadConfig(arrivals=PoissonArrivals(rate_qps=2000.0)), 200_000)
    gaps = np.diff(np.concatenate([[0.0], b.arrival_s]))
    assert len(b) == 200_000 and np.all(gaps >= 0)
    assert len(b) / b.arrival_s[-1] == pytest.approx(2000.0, rel=0.01)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.02)
    # memoryless: P(gap > mean) = exp(-1) (binomial sd 0.1%)
    assert np.mean(gaps > 1 / 2000.0) == pytest.approx(math.exp(-1), abs=0.005)


def test_mmpp_mean_rate_is_stationary_mixture():
    # Fast switching (50k cycles in 1M queries); across seeds the rate estimate has sd ~0.3%.
    cfg = MMPPArrivals(rate_low_qps=1000, rate_high_qps=4000, mean_low_s=0.02, mean_high_s=0.005)
    expected = (1000 * 0.02 + 4000 * 0.005) / 0.025
    b = _gen(WorkloadConfig(arrivals=cfg), 1_000_000)
    assert len(b) / b.arrival_s[-1] == pytest.approx(expected, rel=0.02)
    assert mean_rate_qps(WorkloadConfig(arrivals=cfg)) == pytest.approx(expected)


def test_mmpp_is_bursty():
    # Default MMPP (1000/4000 qps, 20 s/5 s): gap CV is 1.2-1.4 across seeds; Poisson would be 1.
    b = _gen(WorkloadConfig(arrivals=MMPPArrivals()), 200_000, seed=3)
    gaps = np.diff(b.arrival_s)
    assert np.all(gaps >= 0)
    assert gaps.std() / gaps.mean() > 1.1


def test_diurnal_counts_follow_rate_curve():
    # 20 periods of 10 s at mean 1000 qps, folded into 20 phase bins: chi-square with 19 degrees
    # of freedom must stay below its 99.9% quantile (43.8); mean rate sd 0.2% -> 1%.
    cfg = DiurnalArrivals(rate_qps=1000.0, amplitude=0.5, period_s=10.0, peak_at_s=2.75)
    t = _gen(WorkloadConfig(arrivals=cfg), 210_000).arrival_s
    t = t[t < 200.0]
    edges = np.linspace(0.0, 10.0, 21)
    counts = np.bincount((t % 10.0 / 0.5).astype(int), minlength=20)
    integral = np.diff(edges) + 0.5 * 10 / (2 * np.pi) * np.diff(
        np.sin(2 * np.pi * (edges - 2.75) / 10)
    )
    expected = 20 * 1000.0 * integral
    assert ((counts - expected) ** 2 / expected).sum() < 43.8
    # first Fourier coefficient: E[exp(i 2 pi t / P)] = (amplitude / 2) exp(i 2 pi peak / P);
    # phase sd ~0.006 rad -> 0.03, amplitude sd ~0.003 -> 0.015
    z = np.mean(np.exp(2j * np.pi * t / 10.0))
    assert np.angle(z) == pytest.approx(2 * np.pi * 2.75 / 10.0, abs=0.03)
    assert 2 * abs(z) == pytest.approx(0.5, abs=0.015)
    assert t.size / 200.0 == pytest.approx(1000.0, rel=0.01)
    assert mean_rate_qps(WorkloadConfig(arrivals=cfg, load=3.0)) == 3000.0


@pytest.mark.parametrize(
    "arrivals", [PoissonArrivals(rate_qps=1000.0), MMPPArrivals(mean_low_s=0.02, mean_high_s=0.005)]
)
def test_load_multiplier_scales_rate(arrivals):
    # 400k queries: Poisson sd 0.16%, fast MMPP ~0.5% -> 2.5% tolerance.
    w = WorkloadConfig(arrivals=arrivals, load=2.5)
    b = _gen(w, 400_000)
    assert mean_rate_qps(w) == pytest.approx(2.5 * mean_rate_qps(replace(w, load=1.0)))
    assert len(b) / b.arrival_s[-1] == pytest.approx(mean_rate_qps(w), rel=0.025)


# --------------------------------------------------------------------------- batch sizes
def _pmf_mean(pmf: dict[int, float]) -> float:
    return sum(k * p for k, p in pmf.items())


@pytest.mark.parametrize(
    "cfg",
    [
        LognormalBatch(median=8, sigma=0.9, max=128),
        LognormalBatch(median=math.exp(5.1), sigma=0.2, min=1, max=1024),  # DeepRecSys fit
        LognormalBatch(median=8, sigma=1.5, min=2, max=16),  # heavy clamping at both ends
    ],
)
def test_lognormal_batches_match_exact_pmf(cfg):
    # 200k draws: frequencies have sd <= 0.0011 -> 0.005; mean sd < 0.3% -> 1%.
    pmf = batch_pmf(cfg)
    assert sum(pmf.values()) == pytest.approx(1.0, abs=1e-12)
    assert min(pmf) >= cfg.min and max(pmf) <= cfg.max
    b = _gen(WorkloadConfig(batch=cfg), 200_000).batch
    assert b.dtype == np.int32 and b.min() >= cfg.min and b.max() <= cfg.max
    assert b.mean() == pytest.approx(_pmf_mean(pmf), rel=0.01)
    med = round(cfg.median)
    p_le_median = sum(p for k, p in pmf.items() if k <= med)
    assert np.mean(b <= med) == pytest.approx(p_le_median, abs=0.005)
    assert abs(p_le_median - 0.5) < 0.05  # rounding moves it only slightly off 1/2
    freq = np.bincount(b, minlength=cfg.max + 1) / b.size
    assert max(abs(freq[k] - pmf.get(k, 0.0)) for k in range(cfg.max + 1)) < 0.005


def test_lognormal_pmf_values():
    cfg = LognormalBatch(median=8, sigma=0.9, min=1, max=16)
    pmf = batch_pmf(cfg)

    def cdf(x):
        return 0.5 * (1 + math.erf(math.log(x / 8) / (0.9 * math.sqrt(2))))

    assert pmf[1] == pytest.approx(cdf(1.5))  # all mass below 1.5 clamps to min
    assert pmf[8] == pytest.approx(cdf(8.5) - cdf(7.5))
    assert pmf[16] == pytest.approx(1 - cdf(15.5))  # upper tail clamps to max
    assert batch_pmf(LognormalBatch(median=8, sigma=0.0)) == {8: 1.0}
    assert batch_pmf(LognormalBatch(median=500, sigma=0.0, max=64)) == {64: 1.0}


def test_fixed_and_empirical_batches():
    assert set(_gen(WorkloadConfig(batch=FixedBatch(value=12)), 1000).batch) == {12}
    assert batch_pmf(FixedBatch(value=12)) == {12: 1.0}
    cfg = EmpiricalBatch(pmf={1: 1.0, 4: 2.0, 16: 1.0, 32: 0.0})
    assert batch_pmf(cfg) == {1: 0.25, 4: 0.5, 16: 0.25}
    b = _gen(WorkloadConfig(batch=cfg), 100_000).batch
    # binomial sd <= 0.0016 -> 0.008
    for k, p in batch_pmf(cfg).items():
        assert np.mean(b == k) == pytest.approx(p, abs=0.008)
    assert not np.any(b == 32)


def test_model_mix_shares():
    # 100k draws: binomial sd <= 0.0016 -> 0.008; a zero share is never drawn.
    b = _gen(WorkloadConfig(), 100_000, models=("a", "b", "c", "d"), shares=(1, 2, 0, 7))
    freq = np.bincount(b.model, minlength=4) / len(b)
    assert b.model.dtype == np.int32
    assert freq == pytest.approx([0.1, 0.2, 0.0, 0.7], abs=0.008)
    assert freq[2] == 0


# --------------------------------------------------------------------------- phases
def test_phases_switch_at_start_s():
    w = WorkloadConfig(
        arrivals=PoissonArrivals(rate_qps=1000.0),
        batch=FixedBatch(value=1),
        phases=(
            PhaseConfig(start_s=20.0, load=3.0),  # listed out of order on purpose
            PhaseConfig(start_s=10.0, batch=FixedBatch(value=32), mix={"b": 1.0}),
        ),
    )
    b = _gen(w, 100_000, models=("a", "b"), shares=(1.0, 0.0))
    t = b.arrival_s
    base, p1, p2 = t < 10, (t >= 10) & (t < 20), t >= 20
    assert np.all(np.diff(t) >= 0)
    assert set(b.batch[base]) == {1} and set(b.model[base]) == {0}
    assert set(b.batch[p1]) == {32} and set(b.model[p1]) == {1}
    # the second phase overrides the base, not the first phase: batch 1, model a, 3x the rate
    assert set(b.batch[p2]) == {1} and set(b.model[p2]) == {0}
    # counts: Poisson sd ~1% of 10k, 3% tolerance
    assert base.sum() == pytest.approx(10_000, rel=0.03)
    assert p1.sum() == pytest.approx(10_000, rel=0.03)
    assert p2.sum() / (t[-1] - 20) == pytest.approx(3000.0, rel=0.03)
    assert mean_rate_qps(w, at_s=25.0) == 3000.0 and mean_rate_qps(w) == 1000.0


def test_phase_arrivals_and_global_load_multiply():
    w = WorkloadConfig(
        arrivals=PoissonArrivals(rate_qps=100.0),
        load=2.0,
        phases=(PhaseConfig(start_s=5.0, arrivals=MMPPArrivals(), load=0.5),),
    )
    assert mean_rate_qps(w) == 200.0
    assert mean_rate_qps(w, at_s=5.0) == pytest.approx(1600.0)  # 1600 * 2 * 0.5
    t = _gen(w, 50_000).arrival_s
    assert np.sum(t < 5.0) == pytest.approx(1000, rel=0.15)  # Poisson sd 3%


def test_phase_without_arrival_change_keeps_one_process():
    # Changing only the batch at 3 s leaves the arrival times exactly as without the phase.
    w = WorkloadConfig(arrivals=MMPPArrivals())
    phased = replace(w, phases=(PhaseConfig(start_s=3.0, batch=FixedBatch(value=2)),))
    a, b = _gen(w, 20_000), _gen(phased, 20_000)
    assert np.array_equal(a.arrival_s, b.arrival_s)
    assert set(b.batch[b.arrival_s >= 3.0]) == {2}


# --------------------------------------------------------------------------- determinism
WORKLOADS = {
    "poisson": WorkloadConfig(),
    "mmpp_phases": WorkloadConfig(
        arrivals=MMPPArrivals(mean_low_s=0.5, mean_high_s=0.2),
        batch=EmpiricalBatch(pmf={1: 1, 8: 3}),
        phases=(
            PhaseConfig(start_s=40.0, arrivals=DiurnalArrivals(period_s=30.0), mix={"b": 1}),
            PhaseConfig(start_s=60.0, batch=LognormalBatch(sigma=1.2)),
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_same_seed_same_output_for_any_chunk(name):
    w, n = WORKLOADS[name], 150_000
    streams = [QueryStream(w, ["a", "b"], [3, 1], 7, n, chunk=c) for c in (1000, 65536, 10**6)]
    outs = []
    for s in streams:
        blocks = list(s.blocks())
        assert [b.first_id for b in blocks] == list(np.cumsum([0] + [len(b) for b in blocks[:-1]]))
        assert all(len(b) == s.chunk for b in blocks[:-1]) and s.generated == n
        outs.append(
            [
                np.concatenate([getattr(b, f) for b in blocks])
                for f in ("arrival_s", "model", "batch")
            ]
        )
    for out in outs[1:]:
        for x, y in zip(outs[0], out, strict=True):
            assert x.tobytes() == y.tobytes()
    other = generate(w, ["a", "b"], [3, 1], 8, n)
    assert not np.array_equal(other.arrival_s, outs[0][0])
    assert not s.exhausted


def test_arrivals_independent_of_batch_and_mix():
    a = generate(WorkloadConfig(), ["a"], [1], 5, 10_000)
    b = generate(WorkloadConfig(batch=FixedBatch()), ["a", "b"], [1, 1], 5, 10_000)
    assert np.array_equal(a.arrival_s, b.arrival_s)


def test_iteration_and_pickle_mid_stream():
    w = WORKLOADS["mmpp_phases"]
    s = QueryStream(w, ["a", "b"], [1, 1], 1, 5000, chunk=700)
    first = s.next_block()
    clone = pickle.loads(pickle.dumps(s))
    rest, rest_clone = list(s), list(clone)
    assert rest == rest_clone and len(rest) == 5000 - len(first)
    qid, t, m, bs = rest[0]
    assert qid == 700 and isinstance(t, float) and isinstance(m, int) and bs >= 1
    assert len(generate(w, ["a", "b"], [1, 1], 1, 0)) == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shares": [1.0, 1.0]}, "one share per model"),
        ({"shares": [0.0]}, "positive sum"),
        ({"workload": WorkloadConfig(phases=(PhaseConfig(mix={"zz": 1.0}),))}, "zz"),
        ({"workload": WorkloadConfig(batch=TraceColumnBatch())}, "need trace arrivals"),
        ({"workload": WorkloadConfig(batch=LognormalBatch(min=9, max=4))}, "min <= max"),
        ({"workload": WorkloadConfig(batch=EmpiricalBatch(pmf={0: 1.0}))}, "size >= 1"),
        ({"workload": WorkloadConfig(arrivals=TraceArrivals())}, "need a path"),
        ({"workload": WorkloadConfig(arrivals=DiurnalArrivals(amplitude=1.5))}, "must be > 0"),
        ({"workload": WorkloadConfig(load=0.0)}, "must be > 0"),
    ],
)
def test_invalid_workloads(kwargs, match):
    args = {"workload": WorkloadConfig(), "shares": [1.0]} | kwargs
    with pytest.raises(WorkloadError, match=match):
        QueryStream(args["workload"], ["a"], args["shares"], 0, 10)


# --------------------------------------------------------------------------- traces
def _file_times(path: Path) -> np.ndarray:
    """Seconds from the first row, computed independently of mig_gym.workload.traces."""
    stamps = np.loadtxt(path, delimiter=",", skiprows=1, usecols=0, dtype=str)
    ns = stamps.astype("datetime64[ns]").astype(np.int64)
    return (ns - ns[0]) / 1e9


@needs_data
@pytest.mark.parametrize("name", ["conv", "code"])
def test_azure_trace_replay(name):
    path = AZURE / f"AzureLLMInferenceTrace_{name}.csv"
    rows = _file_times(path)
    w = WorkloadConfig(arrivals=TraceArrivals(path=str(path)), batch=FixedBatch(value=1))
    b = _gen(w, 10**6)
    assert len(b) == rows.size and b.arrival_s[0] == 0.0
    np.testing.assert_allclose(np.diff(b.arrival_s), np.diff(rows), atol=1e-9)
    native = (rows.size - 1) / rows[-1]
    assert mean_rate_qps(w) == pytest.approx(native)
    s = QueryStream(w, ["a"], [1], 0, 10**6)
    assert sum(len(x) for x in s.blocks()) == rows.size and s.exhausted and s.generated == rows.size

    # rescaled to 20 qps (and load 1.5 on top): the mean rate is exact
    scaled = replace(w, arrivals=replace(w.arrivals, rate_qps=20.0), load=1.5)
    t = _gen(scaled, 10**6).arrival_s
    assert (t.size - 1) / t[-1] == pytest.approx(30.0, rel=1e-9)
    assert mean_rate_qps(scaled) == pytest.approx(30.0)
    # load without a target rate scales the native rate
    t = _gen(replace(w, load=2.0), 10**6).arrival_s
    assert (t.size - 1) / t[-1] == pytest.approx(2 * native, rel=1e-9)

    # looped: more queries than rows, one period (last + mean gap) apart
    looped = replace(w, arrivals=replace(w.arrivals, loop=True))
    n = int(2.5 * rows.size)
    t = _gen(looped, n).arrival_s
    period = rows[-1] + rows[-1] / (rows.size - 1)
    assert t.size == n
    np.testing.assert_allclose(t[rows.size : 2 * rows.size] - t[: rows.size], period, rtol=1e-12)
    np.testing.assert_allclose(t[2 * rows.size :] - t[: n - 2 * rows.size], 2 * period, rtol=1e-12)


@needs_data
def test_trace_column_batches_from_context_tokens():
    path = AZURE / "AzureLLMInferenceTrace_conv.csv"
    ctx = np.loadtxt(path, delimiter=",", skiprows=1, usecols=1)
    batch = TraceColumnBatch(column="ContextTokens", per_item=128.0, max=32)
    w = WorkloadConfig(arrivals=TraceArrivals(path=str(path), loop=True), batch=batch)
    b = _gen(w, ctx.size + 100)
    expected = np.clip(np.ceil(ctx / 128.0), 1, 32)
    assert np.array_equal(b.batch[: ctx.size], expected)
    assert np.array_equal(b.batch[ctx.size :], expected[:100])  # the loop replays the rows
    pmf = batch_pmf(batch, trace=read_trace(path, columns=["ContextTokens"]))
    assert pmf[32] == pytest.approx(np.mean(expected == 32))


@needs_data
def test_trace_in_phase_is_offset_to_phase_start():
    path = AZURE / "AzureLLMInferenceTrace_conv.csv"
    rows = _file_times(path)
    trace = TraceArrivals(path=str(path), rate_qps=100.0)
    w = WorkloadConfig(phases=(PhaseConfig(start_s=50.0, arrivals=trace),))
    t = _gen(w, 200_000).arrival_s
    replay = t[t >= 50.0]
    assert replay.size == rows.size  # the last window ends when the trace does
    assert replay[0] == 50.0
    scale = (rows.size - 1) / rows[-1] / 100.0
    np.testing.assert_allclose(replay - 50.0, rows * scale, atol=1e-9)


@needs_data
def test_mooncake_jsonl_replay():
    w = WorkloadConfig(
        arrivals=TraceArrivals(path=str(MOONCAKE), column="timestamp", time_unit_s=0.001),
        batch=TraceColumnBatch(column="input_length", per_item=512.0, max=256),
    )
    b = _gen(w, 10**6)
    assert len(b) == 12_031
    assert b.arrival_s[-1] == pytest.approx(3536.999)
    assert b.batch.min() >= 1 and b.batch.max() <= 256


def test_relative_trace_path_uses_base_dir(tmp_path):
    (tmp_path / "t.csv").write_text("ts,tokens\n100,1\n101,300\n103,5\n")
    w = WorkloadConfig(arrivals=TraceArrivals(path="t.csv", column="ts"))
    b = generate(w, ["a"], [1], 0, 10, base_dir=tmp_path)
    assert b.arrival_s.tolist() == [0.0, 1.0, 3.0]
    with pytest.raises(FileNotFoundError, match=r"t\.csv"):
        generate(w, ["a"], [1], 0, 10)


# --------------------------------------------------------------------------- traces parsed once
def test_a_build_parses_each_trace_file_once(tmp_path: Path, monkeypatch):
    """The plan's batch pmf and rate and the query stream share one parse per trace file (a
    phase replaying a second file parses that one once too)."""
    import mig_gym
    from mig_gym.workload import phases

    for name, n in (("a.csv", 300), ("b.csv", 200)):
        rows = "".join(f"{i * 0.01:.2f},{50 + 13 * i % 700}\n" for i in range(n))
        (tmp_path / name).write_text("TIMESTAMP,ContextTokens\n" + rows)
    (tmp_path / "s.yaml").write_text(
        "name: s\ncluster: {num_gpus: 2}\nmodels: [{name: bert, slo_ms: 900}]\n"
        "workload:\n  arrivals: {kind: trace, path: a.csv, rate_qps: 50, loop: true}\n"
        "  batch: {kind: trace_column, column: ContextTokens, per_item: 128, max: 64}\n"
        "  phases: [{start_s: 3.0, arrivals: {kind: trace, path: b.csv, loop: true}}]\n"
        "run: {num_queries: 400, warmup_queries: 0}\n"
    )
    parsed: list[str] = []
    real = phases.read_trace

    def counting(path, *args, **kwargs):
        parsed.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(phases, "read_trace", counting)
    summary = mig_gym.simulate(mig_gym.load_scenario(tmp_path / "s.yaml"), "paris+elsa")
    assert summary.arrived == 400 and summary.conserved
    assert sorted(parsed) == ["a.csv", "b.csv"]
