"""Capacity changes of a running simulation: planned re-partitioning and GPU failures.

:class:`CapacityChanges` extends the :class:`~mig_gym.sim.server.Server` (the state and the path
of a query) and is extended by the event loop, :class:`mig_gym.sim.simulator.Simulator`.
A reconfiguration stops the GPU taking work, re-dispatches its queued queries, lets running ones
drain, then takes the GPU down for ``reconfig_s`` before the new partitions come
online. A failure aborts the GPU's running queries and re-dispatches them with its queued ones
(counted as retries); on recovery the GPU comes back with its layout, or with a layout requested
while it was down (after the reconfiguration downtime).

Faults on one GPU are the union of their down intervals (:func:`merge_faults`): overlapping or
touching intervals are one outage, and a fault without ``up_at_s`` keeps the GPU down for good.

Simultaneous events are resolved independently of their order: queries displaced at an instant
(a failure's victims, a reconfiguration's orphans, queries held while nothing could take them)
and partitions that come online at that instant wait until every event of the instant has been
handled; then the new partitions take work and the displaced queries are re-dispatched, oldest
first (:meth:`CapacityChanges._settle`). Downtime is counted in GPU-seconds, split into
reconfiguration (``downtime_reconfig_s``) and failure (``downtime_failure_s``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

from mig_gym.hardware import Layout
from mig_gym.sim.entities import GPU, Query
from mig_gym.sim.events import ReconfigDone
from mig_gym.sim.server import Server

__all__ = ["CapacityChanges", "merge_faults"]


def merge_faults(
    faults: Sequence[tuple[int, float, float | None]],
) -> list[tuple[int, float, float | None]]:
    """The union of each GPU's down intervals ``[down_at_s, up_at_s)``, sorted by GPU and time.

    Overlapping or touching intervals merge into one; ``up_at_s=None`` (never comes back) absorbs
    every later interval of that GPU.
    """
    out: list[tuple[int, float, float | None]] = []
    for g, down, up in sorted(faults, key=lambda f: (f[0], f[1])):
        if out and out[-1][0] == g:
            _, d0, u0 = out[-1]
            if u0 is None or down <= u0:  # overlaps (or touches) the previous outage
                out[-1] = (g, d0, None if u0 is None or up is None else max(u0, up))
                continue
        out.append((g, down, up))
    return out


class CapacityChanges(Server):
    """Re-partitioning and failure handling on the server's state; see the module docstring.

    ``reconfig_s`` is the downtime of a reconfiguration; the other arguments are the
    :class:`~mig_gym.sim.server.Server`'s."""

    def __init__(self, *, reconfig_s: float, **server: Any) -> None:
        super().__init__(**server)
        self.reconfig_s = reconfig_s
        self._gen = [0] * len(self.gpus)  # a ReconfigDone of an older generation is stale

    def reconfigure(self, gpu: int, layout: Layout, models: Sequence[int]) -> bool:
        """Start re-partitioning ``gpu``. Returns False if it already has (or is getting) that plan.

        The GPU stops taking work, its queued queries are re-dispatched, running ones drain, then
        it is down for ``reconfig_s`` before the new partitions come online. A GPU that is down
        takes the new layout when it recovers.
        """
        g = self.gpus[gpu]
        models = tuple(models)
        if len(models) != len(layout.placements):
            raise ValueError(f"layout {layout} needs {len(layout.placements)} models")
        want = (layout, models)
        current = g.target if g.target is not None else (g.layout, g.models)
        if current == want:
            return False
        g.target = want
        old_servable, self._servable = self._servable, self._servable_batches()
        # Pull mode: waiting queries that no partition of the new plan can serve would wait
        # forever; reject them now, as push mode does when it re-routes a GPU's orphans.
        # The same holds for queries held (push mode) while no partition could take them.
        if any(a < b for a, b in zip(self._servable, old_servable, strict=True)):
            for m, dq in enumerate(self.central_q):
                self.central_q[m] = self._drop_unservable(dq)
            self.held = self._drop_unservable(self.held)
        self.rec.reconfigurations += 1
        if g.state != GPU.UP:
            return True  # draining, reconfiguring or down: the new target applies when ready
        g.state = GPU.DRAINING
        orphans = self._take_offline(g)
        if not any(p.running for p in g.partitions):
            self._begin_downtime(g)
        self.rec.redispatched += len(orphans)
        self._displaced.extend(orphans)  # re-dispatched once every change of the instant is in
        self._settle_due = True
        return True

    def _drop_unservable(self, dq: deque[Query]) -> deque[Query]:
        """Reject the queries of ``dq`` that no partition of the plan can serve; keep the rest."""
        keep: deque[Query] = deque()
        for q in dq:
            if q.batch > self._servable[q.model]:
                self._reject(q)
            else:
                keep.append(q)
        return keep

    def _begin_downtime(self, g: GPU) -> None:
        """``g`` has drained (or recovered owing a new layout): down for ``reconfig_s``."""
        self.topology += 1
        for p in g.partitions:
            self.rec.capacity(self.now, p.gpcs, -p.gpcs)
        g.partitions = []
        g.state = GPU.RECONFIGURING
        g.down_since = self.now
        self._gen[g.index] += 1
        self._push(self.now + self.reconfig_s, ReconfigDone(g.index, self._gen[g.index]))

    def _on_fail(self, g: GPU) -> None:
        if g.state == GPU.DOWN:
            return
        self.topology += 1
        victims: list[Query] = []
        if g.state in (GPU.UP, GPU.DRAINING):
            victims = self._take_offline(g)
            for p in g.partitions:
                if p.running is not None:
                    victims.append(p.running)
                    self.running -= 1
                    self.rec.served(self.now, p.gpcs, self.now - p.run_start_s)
                    p.running = None  # its Completion event is now stale
                self.rec.capacity(self.now, p.gpcs, -p.gpcs)
        elif g.state == GPU.RECONFIGURING:
            self.rec.downtime_reconfig_s += self.now - g.down_since
        g.partitions = []
        g.state = GPU.DOWN
        g.down_since = self.now
        self._gen[g.index] += 1
        self.rec.retried += len(victims)
        for q in victims:
            q.retries += 1
        self._displaced.extend(victims)
        self._settle_due = True

    def _on_recover(self, g: GPU) -> None:
        if g.state != GPU.DOWN:
            return
        self.rec.downtime_failure_s += self.now - g.down_since
        if g.target is not None:
            self._begin_downtime(g)
            return
        self._install(g, g.layout, g.models, defer=True)  # type: ignore[arg-type]

    def _on_reconfig_done(self, g: GPU) -> None:
        self.rec.downtime_reconfig_s += self.now - g.down_since
        lay, mods = g.target  # type: ignore[misc]
        self._install(g, lay, mods, defer=True)

    def _settle(self) -> None:
        """After every event of the instant: partitions that came online take waiting work
        (pull) in GPU and placement order, as at the start (not in the order their events were
        handled), then displaced and held queries are re-dispatched, oldest first."""
        self._settle_due = False
        fresh, self._fresh = self._fresh, []
        fresh.sort(key=lambda p: (p.gpu, p.start))
        for p in fresh:
            if p.available and p.running is None:
                self._became_idle(p)
        waiting = self._displaced + list(self.held)
        self._displaced, self.held = [], deque()
        waiting.sort(key=lambda q: (q.arrival_s, q.id))
        for q in waiting:
            self._route(q, self.fallback)

    def open_downtime_s(self) -> tuple[float, float]:
        """(reconfiguration, failure) GPU-seconds of the outages still open at ``now``."""
        reconfig = failure = 0.0
        for g in self.gpus:
            if g.state == GPU.RECONFIGURING:
                reconfig += self.now - g.down_since
            elif g.state == GPU.DOWN:
                failure += self.now - g.down_since
        return reconfig, failure
