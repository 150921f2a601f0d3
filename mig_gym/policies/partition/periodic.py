"""Periodic PARIS: re-plan every epoch from the batch sizes observed in the last window.

Each epoch the observed per-model batch histogram replaces the scenario's distribution, blended
with a small weight ``prior`` (default 1 %) of the scenario's own distribution so that a plan made
on a window of small batches still keeps a partition able to hold the largest batches the
scenario can send (without it, a drift to large batches is met by rejections until the next
re-plan). The split of GPUs between models follows the model mix observed in the same window,
blended with the same weight ``prior`` of the scenario's mix (so a model that fell silent keeps a
foothold for its return). GPUs whose layout changes pay the reconfiguration (drain, downtime) in
the simulator. An epoch with no arrivals of a model keeps that model's previous distribution.

The partitioner counts the arrivals itself: ``attach(sim)`` (called by the run's builder) registers
its :class:`~mig_gym.sim.observers.BatchCounts` with the simulator, and each re-plan takes them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from mig_gym.policies.partition.baselines import PlanContext
from mig_gym.policies.partition.paris import PARIS
from mig_gym.sim.entities import Plan
from mig_gym.sim.observers import BatchCounts

__all__ = ["PeriodicPARIS"]


class PeriodicPARIS:
    """PARIS re-run every ``epoch_s`` seconds on the last window's batch sizes."""

    name = "periodic_paris"

    def __init__(self, epoch_s: float, paris: PARIS | None = None, prior: float = 0.01) -> None:
        if not 0.0 <= prior < 1.0:
            raise ValueError(f"periodic PARIS prior must be in [0, 1), got {prior}")
        self.epoch_s = epoch_s
        self.paris = paris if paris is not None else PARIS()
        self.prior = prior
        self.pmfs: list[dict[int, float]] | None = None
        self.base: list[dict[int, float]] = []
        self.mix: tuple[float, ...] = ()  # the model mix of the last plan
        self.counts: BatchCounts | None = None  # arrivals since the last re-plan, once attached

    @property
    def home_of(self) -> Any:
        return self.paris.home_of

    def plan(self, ctx: PlanContext) -> Plan:
        self.pmfs = [dict(p) for p in ctx.batch_pmfs]
        self.base = [dict(p) for p in ctx.batch_pmfs]
        self.mix = ctx.shares
        return self.paris.plan(ctx, self.pmfs)

    def attach(self, sim: Any) -> None:
        """Count the arrivals of ``sim`` (a Simulator) from now on."""
        self.counts = BatchCounts(sim.num_models)
        sim.observe(self.counts)

    def replan(self, ctx: PlanContext, sim: Any) -> Plan | None:
        """A new plan from the batch counts since the last re-plan (then cleared), or None if
        nothing was seen (or the partitioner was never attached to a simulator)."""
        if self.counts is None or not self.counts.seen():
            return None
        counts = self.counts.take()
        assert self.pmfs is not None
        seen = [sum(c.values()) for c in counts]
        base = [s / sum(ctx.shares) for s in ctx.shares]
        self.mix = tuple(
            self.prior * w + (1.0 - self.prior) * n / sum(seen)
            for w, n in zip(base, seen, strict=True)
        )
        for m, c in enumerate(counts):
            n = seen[m]
            if n:
                mix = {b: self.prior * p for b, p in self.base[m].items() if self.prior > 0}
                for b, v in c.items():
                    mix[b] = mix.get(b, 0.0) + (1.0 - self.prior) * v / n
                self.pmfs[m] = dict(sorted(mix.items()))
        return self.paris.plan(dataclasses.replace(ctx, shares=self.mix), self.pmfs)
