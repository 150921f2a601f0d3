"""Benchmark 1: queries/s of ``mig_gym.simulate()`` versus a SimPy model of the same system.

Both simulate the same queries (``workload.generate`` with the run's seed gives the arrivals, batch
sizes and models that ``simulate()`` streams), on the same partitions (``build(...).sim``), with the
same deterministic service times and the same earliest-finish rule, so their latencies must agree
(see :mod:`benchmarks.simpy_model`).

What is timed (wall clock, best of ``repeats``, runs interleaved):

- mig_gym: one whole ``simulate()`` call, i.e. ``build()`` (profiles, PARIS plan, simulator set-up),
  the lazily generated workload, the run and the ``Summary``. This static run takes the fast path
  (:mod:`mig_gym.sim.fast`), as every ``simulate()`` call of such a run does; ``mig_gym_events``
  times the same call with ``fast=False`` (the general event loop, its stretches on the
  compiled core, :mod:`mig_gym.sim.event_core`), and ``mig_gym_noisy`` the event loop on the
  same queries with service-time noise (``service_cv`` 0.3) and two GPU failures of a tenth of
  the run each (the SimPy model has neither: its row is the reference speed of the static
  system); the ``_python`` twins of both time the event loop without its core
  (``compiled=False``, the reference loop);
- SimPy: ``workload.generate()`` plus building and running the SimPy model (the partition plan is
  taken from a ``build()`` outside the timing).

So workload generation is inside both timings; mig_gym alone also pays for its planning and for its
metrics (utilization integration, time-series windows, percentile sketch), which the SimPy model
does not compute (it keeps only the latencies).
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from typing import Any

import mig_gym
from mig_gym import workload
from mig_gym.metrics import SKETCH_RELATIVE_ERROR
from mig_gym.scenario import config as C

try:
    from benchmarks.simpy_model import VARIANTS, partitions_of, run_simpy
except ImportError:  # run as a script from benchmarks/
    from simpy_model import VARIANTS, partitions_of, run_simpy  # type: ignore[no-redef]

MEAN_TOLERANCE = 1e-6
NOISY_CV = 0.3


def noisy(sc: Any, span_s: float) -> Any:
    """``sc`` with service-time noise and two GPU failures (each down a tenth of ``span_s``)."""
    faults = tuple(
        C.FaultConfig(gpu=g, down_at_s=a * span_s, up_at_s=(a + 0.1) * span_s)
        for g, a in ((0, 0.25), (1, 0.6))
    )
    wl = dataclasses.replace(sc.workload, service_cv=NOISY_CV)
    return dataclasses.replace(sc, workload=wl, faults=faults)


_FIRST_USE = """
import time, mig_gym
times = []
for _ in range(2):
    run = mig_gym.build(%r, %r, None, 50_000, fast=False)  # the core takes over at 20,000
    t0 = time.perf_counter()
    run.execute()
    times.append(time.perf_counter() - t0)
print(max(times[0] - times[1], 0.0))
"""


def _first_use_s(scenario: str | None, policy: str) -> float:
    """Seconds a fresh process's first event-loop run takes beyond its second: with numba, its
    import and the loading (or, with no cache yet, the compiling) of the core's kernel."""
    code = _FIRST_USE % (scenario, policy)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _same_counts(a: Any, b: Any) -> bool:
    """The same outcome counts, and means and utilization to rounding."""
    return (a.arrived, a.completed, a.rejected, a.retried) == (
        b.arrived, b.completed, b.rejected, b.retried
    ) and all(_rel(x, y) <= 1e-9 for x, y in ((a.latency_mean_ms, b.latency_mean_ms),
                                               (a.utilization, b.utilization)))  # fmt: skip


def _rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b) if b else abs(a - b)


