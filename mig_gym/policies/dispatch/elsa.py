"""ELSA: SLA-aware dispatch to the smallest partition that can still meet the query's SLA.

Kim, Choi and Rhu, "PARIS and ELSA: An Elastic Scheduling Algorithm for Reconfigurable Multi-GPU
Inference Servers", DAC 2022. For query q of batch b arriving at ``now`` and each partition p
hosting q's model: ``t_wait(p)`` = remaining profiled work on p, ``t_exec(p)`` = profiled latency of
b on p's size, ``t_done = t_wait + t_exec``. Sizes are scanned from the smallest (or from q's PARIS
home size); in the first size class with a partition whose ``t_done <= alpha * SLA - (now -
arrival)`` the one with the smallest ``t_done`` is picked; if no partition qualifies, the smallest
``t_done`` overall (all sizes, also those below the home size).

Within a size class every partition has the same ``t_exec``, so the class minimum of ``t_done`` is
the partition with the earliest ``est_free_s``: the simulator's per-class heap gives it in
O(log P), and a decision costs O(sizes x log P) instead of O(P).
Static runs apply the same rule in :func:`mig_gym.sim.fast._elsa` (kept equal by
tests/test_fastpath.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from mig_gym.policies.predict import DispatchPredict
from mig_gym.sim.entities import ClusterView, Partition, Query

__all__ = ["ELSA", "elsa_choice"]


def elsa_choice(candidates: list[tuple[int, float]], budget_s: float) -> int | None:
    """The pure rule: ``candidates`` are ``(size, t_done)`` of each size class's best partition
    in scan order; return the index of the pick (first class within budget, else the global
    minimum, ties to the earlier class)."""
    if not candidates:
        return None
    for i, (_, t_done) in enumerate(candidates):
        if t_done <= budget_s:
            return i
    return min(range(len(candidates)), key=lambda i: (candidates[i][1], i))


class ELSA(DispatchPredict):
    """ELSA dispatcher.

    Args:
        alpha: fraction of the SLA a pick must fit in (design default 1.0).
        home_of: optional ``(model, batch) -> size`` (PARIS's home size); with ``scan_from="home"``
            the scan starts there instead of at the smallest size.
        scan_from: ``"smallest"`` (the paper's GPU(1) start) or ``"home"``.
    """

    name = "elsa"
    central_queue = False

    def __init__(
        self,
        alpha: float = 1.0,
        scan_from: str = "smallest",
        home_of: Callable[[int, int], int] | None = None,
    ) -> None:
        if alpha <= 0:
            raise ValueError(f"ELSA alpha must be > 0, got {alpha}")
        if scan_from not in ("smallest", "home"):
            raise ValueError(f"ELSA scan_from must be 'smallest' or 'home', got {scan_from!r}")
        self.alpha = alpha
        self.scan_from = scan_from
        self.home_of = home_of

    def choose(self, query: Query, view: ClusterView) -> Partition | None:
        now, b, m = view.now, query.batch, query.model
        start = 0
        if self.scan_from == "home" and self.home_of is not None:
            start = self.home_of(m, b)
        budget = self.alpha * view.slo_s[m] - (now - query.arrival_s)
        cands: list[tuple[int, float]] = []
        parts: list[Partition] = []
        for k, idx in view.classes(m):  # size classes hosting m, smallest first
            p = idx.best()
            if p is None or not p.fits(b):
                continue
            wait = p.est_free_s - now
            t_done = (wait if wait > 0.0 else 0.0) + p.lat[b]
            if k >= start and t_done <= budget:  # first feasible class from the start: stop here
                return p
            cands.append((k, t_done))
            parts.append(p)
        if start and all(k < start for k, _ in cands):  # nothing at or above home: scan all
            i = elsa_choice(cands, budget)
        else:  # none qualifies: the smallest t_done overall (below the home size too)
            i = elsa_choice(cands, -math.inf)
        return parts[i] if i is not None else None
