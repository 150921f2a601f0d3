"""The fast path: static runs simulated without an event heap.

When the partition plan cannot change during the run (no faults, no re-planning epochs) and
service times are the profiled ones (``workload.service_cv: 0``), a query's completion time is
fixed the moment the rule serving it is applied: a push rule with a fast form, or FIFS's central
queue (pull; the order in which queries leave the queue depends only on older queries). The
partition serves FIFO, one query at a time, so the query ends at ``max(partition free time,
arrival) + latency``. A push rule needs only the multiset of free times in each (model, size)
class (partitions of a class are interchangeable), a heap per class; FIFS also needs the order in
which partitions went free (see :func:`pull_loop`). One query costs a few plain-Python operations
per size class plus one heap replace; the metrics are recorded in bulk with numpy
(:meth:`Recorder.bulk`) once all completions up to the block's last arrival are known.

This module is the driver only: it builds the heaps, feeds the rule's loop block by block and
records the results. A push rule's loop (a :class:`FastLoop`) is written beside its event-loop
``choose`` in :mod:`mig_gym.policies.dispatch` and handed over by the dispatcher's
``fast_form(slo_s)`` (None when the run must take the event loop); the pull loop of FIFS is the
simulator's own pull mode and lives here (:func:`pull_loop`).

It simulates the same model as the event loop and is checked against it (tests/test_fastpath.py):
query by query with exact-arithmetic ties (identical completion times), and on whole runs
(identical counts; latencies and time-series rows equal to floating-point rounding, which differs
because the event loop keeps each partition's estimated free time as a running sum of profiled
latencies, and because sums are added in another order). ``simulate(..., fast=False)``
(``mig-gym run --event-loop``) forces the event loop; :func:`unsupported` says why a run cannot
take the fast path, and a FIFS tie the fast path cannot order raises :class:`UnresolvedTie`, on
which the engine re-runs on the event loop.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from typing import Protocol

import numpy as np

from mig_gym.metrics import Completions, Rejections
from mig_gym.sim.simulator import REJECT_MEMORY, REJECT_NOT_HOSTED, Simulator
from mig_gym.sim.static import StaticRunInfo

__all__ = [
    "Classes",
    "FastLoop",
    "UnresolvedTie",
    "loop_outputs",
    "pull_loop",
    "run",
    "unsupported",
]

# per model, smallest size first: (size, latency table, heap of the class's partitions) where
# the heap holds free times (push rules) or (free time, *start key) tuples (FIFS, see pull_loop)
Classes = list[list[tuple[int, list[float], list]]]


class FastLoop(Protocol):
    """A rule's fast form: serve one block of arrivals (in arrival order: times, models, batches,
    query ids) on ``classes``, replacing the served partition's heap top by its new free time;
    return each query's end time, partition size and service time, in arrival order. Every
    query of the block fits some partition of its model (the driver rejects the others)."""

    def __call__(
        self, ts: list[float], ms: list[int], bs: list[int], ids: list[int], classes: Classes
    ) -> tuple[list[float], list[int], list[float]]: ...


_INF = math.inf


def loop_outputs() -> tuple[list, list, list, Callable, Callable, Callable]:
    """A loop's three result lists (end times, sizes, service times) and their appenders."""
    end: list[float] = []
    size: list[int] = []
    serv: list[float] = []
    return end, size, serv, end.append, size.append, serv.append


class UnresolvedTie(Exception):
    """Two partitions of different sizes free up at the same instant after a chain of exact ties
    deeper than the fast path tracks: only the event loop knows which goes first."""


_KEEP = 1 + 2 * 8 + 1  # free time and 8 levels of start order (memory O(partitions))


