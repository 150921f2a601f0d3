"""The simulator's compiled core: its push-mode event loop run by a numba kernel between the
instants that need its Python code.

Most of a push-dispatched run is arrivals and completions; failures, recoveries,
reconfigurations, epochs and the re-dispatch that follows them are rare. :class:`CompiledCore`
is a mixin of :class:`~mig_gym.sim.simulator.Simulator`: whenever the next thing to happen is
an arrival or a completion before the next Python-handled instant (a scheduled event, or the
end of a draining GPU's last service), ``run_until_decision`` hands the stretch up to that
instant to :func:`mig_gym.sim.event_kernel.stretch`: the state is packed into flat arrays
(:meth:`_core_pack`), the kernel runs block by block of arrivals, the outcomes are recorded in
bulk (:meth:`~mig_gym.metrics.Recorder.bulk`) and the state is written back onto the partitions,
queues, class indexes and event heap (:meth:`_core_unpack`), so that between stretches the
simulator is exactly the event loop's. The kernel is the event loop's arithmetic operation for
operation (no fast-math), so every completion time is the Python loop's; counts are identical and
the recorded sums agree to rounding (tests/test_event_core.py).

Arrival observers see each kernel call's arrivals through ``on_block`` (before the decision
that reads them). It needs numba (the ``fast`` extra), push dispatch by a rule with a compiled
event form (``event_form``: EarliestFinish, FirstFree, ELSA) and no observation that watches the
class indexes (Dispatch-v0's); :meth:`core_blocker` says why a run takes the Python loop.
``Simulator(..., compiled=False)`` keeps the Python loop, the reference.
"""

from __future__ import annotations

import heapq
import math
from operator import attrgetter
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from mig_gym.metrics import Completions, Rejections
from mig_gym.sim import compiled
from mig_gym.sim.entities import GPU, Partition, Query
from mig_gym.sim.server import REJECT_MEMORY, REJECT_NOT_HOSTED

if TYPE_CHECKING:
    from collections.abc import Callable

    from mig_gym.sim.simulator import Simulator

__all__ = ["CompiledCore", "CoreRule"]

_REASONS = (REJECT_MEMORY, REJECT_NOT_HOSTED)


class CoreRule(NamedTuple):
    """A push rule's compiled event form: ``kind`` (0 EarliestFinish, 1 FirstFree, 2 ELSA),
    ELSA's ``budget`` (alpha x SLA per model) and its scan start ``home(model, batch)`` (None:
    the smallest size)."""

    kind: int
    budget: np.ndarray | None = None
    home: Callable[[int, int], int] | None = None


class _Packed:
    """One stretch's arrays (see :mod:`mig_gym.sim.event_kernel`) and the Python objects they
    stand for: ``parts`` per partition row, ``objs`` the queries of the first slots."""

    def __init__(self, parts: list[Partition], objs: list[Query], stale: dict[int, tuple]) -> None:
        self.parts, self.objs, self.stale = parts, objs, stale


