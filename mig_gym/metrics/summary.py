"""``Summary``: what one simulation run measured, as ``simulate()`` returns it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from mig_gym.metrics.histogram import SKETCH_RELATIVE_ERROR

__all__ = ["Summary"]


@dataclass(frozen=True)
class Summary:
    """What one simulation run measured. Latencies exclude the warm-up queries.

    ``arrived == completed + rejected + in_system`` always holds (``conserved``).
    ``sla_violation_rate`` counts completed-late and rejected queries over all measured queries
    that ended. ``utilization`` is busy GPC-seconds over available GPC-seconds (GPUs that are down
    or being reconfigured offer none).
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
    in_system: int
    queued: int
    running: int
    measured: int
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
    sim_time_s: float
    percentile_relative_error: float = SKETCH_RELATIVE_ERROR
    by_model: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def conserved(self) -> bool:
        return self.arrived == self.completed + self.rejected + self.in_system

    def to_dict(self) -> dict:
        d = asdict(self)
        d["conserved"] = self.conserved
        return d
