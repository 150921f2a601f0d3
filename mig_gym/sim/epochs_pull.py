"""Epochs on the fast path for pull dispatch (FIFS's central queues).

A push rule's query is placed when it arrives, so the push runner (:mod:`mig_gym.sim.epochs`)
knows its end at once. Under pull dispatch a query may wait in its model's central queue until
a partition goes idle, and which one takes it depends on the order of completions; so the pull
runner runs the simulator's pull mode itself, compiled (:mod:`mig_gym.sim.pull_kernel`: a small
event simulation per stretch between capacity changes, with the event loop's order of
simultaneous completions). It needs numba (the ``fast`` extra); without it pull runs take the
event loop (:func:`mig_gym.sim.epochs.unsupported` says so).

Everything else is the push runner's: the stretches between capacity changes, the events (a
drained GPU going down, a downtime ending) handled by the simulator's own code, and the state
written back at every decision (:meth:`PullEpochRunner._materialize`: the running queries, the
idle partitions in the order they went idle, the central queues) and read back after the
simulator acted (:meth:`PullEpochRunner._absorb`, including the queries a settle's fresh
partitions pulled). At a capacity event the simulator handles the event itself (a drained GPU
goes down, a downtime ends) and the partitions that came online then pull from the central
queues in GPU order on the kernel (:func:`~mig_gym.sim.pull_kernel.pull_settle`, the settle of
the event loop); the state is written back there only if anything else waits for the settle.
:func:`epoch_runner` builds the runner a simulator needs (this one or the push one). Checked
against the event loop in tests/test_epochs.py and tests/test_partition_fast.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from mig_gym.sim.entities import GPU, Partition, Query
from mig_gym.sim.epoch_buffers import COLS, Pending
from mig_gym.sim.epoch_hooks import DRAIN
from mig_gym.sim.epochs import EpochRunner

if TYPE_CHECKING:
    from mig_gym.sim.simulator import Simulator

__all__ = ["PullEpochRunner", "epoch_runner"]

_INF = math.inf
_I8 = np.int64


def epoch_runner(sim: Simulator, compiled: bool = True) -> EpochRunner:
    """The epoch runner for ``sim``: the pull runner under pull dispatch, else the push one.

    Raises:
        ValueError: the run cannot take the epoch path (:func:`~mig_gym.sim.epochs.unsupported`).
    """
    return (PullEpochRunner if sim.central else EpochRunner)(sim, compiled)


class PullEpochRunner(EpochRunner):
    """The epoch runner of a pull-mode simulator (see the module docstring); ``compiled`` has no
    effect: the pull path has only its compiled form."""

    def __init__(self, sim: Simulator, compiled: bool = True) -> None:
        super().__init__(sim, compiled)
        keys = sorted(self.lat)
        self.cls_of = {key: c for c, key in enumerate(keys)}
        width = max((len(self.lat[key]) for key in keys), default=1)
        self.lat2 = np.full((max(len(keys), 1), width), np.inf)
        for c, key in enumerate(keys):
            self.lat2[c, : len(self.lat[key])] = self.lat[key]
        self.ctr = np.zeros(5, _I8)  # start order, idle rank, rows, pool entries, heap size
        self.drain_seq: dict[int, int] = {}  # start order of the queries on draining GPUs
        self._pack([], {}, {})
        self._set_waiting([[] for _ in range(sim.num_models)])

    def _forms(self) -> None:
        import mig_gym.sim.pull_kernel as pull_kernel  # numba: only when a pull run comes here

        self.loop, self.kernel, self.compiled = None, pull_kernel, True  # type: ignore[assignment]

    # ------------------------------------------------------------------ serving
    def _arrive(self, t: np.ndarray, m: np.ndarray, b: np.ndarray, qid: np.ndarray,
                ok: np.ndarray) -> None:  # fmt: skip
        """A block's servable arrivals: each takes an idle partition or waits centrally."""
        if not ok.all():
            t, m, b, qid = t[ok], m[ok], b[ok], qid[ok]
        if len(t):
            self._stretch(t, m, b, qid, -_INF)

    def _flush(self, stop: float) -> None:
        """The completions after the last arrival and up to ``stop`` (and what they pull)."""
        self._stretch(np.empty(0), np.empty(0, _I8), np.empty(0, _I8), np.empty(0, _I8), stop)

    def _stretch(self, t: np.ndarray, m: np.ndarray, b: np.ndarray, qid: np.ndarray,
                 stop: float) -> None:  # fmt: skip
        """The kernel on arrivals up to ``stop``; the queries it started become pending."""
        self._call(len(t), lambda *a: self.kernel.pull_stretch(t, m, b, qid, float(stop), *a))

    def _call(self, n: int, kernel: Callable[..., None]) -> None:
        """One kernel call that may queue ``n`` new queries (``kernel`` gets the arrays from
        ``lat`` on); the queries it started become pending completions."""
        n0 = len(self.wait[0])
        cap = n0 + n
        pool = (np.empty(cap), np.empty(cap, _I8), np.empty(cap, _I8), np.empty(cap, _I8),
                np.empty(cap, _I8))  # fmt: skip
        for dst, src in zip(pool, self.wait, strict=False):
            dst[:n0] = src
        head = np.full(self.sim.num_models, -1, _I8)
        tail = head.copy()
        out = tuple(np.empty(cap, np.float64 if c in (0, 1, 5) else _I8) for c in range(COLS))
        self.ctr[2], self.ctr[3] = 0, n0
        kernel(self.lat2, self.parts, self.m_off, pool, head, tail, out, self.ctr)
        k = int(self.ctr[2])
        if k:
            self.pend.add([c[:k] for c in out])
        order = np.empty(cap, _I8)
        idx = order[: self.kernel.queue_order(head, pool[4], order)]
        self.wait = (pool[0][idx], pool[1][idx], pool[2][idx], pool[3][idx])

    def _at_event(self, te: float) -> None:
        """The events at ``te`` (the simulator's), then the instant's settle: the partitions
        that came online pull from the central queues in GPU order (on the kernel; by the
        simulator on the written-back state if anything else waits for it)."""
        self._events_at(te)
        fresh = self.sim.epoch_take_fresh()
        if fresh is None:
            self._materialize(te)
            self.sim.epoch_settle()
            self._absorb()
        elif fresh:
            js = self._add_parts(fresh, te)
            self._call(0, lambda *a: self.kernel.pull_settle(js, float(te), *a))

    def _add_parts(self, fresh: list[Partition], now: float) -> np.ndarray:
        """Add partitions that came online at ``now`` (neither busy nor idle yet) to the
        kernel's arrays, kept grouped by model; returns their indexes, in the given order."""
        k = len(fresh)
        new = self._columns(fresh, np.full(k, np.inf), np.zeros(k, _I8), np.full(k, -1, _I8),
                            np.full(k, now))  # fmt: skip
        n0 = len(self.parts[0])
        order = self._set_parts([np.concatenate(c) for c in zip(self.parts, new, strict=True)])
        where = np.empty(len(order), _I8)
        where[order] = np.arange(len(order))
        return where[n0:]

    def _columns(self, parts: list[Partition], end: object, seq: object, rank: object,
                 since: object) -> list[np.ndarray]:  # fmt: skip
        """The kernel's columns for ``parts``: uid, model, size, class, then the given end of
        the running query (inf if idle), its start order, idle rank (-1: busy) and idle time."""
        return [
            np.array([p.uid for p in parts], _I8),
            np.array([p.model for p in parts], _I8),
            np.array([p.gpcs for p in parts], _I8),
            np.array([self.cls_of[(p.model, p.gpcs)] for p in parts], _I8),
            np.asarray(end, np.float64), np.asarray(seq, _I8), np.asarray(rank, _I8),
            np.asarray(since, np.float64),
        ]  # fmt: skip

    def _set_parts(self, cols: list[np.ndarray]) -> np.ndarray:
        """Take ``cols`` as the kernel's partition arrays, grouped by model (stable: GPU order
        within a model), with each model's offsets; returns the order applied."""
        order = np.argsort(cols[1], kind="stable")
        self.parts = tuple(c[order] for c in cols)  # type: ignore[assignment]
        self.m_off = np.zeros(self.sim.num_models + 1, _I8)
        np.cumsum(np.bincount(self.parts[1], minlength=self.sim.num_models), out=self.m_off[1:])
        return order

    # ------------------------------------------------------------------ state exchange
    def _pack(self, parts: list[Partition], seq: dict[int, int], rank: dict[int, int]) -> None:
        """The kernel's partition arrays: the available partitions of the up GPUs, by model."""
        run = [p.running is not None for p in parts]
        self._set_parts(self._columns(
            parts,
            [p.run_end_s if r else _INF for p, r in zip(parts, run, strict=True)],
            [seq[p.uid] if r else 0 for p, r in zip(parts, run, strict=True)],
            [rank.get(p.uid, -1) for p in parts],
            [p.est_free_s for p in parts],
        ))  # fmt: skip

    def _set_waiting(self, central: list[list[Query]]) -> None:
        qs = [q for per in central for q in per]
        self.wait = (np.array([q.arrival_s for q in qs], np.float64),
                     np.array([q.id for q in qs], _I8), np.array([q.model for q in qs], _I8),
                     np.array([q.batch for q in qs], _I8))  # fmt: skip

    def _absorb(self) -> None:
        """Read the simulator's state back: the running queries (with their start order: the
        settle's pulls after every earlier start), the idle partitions in order, the central
        queues, drains to come."""
        sim, ctr = self.sim, self.ctr
        uid, _, _, _, end, seq, _, _ = self.parts
        known = {u: s for u, e, s in zip(uid.tolist(), end.tolist(), seq.tolist(), strict=True)
                 if e < _INF} | self.drain_seq  # fmt: skip
        for u in sim.epoch_starts():
            ctr[0] += 1
            known[u] = int(ctr[0])
        self._schedule(sim.epoch_scheduled())
        self.held = sim.epoch_take_held()  # (pull mode holds nothing: queries wait centrally)
        idle, central = sim.epoch_pull_read()
        rank = {p.uid: int(ctr[1]) + 1 + i for i, p in enumerate(p for ps in idle for p in ps)}
        ctr[1] += len(rank)
        rows, parts, drains, self.drain_seq = [], [], [], {}
        for g in sim.gpus:
            if g.state not in (GPU.UP, GPU.DRAINING):
                continue
            last = -_INF
            for p in g.partitions:
                q = p.running
                if q is not None:
                    s = known[p.uid]
                    rows.append((s, p.run_end_s, q.arrival_s, q.id, q.model, p.gpcs,
                                 p.lat[q.batch], p.uid, q.batch))  # fmt: skip
                    last = max(last, p.run_end_s)
                    if g.state == GPU.DRAINING:
                        self.drain_seq[p.uid] = s
                if g.state == GPU.UP and p.available:
                    parts.append(p)
            if g.state == GPU.DRAINING and last > -_INF:
                drains.append((last, DRAIN, -1, g.index, 0))  # its last running query ends
        self.events = sorted([e for e in self.events if e[1] != DRAIN] + drains)
        rows.sort()  # start order: the event loop's order of simultaneous completions
        self.pend = Pending()
        self.pend.add([list(c) for c in zip(*rows, strict=True)][1:] if rows else [[]] * COLS)
        self._pack(parts, known, rank)
        self._set_waiting(central)

    def _materialize(self, now: float) -> None:
        """Write the state at ``now`` into the simulator: each partition's running query (every
        query pending is running: pull mode queues centrally), the idle partitions in the order
        they went idle, the central queues, the class indexes and counters."""
        sim = self.sim
        end, arr, qid, model, _, serv, uid, batch = (c.tolist() for c in self.pend.cols)
        row = {u: i for i, u in enumerate(uid)}
        p_uid, p_model, _, _, _, _, p_rank, p_since = (c.tolist() for c in self.parts)
        since = {u: s for u, r, s in zip(p_uid, p_rank, p_since, strict=True) if r >= 0}
        by_uid: dict[int, Partition] = {}
        for g in sim.gpus:
            for p in g.partitions:
                by_uid[p.uid] = p
                p.queue.clear()
                p.queued_s = 0.0
                i = row.get(p.uid)
                if i is None:
                    p.running = None
                    p.est_free_s = since.get(p.uid, p.est_free_s)
                    continue
                p.running = Query(qid[i], arr[i], model[i], batch[i])
                p.run_start_s, p.run_end_s = end[i] - serv[i], end[i]  # (start to rounding)
                p.est_free_s = end[i]
        idle: list[list[Partition]] = [[] for _ in range(sim.num_models)]
        for _, u, m in sorted((r, u, m) for u, m, r in zip(p_uid, p_model, p_rank, strict=True)
                              if r >= 0):  # fmt: skip
            idle[m].append(by_uid[u])
        central: list[list[Query]] = [[] for _ in range(sim.num_models)]
        for a, i, m, b in zip(*(c.tolist() for c in self.wait), strict=True):
            central[m].append(Query(i, a, m, b))
        sim.epoch_pull_write(idle, central)
        self._rebuild_indexes()
        waiting = len(self.wait[0])
        sim.epoch_state(now, len(row), waiting, [], self.last_t, self.next_id)
