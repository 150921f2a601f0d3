"""Discrete-event simulator of a multi-GPU MIG inference server (no gymnasium here).

The heap holds ``(time_s, seq, event)``; arrivals come from the lazily generated query stream and
are merged with the heap, heap events first on ties. Each partition serves one query at a time
from its FIFO queue (push dispatch) or takes the oldest query it can serve from a central
per-model FIFO when it becomes idle (pull dispatch, FIFS).

``run_until_decision()`` advances to the next point where an outside policy must act (a query to
dispatch, when no dispatcher is attached, or a decision epoch) and returns it; ``dispatch()`` and
``reconfigure()`` apply decisions. ``run()`` drives a whole run with an attached dispatcher.
Events are in :mod:`.events`; re-partitioning and failures in :mod:`.capacity`;
static runs can skip this loop altogether (:mod:`mig_gym.sim.fast`).

Invariant (checked by ``check_conservation``): every arrived query is completed, rejected with a
reason, queued (partition queue, central queue or held while no partition can take it) or running.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Iterator, Sequence

import numpy as np

from mig_gym.hardware import GPUSpec, Layout
from mig_gym.metrics import Recorder, Unfinished
from mig_gym.sim.capacity import CapacityChanges, merge_faults
from mig_gym.sim.entities import GPU, ClassIndex, ClusterView, Partition, Plan, Query
from mig_gym.sim.events import (
    Completion,
    Decision,
    EpochTick,
    GPUFail,
    GPURecover,
    PushDispatcher,
    ReconfigDone,
)
from mig_gym.sim.static import StaticRunInfo, describe
from mig_gym.workload import QueryBlock

__all__ = ["Simulator", "Decision", "PushDispatcher", "REJECT_NOT_HOSTED", "REJECT_MEMORY"]

REJECT_NOT_HOSTED = "model_not_hosted"
REJECT_MEMORY = "batch_exceeds_partition_memory"


class Simulator(CapacityChanges):
    """The event loop and the server state. See the module docstring for the semantics.

    Args:
        gpu: hardware of every GPU.
        num_gpus: number of GPUs.
        tables: ``tables[(model, gpcs)][b]`` = profiled service time (s) of batch ``b``; ``inf``
            where the batch does not fit the partition's memory.
        slo_s: latency target per model index.
        stream: query blocks in arrival order.
        plan: the initial partition plan (installed at t=0 without downtime).
        recorder: metrics sink.
        dispatcher: push dispatcher; ``None`` makes every arrival a ``Decision``.
        central_queue: pull dispatch (FIFS) instead of push.
        fallback: dispatcher for re-dispatched queries when ``dispatcher`` is None.
        reconfig_s: downtime of a GPU reconfiguration after its running queries drain.
        service_cv: coefficient of variation of multiplicative log-normal service noise.
        noise_rng: generator for service noise (drawn per query in arrival order).
        faults: ``(gpu, down_at_s, up_at_s or None)`` triples; a GPU is down over the union of
            its intervals (:func:`~mig_gym.sim.capacity.merge_faults`).
        epoch_s: if set, a ``Decision("epoch")`` every ``epoch_s`` while arrivals remain.
        drain: after the last arrival, run until every query has finished.
    """

    def __init__(
        self,
        *,
        gpu: GPUSpec,
        num_gpus: int,
        tables: dict[tuple[int, int], Sequence[float]],
        slo_s: Sequence[float],
        stream: Iterator[QueryBlock],
        plan: Plan,
        recorder: Recorder,
        dispatcher: PushDispatcher | None = None,
        central_queue: bool = False,
        fallback: PushDispatcher | None = None,
        reconfig_s: float = 3.0,
        service_cv: float = 0.0,
        noise_rng: np.random.Generator | None = None,
        faults: Sequence[tuple[int, float, float | None]] = (),
        epoch_s: float | None = None,
        drain: bool = True,
        track_batches: bool = False,
    ) -> None:
        if len(plan.layouts) != num_gpus:
            raise ValueError(f"plan has {len(plan.layouts)} layouts for {num_gpus} GPUs")
        self.spec = gpu
        self.sizes = gpu.sizes
        self.tables = tables
        self.slo_s = tuple(slo_s)
        self.num_models = len(slo_s)
        self.rec = recorder
        self.dispatcher = dispatcher
        self.fallback = fallback if fallback is not None else dispatcher
        self.central = central_queue
        self.reconfig_s = reconfig_s
        self.drain = drain
        self.now = 0.0
        self.view = ClusterView(self)
        self.gpus = [GPU(i) for i in range(num_gpus)]
        self.index: dict[tuple[int, int], ClassIndex] = {}
        self.classes: list[list[tuple[int, ClassIndex]]] = [[] for _ in slo_s]  # per model
        self.central_q: list[deque[Query]] = [deque() for _ in slo_s]
        self.idle: list[dict[int, Partition]] = [{} for _ in slo_s]
        self.held: deque[Query] = deque()
        self._displaced: list[Query] = []  # victims and orphans of this instant, not yet routed
        self._fresh: list[Partition] = []  # partitions online this instant, not yet pulling
        self._settle_due = False
        self.active = 0  # arrived and not yet completed or rejected
        self.topology = 0  # bumped whenever partitions appear, vanish or change availability
        self.running = 0
        self.batch_counts: list[dict[int, int]] | None = (
            [{} for _ in slo_s] if track_batches else None
        )
        self._heap: list[tuple[float, int, object]] = []
        self._seq = 0
        self._uid = 0
        self._gen = [0] * num_gpus
        self._stream = stream
        self._blk_t: list[float] = []
        self._blk_m: list[int] = []
        self._blk_b: list[int] = []
        self._blk_i = 0
        self._next_id = 0
        self.last_arrival_s = 0.0
        self.arrivals_done = False
        self._cv = service_cv
        self._noise_rng = noise_rng
        self._noise: dict[int, float] = {}
        if service_cv > 0:
            self._sigma = math.sqrt(math.log1p(service_cv**2))
            if noise_rng is None:
                raise ValueError("service_cv > 0 needs a noise_rng")
        self._max_fit = {key: self._largest_fit(t) for key, t in tables.items()}
        self._epoch_s = epoch_s
        for g, (lay, mods) in enumerate(zip(plan.layouts, plan.models, strict=True)):
            self._install(self.gpus[g], lay, mods)
        self._servable = self._servable_batches()
        for g_idx, down, up in merge_faults(faults):
            self._push(down, GPUFail(g_idx))
            if up is not None:
                self._push(up, GPURecover(g_idx))
        if epoch_s is not None:
            self._push(epoch_s, EpochTick(1))
        self._load_block()

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _largest_fit(table: Sequence[float]) -> int:
        for b in range(len(table) - 1, 0, -1):
            if table[b] < math.inf:
                return b
        return 0

    def _push(self, t: float, ev: object) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, ev))

    def _load_block(self) -> None:
        blk = next(self._stream, None)
        while blk is not None and len(blk.arrival_s) == 0:  # empty blocks do not end the stream
            blk = next(self._stream, None)
        if blk is None:
            self.arrivals_done = True
            self._blk_t = []
            return
        self._blk = blk
        self._blk_t = blk.arrival_s.tolist()
        self._blk_m = blk.model.tolist()
        self._blk_b = blk.batch.tolist()
        self._blk_i = 0
        if self._cv > 0:
            n = len(self._blk_t)
            f = self._noise_rng.lognormal(-(self._sigma**2) / 2, self._sigma, n)  # type: ignore[union-attr]
            self._blk_noise = f.tolist()

    def _servable_batches(self) -> list[int]:
        """Largest batch per model that some partition of the plan (or pending plan) can serve."""
        best = [0] * self.num_models
        self._hosted: set[int] = set()
        for g in self.gpus:
            lay, mods = g.target if g.target is not None else (g.layout, g.models)
            if lay is None:
                continue
            for pl, m in zip(lay.placements, mods, strict=True):
                if m >= 0:
                    self._hosted.add(m)
                    best[m] = max(best[m], self._max_fit.get((m, pl.profile.gpcs), 0))
        return best

    # ------------------------------------------------------------------ partitions online/offline
    def _install(
        self, g: GPU, layout: Layout, models: tuple[int, ...], defer: bool = False
    ) -> None:
        """Bring ``g`` up with ``layout``; with ``defer``, its partitions start pulling work only
        when the instant settles (so that every GPU coming online at once competes fairly)."""
        self.topology += 1
        g.layout, g.models, g.target, g.state = layout, tuple(models), None, GPU.UP
        g.partitions = []
        for pl, m in zip(layout.placements, models, strict=True):
            k = pl.profile.gpcs
            self._uid += 1
            table = self.tables.get((m, k), ()) if m >= 0 else ()
            p = Partition(self._uid, g.index, k, pl.start, m, table)
            p.est_free_s = self.now
            p.available = m >= 0
            g.partitions.append(p)
            self.rec.capacity(self.now, k, k)
            if m < 0:
                continue
            if (m, k) not in self.index:
                self.index[(m, k)] = ClassIndex()
                self.classes[m] = sorted((kk, ix) for (mm, kk), ix in self.index.items() if mm == m)
            p.index = self.index[(m, k)]
            p.index.add(p)
            if defer:
                self._fresh.append(p)
                self._settle_due = True
            else:
                self._became_idle(p)

    def _take_offline(self, g: GPU) -> list[Query]:
        """Mark ``g``'s partitions unavailable; return their queued (not running) queries."""
        self.topology += 1
        out: list[Query] = []
        for p in g.partitions:
            if p.model >= 0:
                self.index[(p.model, p.gpcs)].remove(p)
                self.idle[p.model].pop(p.uid, None)
            p.available = False
            out.extend(p.queue)
            p.queue.clear()
            p.queued_s = 0.0
        return out

    # ------------------------------------------------------------------ service
    def _start(self, p: Partition, q: Query) -> None:
        est = p.lat[q.batch]
        actual = est * self._noise[q.id] if self._cv > 0 else est
        p.running = q
        p.run_start_s = self.now
        p.run_end_s = self.now + actual
        p.est_free_s = self.now + est + p.queued_s
        self.running += 1
        self._seq += 1
        heapq.heappush(self._heap, (p.run_end_s, self._seq, Completion(p, q)))
        p.index.push(p)  # type: ignore[union-attr]

    def _became_idle(self, p: Partition) -> None:
        """``p`` has nothing running: start its next query or mark it idle."""
        if self.central:
            dq = self.central_q[p.model]
            for i, q in enumerate(dq):
                if p.fits(q.batch):
                    del dq[i]
                    self._start(p, q)
                    return
            self.idle[p.model][p.uid] = p
            p.est_free_s = self.now
            p.index.push(p)  # type: ignore[union-attr]
            return
        if p.queue:
            q = p.queue.popleft()
            p.queued_s = p.queued_s - p.lat[q.batch] if p.queue else 0.0
            self._start(p, q)
        else:
            p.est_free_s = self.now
            p.index.push(p)  # type: ignore[union-attr]

    def dispatch(self, q: Query, p: Partition | None) -> None:
        """Send ``q`` to partition ``p`` (push), or hold/reject it if ``p`` is None."""
        if p is None:
            self._hold_or_reject(q)
            return
        if not p.available or p.model != q.model or not p.fits(q.batch):
            raise ValueError(f"partition {p} cannot take {q}")
        if p.running is None and not p.queue:
            self._start(p, q)
        else:
            est = p.lat[q.batch]
            p.queue.append(q)
            p.queued_s += est
            # If the running query overran its estimate, the queue still lies ahead of q.
            p.est_free_s = max(p.est_free_s + est, self.now + p.queued_s)
            p.index.push(p)  # type: ignore[union-attr]

    def _route(self, q: Query, dispatcher: PushDispatcher | None) -> None:
        if q.batch > self._servable[q.model]:
            self._reject(q)
        elif self.central:
            for p in self.idle[q.model].values():
                if p.fits(q.batch):
                    del self.idle[q.model][p.uid]
                    self._start(p, q)
                    return
            self.central_q[q.model].append(q)
        else:
            self.dispatch(q, dispatcher.choose(q, self.view))  # type: ignore[union-attr]

    def _hold_or_reject(self, q: Query) -> None:
        if q.batch > self._servable[q.model]:
            self._reject(q)
        else:
            self.held.append(q)

    def _reject(self, q: Query) -> None:
        reason = REJECT_MEMORY if q.model in self._hosted else REJECT_NOT_HOSTED
        self.rec.on_reject(q.id, q.model, reason, self.now)
        self.active -= 1
        self._noise.pop(q.id, None)

    # ------------------------------------------------------------------ main loop
    def _complete(self, ev: Completion) -> None:
        p, q = ev.partition, ev.query
        if p.running is not q:
            return  # aborted by a failure
        p.running = None
        self.running -= 1
        self.active -= 1
        now = self.now
        self.rec.served(now, p.gpcs, now - p.run_start_s)
        self.rec.on_complete(q.id, q.model, q.arrival_s, now, self.slo_s[q.model])
        if self._cv > 0:
            del self._noise[q.id]
        g = self.gpus[p.gpu]
        if g.state == GPU.UP:
            self._became_idle(p)
        elif g.state == GPU.DRAINING and not any(x.running for x in g.partitions):
            self._begin_downtime(g)

    def _handle(self, ev: object) -> Decision | None:
        """Every event but completions (the hot path handles those in ``run_until_decision``)."""
        if isinstance(ev, ReconfigDone):
            g = self.gpus[ev.gpu]
            if ev.gen == self._gen[ev.gpu] and g.state == GPU.RECONFIGURING:
                self._on_reconfig_done(g)
        elif isinstance(ev, GPUFail):
            self._on_fail(self.gpus[ev.gpu])
        elif isinstance(ev, GPURecover):
            self._on_recover(self.gpus[ev.gpu])
        elif isinstance(ev, EpochTick) and not self.arrivals_done:
            self._push(self.now + self._epoch_s, EpochTick(ev.index + 1))  # type: ignore[operator]
            if self._settle_due:
                self._settle()
            return Decision("epoch", self.now, epoch=ev.index)
        return None

    def _finished(self) -> bool:
        if not self.arrivals_done:
            return False
        return not self.drain or self.active == 0 or not self._heap

    def run_until_decision(self) -> Decision | None:
        """Advance to the next decision; ``None`` when the run is over."""
        heap = self._heap
        while True:
            if self._settle_due and not (heap and heap[0][0] <= self.now):
                self._settle()  # every event of this instant is in
            t_arr = self._blk_t[self._blk_i] if not self.arrivals_done else math.inf
            if heap and heap[0][0] <= t_arr:
                if self.arrivals_done and self._finished():
                    return None
                t, _, ev = heapq.heappop(heap)
                self.now = t
                if type(ev) is Completion:
                    self._complete(ev)
                    continue
                d = self._handle(ev)
                if d is not None:
                    return d
                continue
            if t_arr == math.inf:
                return None
            i = self._blk_i
            q = Query(self._next_id, t_arr, self._blk_m[i], self._blk_b[i])
            self._next_id += 1
            self.now = t_arr
            self.last_arrival_s = t_arr
            if self._cv > 0:
                self._noise[q.id] = self._blk_noise[i]
            self._blk_i = i + 1
            if self._blk_i == len(self._blk_t):
                self._load_block()
            self.active += 1
            self.rec.on_arrival(t_arr)
            if self.batch_counts is not None:
                c = self.batch_counts[q.model]
                c[q.batch] = c.get(q.batch, 0) + 1
            if self.dispatcher is None and not self.central:
                if q.batch > self._servable[q.model]:
                    self._reject(q)
                    continue
                return Decision("dispatch", t_arr, query=q)
            self._route(q, self.dispatcher)

    def run(self) -> None:
        """Run to the end with the attached dispatcher (epoch decisions are ignored)."""
        if self.dispatcher is None and not self.central:
            raise RuntimeError("run() needs a dispatcher: use run_until_decision() and dispatch()")
        while self.run_until_decision() is not None:
            pass

    def take_arrivals(self) -> Iterator[QueryBlock]:
        """Hand the whole arrival stream to a caller that simulates it another way (the fast
        path); only before the first arrival. Afterwards the simulator has no arrivals left."""
        if self._next_id != 0 or self.last_arrival_s != 0.0:
            raise RuntimeError("take_arrivals() after arrivals were processed")
        if self.arrivals_done:
            return
        first, self._blk_t, self.arrivals_done = self._blk, [], True
        yield first
        for blk in self._stream:
            if len(blk.arrival_s):
                yield blk

    def static_run(self) -> StaticRunInfo:
        """Whether this run is static and what a closed-form simulation of it needs (read-only,
        see :mod:`.static`)."""
        started = bool(self._next_id or self.last_arrival_s or self.now)
        return describe(self, noise=self._cv > 0, scheduled=bool(self._heap), started=started,
                        servable=self._servable, hosted=self._hosted)  # fmt: skip

    def finish_static(self, end_s: float, last_arrival_s: float, queries: int) -> None:
        """Take the final state of a static run simulated elsewhere (after ``take_arrivals``):
        ``queries`` arrived, each completed or rejected (recorded in ``rec``), the last at
        ``last_arrival_s``; the run ended at ``end_s``."""
        if not self.arrivals_done or self.active or self.running:
            raise RuntimeError("finish_static() needs the arrivals taken and nothing in flight")
        self.now, self.last_arrival_s, self._next_id = end_s, last_arrival_s, queries

    # ------------------------------------------------------------------ accounting
    def in_service_gpc_s(self) -> dict[int, float]:
        """Busy GPC-seconds of the services still running (for a summary taken mid-run)."""
        out = dict.fromkeys(self.sizes, 0.0)
        for g in self.gpus:
            for p in g.partitions:
                if p.running is not None:
                    out[p.gpcs] += p.gpcs * (self.now - p.run_start_s)
        return out

    def queued_count(self) -> int:
        return (
            sum(len(p.queue) for g in self.gpus for p in g.partitions)
            + sum(len(d) for d in self.central_q)
            + len(self.held)
            + len(self._displaced)
        )

    def unfinished(self) -> Unfinished:
        """The queries still in the system (queued, held or running) at ``now``."""
        qs = [q for g in self.gpus for p in g.partitions for q in p.queue]
        qs += [p.running for g in self.gpus for p in g.partitions if p.running is not None]
        qs += [q for d in self.central_q for q in d]
        qs += list(self.held) + self._displaced
        qid = np.fromiter((q.id for q in qs), np.int64, len(qs))
        model = np.fromiter((q.model for q in qs), np.int64, len(qs))
        arrival = np.fromiter((q.arrival_s for q in qs), np.float64, len(qs))
        late = self.now - arrival > np.asarray(self.slo_s, np.float64)[model]
        return Unfinished(qid, model, late)

    def check_conservation(self) -> None:
        """Raise AssertionError if a query was lost or double counted."""
        queued, running = self.queued_count(), self.running
        r = self.rec
        total = r.completed + sum(r.rejected.values()) + queued + running
        if total != r.arrived or self.active != queued + running:
            raise AssertionError(
                f"conservation broken: arrived {r.arrived} != completed {r.completed} + rejected "
                f"{sum(r.rejected.values())} + queued {queued} + running {running}"
            )
