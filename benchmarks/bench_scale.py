"""Scale: PARIS+ELSA queries/s on 8 GPUs and on a 1,000-GPU cluster, side by side, and PARIS's
planning time for 1,000 GPUs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import mig_gym
from mig_gym.runs.build import build

ROOT = Path(__file__).resolve().parents[1]


def _qps(scenario: Path, n: int, repeats: int) -> tuple[float, dict]:
    best, summary = 0.0, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        summary = mig_gym.simulate(scenario, policy="paris+elsa", num_queries=n)
        best = max(best, n / (time.perf_counter() - t0))
    return best, summary.to_dict()  # type: ignore[union-attr]


def run(n_small: int, n_large: int, repeats: int) -> dict[str, Any]:
    small = ROOT / "scenarios" / "paper_resnet50.yaml"
    large = ROOT / "scenarios" / "cluster_1000.yaml"
    plan_s = []
    for _ in range(3):
        t0 = time.perf_counter()
        build(large, "paris+elsa", num_queries=1)
        plan_s.append(time.perf_counter() - t0)
    q8, s8 = _qps(small, n_small, repeats)
    q1000, s1000 = _qps(large, n_large, repeats)
    return {
        "qps_8": q8,
        "qps_1000": q1000,
        "ratio": q1000 / q8,
        "n_small": n_small,
        "n_large": n_large,
        "build_1000_s": min(plan_s),
        "p95_ms_8": s8["latency_p95_ms"],
        "p95_ms_1000": s1000["latency_p95_ms"],
        "conserved_1000": s1000["conserved"],
        "utilization_1000": s1000["utilization"],
    }
