"""Epochs on the fast path: a re-partitioned run simulated epoch by epoch without the event heap.

Partition-v0 re-partitions only at decision epochs, so between two capacity changes the plan is
fixed and the static fast path's reasoning holds (:mod:`mig_gym.sim.fast`): with profiled
service times and a push rule that has a fast form, a query's end is known when it is
dispatched, and a (model, size) class needs only the heap of its partitions' free times. An
:class:`EpochRunner` takes over a fresh :class:`~mig_gym.sim.simulator.Simulator` whose
conditions allow it (:func:`unsupported`) and replaces its ``run_until_decision``: it serves the
arrivals of each stretch between capacity changes with the rule's fast loop, and records them in
bulk (:meth:`~mig_gym.metrics.Recorder.bulk`). Where numba is installed and the rule has a
compiled form, one kernel call per block runs the loop and the replay of which partition served
each query (:mod:`mig_gym.sim.compiled`; ``compiled=False`` keeps the Python loop); so does the
re-dispatch of held queries when a GPU comes back (the settle's, unless one is to be rejected:
then the simulator's own settle runs). The results are the same.

Capacity changes keep the event loop's semantics because the event loop's own code makes them:

- at each decision the runner writes its state back into the simulator (:meth:`EpochRunner.
  _materialize`): on every partition the query that is running (its start is at or before the
  decision: the first query still in flight, as the one before it has ended) and the queued ones
  (a later start), their estimated free times, the held queries and the counters, so the
  simulator at a decision is the event loop's (its view, ``summary()``, rendering);
- the decision is applied by ``Simulator.reconfigure`` itself (the GPU stops taking work, its
  queued queries go back to the dispatcher, running ones drain, then it is down for
  ``reconfig_s``);
- a GPU's drain ends when its last running query does (known then: nothing new reaches a
  draining GPU), and the downtime's end is the simulator's scheduled ``ReconfigDone``; at those
  instants the runner records everything before them and lets the simulator handle them
  (``_begin_downtime``, ``_on_reconfig_done``);
- re-dispatching (orphans of a reconfiguration, queries held while no partition could take
  them) is the simulator's ``_settle`` on the written-back state, and the runner reads the
  result back (:meth:`EpochRunner._absorb`; a queue's free time is rebuilt exactly, each queued
  query starting when the previous one ends).

Within a class the runner tracks which partition serves each query (the partition free soonest,
ties to the lowest uid, as the event loop's class index), so that a reconfigured GPU's queries
are known. It is checked against the event loop in tests/test_epochs.py (Simulator level) and
tests/test_partition_fast.py (Partition-v0): identical counts, floats equal to 1e-9.

Pull dispatch (FIFS's central queues) has its own runner (:mod:`mig_gym.sim.epochs_pull`,
compiled only); :func:`mig_gym.sim.epochs_pull.epoch_runner` builds the one a simulator needs.
Not covered (the event loop runs instead, :func:`unsupported` says why): service noise, faults,
dispatchers without a fast form (or with a parameter it does not honour), a separate fallback
dispatcher, pull dispatch without numba, runs that drain after the last arrival, runs already
started.
"""

from __future__ import annotations

import heapq
import math
from typing import TYPE_CHECKING

import numpy as np

from mig_gym.metrics import Rejections
from mig_gym.sim.compiled import ClassArrays, CompiledLoop
from mig_gym.sim.entities import GPU, Query
from mig_gym.sim.epoch_buffers import COLS, Cursor, Pending
from mig_gym.sim.epoch_hooks import DONE, DRAIN
from mig_gym.sim.events import Decision
from mig_gym.sim.server import REJECT_MEMORY, REJECT_NOT_HOSTED

if TYPE_CHECKING:
    from mig_gym.sim.fast import FastLoop
    from mig_gym.sim.simulator import Simulator

__all__ = ["EpochRunner", "unsupported"]

_INF = math.inf
_DRAIN, _DONE = DRAIN, DONE


def unsupported(sim: Simulator) -> str | None:
    """Why ``sim``'s epochs cannot run on the fast path, or None if they can."""
    return sim.epoch_blocker()


_REASONS = (REJECT_MEMORY, REJECT_NOT_HOSTED)