class CompiledCore:
    """The compiled core's side of the simulator (a mixin of ``Simulator``)."""

    def core_blocker(self) -> str | None:
        """Why this run's event loop cannot use the compiled core, or None."""
        s: Simulator = self  # type: ignore[assignment]
        d = s.dispatcher
        if not s.compiled:
            return "compiled=False"
        if s.central:
            return "pull dispatch (FIFS)"
        form = getattr(d, "event_form", None)
        if form is None or form(s.slo_s) is None:
            return f"dispatcher {type(d).__name__} has no compiled event form"
        if any(getattr(o, "on_block", None) is None for o in s._observers):
            return "an arrival observer has no on_block (the core feeds observers per block)"
        if any(ix.watch is not None for ix in s.index.values()):
            return "an observation watches the class indexes"
        if compiled.load("mig_gym.sim.event_kernel") is None:
            return "numba (the fast extra) is not installed"
        return None

    # ------------------------------------------------------------------ an outside packer
    def pack_blocker(self) -> str | None:
        """Why an outside stepper (Dispatch-v0's compiled vector step, which dispatches itself)
        cannot take this simulator's state into its arrays now, or None."""
        s: Simulator = self  # type: ignore[assignment]
        if s.central or s.dispatcher is not None:
            return "the simulator dispatches (an attached dispatcher or pull mode)"
        if s._observers or s._cv > 0:
            return "arrival observers or service noise"
        if s._settle_due or s.arrivals_done:
            return "an instant to settle, or no arrivals left"
        if any(e[3] is None for e in s._heap) or any(g.state == GPU.DRAINING for g in s.gpus):
            return "scheduled events (faults, reconfigurations) or a draining GPU"
        return None

    def pack_state(self, kernel: Any) -> _Packed:
        """The state as the compiled core's arrays (:meth:`_core_pack`), for an outside stepper
        whose invalid choices the earliest-finish rule remaps; ``kernel``: the event kernels."""
        s: Simulator = self  # type: ignore[assignment]
        s._core_rule, s._core = CoreRule(0), kernel
        return s._core_pack(math.inf)

    def unpack_state(self, k: _Packed) -> None:
        """The arrays back onto the objects (:meth:`_core_unpack`)."""
        self._core_unpack(k)  # type: ignore[attr-defined]

    def arrival_block(self) -> tuple[Any, int]:
        """The current block of arrivals and the index of its next arrival."""
        s: Simulator = self  # type: ignore[assignment]
        return s._blk, s._blk_i

    def next_block(self) -> bool:
        """The current block was used up (outside): load the next; False if none is left."""
        s: Simulator = self  # type: ignore[assignment]
        s._blk_i = len(s._blk.arrival_s)
        s._load_block()
        return not s.arrivals_done

    def reject_codes(self) -> np.ndarray:
        """Per model, the index in ``("batch_exceeds_partition_memory", "model_not_hosted")``
        of the reason an arrival of it is rejected."""
        s: Simulator = self  # type: ignore[assignment]
        return np.array([0 if m in s._hosted else 1 for m in range(s.num_models)], np.int64)

    def _core_setup(self) -> None:
        s: Simulator = self  # type: ignore[assignment]
        s._core_checked = True
        if s.core_blocker() is None:
            s._core = compiled.load("mig_gym.sim.event_kernel")
            s._core_rule = s.dispatcher.event_form(s.slo_s)  # type: ignore[union-attr]

    def _core_until(self) -> float:
        """The next instant the Python loop must handle: a scheduled event, or the end of a
        draining GPU's service (its last one takes the GPU down)."""
        s: Simulator = self  # type: ignore[assignment]
        until = min((e[0] for e in s._heap if e[3] is None), default=math.inf)
        for g in s.gpus:
            if g.state == GPU.DRAINING:
                for p in g.partitions:
                    if p.running is not None and p.run_end_s < until:
                        until = p.run_end_s
        return until

    def _core_stretch(self) -> bool:
        """Run the stretch up to the next Python-handled instant on the kernel; False (and
        nothing done) when the next thing to happen is at that instant."""
        s: Simulator = self  # type: ignore[assignment]
        if s._settle_due or (s.arrivals_done and (not s.drain or s.active == 0)):
            return False
        until = s._core_until()
        nxt = s._heap[0][0] if s._heap else math.inf
        if not s.arrivals_done:
            nxt = min(nxt, s._blk_t[s._blk_i])
        if nxt >= until:
            return False
        k = s._core_pack(until)
        while True:
            status = s._core_run(k, until)
            if status == 1:
                break
            s._load_block()  # the block ended: the next one (or the end of the arrivals)
            k.ctr[9] = 0
            if s.arrivals_done and (not s.drain or k.ctr[2] == 0):
                break
        s._core_unpack(k)
        return True

    def _core_run(self, k: Any, until: float) -> int:
        """One kernel call on the current block, its outcomes recorded."""
        s: Simulator = self  # type: ignore[assignment]
        blk = s._blk if not s.arrivals_done else None
        bt = blk.arrival_s if blk is not None else _EMPTY_F
        i0 = int(k.ctr[9])
        left = len(bt) - i0
        s._core_room(k, left)
        bm = blk.model.astype(np.int64, copy=False) if blk is not None else _EMPTY_I
        bb = blk.batch.astype(np.int64, copy=False) if blk is not None else _EMPTY_I
        bn = s._blk_noise_arr if (blk is not None and s._cv > 0) else np.ones(len(bt))
        r = s._core_rule
        k.ctr[6:9] = 0
        status = s._core.stretch(  # type: ignore[union-attr]
            r.kind, k.budget, k.start, k.servable, s._cv > 0, until, s.arrivals_done, s.drain,
            bt, bm, bb, bn, k.pf, k.pi, k.cls_off, k.cls_size, k.lat, k.ch, k.hp_off, k.qf,
            k.qi, k.slots, k.hx, k.hs, k.hp, k.hq, k.ctr, k.clock, k.out_f, k.out_i, k.rej_f,
            k.rej_i, k.held,
        )  # fmt: skip
        nc, nr, nh = int(k.ctr[6]), int(k.ctr[7]), int(k.ctr[8])
        done = Completions(k.out_f[:nc, 0], k.out_f[:nc, 1], k.out_i[:nc, 0], k.out_i[:nc, 1],
                           k.out_i[:nc, 2], k.out_f[:nc, 2], k.slo)  # fmt: skip
        rm = k.rej_i[:nr, 1]
        rej = Rejections(k.rej_f[:nr], k.rej_i[:nr, 0], rm, k.reason[rm], _REASONS)
        i1 = int(k.ctr[9])
        s.rec.bulk(bt[i0:i1], done, rej)
        for o in s._observers:  # every arrival, rejected or not, before the next decision
            o.on_block(bm[i0:i1], bb[i0:i1])
        k.held_slots.extend(k.held[:nh].tolist())
        return int(status)

    # ------------------------------------------------------------------ state in and out
    def _core_pack(self, until: float) -> _Packed:
        """The simulator's state as the kernel's arrays; the event heap keeps only the events
        that are not completions (the kernel has those) until :meth:`_core_unpack`."""
        s: Simulator = self  # type: ignore[assignment]
        parts = [p for g in s.gpus if g.state in (GPU.UP, GPU.DRAINING)
                 for p in g.partitions if p.available or p.running is not None]  # fmt: skip
        objs: list[Query] = []
        k = _Packed(parts, objs, {})
        s._core_classes(k)
        k.orig = orig = np.zeros(len(parts), np.int64)  # queue lengths on entry
        run = []
        for j, p in enumerate(parts):  # running query, then the queue, in consecutive slots
            row = k.pi[j]
            row[1], row[6] = p.uid, p.gpcs
            row[2] = len(objs) if p.running is not None else -1
            if p.running is not None:
                objs.append(p.running)
            run.append(row[2])
            a = len(objs)
            objs.extend(p.queue)
            orig[j] = row[5] = len(objs) - a
            row[3], row[4] = (a, len(objs) - 1) if row[5] else (-1, -1)
            k.pf[j] = (p.est_free_s, p.queued_s, p.run_start_s, p.run_end_s)
        n = len(objs)
        k.qf, k.qi = np.empty((n, 2)), np.empty((n, 4), np.int64)
        for c, name in enumerate(("arrival_s", "noise")):
            k.qf[:, c] = np.fromiter(map(attrgetter(name), objs), np.float64, n)
        for c, name in enumerate(("id", "model", "batch")):
            k.qi[:, c] = np.fromiter(map(attrgetter(name), objs), np.int64, n)
        k.qi[:, 3] = np.arange(1, n + 1)  # each queued slot links to the next; tails end it
        tails = k.pi[:, 4]
        k.qi[tails[tails >= 0], 3] = -1
        k.slots = np.empty(0, np.int64)
        slot = dict(zip((p.uid for p in parts), run, strict=True))  # the running query's slot
        s._core_heap(k, {p.uid: j for j, p in enumerate(parts)}, slot)
        k.ctr = np.array([s._seq, s._next_id, s.active, s.running, k.ctr4, 0, 0, 0, 0,
                          s._blk_i, n], np.int64)  # fmt: skip
        k.clock = np.array([s.now, s.last_arrival_s])
        k.servable = np.asarray(s._servable, np.int64)
        hosted = [m in s._hosted for m in range(s.num_models)]
        k.reason = np.array([0 if h else 1 for h in hosted], np.int64)  # _REASONS' index
        k.slo = np.asarray(s.slo_s, np.float64)
        k.held_slots = []
        k.rows = -1  # output rows allocated (none yet)
        return k

    def _core_classes(self, k: _Packed) -> None:
        """Classes with members (smallest size first per model), their latency rows and heaps."""
        s: Simulator = self  # type: ignore[assignment]
        keys = [(m, kk, ix) for m in range(s.num_models) for kk, ix in s.classes[m] if ix.members]
        row = {p.uid: j for j, p in enumerate(k.parts)}
        k.keys = keys
        k.cls_off = np.zeros(s.num_models + 1, np.int64)
        for m, _, _ in keys:
            k.cls_off[m + 1] += 1
        np.cumsum(k.cls_off, out=k.cls_off)
        k.cls_size = np.array([kk for _, kk, _ in keys], np.int64)
        width = max((len(s.tables[(m, kk)]) for m, kk, _ in keys), default=0) + 1
        k.lat = np.full((max(len(keys), 1), width), math.inf)
        k.pf = np.empty((len(k.parts), 4))
        k.pi = np.full((len(k.parts), 8), -1, np.int64)
        chain: list[int] = []
        k.hp_off = np.zeros(len(keys) + 1, np.int64)
        for c, (m, kk, ix) in enumerate(keys):
            k.lat[c, : len(s.tables[(m, kk)])] = s.tables[(m, kk)]
            members = sorted(ix.members.values(), key=_class_key)  # sorted: a valid heap
            for p in members:
                k.pi[row[p.uid], 0], k.pi[row[p.uid], 7] = c, len(chain)
                chain.append(row[p.uid])
            k.hp_off[c + 1] = len(chain)
        k.ch = np.array(chain, np.int64)
        r = s._core_rule
        k.budget = r.budget if r.budget is not None else np.zeros(s.num_models)
        k.start = np.zeros((s.num_models, width), np.int64)
        if r.home is not None:
            k.start[...] = [[r.home(m, b) for b in range(width)] for m in range(s.num_models)]

    def _core_heap(self, k: _Packed, row: dict[int, int], slot: dict[int, int]) -> None:
        """Completions to the kernel's heap (stale ones kept aside by seq, to be put back)."""
        s: Simulator = self  # type: ignore[assignment]
        events, done = [], []
        for e in s._heap:
            if e[3] is None:
                events.append(e)
                continue
            p, q = e[2], e[3]
            if p.running is q and p.uid in row:
                done.append((e[0], e[1], row[p.uid], slot[p.uid]))
            else:
                k.stale[e[1]] = e
                done.append((e[0], e[1], -1, -1))
        heapq.heapify(events)
        s._heap[:] = events  # the same list: the loop's references stay valid
        done.sort()
        n = len(done) + len(k.parts) + 1
        k.hx, k.hs = np.empty(n), np.empty(n, np.int64)
        k.hp, k.hq = np.empty(n, np.int64), np.empty(n, np.int64)
        for i, (t, seq, j, q) in enumerate(done):  # sorted: a valid heap
            k.hx[i], k.hs[i], k.hp[i], k.hq[i] = t, seq, j, q
        k.ctr4 = len(done)

    def _core_room(self, k: _Packed, left: int) -> None:
        """Slots and output rows for ``left`` more arrivals (each takes at most one slot)."""
        free = int(k.ctr[5])
        if free < left:
            old = len(k.qf)
            add = left - free + old // 2 + 64
            k.qf = np.concatenate([k.qf, np.empty((add, 2))])
            k.qi = np.concatenate([k.qi, np.empty((add, 4), np.int64)])
            slots = np.empty(old + add, np.int64)
            slots[:free] = k.slots[:free]
            slots[free : free + add] = np.arange(old + add - 1, old - 1, -1)
            k.slots = slots
            k.ctr[5] = free + add
        if k.rows < len(k.qf):
            k.rows = n = len(k.qf)
            k.out_f, k.out_i = np.empty((n, 3)), np.empty((n, 3), np.int64)
            k.rej_f, k.rej_i = np.empty(n), np.empty((n, 2), np.int64)
            k.held = np.empty(n, np.int64)

    def _core_unpack(self, k: _Packed) -> None:
        """The kernel's state back onto the simulator's objects (see :meth:`_core_pack`); the
        queries it had on entry keep their objects, and a queue changes only at its ends."""
        s: Simulator = self  # type: ignore[assignment]
        qf, qi, first = k.qf, k.qi, int(k.ctr[10])
        foreign = np.empty(len(k.parts), np.int64)
        added = np.empty(len(qf), np.int64)
        n = s._core.queue_tails(k.pi, qi, first, foreign, added)  # type: ignore[union-attr]
        queued = _queries(qf, qi, added[:n])  # new since entry, in queue order
        made = dict(zip(added[:n].tolist(), queued, strict=True))
        objs = k.objs

        def obj(i: int) -> Query:
            if i < first:
                return objs[i]
            q = made.get(i)
            if q is None:
                q = made[i] = _queries(qf, qi, np.array([i]))[0]
            return q

        at = 0
        for p, f, r, kept, had in zip(k.parts, k.pf.tolist(), k.pi.tolist(), foreign.tolist(),
                                      k.orig.tolist(), strict=True):  # fmt: skip
            p.est_free_s, p.queued_s, p.run_start_s, p.run_end_s = f
            p.running = obj(r[2]) if r[2] >= 0 else None
            dq = p.queue  # still the queue on entry: its front went, new queries came behind
            for _ in range(had - kept):
                dq.popleft()
            new = r[5] - kept
            dq.extend(queued[at : at + new])
            at += new
        for _, _, ix in k.keys:
            ix.rebuild()
        n = int(k.ctr[4])
        for t, seq, j, i in zip(k.hx[:n].tolist(), k.hs[:n].tolist(), k.hp[:n].tolist(),
                                k.hq[:n].tolist(), strict=True):  # fmt: skip
            s._heap.append(k.stale[seq] if j < 0 else (t, seq, k.parts[j], obj(i)))
        heapq.heapify(s._heap)
        s.held.extend(obj(i) for i in k.held_slots)
        c = k.ctr.tolist()
        s._seq, s._next_id, s.active, s.running, s._blk_i = c[0], c[1], c[2], c[3], c[9]
        s.now, s.last_arrival_s = k.clock.tolist()


def _queries(qf: np.ndarray, qi: np.ndarray, slots: np.ndarray) -> list[Query]:
    """New ``Query`` objects for the kernel's ``slots``."""
    return [Query(i, t, m, b, z) for (i, m, b, _), (t, z)
            in zip(qi[slots].tolist(), qf[slots].tolist(), strict=True)]  # fmt: skip


def _class_key(p: Partition) -> tuple[bool, float, int]:
    """The kernel's class order: idle first, then the estimated free time, then the uid."""
    return (p.running is not None or bool(p.queue), p.est_free_s, p.uid)


_EMPTY_F = np.empty(0)
_EMPTY_I = np.empty(0, np.int64)
