"""The compiled core's packing: the simulator's state into the kernel's flat arrays and back.

:class:`CorePacking` is a mixin of :class:`~mig_gym.sim.simulator.Simulator` (through
:class:`~mig_gym.sim.event_core.CompiledCore`): ``_core_pack`` lays out the partitions that take
or still run work (their estimated free times, queues as linked slots, the class heaps of
:mod:`mig_gym.sim.event_kernel`), the queries in the system (running, then queued, partition
after partition) and the completions of the event heap (stale ones kept aside, to go back);
``_core_unpack`` writes the kernel's state back onto the same objects. Both cost what changed,
not the queues' length: on the way back a queue loses the front the kernel served and gains the
queries that joined behind (the queries it had keep their objects), and on the way in the rows of
a queue whose front nothing touched since are copied from the last stretch's arrays
(:class:`_Memo`, checked by identity) instead of being read from the objects again.
"""

from __future__ import annotations

import heapq
import math
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from mig_gym.sim.entities import GPU, Partition, Query

if TYPE_CHECKING:
    from mig_gym.sim.simulator import Simulator

__all__ = ["CorePacking"]


class _Packed:
    """One stretch's arrays (see :mod:`mig_gym.sim.event_kernel`) and the Python objects they
    stand for: ``parts`` per partition row, ``objs`` the queries of the first slots."""

    def __init__(self, parts: list[Partition], objs: list[Query], stale: dict[int, tuple]) -> None:
        self.parts, self.objs, self.stale = parts, objs, stale


class _Memo:
    """Where the queues' queries sat in the last stretch's arrays, so that the next packing
    copies the rows of a queue nothing touched since (checked by identity: the same deque, the
    same length, front and back) instead of reading its queries again."""

    def __init__(self, qf: np.ndarray, qi: np.ndarray, order: np.ndarray) -> None:
        self.qf, self.qi, self.order = qf, qi, order
        self.at: dict[int, tuple[Any, int, Any, Any, int]] = {}

    def note(self, p: Partition, off: int) -> None:
        dq = p.queue
        if dq:
            self.at[p.uid] = (dq, len(dq), dq[0], dq[-1], off)

    def rows(self, p: Partition) -> np.ndarray | None:
        """The slots then of the front of ``p``'s queue that is unchanged since (queries may
        have joined behind it), or None."""
        got = self.at.get(p.uid)
        dq = p.queue
        if got is None or got[0] is not dq or len(dq) < got[1]:
            return None
        if dq[0] is not got[2] or dq[got[1] - 1] is not got[3]:
            return None
        return self.order[got[4] : got[4] + got[1]]


class CorePacking:
    """The packing side of the compiled core (a mixin of ``Simulator``)."""

    def _core_pack(self) -> _Packed:
        """The simulator's state as the kernel's arrays; the event heap keeps only the events
        that are not completions (the kernel has those) until :meth:`_core_unpack`."""
        s: Simulator = self  # type: ignore[assignment]
        parts = [p for g in s.gpus if g.state in (GPU.UP, GPU.DRAINING)
                 for p in g.partitions if p.available or p.running is not None]  # fmt: skip
        objs: list[Query] = []
        k = _Packed(parts, objs, {})
        s._core_classes(k)
        k.orig = np.zeros(len(parts), np.int64)  # queue lengths on entry
        run = s._core_queries(k)
        n = len(objs)
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
        k.reason = s.reject_codes()
        k.slo = np.asarray(s.slo_s, np.float64)
        k.held_slots = []
        k.rows = -1  # output rows allocated (none yet)
        return k

    def _core_queries(self, k: _Packed) -> list[int]:
        """Every partition's running query, then its queue, in consecutive slots of the query
        arrays (rows copied from the last stretch's where a queue's front is unchanged, read
        from the objects otherwise); returns each partition's running slot (-1: none)."""
        s: Simulator = self  # type: ignore[assignment]
        parts, objs, orig = k.parts, k.objs, k.orig
        run: list[int] = []
        memo: _Memo | None = s._core_memo
        read: list[int] = []  # slots whose queries are read afresh
        dst: list[np.ndarray] = []  # slots copied from the last stretch's arrays, and from where
        src: list[np.ndarray] = []
        for j, p in enumerate(parts):  # running query, then the queue, in consecutive slots
            row = k.pi[j]
            row[1], row[6] = p.uid, p.gpcs
            row[2] = len(objs) if p.running is not None else -1
            if p.running is not None:
                read.append(len(objs))
                objs.append(p.running)
            run.append(row[2])
            a = len(objs)
            objs.extend(p.queue)
            orig[j] = row[5] = len(objs) - a
            row[3], row[4] = (a, len(objs) - 1) if row[5] else (-1, -1)
            k.pf[j] = (p.est_free_s, p.queued_s, p.run_start_s, p.run_end_s)
            old = memo.rows(p) if memo is not None and row[5] else None
            kept = len(old) if old is not None else 0
            if kept:
                dst.append(np.arange(a, a + kept))
                src.append(old)  # type: ignore[arg-type]
            read.extend(range(a + kept, len(objs)))
        n = len(objs)
        k.qf, k.qi = np.empty((n, 2)), np.empty((n, 4), np.int64)
        if dst:
            to, frm = np.concatenate(dst), np.concatenate(src)
            k.qf[to], k.qi[to] = memo.qf[frm], memo.qi[frm]  # type: ignore[union-attr]
        fresh = [objs[i] for i in read]
        for c, name in enumerate(("arrival_s", "noise")):
            k.qf[read, c] = np.fromiter(map(attrgetter(name), fresh), np.float64, len(read))
        for c, name in enumerate(("id", "model", "batch")):
            k.qi[read, c] = np.fromiter(map(attrgetter(name), fresh), np.int64, len(read))
        s._core_memo = None  # (its arrays are the kernel's from now on)
        return run

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
        added, order = np.empty(len(qf), np.int64), np.empty(len(qf), np.int64)
        n = s._core.queue_tails(k.pi, qi, first, foreign, added, order)  # type: ignore[union-attr]
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

        at = off = 0
        memo = _Memo(qf, qi, order)
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
            memo.note(p, off)
            off += r[5]
        s._core_memo = memo
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
    f, i = qf[slots], qi[slots]  # column by column: flat lists, one constructor call each
    cols = (i[:, 0].tolist(), f[:, 0].tolist(), i[:, 1].tolist(), i[:, 2].tolist(),
            f[:, 1].tolist())  # fmt: skip
    return list(map(Query, *cols))


def _class_key(p: Partition) -> tuple[bool, float, int]:
    """The kernel's class order: idle first, then the estimated free time, then the uid."""
    return (p.running is not None or bool(p.queue), p.est_free_s, p.uid)
