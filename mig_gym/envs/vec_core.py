"""Dispatch-v0's vector environment on a compiled step: N simulators in stacked arrays.

:class:`VecCore` keeps the episodes of a :class:`~mig_gym.envs.vector.DispatchVectorEnv` that
allow it *packed*: each environment's simulator state is row ``e`` of stacked arrays (the event
loop's compiled core's layout, :mod:`mig_gym.sim.event_core`, packed by the simulator's own
``_core_pack``), and one :func:`mig_gym.envs.vec_kernel.vec_step` call per vector step applies
every action, runs every simulator to its next decision and writes every observation and mask.
The recorder gets each environment's arrivals, completions and rejections in bulk when its
buffers fill, when its block of arrivals ends and when it leaves the kernel; an environment
leaves (its state written back onto the simulator by ``_core_unpack``) when its arrivals end
(the episode's last steps run in Python, as a single environment runs them).

An episode is packed when numba is installed and its simulator has nothing the kernel does not
simulate: no scheduled events (faults), no service noise, push dispatch by the agent. Otherwise
that environment steps in Python (``DispatchEnv._step``), with the same trajectories either way
(tests/test_vector_env.py compares both with independent environments); with a latency weight
in ``env.reward_weights``, that term agrees to rounding only (the recorder sums in bulk). While
an episode is packed, its ``DispatchEnv``'s simulator and recorder lag behind (the state is in
the arrays): read them at the episode's end (``info["summary"]``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mig_gym.envs.common import OBS_CLIP
from mig_gym.envs.dispatch import DispatchEnv
from mig_gym.sim import compiled
from mig_gym.sim.event_core import record_outcomes

__all__ = ["VecCore"]

DECISION, BLOCK_END, NO_ROOM, FLUSH = 0, 1, 2, 3  # vec_kernel's statuses (it imports numba)


def packable(e: DispatchEnv) -> bool:
    """Whether this environment's episode can run on the compiled step now."""
    run = e.run
    return run is not None and e.pending_query is not None and run.sim.pack_blocker() is None


