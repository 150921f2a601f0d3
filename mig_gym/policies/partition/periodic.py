"""Periodic PARIS: re-plan every epoch from the batch sizes observed in the last window.

Each epoch the observed per-model batch histogram replaces the scenario's distribution, blended
with a small weight ``prior`` (default 1 %) of the scenario's own distribution so that a plan made
on a window of small batches still keeps a partition able to hold the largest batches the
scenario can send (without it, a drift to large batches is met by rejections until the next
re-plan). The split of GPUs between models follows the model mix observed in the same window,
blended with the same weight ``prior`` of the scenario's mix (so a model that fell silent keeps a
foothold for its return). GPUs whose layout changes pay the reconfiguration (drain, downtime) in
the simulator. An epoch with no arrivals of a model keeps that model's previous distribution.

One rule, two drivers, one implementation (:meth:`PeriodicPARIS.plan_from_counts`):

- in the simulator, the partitioner counts the arrivals itself: ``attach(sim)`` (called by the
  run's builder) registers its :class:`~mig_gym.sim.observers.BatchCounts`, and each
  :meth:`~PeriodicPARIS.replan` at a decision epoch takes them;
- in ``Partition-v0`` (the reference ``periodic_paris``, or ``PeriodicPARIS(...).bind(env)``),
  :meth:`~PeriodicPARIS.decide` takes the environment's counts of the epoch that just ended
  (``env.observed_counts()``, the same observer): the first decision of an episode (t = 0)
  installs the rule's initial plan, each later one the re-plan (None: keep every GPU), the GPUs
  that already match a wanted layout kept as ``runs.build.apply_plan`` keeps them. On an
  environment whose initial plan is this rule's (a task whose scenario partitioner is PARIS or
  periodic PARIS with default parameters), an episode is ``run_epochs(scenario,
  "periodic_paris[epoch_s=E]+elsa", seed)`` exactly (tests/test_periodic.py).
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Sequence
from typing import Any

from mig_gym.policies.partition.baselines import PlanContext
from mig_gym.policies.partition.paris import PARIS
from mig_gym.policies.predict import PartitionPredict
from mig_gym.sim.entities import Plan
from mig_gym.sim.observers import BatchCounts

__all__ = ["PeriodicPARIS"]


class PeriodicPARIS(PartitionPredict):
    """PARIS re-run every ``epoch_s`` seconds on the last window's batch sizes.

    Args:
        epoch_s: the re-planning period in the simulator (in ``Partition-v0`` the environment's
            ``env.epoch_s`` sets it instead).
        paris: the PARIS rule that plans (default parameters if None).
        prior: weight of the scenario's own batch distribution and model mix in each re-plan.
    """

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
        self._run: weakref.ref | None = None  # the Partition-v0 episode (Run) of the state

    @property
    def home_of(self) -> Any:
        return self.paris.home_of

    def plan(self, ctx: PlanContext) -> Plan:
        """The initial plan (PARIS on the scenario's distribution); starts the rule's state."""
        self._start(ctx)
        assert self.pmfs is not None
        return self.paris.plan(ctx, self.pmfs)

    def _start(self, ctx: PlanContext) -> None:
        self.pmfs = [dict(p) for p in ctx.batch_pmfs]
        self.base = [dict(p) for p in ctx.batch_pmfs]
        self.mix = ctx.shares

    def attach(self, sim: Any) -> None:
        """Count the arrivals of ``sim`` (a Simulator) from now on."""
        self.counts = BatchCounts(sim.num_models)
        sim.observe(self.counts)

    def replan(self, ctx: PlanContext, sim: Any) -> Plan | None:
        """A new plan from the batch counts since the last re-plan (then cleared), or None if
        nothing was seen (or the partitioner was never attached to a simulator)."""
        if self.counts is None or not self.counts.seen():
            return None
        return self.plan_from_counts(ctx, self.counts.take())

    def plan_from_counts(self, ctx: PlanContext, counts: Sequence[dict[int, int]]) -> Plan | None:
        """The re-plan from ``counts[m][b]``, the arrivals of model ``m`` with batch ``b`` in the
        window, or None if the window saw no arrival. Updates the rule's distributions and mix.

        Each model's distribution becomes ``prior`` x the scenario's + (1 - ``prior``) x the
        window's (a model with no arrivals keeps its previous one), the model mix ``prior`` x
        the scenario's + (1 - ``prior``) x the window's.
        """
        if self.pmfs is None:
            self._start(ctx)
        assert self.pmfs is not None
        seen = [sum(c.values()) for c in counts]
        if not sum(seen):
            return None
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

    def env_plan(self, env: Any) -> Plan | None:
        """The plan for ``Partition-v0``'s current decision (None: keep every GPU): the initial
        plan at an episode's first decision, else the re-plan from the epoch that just ended."""
        ctx = env.run.context
        if self._run is None or self._run() is not env.run:  # a new episode (or first use)
            self._run = weakref.ref(env.run)
            self._start(ctx)
        if env.epoch == 0:
            return self.plan(ctx)
        return self.plan_from_counts(ctx, env.observed_counts())
