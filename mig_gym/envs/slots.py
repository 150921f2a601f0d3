"""Dispatch-v0's observations and action masks for a batch of ``n`` environments, kept
incrementally in preallocated numpy buffers (one row per environment).

A single :class:`~mig_gym.envs.dispatch.DispatchEnv` owns a bank of one row;
:class:`~mig_gym.envs.vector.DispatchVectorEnv` shares one bank of ``n`` rows between its
environments, so that the numpy work of a step is done once for all of them.

Per row, what depends only on the layout (the partitions, their sizes, models and availability)
is tabulated when the simulator's ``topology`` counter moves: for each model a template block
(size, hosts-model, available), the service time / SLA of every batch on every slot (``inf``
where the slot cannot take it, ``0`` on an empty slot) and the mask rows. What changes with the
queries, each slot's estimated free time and queue length, is copied only for the partitions
that changed since the last step: each partition's class index notes the partition in the
row's ``watch`` list on every ``busy``/``went_idle`` call, which the simulator makes on every
change of a partition's ``est_free_s`` or queue (and a layout change rebuilds the row). Only the
backlog and completion columns, which move with the clock, are recomputed for every slot: by
one compiled call where numba is installed (:mod:`mig_gym.envs.obs_kernel`), else vectorised in
numpy, with the same results.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from mig_gym.envs.common import OBS_CLIP
from mig_gym.sim import compiled
from mig_gym.sim.entities import Partition, Query

__all__ = ["SlotBank", "PART_FEATURES"]


def _load_kernel() -> Callable[..., None] | None:
    """The compiled per-step columns (:mod:`mig_gym.envs.obs_kernel`), or None without numba."""
    kernel = compiled.load("mig_gym.envs.obs_kernel")  # numba: about 0.2 s the first time
    return kernel.columns if kernel is not None else None


PART_FEATURES = ("size", "hosts_model", "backlog", "est_done", "available", "queue")
_F = len(PART_FEATURES)


class _Row:
    """One environment's layout tables and what the bank last wrote for it."""

    __slots__ = ("topology", "slot_part", "slot_of", "any_ok", "changed", "key", "onehot")

    def __init__(self) -> None:
        self.topology = -1
        self.slot_part: list[Partition | None] = []
        self.slot_of: dict[int, int] = {}
        self.any_ok: list[list[bool]] = []
        self.changed: list[Partition] = []
        self.key = -1  # model of the template block in the observation (-1: none)
        self.onehot = -1  # model index set in the one-hot part