class VecCore:
    """The stacked state of ``envs`` (see the module docstring); ``obs`` and ``mask`` hold the
    packed rows' observations and masks."""

    SPARE = 256  # free query slots beyond a packed episode's queries (the pool doubles as needed)

    def __init__(self, envs: list[DispatchEnv], kernel: Any, event_kernel: Any) -> None:
        self.envs, self.kernel, self.ek = envs, kernel, event_kernel
        e0 = envs[0]
        self.n, self.n_slots, self.w = len(envs), e0.slots, e0.slot_width
        self.num_models, self.max_batch = e0.num_models, e0.max_batch
        self.obs = np.zeros((self.n, e0.observation_space.shape[0]), np.float32)
        self.mask = np.zeros((self.n, self.n_slots), bool)
        self.packed = np.zeros(self.n, bool)
        self.k: list[Any] = [None] * self.n
        self.flushed = [0] * self.n  # block cursor up to which arrivals are recorded
        self.dims = (0, 0, 0, 0, 0, 0)  # partitions, classes, lat width, slots, heap, block
        self.sizes = np.zeros(6)
        self.stage, self.status = np.zeros(self.n, np.int64), np.zeros(self.n, np.int64)
        self.invalid, self.reward = np.zeros(self.n, bool), np.zeros(self.n)
        w = e0.scenario.env.reward_weights
        self.weights = np.array([w.sla_violation, w.latency, w.reconfig, w.invalid_action])

    @staticmethod
    def load() -> tuple[Any, Any] | None:
        k = compiled.load("mig_gym.envs.vec_kernel")
        return (k, compiled.load("mig_gym.sim.event_kernel")) if k is not None else None

    # ------------------------------------------------------------------ stacked arrays
    def _alloc(self, dims: tuple[int, ...]) -> None:
        """(Re)allocate the stacked arrays for these capacities, keeping the packed rows."""
        n, m = self.n, self.num_models
        p, c, w, s, h, b = dims
        old = self.__dict__.copy() if self.dims != (0,) * 6 else None
        shapes = {
            "pf": ((p, 4), np.float64, 0.0), "pi": ((p, 8), np.int64, -1),
            "cls_off": ((m + 1,), np.int64, 0), "cls_size": ((c,), np.int64, 0),
            "lat": ((c, w), np.float64, math.inf), "ch": ((p,), np.int64, 0),
            "hp_off": ((c + 1,), np.int64, 0), "qf": ((s, 2), np.float64, 0.0),
            "qi": ((s, 4), np.int64, -1), "slots": ((s,), np.int64, 0),
            "hx": ((h,), np.float64, math.inf), "hs": ((h,), np.int64, 0),
            "hp": ((h,), np.int64, -1), "hq": ((h,), np.int64, -1),
            "bt": ((b,), np.float64, 0.0), "bm": ((b,), np.int64, 0), "bb": ((b,), np.int64, 0),
            "out_f": ((s, 3), np.float64, 0.0), "out_i": ((s, 3), np.int64, 0),
            "rej_f": ((s,), np.float64, 0.0), "rej_i": ((s, 2), np.int64, 0),
            "held": ((s,), np.int64, 0),
        }  # fmt: skip
        for name, (shape, dtype, fill) in shapes.items():
            arr = np.full((n, *shape), fill, dtype)
            if old is not None:
                prev = old[name]
                arr[(slice(None), *(slice(0, x) for x in prev.shape[1:]))] = prev
            setattr(self, name, arr)
        if old is None:
            self.blen = np.zeros(n, np.int64)
            self.ctr = np.zeros((n, 15), np.int64)
            self.clock = np.zeros((n, 5 + m))  # now, last arrival, rate, last t, SLAs, lat
            self.lat_sum = np.zeros((n, m))
            self.servable = np.zeros((n, m), np.int64)
            self.warmup = np.zeros(n, np.int64)
            self.slot_row = np.full((n, self.n_slots), -1, np.int64)
            self.slot_static = np.zeros((n, self.n_slots, 4))
            self.any_ok = np.zeros((n, m, self.max_batch + 1), bool)
            # per row, RewardBook's last counters (violations, measured, latency), paid, scale
            self.book = np.zeros((n, 5))
        elif s > self.dims[3]:  # the new slots are free
            for e in range(n):
                free = int(self.ctr[e, 5])
                add = np.arange(s - 1, self.dims[3] - 1, -1)
                self.slots[e, free : free + len(add)] = add
                self.ctr[e, 5] = free + len(add)
        self.dims = dims

    def _fit(self, need: tuple[int, ...]) -> None:
        if any(a > b for a, b in zip(need, self.dims, strict=True)):
            self._alloc(
                tuple(max(a, 2 * b if a > b else b) for a, b in zip(need, self.dims, strict=True))
            )

    # ------------------------------------------------------------------ in and out
    def pack(self, e: int) -> None:
        """Move environment ``e``'s simulator (with its pending query) into row ``e``."""
        env = self.envs[e]
        sim, q = env.run.sim, env.pending_query  # type: ignore[union-attr]
        k = sim.pack_state(self.ek)
        k.objs.append(q)  # the pending query: the last slot the simulator's objects back
        n = len(k.objs)
        blk, _ = sim.arrival_block()
        need = (len(k.parts), len(k.keys), k.lat.shape[1], n + self.SPARE, len(k.hx),
                len(blk.arrival_s))  # fmt: skip
        self._fit(need)
        p, c = len(k.parts), len(k.keys)
        self.pf[e, :p], self.pi[e] = k.pf, -1
        self.pi[e, :p] = k.pi
        self.cls_off[e], self.cls_size[e, :c] = k.cls_off, k.cls_size[:c]
        self.lat[e] = math.inf
        self.lat[e, :c, : k.lat.shape[1]] = k.lat[:c]
        self.ch[e, : len(k.ch)], self.hp_off[e, : c + 1] = k.ch, k.hp_off
        self.qf[e, : n - 1], self.qi[e, : n - 1] = k.qf, k.qi
        self.qf[e, n - 1], self.qi[e, n - 1] = (q.arrival_s, q.noise), (q.id, q.model, q.batch, -1)
        s = self.dims[3]
        self.slots[e, : s - n] = np.arange(s - 1, n - 1, -1)
        h = int(k.ctr[4])
        self.hx[e, :h], self.hs[e, :h], self.hp[e, :h], self.hq[e, :h] = (
            k.hx[:h], k.hs[:h], k.hp[:h], k.hq[:h])  # fmt: skip
        rec = sim.rec
        self.ctr[e] = 0
        self.ctr[e, :10] = k.ctr[:10]
        self.ctr[e, 5], self.ctr[e, 10], self.ctr[e, 11] = s - n, n, n - 1
        self.ctr[e, 12:15] = rec.arrived, rec.violations, rec.measured_completed
        self.clock[e, :4] = sim.now, sim.last_arrival_s, env._rate, env._last_t
        self.clock[e, 4:-1] = sim.slo_s
        b = env.book
        self.book[e] = (*b._last, b.paid, b.scale)
        self.lat_sum[e] = [st[2] for st in rec.model_stats]
        self.servable[e], self.warmup[e] = k.servable, rec.warmup
        self._block(e)
        self._layout(e, {pp.uid: j for j, pp in enumerate(k.parts)})
        k.ctr = None  # the row's counters are the stacked ones from now on
        self.k[e], self.packed[e] = k, True
        self.sizes[:] = (self.n_slots, self.num_models, self.max_batch, OBS_CLIP,
                         env.scenario.run.num_queries, env._mean_rate)  # fmt: skip
        self.obs[e], self.mask[e] = env.bank.obs[0], env.bank.mask[0]  # its pending decision

    def step(self, acts: np.ndarray, rows: np.ndarray) -> list[int]:
        """Apply ``acts`` in the packed ``rows`` and run them to their next decisions (their
        rewards in ``reward``, invalid flags in ``invalid``); returns the rows whose arrivals
        ended (unpacked: their step goes on in Python)."""
        left: list[int] = []
        fresh, active = True, rows
        while True:
            stopped = self.kernel.vec_step(
                fresh, active, self.stage, acts, self.invalid, self.status, self.sizes,
                self.warmup, self.servable, self.bt, self.bm, self.bb, self.blen, self.pf,
                self.pi, self.cls_off, self.cls_size, self.lat, self.ch, self.hp_off, self.qf,
                self.qi, self.slots, self.hx, self.hs, self.hp, self.hq, self.ctr, self.clock,
                self.lat_sum, self.out_f, self.out_i, self.rej_f, self.rej_i, self.held,
                self.slot_row, self.slot_static, self.any_ok, self.obs, self.mask, self.book,
                self.weights, self.reward,
            )  # fmt: skip
            if not stopped:
                return left
            fresh, active = False, rows & (self.status != DECISION)
            for e in np.flatnonzero(active).tolist():
                st = self.status[e]
                if st == NO_ROOM:
                    self._fit((*self.dims[:3], 2 * self.dims[3], *self.dims[4:]))
                    continue
                self.flush(e)
                if st == BLOCK_END:
                    sim = self.envs[e].run.sim  # type: ignore[union-attr]
                    if not sim.next_block():
                        self.unpack(e)
                        active[e] = False
                        left.append(e)
                    else:
                        self._block(e)
            if not active.any():
                return left

    def _block(self, e: int) -> None:
        blk, at = self.envs[e].run.sim.arrival_block()  # type: ignore[union-attr]
        n = len(blk.arrival_s)
        if n > self.dims[5]:
            self._fit((*self.dims[:5], n))
        self.bt[e, :n], self.bm[e, :n], self.bb[e, :n] = blk.arrival_s, blk.model, blk.batch
        self.blen[e] = n
        self.ctr[e, 9] = self.flushed[e] = at

    def _layout(self, e: int, row: dict[int, int]) -> None:
        """Row ``e``'s slot tables (what the observation reads of the layout)."""
        sim, w = self.envs[e].run.sim, self.w  # type: ignore[union-attr]
        self.slot_row[e], self.slot_static[e], self.any_ok[e] = -1, 0.0, False
        for g in sim.gpus:
            for j, p in enumerate(g.partitions):
                s = g.index * w + j
                self.slot_row[e, s] = row.get(p.uid, -1) if p.available else -1
                self.slot_static[e, s] = (p.gpcs / w, p.model, float(p.available), p.est_free_s)
                if p.available and 0 <= p.model < self.num_models:
                    lat = np.full(self.max_batch + 1, math.inf)
                    k = min(len(p.lat), len(lat))
                    lat[:k] = p.lat[:k]
                    self.any_ok[e, p.model] |= lat < math.inf

    def flush(self, e: int) -> None:
        """Record row ``e``'s outcomes since the last flush (bulk) and its held queries."""
        sim, c, k = self.envs[e].run.sim, self.ctr[e], self.k[e]  # type: ignore[union-attr]
        nc, nr, nh, i = int(c[6]), int(c[7]), int(c[8]), int(c[9])
        record_outcomes(sim.rec, self.bt[e, self.flushed[e] : i], self.out_f[e, :nc],
                        self.out_i[e, :nc], self.rej_f[e, :nr], self.rej_i[e, :nr],
                        sim.reject_codes(), np.asarray(sim.slo_s, np.float64))  # fmt: skip
        k.held_slots.extend(self.held[e, :nh].tolist())
        c[6] = c[7] = c[8] = 0
        self.flushed[e] = i

    def unpack(self, e: int) -> None:
        """Row ``e`` back onto its simulator (outcomes recorded first); it steps in Python."""
        self.flush(e)
        env, k = self.envs[e], self.k[e]
        sim = env.run.sim  # type: ignore[union-attr]
        p = len(k.parts)
        k.pf, k.pi, k.qf, k.qi = self.pf[e, :p], self.pi[e, :p], self.qf[e], self.qi[e]
        k.hx, k.hs, k.hp, k.hq = self.hx[e], self.hs[e], self.hp[e], self.hq[e]
        k.ctr = self.ctr[e, :11].copy()
        k.clock = self.clock[e, :2].copy()
        sim.unpack_state(k)
        env._rate, env._last_t = float(self.clock[e, 2]), float(self.clock[e, 3])
        v, m, lat, paid, _ = self.book[e].tolist()
        env.book._last, env.book.paid = (int(v), int(m), lat), paid
        env.pending_query = None
        env.bank.reset_row(0)  # the kernel changed partitions behind its watch lists
        self.packed[e], self.k[e] = False, None
