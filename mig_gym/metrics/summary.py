"""``Summary``: what one simulation run measured, as ``simulate()`` returns it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from mig_gym.metrics.histogram import SKETCH_RELATIVE_ERROR

__all__ = ["Summary", "strict_json"]


@dataclass(frozen=True)
class Summary:
    """What one simulation run measured. Every definition is also in docs/metrics.md.

    **Populations.** The first ``run.warmup_queries`` queries to arrive are the warm-up; every
    later one is *measured*. Each query ends the run in exactly one state: completed, rejected
    (with a reason) or *unfinished* (still queued, held or running when the summary is taken).
    An unfinished query is *late* if its deadline (arrival + SLA) has passed at ``sim_time_s``:
    it will violate its SLA whenever it completes.

    **Counts over every query** (warm-up included): ``arrived``, ``completed``, ``rejected``
    (by reason in ``rejected_by_reason``), ``unfinished`` (= ``queued`` + ``running``; held
    queries count as queued), ``unfinished_late``, ``retried`` (re-dispatched after a failure
    aborted or displaced them), ``redispatched`` (displaced by a reconfiguration). Always
    ``arrived == completed + rejected + unfinished`` (``conserved``).

    **The measured population.** ``measured``: measured queries that arrived. ``violations``:
    measured queries that completed later than their SLA, were rejected, or are unfinished and
    late. The same population is in the numerator and the denominator of every rate:

    - ``sla_violation_rate = violations / measured`` (0 if nothing was measured), in [0, 1];
    - ``by_model[name]``: the same counts per model (``measured``, ``completed``, ``rejected``,
      ``unfinished``, ``unfinished_late``, ``violations``), ``sla_violation_rate`` defined as
      above (so in [0, 1], and the per-model counts sum to the overall ones) and
      ``latency_mean_ms`` over the model's measured completions (NaN if none).

    **Latency** (``latency_*_ms``): over measured queries that completed, arrival to completion;
    the mean and max are exact, p50/p95/p99 within ``percentile_relative_error`` (NaN if none
    completed). Unfinished and rejected queries have no latency.

    **Rates per second.** ``offered_qps``: arrived / last arrival time. ``throughput_qps`` and
    ``goodput_qps``: measured completions (on time, for goodput) per second from the first
    measured arrival to the end of the run (NaN for an empty span).

    **Capacity.** ``utilization``: busy over available GPC-seconds, in [0, 1] (a GPU that is
    down or being reconfigured offers none); ``utilization_by_size`` the same per partition size.
    ``downtime_s = downtime_reconfig_s + downtime_failure_s``, GPU-seconds during which GPUs were
    being reconfigured (after draining) or were down after a failure, up to ``sim_time_s`` for
    outages still open at the end. ``reconfigurations``: reconfigurations requested.

    ``to_dict()`` is plain data; :func:`strict_json` makes it valid strict JSON (NaN -> None).
    """

    scenario: str
    policy: str
    seed: int
    arrived: int
    completed: int
    rejected: int
    rejected_by_reason: dict[str, int]
    retried: int
    redispatched: int
    unfinished: int
    unfinished_late: int
    queued: int
    running: int
    measured: int
    violations: int
    latency_mean_ms: float
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    sla_violation_rate: float
    offered_qps: float
    throughput_qps: float
    goodput_qps: float
    utilization: float
    utilization_by_size: dict[int, float]
    reconfigurations: int
    downtime_s: float
    downtime_reconfig_s: float
    downtime_failure_s: float
    sim_time_s: float
    percentile_relative_error: float = SKETCH_RELATIVE_ERROR
    by_model: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def conserved(self) -> bool:
        return self.arrived == self.completed + self.rejected + self.unfinished

    @property
    def in_system(self) -> int:
        """Former name of ``unfinished``."""
        return self.unfinished

    def to_dict(self) -> dict:
        d = asdict(self)
        d["conserved"] = self.conserved
        return d


def strict_json(x: object) -> object:
    """``x`` with every non-finite float replaced by None, so that ``json.dumps(...,
    allow_nan=False)`` writes strict JSON (``null``, never ``NaN`` or ``Infinity``)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: strict_json(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [strict_json(v) for v in x]
    return x
