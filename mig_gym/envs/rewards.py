"""The environments' reward: by default, the score the tables report.

The score of an episode is its ``Summary.sla_violation_rate`` (docs/metrics.md): violations over
the measured queries (those after the warm-up), a violation being a measured query that completed
later than its SLA, was rejected, or is still in the system at the episode's end with its deadline
passed. :class:`RewardBook` pays it out step by step from the recorder's counters, so that

    episode return = -w_v * sla_violation_rate      (w_v = ``env.reward_weights.sla_violation``)

exactly, with the default weights (``sla_violation: 1``, every shaping weight 0). Each step's
``sla_violation`` term is minus the new violations since the last step divided by the episode's
expected number of measured queries (Dispatch-v0: ``queries_per_episode`` minus its warm-up, known
in advance; Partition-v0: the scenario's time-average rate times the horizon); the last step
settles the difference, adding the queries unfinished past their deadline and correcting for the
actual number of measured queries, so the terms sum to ``-sla_violation_rate``.

Shaping terms are opt-in, by name, through the scenario's ``env.reward_weights`` (weight 0 by
default): ``latency`` (minus the sum of latency / SLA of the measured queries completed since the
last step; per epoch, their mean), ``reconfig`` (minus the GPUs reconfigured by the action) and
``invalid_action`` (minus one for an invalid action). With any of them set, the return is
``-w_v * sla_violation_rate`` plus the weighted sums of those terms.

The counters are the recorder's own (``violations``, ``measured_completed``, per-model latency
sums of measured completions): the core keeps no RL bookkeeping.
"""

from __future__ import annotations

from mig_gym.metrics import Recorder
from mig_gym.metrics.summary import Summary
from mig_gym.scenario import config as C

__all__ = ["RewardBook", "TERMS"]

TERMS = ("sla_violation", "latency", "reconfig", "invalid_action")


class RewardBook:
    """Per-step reward terms from the recorder's cumulative counters (see the module docstring).

    Args:
        rec: the episode's recorder.
        weights: the scenario's ``env.reward_weights``.
        slo_s: each model's SLA in seconds (normalises the latency term).
        expected_measured: the episode's expected number of measured queries (the per-step
            scale of the violation term; the last step corrects for the actual number).
        per_epoch: the latency term is the mean over the step's completions instead of the sum.
    """

    def __init__(
        self,
        rec: Recorder,
        weights: C.RewardWeights,
        slo_s: list[float] | tuple[float, ...],
        expected_measured: float,
        per_epoch: bool = False,
    ) -> None:
        self.rec = rec
        self.w = weights
        self.slo_s = tuple(slo_s)
        self.scale = 1.0 / max(expected_measured, 1.0)
        self.per_epoch = per_epoch
        self.paid = 0.0  # sum of the sla_violation terms so far (<= 0)
        self._pairs = tuple(zip(rec.model_stats, self.slo_s, strict=True))
        self._last = self._now()

    def _now(self) -> tuple[int, int, float]:
        """(violations, measured completions, sum of latency / SLA over them) so far."""
        r = self.rec
        lat = 0.0  # (the sum in model order, as ``sum`` adds)
        for st, slo in self._pairs:
            lat += st[2] / slo
        return r.violations, r.measured_completed, lat

    def step(
        self,
        reconfigured: int = 0,
        invalid: bool = False,
        summary: Summary | None = None,
        counts: tuple[int, int, float] | None = None,
    ) -> tuple[float, dict[str, float]]:
        """This step's ``(reward, terms)``; pass the episode's ``summary`` on its last step.
        ``counts``: (violations, measured completions, sum of latency / SLA) kept elsewhere as
        the recorder counts them (Dispatch-v0's compiled vector step), instead of its own."""
        now, last = counts if counts is not None else self._now(), self._last
        self._last = now
        if summary is None:
            viol = -(now[0] - last[0]) * self.scale
        else:  # settle: the terms sum to minus the episode's violation rate
            viol = -summary.sla_violation_rate - self.paid
        self.paid += viol
        latency = now[2] - last[2]
        if self.per_epoch:
            latency /= max(now[1] - last[1], 1)
        terms = {
            "sla_violation": viol,
            "latency": -latency,
            "reconfig": -float(reconfigured),
            "invalid_action": -float(invalid),
        }
        w = self.w
        reward = (
            w.sla_violation * terms["sla_violation"]
            + w.latency * terms["latency"]
            + w.reconfig * terms["reconfig"]
            + w.invalid_action * terms["invalid_action"]
        )
        return reward, terms
