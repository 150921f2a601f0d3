"""From a scenario and a policy string to a running simulation and its ``Summary``.

``build`` wires scenario -> profiles -> workload -> partition plan -> simulator; ``simulate``
runs it.
Random streams are separate per purpose and all derive from the run's seed: the workload's own
streams (arrivals, batch sizes, models), service noise, the dispatcher and the partitioner, so the
arrivals are the same whatever the policy does.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from mig_gym import hardware, workload
from mig_gym.metrics import Recorder, Summary
from mig_gym.output.progress import Progress
from mig_gym.policies import Policy, make_policy, parse_policy
from mig_gym.policies.partition.baselines import PlanContext
from mig_gym.policies.partition.tuned import PARISTuned
from mig_gym.runs.context import phase_starts, plan_context
from mig_gym.runs.service import latency_tables, load_profiles, max_batch
from mig_gym.scenario import config as C
from mig_gym.scenario import load_scenario
from mig_gym.sim import fast as fastpath
from mig_gym.sim.entities import Plan, match_assignment
from mig_gym.sim.simulator import Decision, Simulator

__all__ = [
    "Run",
    "build",
    "simulate",
    "load_profiles",
    "latency_tables",
    "plan_context",
    "phase_starts",
    "apply_plan",
    "match_assignment",
    "rng_for",
    "max_batch",
]

# Stream ids under the run seed (the workload uses its own ids inside QueryStream).
_NOISE, _DISPATCH, _PARTITION = 101, 102, 103


def rng_for(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream,)))


def apply_plan(sim: Simulator, plan: Plan) -> int:
    """Reconfigure only the GPUs whose layout changes, keeping GPUs that already match one of
    the new layouts. Returns the number of GPUs reconfigured."""
    current = [g.target if g.target is not None else (g.layout, g.models) for g in sim.gpus]
    wanted = list(zip(plan.layouts, plan.models, strict=True))
    changed = 0
    for g, (lay, mods) in zip(sim.gpus, match_assignment(current, wanted), strict=True):
        changed += sim.reconfigure(g.index, lay, mods)
    return changed


class BlockSource:
    """Iterator over a ``QueryStream``'s blocks that, unlike a generator, pickles (environments
    are pickled mid-episode)."""

    def __init__(self, stream: workload.QueryStream) -> None:
        self.stream = stream

    def __iter__(self) -> BlockSource:
        return self

    def __next__(self) -> workload.QueryBlock:
        blk = self.stream.next_block()
        if blk is None:
            raise StopIteration
        return blk


@dataclass
class Run:
    """A built simulation: the scenario, policy, simulator and the objects around it."""

    scenario: C.Scenario
    policy: Policy
    seed: int
    sim: Simulator
    recorder: Recorder
    context: PlanContext
    stream: workload.QueryStream
    fast: bool = True
    rebuild: Callable[[], Run] | None = None  # the same run, fresh, for the event loop
    loop: str = ""  # "fast" or "events" once executed
    loop_note: str = ""  # why the event loop ran

    def step_epoch(self, d: Decision) -> None:
        """Let a re-planning partitioner act at an epoch decision."""
        replan = getattr(self.policy.partitioner, "replan", None)
        if replan is not None:
            plan = replan(self.context, self.sim)
            if plan is not None:
                apply_plan(self.sim, plan)

    def execute(self) -> Summary:
        """Run to the end (re-planning at epochs if the partitioner does) and summarise.

        Static runs take the fast path (:mod:`mig_gym.sim.fast`) unless ``fast`` is False."""
        why = fastpath.unsupported(self.sim) if self.fast else "fast=False"
        if why is None:
            try:
                fastpath.run(self.sim)
                self.loop = "fast"
            except fastpath.UnresolvedTie as e:  # rare: start again on the event loop
                if self.rebuild is None:
                    raise
                fresh = self.rebuild()
                self.sim, self.recorder, self.stream = fresh.sim, fresh.recorder, fresh.stream
                self.policy = fresh.policy
                why = f"the fast path met a tie it cannot order: {e}"
        if why is not None:
            self.loop, self.loop_note = "events", why
            while (d := self.sim.run_until_decision()) is not None:
                if d.kind == "epoch":
                    self.step_epoch(d)
        self.sim.check_conservation()
        self.recorder.finish(self.sim.now)
        return self.summary()

    def summary(self) -> Summary:
        s = self.sim
        return Summary.from_run(
            self.recorder,
            scenario=self.scenario.name,
            policy=self.policy.label,
            seed=self.seed,
            now=s.now,
            queued=s.queued_count(),
            running=s.running,
            last_arrival_s=s.last_arrival_s,
            in_service_gpc_s=s.in_service_gpc_s(),
            unfinished=s.unfinished(),
            open_downtime_s=s.open_downtime_s(),
        )


def build(
    scenario: C.Scenario | str | dict | None = None,
    policy: str | None = None,
    seed: int | None = None,
    num_queries: int | None = None,
    load: float | None = None,
    external_dispatch: bool = False,
    epoch_s: float | None = None,
    progress: bool = False,
    plan: Plan | None = None,
    fast: bool = True,
    compiled: bool = True,
) -> Run:
    """Build (but do not run) a simulation. Arguments as for :func:`simulate`; ``plan`` replaces
    the partitioner's initial plan; ``external_dispatch`` makes every arrival a ``Decision``."""
    sc = _overridden(scenario, load, num_queries)
    seed = sc.seed if seed is None else seed
    spec = hardware.gpu_spec(sc.cluster.gpu)
    cfgs = parse_policy(policy, sc)  # checked against the GPU, the profiles against its sizes:
    prof = load_profiles(sc, [cfgs[0]])
    tables = latency_tables(sc, prof, spec)
    trs = workload.read_traces(sc.workload, sc.base_dir)  # each trace file parsed once
    ctx = plan_context(sc, prof, seed, traces=trs)
    pol = make_policy(cfgs, sc, rng_for(seed, _DISPATCH), rng_for(seed, _PARTITION))
    if isinstance(pol.partitioner, PARISTuned):
        pol.partitioner.scorer = functools.partial(_trial_score, sc, seed)
    if plan is None:
        plan = pol.partitioner.plan(ctx)
    stream = workload.QueryStream(
        sc.workload, sc.model_names, [m.share for m in sc.models], seed, sc.run.num_queries,
        base_dir=sc.base_dir, traces=trs,
    )  # fmt: skip
    blocks: Iterator[workload.QueryBlock] = BlockSource(stream)
    if progress:
        blocks = Progress.wrap_blocks(blocks, sc.run.num_queries, f"{sc.name} {pol.label}")
    rec = Recorder(spec.sizes, sc.run.window_s, sc.run.warmup_queries, sc.model_names)
    sim = Simulator(
        gpu=spec, num_gpus=sc.cluster.num_gpus, tables=tables,
        slo_s=[m.slo_ms / 1e3 for m in sc.models], stream=blocks, plan=plan, recorder=rec,
        dispatcher=None if external_dispatch else pol.dispatcher,
        central_queue=pol.dispatcher.central_queue and not external_dispatch,
        fallback=pol.fallback, reconfig_s=sc.cluster.reconfig_s,
        service_cv=sc.workload.service_cv, noise_rng=rng_for(seed, _NOISE),
        faults=[(f.gpu, f.down_at_s, f.up_at_s) for f in sc.faults],
        epoch_s=epoch_s if epoch_s is not None else getattr(pol.partitioner, "epoch_s", None),
        drain=sc.run.drain, compiled=compiled,
    )  # fmt: skip
    if (attach := getattr(pol.partitioner, "attach", None)) is not None:
        attach(sim)  # a re-planning partitioner counts the arrivals it re-plans from
    rebuild = functools.partial(
        build, sc, policy, seed, external_dispatch=external_dispatch, epoch_s=epoch_s,
        progress=progress, plan=plan, fast=False, compiled=compiled,
    )  # fmt: skip
    return Run(sc, pol, seed, sim, rec, ctx, stream, fast=fast, rebuild=rebuild)


