"""Reference schedules for Partition-v0 tasks: the best plan per phase, known in advance or late.

A **schedule** is one partition plan per decision epoch (``epoch_s`` of simulated time): the
first is installed at t = 0 without downtime, each later one at its epoch's start through the
simulator's re-partitioning (only GPUs whose layout changes are reconfigured: their queued queries
go back to the dispatcher, running ones drain, then ``cluster.reconfig_s`` of downtime). Two
references bound what re-partitioning can win on a drifting scenario:

- **clairvoyant**: knows every phase in advance and installs the plan chosen for it at the start
  of the first epoch the phase covers most of (at the phase start when phases start on epoch
  boundaries);
- **reactive**: the same plans one epoch late (a re-planner that recognises each phase perfectly,
  but only after seeing one epoch of it).

Choosing the plans: the candidates are, for every phase, the distinct plans of the PARIS grid
(:class:`~mig_gym.policies.partition.tuned.PARISTuned`) and every homogeneous layout made for that
phase's batch sizes, mix and rate, plus the static PARIS plan for the whole run. Each candidate's
violation rate in each phase is measured by a short stationary simulation of the phase's traffic
alone (fast path, ELSA, a seed no evaluation uses); the phase's arrival process starts at t = 0
there, exact for Poisson and MMPP arrivals, a shifted curve for diurnal ones. The sequence of
plans then minimises the expected number of violations (violation rate x the phase's queries in
the episode) plus a switching cost: the queries that arrive at a changed GPU's share of the
traffic during ``reconfig_s``. So a plan that is slightly better for a short phase does not pay a
re-partitioning it cannot earn back.

:func:`run_epochs` runs a schedule, or a policy string (static or periodic partitioners), for
exactly ``epochs`` epochs (on the epoch fast path where the run allows it, as Partition-v0 does,
else on the event loop: the same results) and returns its ``Summary`` with the share of the
offered work (batch items) that was rejected: a per-query rate makes dropping a few huge queries
look cheap.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from mig_gym import workload
from mig_gym.metrics import Completions, Recorder, Rejections, Summary
from mig_gym.policies.partition.baselines import Homogeneous
from mig_gym.policies.partition.paris import PARIS
from mig_gym.policies.partition.tuned import PARISTuned
from mig_gym.runs.build import apply_plan, build, load_profiles
from mig_gym.runs.context import phase_starts, plan_context
from mig_gym.scenario import config as C
from mig_gym.scenario import load_scenario
from mig_gym.sim.entities import Plan
from mig_gym.sim.epochs import unsupported as epochs_unsupported
from mig_gym.sim.epochs_pull import epoch_runner

__all__ = [
    "Schedule",
    "EpochResult",
    "phase_of_epochs",
    "choose_plans",
    "clairvoyant",
    "reactive",
    "run_epochs",
]

HOMOGENEOUS = (1, 2, 3, 4, 7)
# Candidate plans are scored on arrivals of a seed no table uses: not the training seeds (0 ..),
# the validation seeds (500 000 + i) nor the held-out ones (1 000 000 + i).
SCORE_SEED = 3_000_000


@dataclass(frozen=True)
class Schedule:
    """One plan per epoch (``plans[0]`` from t = 0) and a label."""

    name: str
    plans: tuple[Plan, ...]


@dataclass(frozen=True)
class EpochResult:
    """A run of exactly ``epochs`` epochs: its summary and the share of offered work rejected."""

    summary: Summary
    rejected_work: float  # rejected batch items / arrived batch items
    offered_items: int


def _phase_scenario(sc: C.Scenario, i: int) -> C.Scenario:
    """Workload window ``i`` alone, stationary from t = 0 (its arrivals, batches, mix, load)."""
    wl = sc.workload
    start = phase_starts(sc)[i]
    later = [p for p in sorted(wl.phases, key=lambda p: p.start_s) if p.start_s <= start]
    cur = later[-1] if later and (i > 0 or later[-1].start_s <= 0) else None
    mix = {m.name: m.share for m in sc.models} if cur is None or cur.mix is None else cur.mix
    models = tuple(dataclasses.replace(m, share=float(mix.get(m.name, 0.0))) for m in sc.models)
    stat = dataclasses.replace(
        wl,
        arrivals=wl.arrivals if cur is None or cur.arrivals is None else cur.arrivals,
        batch=wl.batch if cur is None or cur.batch is None else cur.batch,
        load=wl.load * (1.0 if cur is None or cur.load is None else cur.load),
        phases=(),
    )
    return dataclasses.replace(sc, models=models, workload=stat, faults=())


def _key(plan: Plan) -> tuple:
    return tuple(sorted(zip(plan.layouts, plan.models, strict=True), key=repr))


def _candidates(sc: C.Scenario) -> list[Plan]:
    """Distinct candidate plans over all phases, the static PARIS plan first."""
    prof = load_profiles(sc, [C.PARISConfig()])  # the candidates may use every size
    plans = [PARIS().plan(plan_context(sc, prof, SCORE_SEED))]
    for i in range(len(phase_starts(sc))):
        ctx = plan_context(sc, prof, SCORE_SEED, phase=i)
        plans += [plan for plan, _ in PARISTuned().candidates(ctx)]
        for k in HOMOGENEOUS:
            if k in ctx.spec.sizes:
                plans.append(Homogeneous(k).plan(ctx))
    unique: dict[tuple, Plan] = {}
    for p in plans:
        unique.setdefault(_key(p), p)
    return list(unique.values())


def phase_of_epochs(sc: C.Scenario, epochs: int, epoch_s: float) -> list[int]:
    """Index of the workload window covering most of each epoch (the earlier one on a tie)."""
    starts = [*phase_starts(sc), math.inf]
    out = []
    for e in range(epochs):
        a, b = e * epoch_s, (e + 1) * epoch_s
        cover = [
            max(0.0, min(b, starts[j + 1]) - max(a, starts[j])) for j in range(len(starts) - 1)
        ]
        out.append(int(np.argmax(cover)))
    return out


def _changed(a: Plan, b: Plan) -> int:
    """GPUs re-partitioned when going from plan ``a`` to plan ``b`` (matching GPUs are kept)."""
    common = Counter(zip(a.layouts, a.models, strict=True))
    common &= Counter(zip(b.layouts, b.models, strict=True))
    return len(a.layouts) - sum(common.values())


def choose_plans(
    sc: C.Scenario, epochs: int, epoch_s: float, trial_queries: int = 10_000
) -> list[Plan]:
    """One plan per epoch: the candidate sequence with the fewest expected violations, switching
    costs included (see the module docstring). Plans change only where the phase changes."""
    phases = phase_of_epochs(sc, epochs, epoch_s)
    segs = [(p, sum(1 for _ in g)) for p, g in _groups(phases)]
    cands = _candidates(sc)
    rates, cost = {}, {}
    for p in sorted(set(phases)):
        stat = _phase_scenario(sc, p)
        rates[p] = workload.mean_rate_qps(stat.workload, base_dir=stat.base_dir)
        for j, plan in enumerate(cands):
            # paris: a static partitioner keeps the candidate plan (the scenario's own could
            # re-plan, e.g. diurnal_drift's periodic_paris).
            run = build(stat, "paris+elsa", SCORE_SEED, trial_queries, plan=plan)
            cost[p, j] = run.execute().sla_violation_rate
    g = sc.cluster.num_gpus
    switch = [[_changed(a, b) / g * sc.cluster.reconfig_s for b in cands] for a in cands]
    # Viterbi over the phase segments: best[j] = fewest violations so far ending on plan j.
    best = [
        cost[segs[0][0], j] * rates[segs[0][0]] * segs[0][1] * epoch_s for j in range(len(cands))
    ]
    back: list[list[int]] = []
    for p, n in segs[1:]:
        step, arg = [], []
        for j in range(len(cands)):
            prev = [best[i] + switch[i][j] * rates[p] for i in range(len(cands))]
            i = int(np.argmin(prev))
            step.append(prev[i] + cost[p, j] * rates[p] * n * epoch_s)
            arg.append(i)
        best, back = step, [*back, arg]
    j = int(np.argmin(best))
    chosen = [j]
    for arg in reversed(back):
        j = arg[j]
        chosen.append(j)
    chosen.reverse()
    return [cands[j] for j, (_, n) in zip(chosen, segs, strict=True) for _ in range(n)]


def _groups(xs: list[int]) -> list[tuple[int, list[int]]]:
    out: list[tuple[int, list[int]]] = []
    for x in xs:
        if out and out[-1][0] == x:
            out[-1][1].append(x)
        else:
            out.append((x, [x]))
    return out


def clairvoyant(
    sc: C.Scenario, epochs: int, epoch_s: float, plans: list[Plan] | None = None
) -> Schedule:
    """The plans of :func:`choose_plans` (or ``plans``, one per epoch), on time."""
    plans = choose_plans(sc, epochs, epoch_s) if plans is None else plans
    return Schedule("clairvoyant", tuple(plans))


def reactive(
    sc: C.Scenario, epochs: int, epoch_s: float, plans: list[Plan] | None = None
) -> Schedule:
    """The clairvoyant plans one epoch late (epoch 0 starts with the first phase's plan)."""
    c = clairvoyant(sc, epochs, epoch_s, plans).plans
    return Schedule("reactive", (c[0], *c[:-1]))


class _Rejections:
    """Wraps a recorder's ``on_reject`` and ``bulk`` (the epoch fast path records rejections in
    bulk) to note which query ids were rejected."""

    def __init__(self, recorder: Recorder) -> None:
        self.ids: list[int] = []
        self._one, self._bulk = recorder.on_reject, recorder.bulk
        recorder.on_reject = self  # type: ignore[method-assign]
        recorder.bulk = self.bulk  # type: ignore[method-assign]

    def __call__(self, qid: int, model: int, reason: str, now: float) -> None:
        self.ids.append(qid)
        self._one(qid, model, reason, now)

    def bulk(self, arrivals_s: np.ndarray, done: Completions, rejected: Rejections) -> None:
        self.ids += rejected.qid.tolist()
        self._bulk(arrivals_s, done, rejected)


def run_epochs(
    sc: C.Scenario | str | dict,
    policy: str | Schedule,
    seed: int,
    epochs: int | None = None,
    epoch_s: float | None = None,
    dispatcher: str = "elsa",
    fast: bool = True,
) -> EpochResult:
    """Run exactly ``epochs`` epochs of ``epoch_s`` (default: the scenario's ``env`` settings).

    Args:
        policy: a policy string (``"paris+elsa"``, ``"periodic_paris+elsa"``, ...; a re-planning
            partitioner re-plans at every epoch) or a :class:`Schedule`, run with ``dispatcher``.
        seed: the run's seed (arrivals are the same for every policy).
        fast: take the epoch fast path where the run allows it (False: the event loop).

    Raises:
        RuntimeError: the scenario's arrivals end (a non-looped trace) before the last epoch.
    """
    sc = sc if isinstance(sc, C.Scenario) else load_scenario(sc)
    epochs = sc.env.epochs_per_episode if epochs is None else epochs
    epoch_s = sc.env.epoch_s if epoch_s is None else epoch_s
    sched = policy if isinstance(policy, Schedule) else None
    if sched is not None and len(sched.plans) < epochs:
        raise ValueError(
            f"schedule {sched.name!r} has {len(sched.plans)} plans for {epochs} epochs"
        )
    # Arrivals are generated lazily: an unbounded stream costs only what the epochs consume.
    sc = dataclasses.replace(sc, run=dataclasses.replace(sc.run, drain=False, warmup_queries=0))
    run = build(
        sc,
        policy if isinstance(policy, str) else f"scenario+{dispatcher}",
        seed,
        num_queries=2**62,
        epoch_s=epoch_s,
        plan=sched.plans[0] if sched is not None else None,
        fast=False,
    )
    rej = _Rejections(run.recorder)
    # the epoch fast path where the run allows it (the same results as the event loop)
    use = fast and epochs_unsupported(run.sim) is None
    stepper = epoch_runner(run.sim) if use else run.sim
    while (d := stepper.run_until_decision()) is not None:
        if d.kind != "epoch":
            continue
        if d.epoch >= epochs:
            break
        if sched is not None:
            apply_plan(run.sim, sched.plans[d.epoch])
        else:
            run.step_epoch(d)
    else:
        raise RuntimeError(f"{sc.name}: the arrivals ended before epoch {epochs}")
    summary = run.summary()
    batches = _batches(run.scenario, run.seed, run.recorder.arrived)
    offered = int(batches.sum())
    lost = int(batches[np.asarray(rej.ids, dtype=np.int64)].sum()) if rej.ids else 0
    return EpochResult(summary, lost / offered if offered else 0.0, offered)


def _batches(sc: C.Scenario, seed: int, n: int) -> np.ndarray:
    """Batch sizes of the first ``n`` queries of the run's stream (regenerated: same seed)."""
    stream = workload.QueryStream(
        sc.workload, sc.model_names, [m.share for m in sc.models], seed, n, base_dir=sc.base_dir
    )
    out = [blk.batch for blk in iter(stream.next_block, None)]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)
