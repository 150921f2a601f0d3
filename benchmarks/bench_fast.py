"""Fast path versus event loop: queries/s of the same ``simulate()`` run on both loops, per
dispatch rule (PARIS layout on the paper scenario), and whether the two agree.

Agreement: identical counts (completed, rejected, SLA violations) and mean latency within 1e-9
relative (the loops round differently; see :mod:`mig_gym.sim.fast`).
"""

from __future__ import annotations

import time
from typing import Any

import mig_gym

POLICIES = ("paris+elsa", "paris+earliest_finish", "paris+fifs")


def _timed(scenario: str | None, policy: str, n: int, load: float, fast: bool, repeats: int):
    best, summary, loop = 0.0, None, ""
    for _ in range(repeats):
        t0 = time.perf_counter()
        run = mig_gym.build(scenario, policy, None, n, load, fast=fast)
        summary = run.execute()
        best = max(best, n / (time.perf_counter() - t0))
        loop = run.loop
    return best, summary, loop


def run(scenario: str | None, n: int, load: float, repeats: int) -> dict[str, Any]:
    out: dict[str, Any] = {"num_queries": n, "load": load, "repeats": repeats, "policies": {}}
    for policy in POLICIES:
        q_fast, s_fast, loop_fast = _timed(scenario, policy, n, load, True, repeats)
        q_ev, s_ev, loop_ev = _timed(scenario, policy, n, load, False, repeats)
        counts = ("completed", "rejected", "measured", "sla_violation_rate")  # rate of counts
        same = (
            all(getattr(s_fast, c) == getattr(s_ev, c) for c in counts)
            and abs(s_fast.latency_mean_ms / s_ev.latency_mean_ms - 1) <= 1e-9
        )
        out["policies"][policy] = {
            "qps_fast": q_fast,
            "qps_events": q_ev,
            "speedup": q_fast / q_ev,
            "loops": [loop_fast, loop_ev],
            "agree": same and (loop_fast, loop_ev) == ("fast", "events"),
            "latency_mean_ms": [s_fast.latency_mean_ms, s_ev.latency_mean_ms],
        }
    out["agree"] = all(p["agree"] for p in out["policies"].values())
    return out