def _overridden(
    scenario: C.Scenario | str | dict | None, load: float | None, num_queries: int | None
) -> C.Scenario:
    """The scenario with ``load`` and ``num_queries`` overridden (warm-up capped at 10 %)."""
    sc = scenario if isinstance(scenario, C.Scenario) else load_scenario(scenario)
    if load is not None:
        sc = dataclasses.replace(sc, workload=dataclasses.replace(sc.workload, load=load))
    if num_queries is not None:
        warm = min(sc.run.warmup_queries, num_queries // 10)
        sc = dataclasses.replace(
            sc, run=dataclasses.replace(sc.run, num_queries=num_queries, warmup_queries=warm)
        )
    return sc


def _trial_score(sc: C.Scenario, seed: int, plan: Plan, n: int) -> tuple[float, float]:
    """PARIS_tuned's score of a candidate plan: (violation rate, p95) of a short ELSA run."""
    s = build(sc, "scenario+elsa", seed, n, plan=plan).execute()
    return (s.sla_violation_rate, s.latency_p95_ms)


def simulate(
    scenario: C.Scenario | str | dict | None = None,
    policy: str | None = None,
    seed: int | None = None,
    num_queries: int | None = None,
    load: float | None = None,
    progress: bool = False,
    fast: bool = True,
    compiled: bool = True,
) -> Summary:
    """Run one simulation and return its :class:`~mig_gym.metrics.Summary`.

    Args:
        scenario: a ``Scenario``, a YAML path, a dict, or None for the default scenario.
        policy: ``"partitioner+dispatcher"`` (e.g. ``"paris+elsa"``, ``"homo7+fifs"``); None uses
            the scenario's own policy.
        seed: overrides the scenario's seed.
        num_queries: overrides ``run.num_queries`` (warm-up is capped at 10 % of it).
        load: overrides ``workload.load`` (arrival-rate multiplier).
        progress: draw a progress bar on stderr.
        fast: let static runs take the fast path (same model without an event heap, see
            :mod:`mig_gym.sim.fast`); False forces the event loop.
        compiled: let the event loop run its stretches of arrivals and completions on its
            compiled core where numba and the run allow it (:mod:`mig_gym.sim.event_core`: the
            same completion times, sums to rounding); False keeps the Python loop.
    """
    run = build(scenario, policy, seed, num_queries, load, progress=progress, fast=fast,
                compiled=compiled)  # fmt: skip
    return run.execute()
