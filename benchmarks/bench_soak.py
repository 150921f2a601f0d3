"""Soak: a long run with GPU failures and periodic re-partitioning, in its own process.

The scenario is paper_resnet50 at load 1.1 with periodic PARIS (60 s epochs), a batch-size mix
that drifts every 15 simulated minutes (so re-planning really reconfigures GPUs), and a GPU
failure every 5 simulated minutes (down for 60 s, some of them during a reconfiguration). The
figures: queries/s, peak RSS, and whether every query is accounted for.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml

from benchmarks import bench_memory

RATE_QPS = 1200.0


def soak_scenario(num_queries: int) -> dict[str, Any]:
    horizon_s = num_queries / RATE_QPS * 1.2
    small = {"kind": "lognormal", "median": 4, "sigma": 0.7, "max": 128}
    large = {"kind": "lognormal", "median": 16, "sigma": 0.7, "max": 128}
    phases = [
        {"start_s": float(t), "batch": large if i % 2 == 0 else small}
        for i, t in enumerate(range(900, int(horizon_s), 900))
    ]
    # failures every 300 s on a rotating GPU, 1 s after an epoch boundary: often mid-reconfiguration
    faults = [
        {"gpu": i % 8, "down_at_s": float(t), "up_at_s": float(t + 60)}
        for i, t in enumerate(range(61, int(horizon_s), 300))
    ]
    return {
        "name": "soak_faults",
        "seed": 0,
        "cluster": {"gpu": "A100-80GB", "num_gpus": 8, "reconfig_s": 3.0},
        "models": [{"name": "resnet50", "slo_ms": 100}],
        "workload": {
            "arrivals": {"kind": "poisson", "rate_qps": RATE_QPS},
            "batch": {"kind": "lognormal", "median": 8, "sigma": 0.9, "max": 128},
            "phases": phases,
        },
        "policy": {
            "partitioner": {"kind": "periodic_paris", "epoch_s": 60},
            "dispatcher": {"kind": "elsa"},
        },
        "run": {"num_queries": num_queries, "warmup_queries": 1000, "window_s": 60},
        "faults": faults,
    }


def run(num_queries: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "soak.yaml"
        path.write_text(yaml.safe_dump(soak_scenario(num_queries)))
        res = bench_memory.measure(str(path), "scenario+scenario", num_queries, 1.1)
    res["faults"] = len(soak_scenario(num_queries)["faults"])
    return res
