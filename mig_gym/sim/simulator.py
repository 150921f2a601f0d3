"""Discrete-event simulator of a multi-GPU MIG inference server (no gymnasium here).

The heap holds ``(time_s, seq, event)``; arrivals come from the lazily generated query stream and
are merged with the heap, heap events first on ties. Each partition serves one query at a time
from its FIFO queue (push dispatch) or takes the oldest query it can serve from a central
per-model FIFO when it becomes idle (pull dispatch, FIFS).

``run_until_decision()`` advances to the next point where an outside policy must act (a query to
dispatch, when no dispatcher is attached, or a decision epoch) and returns it; ``dispatch()`` and
``reconfigure()`` apply decisions. ``run()`` drives a whole run with an attached dispatcher.
This module is the event loop and the arrivals; the state and a query's path through it are in
:mod:`.server`, re-partitioning and failures in :mod:`.capacity`, events in :mod:`.events`,
arrival observers (``observe()``) in :mod:`.observers`; static runs can skip this loop
altogether (:mod:`mig_gym.sim.fast`).

Invariant (checked by ``check_conservation``): every arrived query is completed, rejected with a
reason, queued (partition queue, central queue or held while no partition can take it) or running.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator, Sequence

import numpy as np

from mig_gym.hardware import GPUSpec
from mig_gym.metrics import Recorder
from mig_gym.sim.capacity import CapacityChanges, merge_faults
from mig_gym.sim.entities import GPU, Plan, Query
from mig_gym.sim.epoch_hooks import EpochAccess
from mig_gym.sim.event_core import CompiledCore
from mig_gym.sim.events import (
    Decision,
    EpochTick,
    GPUFail,
    GPURecover,
    PushDispatcher,
    ReconfigDone,
)
from mig_gym.sim.observers import ArrivalObserver
from mig_gym.sim.server import REJECT_MEMORY, REJECT_NOT_HOSTED
from mig_gym.sim.static import StaticRunInfo, describe
from mig_gym.workload import QueryBlock

__all__ = ["Simulator", "Decision", "PushDispatcher", "REJECT_NOT_HOSTED", "REJECT_MEMORY"]


class Simulator(EpochAccess, CompiledCore, CapacityChanges):
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
        compiled: let the event loop run its stretches of arrivals and completions on the
            compiled core where the run allows it (:mod:`.event_core`; the same results);
            False keeps the Python loop.
        core_after: arrivals the Python loop handles before the compiled core takes over
            (default ``CORE_AFTER``): numba's import and the kernel's load (about 0.3 s and
            100 MB, once per process) cost more than the core saves on a short run.
    """

    CORE_AFTER = 20_000

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
        compiled: bool = True,
        core_after: int | None = None,
    ) -> None:
        if len(plan.layouts) != num_gpus:
            raise ValueError(f"plan has {len(plan.layouts)} layouts for {num_gpus} GPUs")
        super().__init__(
            gpu=gpu, num_gpus=num_gpus, tables=tables, slo_s=slo_s, recorder=recorder,
            dispatcher=dispatcher, central_queue=central_queue, fallback=fallback,
            reconfig_s=reconfig_s, service_cv=service_cv, noise_rng=noise_rng,
        )  # fmt: skip
        self.drain = drain
        self.compiled = compiled
        self.core_after = self.CORE_AFTER if core_after is None else core_after
        self._core: object | None = None  # the kernels module, once _core_setup allows it
        self._core_checked = False
        self._core_memo = None  # where the last stretch left the queues (event_pack._Memo)
        self._observers: list[ArrivalObserver] = []
        self._stream = stream
        self._blk_t: list[float] = []
        self._blk_m: list[int] = []
        self._blk_b: list[int] = []
        self._blk_i = 0
        self._next_id = 0
        self.last_arrival_s = 0.0
        self.arrivals_done = False
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

    def observe(self, observer: ArrivalObserver) -> None:
        """Register an arrival observer (:mod:`.observers`): ``observer.on_arrival(model,
        batch)`` is called for every later arrival, before it is dispatched (by the compiled
        core: ``on_block`` for each stretch's arrivals, before the next decision). A run with
        observers is not static (it takes the event loop)."""
        self._observers.append(observer)
        self._core, self._core_checked = None, False  # the compiled core's conditions, afresh

    @property
    def observers(self) -> tuple[ArrivalObserver, ...]:
        return tuple(self._observers)

    # ------------------------------------------------------------------ arrivals
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
            self._blk_noise_arr = f

    # ------------------------------------------------------------------ main loop
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
        core = self._core is not None
        pop = heapq.heappop
        while True:
            heap = self._heap
            if self._settle_due and not (heap and heap[0][0] <= self.now):
                self._settle()  # every event of this instant is in
            if core and self._core_stretch():
                continue  # up to the next instant the Python loop handles
            if self.arrivals_done:
                if not heap or self._finished():
                    return None
            elif not heap or heap[0][0] > self._blk_t[self._blk_i]:
                if not self._core_checked and self._next_id >= self.core_after:
                    self._core_setup()  # long enough a run for the compiled core
                    core = self._core is not None
                    continue
                d = self._arrivals()
                if d is not None:
                    return d
                continue
            t, _, ev, q = pop(heap)
            self.now = t
            if q is not None:  # a completion: (end, seq, partition, query)
                self._complete(ev, q)  # type: ignore[arg-type]
                continue
            d = self._handle(ev)
            if d is not None:
                return d

    def _arrivals(self) -> Decision | None:
        """The arrivals before the next heap event (heap events first on ties), each rejected,
        handed to the attached dispatcher (push: inline, as ``dispatch``), queued centrally
        (pull) or returned as a dispatch decision. Stops at the end of a block."""
        heap = self._heap
        nxt = heap[0][0] if heap else math.inf
        bt, bm, bb, i = self._blk_t, self._blk_m, self._blk_b, self._blk_i
        noise = self._blk_noise if self._cv > 0 else None
        rec, observers, servable, disp = self.rec, self._observers, self._servable, self.dispatcher
        choose = disp.choose if disp is not None and not self.central else None
        view, qid, end = self.view, self._next_id, len(bt)
        d = None
        while i < end and bt[i] < nxt:
            t, m, b = bt[i], bm[i], bb[i]
            q = Query(qid, t, m, b, noise[i] if noise is not None else 1.0)
            qid += 1
            i += 1
            self.now = t
            self.active += 1
            rec.on_arrival(t)
            for obs in observers:
                obs.on_arrival(m, b)
            if b > servable[m]:
                self._reject(q)
            elif choose is None:
                if self.central:
                    self._route(q, disp)  # may start it: its completion may come first
                    nxt = heap[0][0] if heap else math.inf
                    continue
                d = Decision("dispatch", t, query=q)
                break
            elif (p := choose(q, view)) is None:
                self.held.append(q)  # servable (checked above): held until capacity returns
            elif not (p.available and p.model == m and p.fits(b)):
                self.dispatch(q, p)  # raises: that partition cannot take it
            elif p.running is None and not p.queue:
                self._start(p, q)
                if p.run_end_s < nxt:
                    nxt = p.run_end_s
            else:  # queued, as ``dispatch`` does
                est = p.lat[b]
                p.queue.append(q)
                p.queued_s += est
                free = p.est_free_s + est  # exact without noise (see Server.dispatch)
                p.est_free_s = free if self._cv == 0 else max(free, t + p.queued_s)
                p.index.busy(p)  # type: ignore[union-attr]
        self._blk_i, self._next_id = i, qid
        self.last_arrival_s = self.now  # (called only when an arrival comes next)
        if i == end:
            self._load_block()
        return d

    def next_query(self) -> Query | None:
        """The next arriving query that needs an outside push dispatcher's choice (its arrival
        recorded: ``run_until_decision``'s dispatch decision, other decisions skipped), None
        when the run is over. Dispatch-v0's hot loop: between arrivals only completions (the
        usual case) are handled here, anything else by ``run_until_decision``."""
        if self._observers or self.central or self._cv > 0 or self.dispatcher is not None:
            return self._next_query_general()
        heap, pop, rec = self._heap, heapq.heappop, self.rec
        while True:
            if self._settle_due or self.arrivals_done:
                return self._next_query_general()
            i = self._blk_i
            t = self._blk_t[i]
            if heap and heap[0][0] <= t:  # heap events first on ties
                top = heap[0]
                if top[3] is None:  # not a completion
                    return self._next_query_general()
                pop(heap)
                self.now = top[0]
                self._complete(top[2], top[3])  # type: ignore[arg-type]
                continue
            m, b = self._blk_m[i], self._blk_b[i]
            q = Query(self._next_id, t, m, b)
            self._next_id += 1
            self._blk_i = i + 1
            self.now = self.last_arrival_s = t
            self.active += 1
            rec.on_arrival(t)
            if i + 1 == len(self._blk_t):
                self._load_block()
            if b > self._servable[m]:
                self._reject(q)
                continue
            return q

    def _next_query_general(self) -> Query | None:
        while (d := self.run_until_decision()) is not None:
            if d.kind == "dispatch":
                return d.query
        return None

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
