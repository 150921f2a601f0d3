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
Static runs apply the same rule through its fast form (:func:`_elsa_fast`, below ``choose``: the
same scan and ties, on the fast path's per-class heaps of free times), kept equal to ``choose``
query by query by tests/test_fastpath.py. Its compiled form (numba, for the epoch fast path:
:mod:`.kernels`) is the same scan on flat arrays, checked against it by tests/test_compiled.py.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable

import numpy as np

from mig_gym.policies.dispatch.fastform import FastRule
from mig_gym.policies.predict import DispatchPredict
from mig_gym.sim.compiled import CompiledLoop
from mig_gym.sim.entities import ClusterView, Partition, Query
from mig_gym.sim.event_core import CoreRule
from mig_gym.sim.fast import Classes, FastLoop, loop_outputs

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


class ELSA(FastRule, DispatchPredict):
    """ELSA dispatcher.

    Args:
        alpha: fraction of the SLA a pick must fit in (design default 1.0).
        home_of: optional ``(model, batch) -> size`` (PARIS's home size); with ``scan_from="home"``
            the scan starts there instead of at the smallest size.
        scan_from: ``"smallest"`` (the paper's GPU(1) start) or ``"home"``.
    """

    name = "elsa"
    central_queue = False
    FAST_PARAMS = ("alpha", "scan_from", "home_of")  # all three are read by _elsa_fast

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

    def _fast_loop(self, slo_s: tuple[float, ...]) -> FastLoop:
        home = self.home_of if self.scan_from == "home" else None
        budgets = [self.alpha * s for s in slo_s]  # the budget at dispatch time, i.e. arrival

        if home is None:  # the paper's scan from the smallest size: a shorter loop, same picks

            def loop(ts: list, ms: list, bs: list, ids: list, classes: Classes) -> tuple:
                return _elsa_fast_smallest(ts, ms, bs, classes, budgets)

            return loop

        def loop(ts: list, ms: list, bs: list, ids: list, classes: Classes) -> tuple:
            return _elsa_fast(ts, ms, bs, classes, budgets, home)

        return loop

    def _event_form(self, slo_s: tuple[float, ...]) -> CoreRule:
        home = self.home_of if self.scan_from == "home" else None
        return CoreRule(2, np.array([self.alpha * s for s in slo_s]), home)

    def _compiled_loop(self, slo_s: tuple[float, ...]) -> CompiledLoop:
        # numba (about 0.2 s to import) is loaded only when an epoch run asks for this form
        from mig_gym.policies.dispatch.kernels import elsa_loop

        home = self.home_of if self.scan_from == "home" else None
        return elsa_loop(np.array([self.alpha * s for s in slo_s]), home)


def _elsa_fast(
    ts: list,
    ms: list,
    bs: list,
    classes: Classes,
    budgets: list[float],
    home: Callable[[int, int], int] | None,
) -> tuple:
    """ELSA's fast form: the first class from the scan start whose best partition meets
    ``alpha * SLA``; else the smallest estimated time to done overall (as ``choose``)."""
    end, size, serv, e_add, k_add, s_add = loop_outputs()
    replace = heapq.heapreplace
    inf = math.inf
    for t, m, b in zip(ts, ms, bs, strict=True):
        budget = budgets[m]
        start = home(m, b) if home is not None else 0
        pick = first_ok = None
        above = False  # a class at or above the start size fits the batch
        best = inf
        for k, lat, h in classes[m]:
            ell = lat[b]
            if ell == inf:
                continue
            w = h[0] - t
            td = (w if w > 0.0 else 0.0) + ell
            if k >= start:
                if td <= budget:
                    pick = (h, k, ell)
                    break
                above = True
            elif first_ok is None and td <= budget:
                first_ok = (h, k, ell)
            if td < best:
                best, cand = td, (h, k, ell)
        if pick is None:
            pick = first_ok if (start and not above and first_ok is not None) else cand
        h, k, ell = pick
        f = h[0]
        x = (f if f > t else t) + ell
        replace(h, x)
        e_add(x)
        k_add(k)
        s_add(ell)
    return end, size, serv


def _elsa_fast_smallest(
    ts: list, ms: list, bs: list, classes: Classes, budgets: list[float]
) -> tuple:
    """``_elsa_fast`` scanning from the smallest size (no home size): the first class whose best
    partition meets the budget, else the smallest estimated time to done (ties to the smaller)."""
    end, size, serv, e_add, k_add, s_add = loop_outputs()
    replace = heapq.heapreplace
    inf = math.inf
    for t, m, b in zip(ts, ms, bs, strict=True):
        budget = budgets[m]
        best = inf
        for k, lat, h in classes[m]:
            ell = lat[b]
            if ell == inf:
                continue
            f = h[0]
            w = f - t
            td = (w if w > 0.0 else 0.0) + ell
            if td <= budget:
                break
            if td < best:
                best, bh, bk, bl, bf = td, h, k, ell, f
        else:
            h, k, ell, f = bh, bk, bl, bf
        x = (f if f > t else t) + ell
        replace(h, x)
        e_add(x)
        k_add(k)
        s_add(ell)
    return end, size, serv
