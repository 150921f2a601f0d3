"""Benchmark 1: queries/s of ``mig_gym.simulate()`` versus a SimPy model of the same system.

Both simulate the same queries (``workload.generate`` with the run's seed gives the arrivals, batch
sizes and models that ``simulate()`` streams), on the same partitions (``build(...).sim``), with the
same deterministic service times and the same earliest-finish rule, so their latencies must agree
(see :mod:`benchmarks.simpy_model`).

What is timed (wall clock, best of ``repeats``, runs interleaved):

- mig_gym: one whole ``simulate()`` call, i.e. ``build()`` (profiles, PARIS plan, simulator set-up),
  the lazily generated workload, the run and the ``Summary``;
- SimPy: ``workload.generate()`` plus building and running the SimPy model (the partition plan is
  taken from a ``build()`` outside the timing).

So workload generation is inside both timings; mig_gym alone also pays for its planning and for its
metrics (utilization integration, time-series windows, percentile sketch), which the SimPy model
does not compute (it keeps only the latencies).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import mig_gym
from mig_gym import workload
from mig_gym.metrics import SKETCH_RELATIVE_ERROR

try:
    from benchmarks.simpy_model import VARIANTS, partitions_of, run_simpy
except ImportError:  # run as a script from benchmarks/
    from simpy_model import VARIANTS, partitions_of, run_simpy  # type: ignore[no-redef]

MEAN_TOLERANCE = 1e-6


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

    def gen() -> workload.QueryBlock:
        return workload.generate(
            bsc.workload, bsc.model_names, shares, built.seed, num_queries, base_dir=bsc.base_dir
        )

    times: dict[str, list[float]] = {"mig_gym": [], **{v: [] for v in VARIANTS}}
    gen_times: list[float] = []
    summary = None
    results: dict[str, Any] = {}
    for _ in range(repeats):
        t0 = time.perf_counter()
        summary = mig_gym.simulate(sc, policy, seed, num_queries, load)
        times["mig_gym"].append(time.perf_counter() - t0)
        for v in VARIANTS:
            t0 = time.perf_counter()
            blk = gen()
            t1 = time.perf_counter()
            results[v] = run_simpy(blk.arrival_s, blk.model, blk.batch, parts, warmup, v)
            times[v].append(time.perf_counter() - t0)
            gen_times.append(t1 - t0)
    assert summary is not None

    best = {k: min(v) for k, v in times.items()}
    qps = {k: num_queries / s for k, s in best.items()}
    ref = results[VARIANTS[-1]]  # every variant computes the same numbers; checked below
    checks = {
        "latency_mean_rel_diff": _rel(summary.latency_mean_ms, ref.latency_mean_ms),
        "latency_max_rel_diff": _rel(summary.latency_max_ms, ref.latency_max_ms),
        "latency_p95_rel_diff": _rel(summary.latency_p95_ms, ref.latency_p95_ms),
        "variants_identical": len({(r.latency_mean_ms, r.latency_max_ms) for r in results.values()})
        == 1,
        "counts_match": (summary.completed, summary.rejected, summary.measured)
        == (ref.completed, ref.rejected, ref.measured),
    }
    agree = (
        checks["latency_mean_rel_diff"] <= MEAN_TOLERANCE
        and checks["latency_max_rel_diff"] <= MEAN_TOLERANCE
        # mig_gym's p95 comes from a log histogram: within its stated relative error of exact
        and checks["latency_p95_rel_diff"] <= SKETCH_RELATIVE_ERROR * (1 + 1e-9)
        and checks["variants_identical"]
        and checks["counts_match"]
        and summary.conserved
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
        "utilization": summary.utilization,
        "mig_gym": {
            "latency_mean_ms": summary.latency_mean_ms,
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
