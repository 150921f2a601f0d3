"""What a partitioner sees of a scenario: the traffic of the whole run or of one phase.

A static plan for the whole run sees every workload window's batch distribution and model mix,
equally weighted; a plan made for one phase (the clairvoyant schedules of
:mod:`mig_gym.runs.schedules`) sees that window's own batch sizes, mix and rate.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from mig_gym import hardware, workload
from mig_gym.hardware import profiles
from mig_gym.policies.partition.baselines import PlanContext
from mig_gym.scenario import config as C
from mig_gym.workload import traces

__all__ = ["plan_context", "phase_starts", "time_average_rate"]


def _trace_for(sc: C.Scenario, b: C.Batch, trs: workload.Traces) -> traces.Trace | None:
    """The arrivals trace a ``trace_column`` batch reads its sizes from (None otherwise)."""
    if not isinstance(b, C.TraceColumnBatch):
        return None
    return trs.get(sc.workload.arrivals)


def phase_starts(sc: C.Scenario) -> list[float]:
    """Start time of each workload window (the indices ``plan_context(..., phase=i)`` takes)."""
    return [w[0] for w in _windows(sc)]


def _mix(sc: C.Scenario, mix: dict[str, float] | None) -> tuple[float, ...]:
    """A phase's model mix over ``sc.model_names``, normalised (None: the models' shares)."""
    w = [m.share for m in sc.models] if mix is None else [mix.get(n, 0.0) for n in sc.model_names]
    return tuple(x / sum(w) for x in w)


def _windows(sc: C.Scenario) -> list[tuple[float, C.Batch, dict[str, float] | None]]:
    """``(start_s, batch, mix)`` in force in each workload window that lasts (as the stream cuts
    them: the base workload, then each phase by start; a phase inherits what it leaves out)."""
    phases = sorted(sc.workload.phases, key=lambda ph: ph.start_s)
    out = [(0.0, sc.workload.batch, None)]
    out += [(ph.start_s, ph.batch or sc.workload.batch, ph.mix) for ph in phases]
    ends = [w[0] for w in out[1:]] + [math.inf]
    return [w for w, end in zip(out, ends, strict=True) if end > w[0]]


def plan_context(
    sc: C.Scenario,
    prof: profiles.ProfileSet,
    seed: int,
    phase: int | None = None,
    traces: workload.Traces | None = None,
) -> PlanContext:
    """What a partitioner sees of the scenario.

    ``phase=None``: a static plan for the whole run, which sees the batch distribution and the
    model mix of every workload window (the base one and each phase's), equally weighted, and the
    base workload's rate. ``phase=i``: the traffic in force in window ``i`` (0 = the first, in
    start order; see :func:`phase_starts`): its batch distribution, its mix and its rate.
    ``traces``: the workload's parsed traces (read here if not given; a build passes its own).
    """
    trs = traces if traces is not None else workload.read_traces(sc.workload, sc.base_dir)
    spec = hardware.gpu_spec(sc.cluster.gpu)
    wins = _windows(sc)
    view = wins if phase is None else [wins[phase]]
    cfgs = [b for _, b, _ in view]
    mixes = [_mix(sc, m) for _, _, m in view]
    at_s = 0.0 if phase is None else view[0][0]
    mixed: dict[int, float] = {}
    for b in cfgs:  # every distribution in view, equally weighted (batch sizes are per phase)
        for k, p in workload.batch_pmf(b, _trace_for(sc, b, trs)).items():
            mixed[k] = mixed.get(k, 0.0) + p / len(cfgs)
    return PlanContext(
        spec=spec,
        num_gpus=sc.cluster.num_gpus,
        profiles=prof,
        model_names=sc.model_names,
        shares=tuple(float(np.mean(col)) for col in zip(*mixes, strict=True)),
        slo_s=tuple(m.slo_ms / 1e3 for m in sc.models),
        batch_pmfs=tuple(dict(mixed) for _ in sc.model_names),
        rate_qps=workload.mean_rate_qps(sc.workload, at_s=at_s, traces=trs),
        seed=seed,
    )


def time_average_rate(sc: C.Scenario, horizon_s: float) -> float:
    """The offered rate (queries/s) averaged over ``[0, horizon_s]``: each workload window's
    long-run rate weighted by the time it covers (the scale of Partition-v0's rate feature)."""
    starts = [*phase_starts(sc), math.inf]
    total = 0.0
    for lo, hi in itertools.pairwise(starts):
        span = max(0.0, min(hi, horizon_s) - lo)
        if span > 0:
            total += span * workload.mean_rate_qps(sc.workload, at_s=lo, base_dir=sc.base_dir)
    return total / horizon_s if horizon_s > 0 else 0.0
