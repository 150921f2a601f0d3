"""Periodic PARIS: re-plan every epoch from the batch sizes observed in the last window.

Each epoch the observed per-model batch histogram replaces the scenario's distribution; GPUs whose
layout changes pay the reconfiguration (drain, downtime) in the simulator. An epoch with no
arrivals of a model keeps that model's previous distribution.
"""

from __future__ import annotations

from typing import Any

from mig_gym.cluster import Plan
from mig_gym.policies.paris import PARIS
from mig_gym.policies.partitioners import PlanContext

__all__ = ["PeriodicPARIS"]


class PeriodicPARIS:
    """PARIS re-run every ``epoch_s`` seconds on the last window's batch sizes."""

    name = "periodic_paris"

    def __init__(self, epoch_s: float, paris: PARIS | None = None) -> None:
        self.epoch_s = epoch_s
        self.paris = paris if paris is not None else PARIS()
        self.pmfs: list[dict[int, float]] | None = None

    @property
    def home_of(self) -> Any:
        return self.paris.home_of

    def plan(self, ctx: PlanContext) -> Plan:
        self.pmfs = [dict(p) for p in ctx.batch_pmfs]
        return self.paris.plan(ctx, self.pmfs)

    def replan(self, ctx: PlanContext, sim: Any) -> Plan | None:
        """A new plan from ``sim.batch_counts`` (then cleared), or None if nothing was seen."""
        counts = sim.batch_counts
        if counts is None or not any(counts):
            return None
        assert self.pmfs is not None
        for m, c in enumerate(counts):
            n = sum(c.values())
            if n:
                self.pmfs[m] = {b: v / n for b, v in sorted(c.items())}
            c.clear()
        return self.paris.plan(ctx, self.pmfs)
