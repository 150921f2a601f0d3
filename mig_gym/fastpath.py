"""The fast path: static runs simulated without an event heap.

When the partition plan cannot change during the run (no faults, no re-planning epochs) and
service times are the profiled ones (``workload.service_cv: 0``), a query's completion time is
fixed the moment it is dispatched by one of the closed-form rules below: earliest finish, ELSA or
first free (push), or FIFS's central queue when every partition of a model can hold every batch
the model's partitions serve (then it is plain FCFS). The partition serves FIFO, one query at a
time, so the query ends at ``max(partition free time, arrival) + latency``. A push rule needs
only the multiset of free times in each (model, size) class (partitions of a class are
interchangeable), a heap per class; FIFS a heap per model. One query costs a few plain-Python
operations per size class plus one heap replace; the metrics are recorded in bulk with numpy
(:meth:`Recorder.bulk`) once all completions up to the block's last arrival are known.

It simulates the same model as the event loop and is checked against it (tests/test_fastpath.py):
identical counts, latencies and time-series rows equal to floating-point rounding. The rounding
differs because the event loop keeps each partition's estimated free time as a running sum of
profiled latencies, while here it is the previous query's end time; and because sums are added in
a different order. ``simulate(..., fast=False)`` (``mig-gym run --event-loop``) forces the event
loop; :func:`unsupported` says why a run cannot take the fast path.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np

from mig_gym.cluster import GPU
from mig_gym.metrics import Completions, Rejections
from mig_gym.policies.dispatchers import EarliestFinish, FirstFree
from mig_gym.policies.elsa import ELSA
from mig_gym.simulator import REJECT_MEMORY, REJECT_NOT_HOSTED, Simulator

__all__ = ["run", "unsupported"]

# per model: (size, latency table, heap of the class's partition free times), smallest size first
Classes = list[list[tuple[int, list[float], list[float]]]]
# per model: heap of (free time, order it became free, size, latency table), one per partition
Pools = list[list[tuple[float, int, int, list[float]]]]


class _State(NamedTuple):
    classes: Classes
    pools: Pools
    seq: Iterator[int]  # numbers the queries in the order they start
    dispatcher: object
    slo_s: tuple[float, ...]


Loop = Callable[[list, list, list, _State], tuple[list, list, list]]

_INF = math.inf


def _earliest_finish(ts: list, ms: list, bs: list, st: _State) -> tuple:
    """EarliestFinish: the smallest ``max(free, now) + latency``; ties to the smaller size."""
    end: list[float] = []
    size: list[int] = []
    serv: list[float] = []
    e_add, k_add, s_add, replace = end.append, size.append, serv.append, heapq.heapreplace
    classes = st.classes
    for t, m, b in zip(ts, ms, bs, strict=True):
        best = _INF
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


def _first_free(ts: list, ms: list, bs: list, st: _State) -> tuple:
    """FirstFree: the class that frees up soonest among those the batch fits; ties to smaller."""
    end: list[float] = []
    size: list[int] = []
    serv: list[float] = []
    e_add, k_add, s_add, replace = end.append, size.append, serv.append, heapq.heapreplace
    classes = st.classes
    for t, m, b in zip(ts, ms, bs, strict=True):
        best = _INF
        for k, lat, h in classes[m]:
            if lat[b] == _INF:
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


def _elsa(ts: list, ms: list, bs: list, st: _State) -> tuple:
    """ELSA (see :mod:`mig_gym.policies.elsa`): the first class from the scan start whose best
    partition meets ``alpha * SLA``; else the smallest estimated time to done overall."""
    d, classes = st.dispatcher, st.classes
    assert isinstance(d, ELSA)
    home = d.home_of if d.scan_from == "home" else None
    budgets = [d.alpha * s for s in st.slo_s]  # ELSA's budget at dispatch time, which is arrival
    end: list[float] = []
    size: list[int] = []
    serv: list[float] = []
    e_add, k_add, s_add, replace = end.append, size.append, serv.append, heapq.heapreplace
    for t, m, b in zip(ts, ms, bs, strict=True):
        budget = budgets[m]
        start = home(m, b) if home is not None else 0
        pick = first_ok = None
        above = False  # a class at or above the start size fits the batch
        best = _INF
        for k, lat, h in classes[m]:
            ell = lat[b]
            if ell == _INF:
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


def _fifs(ts: list, ms: list, bs: list, st: _State) -> tuple:
    """FIFS (pull) when every partition of a model can hold every batch it serves: the central
    queue is then plain FCFS, so each query, in arrival order, takes the partition that is free
    soonest, and among idle ones the longest idle, as the event loop's idle list does. The
    ``(free time, order)`` key reproduces that order: partitions free at the same instant went
    idle in the order their queries started (at t=0, in installation order)."""
    end: list[float] = []
    size: list[int] = []
    serv: list[float] = []
    e_add, k_add, s_add, replace = end.append, size.append, serv.append, heapq.heapreplace
    pools, seq = st.pools, st.seq
    for t, m, b in zip(ts, ms, bs, strict=True):
        h = pools[m]
        f, _, k, lat = h[0]
        x = (f if f > t else t) + lat[b]
        replace(h, (x, next(seq), k, lat))
        e_add(x)
        k_add(k)
        s_add(lat[b])
    return end, size, serv


_LOOPS: dict[type, Loop] = {EarliestFinish: _earliest_finish, FirstFree: _first_free, ELSA: _elsa}


def unsupported(sim: Simulator) -> str | None:
    """Why ``sim`` cannot run on the fast path, or None if it can."""
    d = sim.dispatcher
    if sim.central:
        if why := _fifs_unsupported(sim):
            return why
    elif d is None:
        return "no dispatcher attached (an outside policy dispatches)"
    elif type(d) not in _LOOPS:
        return f"dispatcher {type(d).__name__} has no closed-form fast rule"
    if sim._cv > 0:
        return "service-time noise (workload.service_cv > 0)"
    if sim._heap:
        return "faults or decision epochs are scheduled"
    if not sim.drain:
        return "run.drain is false"
    if sim.batch_counts is not None:
        return "batch counts are tracked (a re-planning partitioner)"
    if sim._next_id or sim.last_arrival_s or sim.now:
        return "the run has already started"
    if any(g.state != GPU.UP for g in sim.gpus):
        return "a GPU is not up"
    return None


def _fifs_unsupported(sim: Simulator) -> str | None:
    """Pull dispatch (FIFS) is plain FCFS only if no partition skips a queued query it cannot
    hold; the dispatcher plays no part in it."""
    for m, top in enumerate(sim._servable):
        for k, _ in sim.classes[m]:
            if sim._max_fit[(m, k)] < top:
                return (
                    f"pull dispatch (FIFS) where a {k}g partition cannot hold every batch of "
                    f"{sim.rec.model_names[m]} that another partition can (queries can overtake "
                    "in the queue)"
                )
    return None


def run(sim: Simulator) -> None:
    """Simulate the whole arrival stream of a fresh ``sim`` and record it in ``sim.rec``; leaves
    ``sim`` as the event loop would at the end of the run (every query completed or rejected)."""
    why = unsupported(sim)
    if why is not None:
        raise ValueError(f"this run cannot take the fast path: {why}")
    disp = sim.dispatcher
    loop = _fifs if sim.central else _LOOPS[type(disp)]
    classes: Classes = [
        [(k, list(sim.tables[(m, k)]), [0.0] * len(ix.members)) for k, ix in sim.classes[m]]
        for m in range(sim.num_models)
    ]
    first = -(1 << 40)  # partitions idle at t=0 in installation order, before any query
    pools: Pools = [[] for _ in range(sim.num_models)]
    for g in sim.gpus:
        for p in g.partitions:
            if p.available:
                pools[p.model].append((0.0, first + p.uid, p.gpcs, list(p.lat)))
    for h in pools:
        heapq.heapify(h)
    state = _State(classes, pools, itertools.count(), disp, tuple(sim.slo_s))
    servable = np.asarray(sim._servable, dtype=np.int64)
    code_of = np.array([0 if m in sim._hosted else 1 for m in range(sim.num_models)], np.int64)
    reasons = (REJECT_MEMORY, REJECT_NOT_HOSTED)
    slo = np.asarray(sim.slo_s, dtype=np.float64)
    pend = _Pending()
    next_id, last_t = 0, 0.0
    for blk in sim.take_arrivals():
        t, model, batch = blk.arrival_s, blk.model.astype(np.int64), blk.batch.astype(np.int64)
        qid = np.arange(next_id, next_id + len(t), dtype=np.int64)
        ok = batch <= servable[model]
        if not ok.all():
            t_ok, m_ok, b_ok, id_ok = t[ok], model[ok], batch[ok], qid[ok]
        else:
            t_ok, m_ok, b_ok, id_ok = t, model, batch, qid
        end, size, serv = loop(t_ok.tolist(), m_ok.tolist(), b_ok.tolist(), state)
        pend.add(end, t_ok, id_ok, m_ok, size, serv)
        bad = ~ok
        rej = Rejections(t[bad], qid[bad], model[bad], code_of[model[bad]], reasons)
        last_t = float(t[-1])
        # every query that ends by the block's last arrival is known: later ones arrive later
        sim.rec.bulk(t, pend.pop_until(last_t, slo), rej)
        next_id += len(t)
    done = pend.pop_until(_INF, slo)
    sim.rec.bulk(np.empty(0), done, Rejections(*(np.empty(0, np.int64),) * 4, reasons))
    sim.now = max(last_t, pend.last_end)
    sim.last_arrival_s = last_t
    sim._next_id = next_id


class _Pending:
    """Completions computed but not yet recorded, in dispatch order."""

    def __init__(self) -> None:
        self.cols = [np.empty(0), np.empty(0)] + [np.empty(0, np.int64)] * 3 + [np.empty(0)]
        self.last_end = 0.0

    def add(self, end: list, arr: np.ndarray, qid: np.ndarray, model: np.ndarray, size: list,
            serv: list) -> None:  # fmt: skip
        new = [np.array(end), arr, qid, model, np.array(size, np.int64), np.array(serv)]
        if len(new[0]):
            self.last_end = max(self.last_end, float(new[0].max()))
        self.cols = [np.concatenate((a, b)) for a, b in zip(self.cols, new, strict=True)]

    def pop_until(self, t: float, slo: np.ndarray) -> Completions:
        """The completions ending at or before ``t``, sorted by end time (ties in dispatch
        order), removed from the pending set."""
        end = self.cols[0]
        now = end <= t
        take = [c[now] for c in self.cols]
        self.cols = [c[~now] for c in self.cols]
        order = np.argsort(take[0], kind="stable")
        return Completions(*(c[order] for c in take), slo)  # type: ignore[arg-type]
