"""The server's state and the path of one query through it (no event loop here).

:class:`Server` holds the GPUs, their partitions, the per-(model, size) class indexes, the queues
(per partition, central per model for pull dispatch, held) and the counters; it brings partitions
online and takes them offline, and moves a query along: route it (push dispatch or the central
queue), queue it, start it (with its service-time noise), complete it, or reject it with a
reason. It schedules completions on the event heap but never pops it: the event loop, arrivals
and decisions are :class:`~mig_gym.sim.simulator.Simulator`'s, which is a ``Server``.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Sequence

import numpy as np

from mig_gym.hardware import GPUSpec, Layout
from mig_gym.metrics import Recorder, Unfinished
from mig_gym.sim.entities import GPU, ClassIndex, ClusterView, Partition, Query
from mig_gym.sim.events import PushDispatcher

__all__ = ["Server", "REJECT_NOT_HOSTED", "REJECT_MEMORY"]

REJECT_NOT_HOSTED = "model_not_hosted"
REJECT_MEMORY = "batch_exceeds_partition_memory"


class Server:
    """GPUs, partitions, queues and a query's path through them; arguments as for
    :class:`~mig_gym.sim.simulator.Simulator`. No partition exists until ``_install``."""

    def __init__(
        self,
        *,
        gpu: GPUSpec,
        num_gpus: int,
        tables: dict[tuple[int, int], Sequence[float]],
        slo_s: Sequence[float],
        recorder: Recorder,
        dispatcher: PushDispatcher | None,
        central_queue: bool,
        fallback: PushDispatcher | None,
        service_cv: float,
        noise_rng: np.random.Generator | None,
    ) -> None:
        self.spec = gpu
        self.sizes = gpu.sizes
        self.tables = tables
        self.slo_s = tuple(slo_s)
        self.num_models = len(slo_s)
        self.rec = recorder
        self.dispatcher = dispatcher
        self.fallback = fallback if fallback is not None else dispatcher
        self.central = central_queue
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
        self._heap: list[tuple[float, int, object]] = []
        self._seq = 0
        self._uid = 0
        self._cv = service_cv
        self._noise_rng = noise_rng
        if service_cv > 0:
            self._sigma = math.sqrt(math.log1p(service_cv**2))
            if noise_rng is None:
                raise ValueError("service_cv > 0 needs a noise_rng")
        self._max_fit = {key: self._largest_fit(t) for key, t in tables.items()}
        self._servable: list[int] = [0] * self.num_models
        self._hosted: set[int] = set()

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _largest_fit(table: Sequence[float]) -> int:
        for b in range(len(table) - 1, 0, -1):
            if table[b] < math.inf:
                return b
        return 0

    def _push(self, t: float, ev: object) -> None:
        """Schedule ``ev`` (heap entries: :mod:`.events`)."""
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, ev, None))

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
        now = self.now
        est = p.lat[q.batch]
        p.running = q
        p.run_start_s = now
        p.run_end_s = end = now + est * q.noise  # (x * 1.0 == x: no noise, no change)
        if self._cv > 0 or p.est_free_s <= now:  # noise-free, a queue's end is known exactly
            p.est_free_s = now + est + p.queued_s
        self.running += 1
        self._seq = seq = self._seq + 1
        heapq.heappush(self._heap, (end, seq, p, q))  # a completion (see .events)
        p.index.busy(p)  # type: ignore[union-attr]

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
            p.index.went_idle(p)  # type: ignore[union-attr]
            return
        if p.queue:
            q = p.queue.popleft()
            p.queued_s = p.queued_s - p.lat[q.batch] if p.queue else 0.0
            self._start(p, q)
        else:
            p.est_free_s = self.now
            p.index.went_idle(p)  # type: ignore[union-attr]

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
            # If the running query overran its estimate, the queue still lies ahead of q; without
            # noise the estimate is exact (the end of the queue), as the fast paths compute it.
            free = p.est_free_s + est
            p.est_free_s = free if self._cv == 0 else max(free, self.now + p.queued_s)
            p.index.busy(p)  # type: ignore[union-attr]

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

    def _begin_downtime(self, g: GPU) -> None:
        """A drained GPU goes down (only :class:`~mig_gym.sim.capacity.CapacityChanges` drains)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ completion
    def _complete(self, p: Partition, q: Query) -> None:
        """``q``'s service on ``p`` ends now (unless a failure aborted it); ``p`` takes its next
        query (push: the queue's head, as ``_became_idle``) or goes idle."""
        if p.running is not q:
            return  # aborted by a failure
        p.running = None
        self.running -= 1
        self.active -= 1
        now = self.now
        rec = self.rec
        rec.served(now, p.gpcs, now - p.run_start_s)
        rec.on_complete(q.id, q.model, q.arrival_s, now, self.slo_s[q.model])
        g = self.gpus[p.gpu]
        if g.state != GPU.UP:
            if g.state == GPU.DRAINING and not any(x.running for x in g.partitions):
                self._begin_downtime(g)
        elif self.central:
            self._became_idle(p)
        elif p.queue:
            q = p.queue.popleft()
            p.queued_s = p.queued_s - p.lat[q.batch] if p.queue else 0.0
            self._start(p, q)
        else:
            p.est_free_s = now
            p.index.went_idle(p)  # type: ignore[union-attr]

    # ------------------------------------------------------------------ accounting
    def in_service_gpc_s(self) -> dict[int, float]:
        """Busy GPC-seconds of the services still running (for a summary taken mid-run)."""
        out = dict.fromkeys(self.sizes, 0.0)
        for g in self.gpus:
            for p in g.partitions:
                if p.running is not None:
                    out[p.gpcs] += p.gpcs * (self.now - p.run_start_s)
        return out

    @property
    def events_scheduled(self) -> int:
        """Entries ever pushed on the event heap (service completions, failures, recoveries,
        reconfigurations, epochs): the event loop's work, bounded by the queries and the
        scheduled changes, not by the simulated span."""
        return self._seq

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