class EpochRunner:
    """Runs a fresh ``sim``'s epochs on the fast path: call its :meth:`run_until_decision`
    instead of the simulator's (whose own loop must not be resumed afterwards). Between two
    calls the simulator holds the event loop's state at the decision, and ``reconfigure`` is
    called on the simulator as usual.

    Raises:
        ValueError: the run cannot take this path (:func:`unsupported` says why).
    """

    def __init__(self, sim: Simulator, compiled: bool = True) -> None:
        why = unsupported(sim)
        if why is not None:
            raise ValueError(f"this run cannot take the epoch fast path: {why}")
        if sim.central and type(self) is EpochRunner:
            raise ValueError("a pull-mode run needs the pull runner: use epochs_pull.epoch_runner")
        self.sim = sim
        self.use_compiled = compiled
        self._forms()
        self.slo = np.asarray(sim.slo_s, np.float64)
        self.lat = {key: list(t) for key, t in sim.tables.items()}
        self.fit_of = sim.largest_fits
        self.next_tick: float = sim.epoch_s  # type: ignore[assignment]
        self.tick = 1
        self.cursor: Cursor | None = None
        self.pend = Pending()
        self.held: list[Query] = []
        self.events: list[tuple[float, int, int, int, int]] = []  # time, kind, seq, gpu, gen
        self.idh: dict[int, dict[int, list[tuple[float, int]]]] = {}  # (free, uid) heaps
        self.classes: list[list[tuple[int, list[float], list[float]]]] = []
        self.fit = np.zeros(sim.num_models, np.int64)
        self.next_id = 0
        self.last_t = 0.0
        self.over = False
        self._no_rej = Rejections(*(np.empty(0, np.int64),) * 4, _REASONS)  # type: ignore[arg-type]

    def _forms(self) -> None:
        """The rule's loop, and its compiled form where numba and the rule offer one (then
        ``compiled`` is True: the blocks go to the kernel, :mod:`mig_gym.sim.compiled`)."""
        rule, slo = self.sim.dispatcher, self.sim.slo_s
        self.loop: FastLoop = rule.fast_form(slo)  # type: ignore[union-attr]
        form = getattr(rule, "compiled_form", None) if self.use_compiled else None
        self.kernel: CompiledLoop | None = form(slo) if form is not None else None
        self.compiled = self.kernel is not None

    def __getstate__(self) -> dict:
        """Picklable mid-episode: the rule's loops (closures) are made again from the rule."""
        state = dict(self.__dict__)
        del state["loop"], state["kernel"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._forms()

    # ------------------------------------------------------------------ the loop
    def run_until_decision(self) -> Decision | None:
        """Simulate up to the next epoch decision (as ``Simulator.run_until_decision``); None
        when the arrivals have ended (the simulator then stands at the last arrival)."""
        if self.over:
            return None
        sim = self.sim
        if self.cursor is None:
            self.cursor = Cursor(*sim.epoch_take_stream())
        self._schedule(sim.epoch_scheduled())
        while self.events and self.events[0][0] <= sim.now:  # zero downtime: done at once
            self._events_at(self.events[0][0])
        sim.epoch_settle()  # the decision's orphans (and held queries) go back to the rule
        self._absorb()
        t1 = self.next_tick
        while True:
            te = self.events[0][0] if self.events else _INF
            stop = te if te < t1 else t1
            if self._serve(stop):  # the stream ended: the event loop stops at the last arrival
                self._record(self.last_t)
                self._materialize(self.last_t)
                self.over = True
                return None
            self._record(stop)
            if te >= t1:
                break
            self._at_event(te)
        self.next_tick = t1 + sim.epoch_s  # type: ignore[operator]  # as the event loop's ticks
        self.tick += 1
        self._materialize(t1)
        return Decision("epoch", t1, epoch=self.tick - 1)

    def _serve(self, stop: float) -> bool:
        """Dispatch and record the arrivals before ``stop``; True if the stream ended."""
        sim, cursor = self.sim, self.cursor
        assert cursor is not None
        servable = np.asarray(sim.servable_batches, np.int64)
        hosted = sim.hosted_models
        code_of = np.array([0 if m in hosted else 1 for m in range(sim.num_models)], np.int64)
        observers = sim.observers
        while (got := cursor.take(stop)) is not None:
            t, m, b = got
            qid = np.arange(self.next_id, self.next_id + len(t), dtype=np.int64)
            for obs in observers:
                obs.on_block(m, b)
            ok = b <= servable[m]
            self._arrive(t, m, b, qid, ok)
            bad = ~ok
            rej = Rejections(t[bad], qid[bad], m[bad], code_of[m[bad]], _REASONS)
            self.next_id += len(t)
            self.last_t = float(t[-1])
            # every query that ends by this arrival is known: later ones arrive later
            sim.rec.bulk(t, self.pend.pop_until(self.last_t, self.slo), rej)
        if not cursor.exhausted:
            self._flush(stop)
        return cursor.exhausted

    def _arrive(self, t: np.ndarray, m: np.ndarray, b: np.ndarray, qid: np.ndarray,
                ok: np.ndarray) -> None:  # fmt: skip
        """Dispatch a block's servable arrivals (``ok``); the ones no available partition can
        take are held until capacity comes online."""
        go = ok & (b <= self.fit[m])  # some available partition can take it
        if go.all():
            self._dispatch(t, m, b, qid)
        elif go.any():
            self._dispatch(t[go], m[go], b[go], qid[go])
        for i in np.flatnonzero(ok & ~go).tolist():  # held until capacity comes online
            self.held.append(Query(int(qid[i]), float(t[i]), int(m[i]), int(b[i])))

    def _flush(self, stop: float) -> None:
        """What happens after the last arrival before ``stop`` (push: placed at dispatch)."""

    def _dispatch(self, t: np.ndarray, m: np.ndarray, b: np.ndarray, qid: np.ndarray,
                  arrival: np.ndarray | None = None) -> None:  # fmt: skip
        """The rule's fast loop on one block dispatched at ``t`` (queries that arrived at
        ``arrival``: by default ``t``, only the compiled form re-dispatches held ones), then which
        partition of its class each query took: the one free soonest (ties to the lowest uid),
        as the event loop's class index."""
        if self.kernel is not None:  # the same loop and replay in one compiled pass
            a = t if arrival is None else arrival
            packed = ClassArrays(self.idh, self.lat, self.sim.num_models)
            end, size, serv, uids = self.kernel(t, a, m, b, packed)
            self.idh = packed.heaps()  # same partitions: ``fit`` stands, ``classes`` is unused
            self.pend.add([end, a, qid, m, size, serv, uids, b])
            return
        ts, ms = t.tolist(), m.tolist()
        end, size, serv = self.loop(ts, ms, b.tolist(), qid.tolist(), self.classes)
        idh, replace = self.idh, heapq.heapreplace
        uids: list[int] = []
        u_add = uids.append
        if len(idh) == 1:  # one model has partitions: every query of the block is its
            per = next(iter(idh.values()))
            for k, x in zip(size, end, strict=True):
                h = per[k]
                u = h[0][1]
                replace(h, (x, u))
                u_add(u)
        else:
            for mm, k, x in zip(ms, size, end, strict=True):
                h = idh[mm][k]
                u = h[0][1]
                replace(h, (x, u))
                u_add(u)
        self.pend.add([end, t, qid, m, size, serv, uids, b])

    def _record(self, t: float) -> None:
        self.sim.rec.bulk(np.empty(0), self.pend.pop_until(t, self.slo), self._no_rej)

    # ------------------------------------------------------------------ capacity changes
    def _schedule(self, done: list[tuple[float, int, int, int]]) -> None:
        if done:
            self.events.extend((t, _DONE, seq, g, gen) for t, seq, g, gen in done)
            self.events.sort()

    def _events_at(self, te: float) -> list[int]:
        """Let the simulator handle the events at ``te``; returns the GPUs that came online."""
        sim, online = self.sim, []
        while self.events and self.events[0][0] <= te:
            _, kind, _, g, gen = self.events.pop(0)
            sim.epoch_event(te, kind, g, gen)
            if kind == _DONE and sim.gpus[g].state == GPU.UP:
                online.append(g)
            self._schedule(sim.epoch_scheduled())
        return online

    def _at_event(self, te: float) -> None:
        """Everything before ``te`` is recorded: handle its events, then the instant's settle
        (new partitions go idle; held queries are re-dispatched by the simulator itself)."""
        online = self._events_at(te)
        sim = self.sim
        if self.held and not self._held_on_kernel():
            self._materialize(te)
            sim.epoch_settle()
            self._absorb()
            return
        settled = sim.epoch_settle()  # nothing waits in the simulator: new partitions go idle
        self._schedule(sim.epoch_scheduled())
        for g in online:
            for p in sim.gpus[g].partitions:
                if p.available:
                    per = self.idh.setdefault(p.model, {}).setdefault(p.gpcs, [])
                    heapq.heappush(per, (p.est_free_s, p.uid))
        self._rebuild_classes()
        if settled and self.held:
            self._redispatch_held(te)

    def _held_on_kernel(self) -> bool:
        """Whether the held queries can be re-dispatched by the compiled form: none of them is
        to be rejected now (the simulator's settle handles that rare case)."""
        servable = self.sim.servable_batches
        return self.kernel is not None and all(q.batch <= servable[q.model] for q in self.held)

    def _redispatch_held(self, te: float) -> None:
        """The settle's re-dispatch of the held queries at ``te``, oldest first, on the kernel:
        each goes where the rule sends it then (ELSA's budget less its age), or stays held if no
        available partition can hold its batch."""
        held = sorted(self.held, key=lambda q: (q.arrival_s, q.id))
        go = [q for q in held if q.batch <= self.fit[q.model]]
        self.held = [q for q in held if q.batch > self.fit[q.model]]
        if go:
            a = np.array([q.arrival_s for q in go], np.float64)
            m = np.array([q.model for q in go], np.int64)
            b = np.array([q.batch for q in go], np.int64)
            qid = np.array([q.id for q in go], np.int64)
            self._dispatch(np.full(len(go), te), m, b, qid, arrival=a)

    # ------------------------------------------------------------------ state exchange
    def _absorb(self) -> None:
        """Read the simulator's state back (after it re-dispatched or reconfigured): each
        available partition's free time (its queue rebuilt as a chain: a queued query starts
        when the one before it ends), the queries in flight, the held ones, drains to come."""
        sim = self.sim
        self._schedule(sim.epoch_scheduled())
        self.held = sim.epoch_take_held()
        rows: list[tuple] = []
        add = rows.append
        idh: dict[int, dict[int, list[tuple[float, int]]]] = {}
        drains = []
        for g in sim.gpus:
            if g.state not in (GPU.UP, GPU.DRAINING):
                continue
            last = -_INF
            for p in g.partitions:
                q, f = p.running, p.est_free_s
                if q is not None:
                    f = p.run_end_s
                    add((f, q.arrival_s, q.id, q.model, p.gpcs, p.lat[q.batch], p.uid, q.batch))
                    last = max(last, f)
                for q in p.queue:  # none on a draining GPU: they went back to the dispatcher
                    f += p.lat[q.batch]
                    add((f, q.arrival_s, q.id, q.model, p.gpcs, p.lat[q.batch], p.uid, q.batch))
                if g.state == GPU.UP and p.available:
                    idh.setdefault(p.model, {}).setdefault(p.gpcs, []).append((f, p.uid))
            if g.state == GPU.DRAINING and last > -_INF:
                drains.append((last, _DRAIN, -1, g.index, 0))  # its last running query ends
        self.events = sorted([e for e in self.events if e[1] != _DRAIN] + drains)
        for per in idh.values():
            for h in per.values():
                heapq.heapify(h)
        self.idh = idh
        self.pend = Pending()
        self.pend.add([list(c) for c in zip(*rows, strict=True)] if rows else [[]] * COLS)
        self._rebuild_classes()

    def _rebuild_classes(self) -> None:
        """The rule's view: per model, smallest size first, each class's heap of free times
        (the (free, uid) heap's first column is itself a heap), and the largest batch that fits
        some available partition."""
        self.classes = []
        for m in range(self.sim.num_models):
            per = self.idh.get(m, {})
            cls = [(k, self.lat[(m, k)], [f for f, _ in per[k]]) for k in sorted(per) if per[k]]
            self.classes.append(cls)
            self.fit[m] = max((self.fit_of[(m, k)] for k, _, _ in cls), default=0)

    def _materialize(self, now: float) -> None:
        """Write the state at ``now`` into the simulator (everything up to ``now`` is recorded,
        so each query still pending is in flight): per partition the running query (the first
        in flight: it started by ``now``) and the queue, free times, class indexes, counters."""
        sim = self.sim
        cols = self.pend.cols
        order = np.lexsort((cols[0], cols[6]))  # by partition, then end
        end, arr, qid, model, _, serv, uid, batch = (c[order].tolist() for c in cols)
        chains: dict[int, list[int]] = {}
        for i, u in enumerate(uid):
            chains.setdefault(u, []).append(i)
        free = {u: f for per in self.idh.values() for h in per.values() for f, u in h}
        running = queued = 0
        for g in sim.gpus:
            for p in g.partitions:
                p.queue.clear()
                p.queued_s = 0.0
                rows = chains.get(p.uid)
                if not rows:
                    p.running = None
                    p.est_free_s = free.get(p.uid, p.est_free_s)
                    continue
                i = rows[0]
                p.running = Query(qid[i], arr[i], model[i], batch[i])
                p.run_start_s, p.run_end_s = end[i] - serv[i], end[i]  # (start to rounding)
                for i in rows[1:]:
                    p.queue.append(Query(qid[i], arr[i], model[i], batch[i]))
                    p.queued_s += serv[i]
                p.est_free_s = end[rows[-1]]
                running += 1
                queued += len(rows) - 1
        self._rebuild_indexes()
        sim.epoch_state(now, running, queued, self.held, self.last_t, self.next_id)

    def _rebuild_indexes(self) -> None:
        """The simulator's class indexes from the written-back free times: idle partitions
        longest idle first, busy ones by free time."""
        for idx in self.sim.index.values():
            members = sorted((p for p in idx.members.values() if p.available),
                             key=lambda p: (p.est_free_s, p.uid))  # fmt: skip
            idx.heap, idx.idle, idx.valid = [], {}, False
            for p in members:
                idx.push(p)
