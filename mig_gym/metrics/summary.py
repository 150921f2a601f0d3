"""``Summary``: what one simulation run measured, as ``simulate()`` returns it, and how it is made
from the run's :class:`~mig_gym.metrics.recorder.Recorder` (:meth:`Summary.from_run`).

Downstream code reads the typed fields; it becomes a dict only at a file or TensorBoard boundary
(``to_dict``, :func:`strict_json`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from mig_gym.metrics.histogram import SKETCH_RELATIVE_ERROR
from mig_gym.metrics.records import Unfinished
from mig_gym.metrics.series import utilization_of

if TYPE_CHECKING:  # the recorder module needs nothing from here: no cycle at run time
    from mig_gym.metrics.recorder import Recorder

__all__ = ["Summary", "strict_dumps", "strict_json"]


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
    - ``by_model[name]``: the model's measured queries (``measured``, ``completed``,
      ``rejected``, ``unfinished``, ``unfinished_late``, ``violations``; ``measured`` is the
      sum of the next three), ``sla_violation_rate`` defined as above (so in [0, 1]) and
      ``latency_mean_ms`` over the model's measured completions (NaN if none). Summed over
      models, ``measured`` and ``violations`` are the overall ones; the other counts are the
      measured part of the overall ones (which include the warm-up).

    **Latency** (``latency_*_ms``): over measured queries that completed, arrival to completion;
    the mean and max are exact, p50/p95/p99 within ``percentile_relative_error`` (NaN if none
    completed). Unfinished and rejected queries have no latency.

    **Rates per second.** ``offered_qps``: arrived / last arrival time (NaN if that is 0).
    ``throughput_qps`` and ``goodput_qps``: measured completions (on time, for goodput) per
    second of the measured span, from the first measured query to leave the system (its arrival
    if it completed, its rejection if rejected; 0 if none has) to the end of the run (NaN for an
    empty span).

    **Capacity.** ``utilization``: busy over available GPC-seconds, in [0, 1] (a GPU offers its
    partitions' GPCs while up or draining, none while down or being reconfigured; busy time
    includes aborted services and the elapsed part of running ones); ``utilization_by_size``
    the same per partition size (sizes that offered any).
    ``downtime_s = downtime_reconfig_s + downtime_failure_s``, GPU-seconds during which GPUs were
    being reconfigured (after draining) or were down after a failure, up to ``sim_time_s`` for
    outages still open at the end. ``reconfigurations``: reconfigurations requested.
    ``sim_time_s``: the end of the run (the last event when draining, else the last arrival).

    ``to_dict()`` is plain data; :func:`strict_json` makes it valid strict JSON (NaN -> None)
    and :func:`strict_dumps` writes it (as every JSON output of mig_gym is written).
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

    @classmethod
    def from_run(
        cls,
        rec: Recorder,
        *,
        scenario: str,
        policy: str,
        seed: int,
        now: float,
        queued: int,
        running: int,
        last_arrival_s: float,
        in_service_gpc_s: dict[int, float] | None = None,
        unfinished: Unfinished | None = None,
        open_downtime_s: tuple[float, float] = (0.0, 0.0),
    ) -> Summary:
        """The Summary of a run at ``now``: the recorder's counts plus what only the simulator
        knows at that moment (the definitions are in the class docstring).

        Args:
            rec: the run's recorder (advanced to ``now`` here).
            queued, running, last_arrival_s: queries still in the system; the last arrival time.
            in_service_gpc_s: busy GPC-seconds of the services still running.
            unfinished: the queries still in the system (``queued + running`` of them), to count
                the measured and late ones; None means none is measured or late.
            open_downtime_s: (reconfiguration, failure) GPU-seconds of outages still open.
        """
        rec.advance(now)
        u = unfinished if unfinished is not None else Unfinished.none()
        counts, (util, by_size) = _Counts.of(rec, u), _utilization(rec, in_service_gpc_s or {})
        reconf = rec.downtime_reconfig_s + open_downtime_s[0]
        fail = rec.downtime_failure_s + open_downtime_s[1]
        return cls(
            scenario=scenario,
            policy=policy,
            seed=seed,
            arrived=rec.arrived,
            completed=rec.completed,
            rejected=sum(rec.rejected.values()),
            rejected_by_reason=dict(sorted(rec.rejected.items())),
            retried=rec.retried,
            redispatched=rec.redispatched,
            unfinished=queued + running,
            unfinished_late=int(u.late.sum()),
            queued=queued,
            running=running,
            measured=counts.measured,
            violations=counts.violations,
            **_latency_ms(rec),
            sla_violation_rate=counts.violations / counts.measured if counts.measured else 0.0,
            **_rates_qps(rec, now, last_arrival_s),
            utilization=util,
            utilization_by_size=by_size,
            reconfigurations=rec.reconfigurations,
            downtime_s=reconf + fail,
            downtime_reconfig_s=reconf,
            downtime_failure_s=fail,
            sim_time_s=now,
            by_model=counts.by_model,
        )


@dataclass(frozen=True)
class _Counts:
    """The measured population: completed, rejected and unfinished measured queries, overall and
    per model."""

    measured: int
    violations: int
    by_model: dict[str, dict[str, float]]

    @classmethod
    def of(cls, rec: Recorder, u: Unfinished) -> _Counts:
        nm = len(rec.model_names)
        meas_u = u.qid >= rec.warmup
        u_count = np.bincount(u.model[meas_u], minlength=nm)
        u_late = np.bincount(u.model[meas_u & u.late], minlength=nm)
        by_model = {name: _model_row(rec, m, int(u_count[m]), int(u_late[m]))
                    for m, name in enumerate(rec.model_names)}  # fmt: skip
        measured = rec.measured_completed + rec.measured_rejected + int(meas_u.sum())
        return cls(measured, rec.violations + int((meas_u & u.late).sum()), by_model)


def _latency_ms(rec: Recorder) -> dict[str, float]:
    """Latency of the measured completions: exact mean and max, percentiles from the sketch."""
    mc, q = rec.measured_completed, rec.hist.quantile
    return {
        "latency_mean_ms": rec.lat_sum / mc * 1e3 if mc else math.nan,
        "latency_p50_ms": q(0.50) * 1e3,
        "latency_p95_ms": q(0.95) * 1e3,
        "latency_p99_ms": q(0.99) * 1e3,
        "latency_max_ms": rec.lat_max * 1e3 if mc else math.nan,
    }


def _rates_qps(rec: Recorder, now: float, last_arrival_s: float) -> dict[str, float]:
    """Offered rate over the arrivals; throughput and goodput from the first measured arrival to
    the end of the run."""
    start = rec.first_measured_s if rec.first_measured_s is not None else 0.0
    span = max(rec.last_done_s, now) - start
    return {
        "offered_qps": rec.arrived / last_arrival_s if last_arrival_s > 0 else math.nan,
        "throughput_qps": rec.measured_completed / span if span > 0 else math.nan,
        "goodput_qps": rec.good / span if span > 0 else math.nan,
    }


def _model_row(rec: Recorder, m: int, unfinished: int, unfinished_late: int) -> dict[str, float]:
    """Model ``m``'s measured counts and rates (see ``Summary.by_model``)."""
    done, late, lat_sum, rejected = rec.model_stats[m]
    measured = done + rejected + unfinished
    violations = late + rejected + unfinished_late
    return {
        "measured": float(measured),
        "completed": float(done),
        "rejected": float(rejected),
        "unfinished": float(unfinished),
        "unfinished_late": float(unfinished_late),
        "violations": float(violations),
        "sla_violation_rate": violations / measured if measured else 0.0,
        "latency_mean_ms": lat_sum / done * 1e3 if done else math.nan,
    }


def _utilization(rec: Recorder, in_service: dict[int, float]) -> tuple[float, dict[int, float]]:
    """Busy over available GPC-seconds, overall and per partition size (sizes that offered any)."""
    busy = dict(rec.busy_s)
    for k, v in in_service.items():
        busy[k] += v
    total = utilization_of(sum(busy.values()), rec.avail_s)
    by_size = {
        k: utilization_of(busy[k], rec.size_avail_s[k])
        for k in rec.sizes
        if rec.size_avail_s[k] > 0
    }
    return total, by_size


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


def strict_dumps(x: object, **kw: object) -> str:
    """``x`` as strict JSON text (non-finite floats as ``null``; ``json.dumps`` arguments in
    ``kw``): what every JSON output of mig_gym is written with."""
    return json.dumps(strict_json(x), allow_nan=False, **kw)  # type: ignore[arg-type]