def pull_loop(ts: list, ms: list, bs: list, ids: list, classes: Classes) -> tuple:
    """FIFS (pull): an idle partition takes the oldest waiting query it can hold, and an arriving
    query the longest-idle partition that can hold it. So each query, in arrival order, gets the
    partition that frees up first among those that can hold it and that older queries have not
    taken, and the order among partitions free at the same instant is the event loop's: the order
    in which their queries started (completions are handled before arrivals, in start order).

    A partition's heap key is ``(free time, *start key)``. A query started by its own arrival has
    start key ``(arrival, 1, query id)``; one started when its partition freed up at ``f`` has
    ``(f, 0, *previous start key)``, cut to 8 levels. Comparing keys
    lexicographically reproduces the event loop's order unless two partitions of different sizes
    tie over the whole kept depth: then :class:`UnresolvedTie` is raised (the engine re-runs on
    the event loop). Within a size class a tie does not matter (same latency).

    This loop lives here, not beside :class:`~mig_gym.policies.dispatch.baselines.FIFS`, because
    FIFS is the simulator's pull mode, not a rule: the event loop never asks the FIFS object where
    a query goes; :mod:`mig_gym.sim.simulator` itself keeps the central queue and decides which
    idle partition takes which query, and the order reproduced here (completions before
    arrivals, in start order; longest-idle partition first) is that event loop's order."""
    end, size, serv, e_add, k_add, s_add = loop_outputs()
    replace = heapq.heapreplace
    for i, t, m, b in zip(ids, ts, ms, bs, strict=True):
        f = _INF
        for k, lat, h in classes[m]:
            ell = lat[b]
            if ell == _INF:
                continue
            top = h[0]
            tf = top[0]
            if tf < f:
                f, best, bh, bk, bl = tf, top, h, k, ell
            elif tf == f:  # the same free time: the start keys decide
                if top < best:
                    best, bh, bk, bl = top, h, k, ell
                elif not best < top:
                    raise UnresolvedTie(f"query {i}: partitions of two sizes tie at {tf!r} s")
        if f <= t:  # idle when the query arrived: started by the arrival
            x = t + bl
            replace(bh, (x, t, 1, i))
        else:  # started when the partition freed up, after the previous start
            x = f + bl
            replace(bh, (x, f, 0, *best[1 : _KEEP - 2]))  # type: ignore[index]
        e_add(x)
        k_add(bk)
        s_add(bl)
    return end, size, serv


def unsupported(sim: Simulator) -> str | None:
    """Why ``sim`` cannot run on the fast path, or None if it can."""
    info = sim.static_run()
    if not info.central and _push_loop(info) is None:  # pull dispatch (FIFS) needs no dispatcher
        d = info.dispatcher
        if d is None:
            return "no dispatcher attached (an outside policy dispatches)"
        if getattr(d, "fast_form", None) is None:
            return f"dispatcher {type(d).__name__} has no closed-form fast rule"
        blockers = ", ".join(getattr(d, "fast_blockers", list)())
        return f"dispatcher {type(d).__name__} has no closed-form fast rule for {blockers}"
    return info.not_static


def run(sim: Simulator) -> None:
    """Simulate the whole arrival stream of a fresh ``sim`` and record it in ``sim.rec``; leaves
    ``sim`` as the event loop would at the end of the run (every query completed or rejected)."""
    why = unsupported(sim)
    if why is not None:
        raise ValueError(f"this run cannot take the fast path: {why}")
    info = sim.static_run()
    loop = pull_loop if info.central else _push_loop(info)
    assert loop is not None
    # every partition is idle at t=0; FIFS orders them as installed
    classes: Classes = [
        [(k, list(lat), [(0.0, -1.0, 1, u) if info.central else 0.0 for u in uids])
         for k, lat, uids in per_model]
        for per_model in info.classes
    ]  # fmt: skip
    servable = np.asarray(info.servable, dtype=np.int64)
    code_of = np.array([0 if m in info.hosted else 1 for m in range(len(info.slo_s))], np.int64)
    reasons = (REJECT_MEMORY, REJECT_NOT_HOSTED)
    slo = np.asarray(info.slo_s, dtype=np.float64)
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
        end, size, serv = loop(t_ok.tolist(), m_ok.tolist(), b_ok.tolist(), id_ok.tolist(), classes)
        pend.add(end, t_ok, id_ok, m_ok, size, serv)
        bad = ~ok
        rej = Rejections(t[bad], qid[bad], model[bad], code_of[model[bad]], reasons)
        last_t = float(t[-1])
        # every query that ends by the block's last arrival is known: later ones arrive later
        sim.rec.bulk(t, pend.pop_until(last_t, slo), rej)
        next_id += len(t)
    done = pend.pop_until(_INF, slo)
    sim.rec.bulk(np.empty(0), done, Rejections(*(np.empty(0, np.int64),) * 4, reasons))
    sim.finish_static(max(last_t, pend.last_end), last_t, next_id)


def _push_loop(info: StaticRunInfo) -> FastLoop | None:
    """The attached push dispatcher's fast form (None if it has none for its parameters)."""
    form = getattr(info.dispatcher, "fast_form", None)
    return form(info.slo_s) if form is not None else None


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