def run(
    scenario: str | None,
    policy: str,
    num_queries: int,
    load: float,
    repeats: int,
    seed: int | None = None,
) -> dict[str, Any]:
    sc = mig_gym.load_scenario(scenario)
    t0 = time.perf_counter()
    built = mig_gym.build(sc, policy, seed, num_queries, load)
    build_s = time.perf_counter() - t0
    bsc = built.scenario
    parts = partitions_of(built.sim)
    warmup = bsc.run.warmup_queries
    shares = [m.share for m in bsc.models]
    noisy_sc = noisy(bsc, num_queries / built.context.rate_qps)

    def gen() -> workload.QueryBlock:
        return workload.generate(
            bsc.workload, bsc.model_names, shares, built.seed, num_queries, base_dir=bsc.base_dir
        )

    times: dict[str, list[float]] = {
        "mig_gym": [],
        "mig_gym_events": [],
        "mig_gym_noisy": [],
        "mig_gym_events_python": [],
        "mig_gym_noisy_python": [],
        **{v: [] for v in VARIANTS},
    }
    gen_times: list[float] = []
    summary = summary_events = None
    loops = set()
    python_same: list[bool] = []  # the Python loop's counts equal the core's, sums to rounding
    cores: set[bool] = set()
    results: dict[str, Any] = {}
    for _ in range(repeats):
        t0 = time.perf_counter()
        run_fast = mig_gym.build(sc, policy, seed, num_queries, load)
        summary = run_fast.execute()
        times["mig_gym"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        run_events = mig_gym.build(sc, policy, seed, num_queries, load, fast=False)
        summary_events = run_events.execute()
        times["mig_gym_events"].append(time.perf_counter() - t0)
        loops.add((run_fast.loop, run_events.loop))
        cores.add(run_events.sim.core_blocker() is None)
        t0 = time.perf_counter()
        summary_noisy = mig_gym.build(noisy_sc, policy, seed, fast=False).execute()
        times["mig_gym_noisy"].append(time.perf_counter() - t0)
        python_runs = (
            ("mig_gym_events_python", (sc, policy, seed, num_queries, load), summary_events),
            ("mig_gym_noisy_python", (noisy_sc, policy, seed), summary_noisy),
        )
        for key, args, core_summary in python_runs:
            t0 = time.perf_counter()
            py = mig_gym.build(*args, fast=False, compiled=False)
            py_summary = py.execute()
            times[key].append(time.perf_counter() - t0)
            python_same.append(_same_counts(py_summary, core_summary))
            cores.add(py.sim.core_blocker() is None)
        for v in VARIANTS:
            t0 = time.perf_counter()
            blk = gen()
            t1 = time.perf_counter()
            results[v] = run_simpy(blk.arrival_s, blk.model, blk.batch, parts, warmup, v)
            times[v].append(time.perf_counter() - t0)
            gen_times.append(t1 - t0)
    assert summary is not None and summary_events is not None

    best = {k: min(v) for k, v in times.items()}
    qps = {k: num_queries / s for k, s in best.items()}
    ref = results[VARIANTS[-1]]  # every variant computes the same numbers; checked below
    checks = {"loops": sorted(loops)[0] if len(loops) == 1 else sorted(loops)}
    for key, s in (("", summary), ("events_", summary_events)):
        checks |= {
            f"{key}latency_mean_rel_diff": _rel(s.latency_mean_ms, ref.latency_mean_ms),
            f"{key}latency_max_rel_diff": _rel(s.latency_max_ms, ref.latency_max_ms),
            f"{key}latency_p95_rel_diff": _rel(s.latency_p95_ms, ref.latency_p95_ms),
            f"{key}counts_match": (s.completed, s.rejected, s.measured)
            == (ref.completed, ref.rejected, ref.measured),
        }
    checks["variants_identical"] = (
        len({(r.latency_mean_ms, r.latency_max_ms) for r in results.values()}) == 1
    )
    agree = (
        all(
            checks[f"{key}latency_mean_rel_diff"] <= MEAN_TOLERANCE
            and checks[f"{key}latency_max_rel_diff"] <= MEAN_TOLERANCE
            # mig_gym's p95 comes from a log histogram: within its stated relative error of exact
            and checks[f"{key}latency_p95_rel_diff"] <= SKETCH_RELATIVE_ERROR * (1 + 1e-9)
            and checks[f"{key}counts_match"]
            for key in ("", "events_")
        )
        and checks["variants_identical"]
        and checks["loops"] == ("fast", "events")
        and summary.conserved
        and summary_events.conserved
        and summary_noisy.conserved
        and all(python_same)
    )
    return {
        "scenario": scenario or "<default scenario>",
        "scenario_name": sc.name,
        "policy": policy,
        "num_queries": num_queries,
        "warmup_queries": warmup,
        "load": load,
        "seed": built.seed,
        "partitions": len(parts),
        "partition_sizes": sorted(p.gpcs for p in parts),
        "repeats": repeats,
        "timing": "wall clock, best of repeats; workload generation included in both; mig_gym "
        "also includes build() (PARIS plan) and its full metrics",
        "seconds": times,
        "best_seconds": best,
        "build_seconds": build_s,
        "generate_seconds_best": min(gen_times),
        "qps": qps,
        "speedup": {v: qps["mig_gym"] / qps[v] for v in VARIANTS},
        "speedup_events": {v: qps["mig_gym_events"] / qps[v] for v in VARIANTS},
        "speedup_noisy": {v: qps["mig_gym_noisy"] / qps[v] for v in VARIANTS},
        "speedup_events_python": {v: qps["mig_gym_events_python"] / qps[v] for v in VARIANTS},
        "speedup_noisy_python": {v: qps["mig_gym_noisy_python"] / qps[v] for v in VARIANTS},
        "core_vs_python": qps["mig_gym_events"] / qps["mig_gym_events_python"],
        "core_vs_python_noisy": qps["mig_gym_noisy"] / qps["mig_gym_noisy_python"],
        "python_agrees": all(python_same),
        "core_used": sorted(cores) == [False, True],  # the core timed, the Python loop not
        "core_first_use_s": _first_use_s(scenario, policy),
        "noisy": {
            "service_cv": NOISY_CV,
            "faults": [dataclasses.asdict(f) for f in noisy_sc.faults],
            "retried": summary_noisy.retried,
            "conserved": summary_noisy.conserved,
        },
        "fast_vs_events": qps["mig_gym"] / qps["mig_gym_events"],
        "utilization": summary.utilization,
        "mig_gym": {
            "latency_mean_ms": summary.latency_mean_ms,
            "events_latency_mean_ms": summary_events.latency_mean_ms,
            "latency_p95_ms": summary.latency_p95_ms,
            "latency_max_ms": summary.latency_max_ms,
            "completed": summary.completed,
            "measured": summary.measured,
            "sla_violation_rate": summary.sla_violation_rate,
            "sim_time_s": summary.sim_time_s,
        },
        "simpy": {v: dataclasses.asdict(r) for v, r in results.items()},
        "checks": checks,
        "agree": agree,
        "mean_tolerance": MEAN_TOLERANCE,
    }