class SlotBank:
    """Observation and mask buffers of ``n`` Dispatch-v0 environments of the same shape.

    Args:
        n: rows (environments).
        slot_width: slots per GPU (W); ``slots = num_gpus * W``.
        slots: partition slots P.
        max_batch: the largest batch of the scenario (the service-time tables' width - 1).
        num_models: M.
    """

    def __init__(
        self, n: int, slot_width: int, slots: int, max_batch: int, num_models: int
    ) -> None:
        self.n, self.w, self.slots, self.max_batch = n, slot_width, slots, max_batch
        self.num_models = num_models
        s, m, width = slots, num_models, max_batch + 1
        self.dim = s * _F + 3 + m + 3
        self.obs = np.zeros((n, self.dim), np.float32)
        self.mask = np.zeros((n, s), bool)
        # est_free_s per slot, twice (columns 2 and 3 are computed together; -inf: empty slot)
        self.est = np.full((n, s, 2), -np.inf)
        self.queue = np.zeros((n, s), np.float32)  # min(queue length / 10, clip)
        self.tpl = np.zeros((n, m, s, _F), np.float32)
        # per (model, batch): (0, service time / SLA) per slot (inf: cannot take it, 0: empty
        # slot), added to the backlog to give columns 2 and 3 in one operation
        self.los = np.zeros((n, m, width, s, 2))
        self.ok = np.zeros((n, m, width, s), bool)
        self._pair = np.zeros((n, s, 2))
        self.now = np.zeros(n)
        self.slo = np.ones(n)
        self.model = np.zeros(n, np.intp)
        self.batch = np.zeros(n, np.intp)
        self.rows = [_Row() for _ in range(n)]
        self._tpl_stale = True
        self._ar = np.arange(n)
        self._kernel = _load_kernel()
        self._views()

    @property
    def compiled(self) -> bool:
        """Whether the per-step columns are computed by the compiled kernel (numba)."""
        return self._kernel is not None

    def _views(self) -> None:
        """The per-slot block of the observations, and its columns 2-3 (views of ``obs``); and
        per row, memoryviews of the buffers written one value at a time (a memoryview item
        write is a few times cheaper than numpy's, and casts to float32 the same way)."""
        self.blk = self.obs[:, : self.slots * _F].reshape(self.n, self.slots, _F)
        self._out = self.blk[:, :, 2:4]
        self._mv = [
            (memoryview(self.obs[i]), memoryview(self.est[i].reshape(-1)),
             memoryview(self.queue[i]))
            for i in range(self.n)
        ]  # fmt: skip
        self._mv_row = (memoryview(self.now), memoryview(self.slo), memoryview(self.model),
                        memoryview(self.batch))  # fmt: skip

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["blk"], state["_out"], state["_mv"], state["_mv_row"]  # views of the buffers
        state["_kernel"] = state["_kernel"] is not None  # loaded again where it is unpickled
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._kernel = _load_kernel() if state["_kernel"] else None
        self._views()

    # ------------------------------------------------------------------ per row
    def reset_row(self, i: int) -> None:
        """Forget row ``i``'s layout (a new episode: a new simulator)."""
        self.rows[i] = _Row()

    def slot_partition(self, i: int, slot: int) -> Partition | None:
        sp = self.rows[i].slot_part
        return sp[slot] if 0 <= slot < len(sp) else None

    def _layout(self, i: int, sim: Any) -> None:
        """Rebuild row ``i``'s tables from the simulator's partitions and tap their indexes."""
        row, w, width = self.rows[i], self.w, self.max_batch + 1
        row.changed = changed = []
        row.slot_part = [None] * self.slots
        row.slot_of = {}
        est, queue, los, ok, tpl = self.est[i], self.queue[i], self.los[i], self.ok[i], self.tpl[i]
        est[:] = -np.inf
        queue[:] = 0.0
        los[:] = 0.0
        ok[:] = False
        tpl[:] = 0.0
        for g in sim.gpus:
            for j, p in enumerate(g.partitions):
                s = g.index * w + j
                row.slot_part[s], row.slot_of[p.uid] = p, s
                est[s] = p.est_free_s
                queue[s] = min(len(p.queue) / 10.0, OBS_CLIP)
                lat = np.full(width, np.inf)
                k = min(len(p.lat), width)
                lat[:k] = p.lat[:k]
                tpl[:, s, 0] = p.gpcs / w
                tpl[:, s, 4] = p.available
                los[:, :, s, 1] = np.inf
                if 0 <= p.model < self.num_models:
                    tpl[p.model, s, 1] = 1.0
                if p.available and 0 <= p.model < self.num_models:
                    m = p.model
                    ok[m, :, s] = lat < np.inf
                    los[m, :, s, 1] = np.where(ok[m, :, s], lat, np.inf) / sim.slo_s[m]
                if p.index is not None:
                    p.index.watch = changed
        row.any_ok = ok.any(axis=2).tolist()
        row.topology, row.key = sim.topology, -1
        self._tpl_stale = True

    def sync(self, i: int, sim: Any) -> None:
        """Bring row ``i``'s per-slot state up to date: a full rebuild after a layout change,
        else only the partitions that changed since the last call."""
        row = self.rows[i]
        if row.topology != sim.topology:
            self._layout(i, sim)
            return
        changed = row.changed
        if changed:
            obs, est, queue = self._mv[i]
            slot_of = row.slot_of
            for p in changed:
                s = slot_of[p.uid]
                est[2 * s] = est[2 * s + 1] = p.est_free_s
                obs[_F * s + 5] = queue[s] = min(len(p.queue) / 10.0, OBS_CLIP)
            changed.clear()

    def stage(self, i: int, q: Query, now: float, slo: float, tail: tuple[float, ...],
              compute: bool = False) -> None:  # fmt: skip
        """Row ``i``'s query-dependent inputs; ``tail``: (rate, in-system, progress) features;
        with ``compute`` (a bank of one row) the observation and mask are computed at once."""
        row, m, o = self.rows[i], q.model, self._mv[i][0]
        mv_now, mv_slo, mv_model, mv_batch = self._mv_row
        mv_now[i], mv_slo[i], mv_model[i], mv_batch[i] = now, slo, m, q.batch
        if row.key != m:
            row.key = m
            self._tpl_stale = True
        k = self.slots * _F
        o[k] = q.batch / self.max_batch
        o[k + 1] = min((now - q.arrival_s) / slo, OBS_CLIP)
        o[k + 2] = m / self.num_models
        if row.onehot != m:
            if row.onehot >= 0:
                o[k + 3 + row.onehot] = 0.0
            o[k + 3 + m] = 1.0
            row.onehot = m
        k += 3 + self.num_models
        o[k], o[k + 1], o[k + 2] = tail
        if compute:
            self.compute_solo()

    def blank(self, i: int) -> None:
        """Row ``i`` has no pending query: zero observation, nothing valid."""
        self.obs[i] = 0.0
        self.mask[i] = False
        row = self.rows[i]
        row.key = row.onehot = -1
        self._tpl_stale = True

    # ------------------------------------------------------------------ all rows
    def compute(self, live: np.ndarray | None = None) -> None:
        """Observation and mask of every row from the staged inputs; rows where ``live`` is
        False (no pending query) are left blank."""
        if self.n == 1:
            return self.compute_solo() if live is None or live[0] else None
        ar, m, b, blk = self._ar, self.model, self.batch, self.blk
        if self._tpl_stale:
            blk[...] = self.tpl[ar, m]
            blk[:, :, 5] = self.queue
            self._tpl_stale = False
        if self._kernel is not None:  # the same arithmetic, in one call
            self._kernel(self.est, self.now, self.slo, self.los, self.ok, m, b, blk, self.mask,
                         OBS_CLIP)  # fmt: skip
        else:
            self._compute_numpy()
        if live is not None and not live.all():
            for i in np.flatnonzero(~live):
                self.blank(int(i))

    def _compute_numpy(self) -> None:
        """The per-step columns and masks of every row, in numpy."""
        ar, m, b = self._ar, self.model, self.batch
        pair = self._pair  # (backlog, est_done) / SLA per slot, as in compute_solo
        np.subtract(self.est, self.now[:, None, None], out=pair)
        np.maximum(pair, 0.0, out=pair)
        np.divide(pair, self.slo[:, None, None], out=pair)
        np.add(pair, self.los[ar, m, b], out=pair)
        np.minimum(pair, OBS_CLIP, out=pair)
        self._out[...] = pair
        self.mask[...] = self.ok[ar, m, b]

    def compute_solo(self) -> None:
        """:meth:`compute` for a bank of one row with a pending query (basic indexing, the
        same arithmetic)."""
        if self._tpl_stale:
            blk = self.blk[0]
            blk[...] = self.tpl[0, self._mv_row[2][0]]
            blk[:, 5] = self.queue[0]
            self._tpl_stale = False
        if self._kernel is not None:
            self._kernel(self.est, self.now, self.slo, self.los, self.ok, self.model, self.batch,
                         self.blk, self.mask, OBS_CLIP)  # fmt: skip
            return
        m, b = int(self.model[0]), int(self.batch[0])
        pair = self._pair[0]  # max(est - now, 0) / SLA, + (0, service time / SLA), clipped
        np.subtract(self.est[0], self.now[0], out=pair)
        np.maximum(pair, 0.0, out=pair)
        np.divide(pair, self.slo[0], out=pair)
        np.add(pair, self.los[0, m, b], out=pair)
        np.minimum(pair, OBS_CLIP, out=pair)
        self._out[0] = pair
        self.mask[0] = self.ok[0, m, b]
