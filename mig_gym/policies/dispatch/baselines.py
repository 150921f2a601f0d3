"""Per-query dispatchers (push) and the FIFS marker (pull).

A dispatcher's ``choose(query, view)`` returns the partition that should serve the query, or
``None`` when no available partition can; it never changes the simulator. Every dispatcher also
has an SB3-style ``predict`` for the environments once bound to one (``ELSA().bind(env)``).
EarliestFinish and FirstFree also have a fast form for static runs (``fast_form``, see
:mod:`.fastform`), written beside their ``choose`` with the same ties; tests/test_fastpath.py keeps
the two equal query by query; their compiled forms (numba, for the epoch fast path:
:mod:`.kernels`) are checked against those loops by tests/test_compiled.py. FIFS's fast
form is the simulator's pull mode (:func:`mig_gym.sim.fast.pull_loop`).
"""

from __future__ import annotations

import heapq
import math

import numpy as np

from mig_gym.policies.dispatch.fastform import FastRule
from mig_gym.policies.predict import DispatchPredict
from mig_gym.sim.compiled import CompiledLoop
from mig_gym.sim.entities import ClusterView, Partition, Query
from mig_gym.sim.event_core import CoreRule
from mig_gym.sim.fast import Classes, FastLoop, loop_outputs

__all__ = [
    "FIFS",
    "FirstFree",
    "EarliestFinish",
    "JoinShortestQueue",
    "RoundRobin",
    "RandomDispatch",
    "estimated_finish",
]


def estimated_finish(p: Partition, batch: int, now: float) -> float:
    """Profiled completion of a batch sent to ``p`` now: its backlog plus the batch's latency."""
    return max(p.est_free_s, now) + p.lat[batch]


class FIFS(DispatchPredict):
    """First-idle-first-serve (the paper's baseline): a central FIFO per model; an idle partition
    takes the oldest query it can serve. Implemented by the simulator's pull mode."""

    name = "fifs"
    central_queue = True

    def choose(self, query: Query, view: ClusterView) -> Partition | None:  # used for re-dispatch
        return EarliestFinish().choose(query, view)


class EarliestFinish(FastRule, DispatchPredict):
    """Send each query to the partition with the earliest estimated finish; ties go to the smaller
    partition. Cost O(sizes x log P) through the simulator's per-class index."""

    name = "earliest_finish"
    central_queue = False

    def choose(self, query: Query, view: ClusterView) -> Partition | None:
        best, best_t = None, math.inf
        now, b = view.now, query.batch
        for _, idx in view.classes(query.model):  # hot path: kept flat on purpose
            p = idx.best()
            if p is None:
                continue
            t = p.est_free_s if p.est_free_s > now else now
            t += p.lat[b]  # inf where the batch does not fit
            if t < best_t:
                best, best_t = p, t
        return best

    def _fast_loop(self, slo_s: tuple[float, ...]) -> FastLoop:
        return _earliest_finish

    def _event_form(self, slo_s: tuple[float, ...]) -> CoreRule:
        return CoreRule(0)

    def _compiled_loop(self, slo_s: tuple[float, ...]) -> CompiledLoop:
        # numba (about 0.2 s to import) is loaded only when an epoch run asks for this form
        from mig_gym.policies.dispatch.kernels import EARLIEST_FINISH, push_loop

        return push_loop(EARLIEST_FINISH)


def _earliest_finish(ts: list, ms: list, bs: list, ids: list, classes: Classes) -> tuple:
    """EarliestFinish's fast form: the smallest ``max(free, now) + latency`` over the classes'
    heap tops; ties to the smaller size (``<``, classes smallest first), as ``choose``."""
    end, size, serv, e_add, k_add, s_add = loop_outputs()
    replace = heapq.heapreplace
    inf = math.inf
    for t, m, b in zip(ts, ms, bs, strict=True):
        best = inf
        for k, lat, h in classes[m]:
            f = h[0]
            x = (f if f > t else t) + lat[b]
            if x < best:
                best, bh, bk, bl = x, h, k, lat[b]
        replace(bh, best)
        e_add(best)
        k_add(bk)
        s_add(bl)
    return end, size, serv


class JoinShortestQueue(DispatchPredict):
    """Fewest queued-plus-running queries; ties by estimated finish. O(P) per query."""

    name = "jsq"
    central_queue = False

    def choose(self, query: Query, view: ClusterView) -> Partition | None:
        best, key = None, (math.inf, math.inf)
        now, b = view.now, query.batch
        for p in view.partitions(query.model):
            if p.fits(b):
                k = (len(p.queue) + (p.running is not None), estimated_finish(p, b, now))
                if k < key:
                    best, key = p, k
        return best


class RoundRobin(DispatchPredict):
    """Cycle through the model's available partitions that can hold the batch."""

    name = "round_robin"
    central_queue = False

    def __init__(self) -> None:
        self._next: dict[int, int] = {}

    def choose(self, query: Query, view: ClusterView) -> Partition | None:
        parts = [p for p in view.partitions(query.model) if p.fits(query.batch)]
        if not parts:
            return None
        i = self._next.get(query.model, 0) % len(parts)
        self._next[query.model] = i + 1
        return parts[i]


class RandomDispatch(DispatchPredict):
    """Uniformly random available partition that can hold the batch."""

    name = "random"
    central_queue = False

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def choose(self, query: Query, view: ClusterView) -> Partition | None:
        parts = [p for p in view.partitions(query.model) if p.fits(query.batch)]
        if not parts:
            return None
        return parts[int(self.rng.integers(len(parts)))]


class FirstFree(FastRule, DispatchPredict):
    """Push form of FIFS: the partition that becomes free soonest (earliest ``est_free_s``, ties to
    the smaller partition), whatever the query's own run time there. With deterministic service it
    serves queries in arrival order on the first partition to free up, like the central queue."""

    name = "fifs_push"
    central_queue = False

    def choose(self, query: Query, view: ClusterView) -> Partition | None:
        best, best_t = None, math.inf
        now, b = view.now, query.batch
        for _, idx in view.classes(query.model):
            p = idx.best()
            if p is None or p.lat[b] == math.inf:
                continue
            t = p.est_free_s if p.est_free_s > now else now
            if t < best_t:
                best, best_t = p, t
        return best

    def _fast_loop(self, slo_s: tuple[float, ...]) -> FastLoop:
        return _first_free

    def _event_form(self, slo_s: tuple[float, ...]) -> CoreRule:
        return CoreRule(1)

    def _compiled_loop(self, slo_s: tuple[float, ...]) -> CompiledLoop:
        # numba (about 0.2 s to import) is loaded only when an epoch run asks for this form
        from mig_gym.policies.dispatch.kernels import FIRST_FREE, push_loop

        return push_loop(FIRST_FREE)


def _first_free(ts: list, ms: list, bs: list, ids: list, classes: Classes) -> tuple:
    """FirstFree's fast form: the class that frees up soonest among those the batch fits; ties to
    the smaller size, as ``choose``."""
    end, size, serv, e_add, k_add, s_add = loop_outputs()
    replace = heapq.heapreplace
    inf = math.inf
    for t, m, b in zip(ts, ms, bs, strict=True):
        best = inf
        for k, lat, h in classes[m]:
            if lat[b] == inf:
                continue
            f = h[0]
            s = f if f > t else t
            if s < best:
                best, bh, bk, bl = s, h, k, lat[b]
        x = best + bl
        replace(bh, x)
        e_add(x)
        k_add(bk)
        s_add(bl)
    return end, size, serv
