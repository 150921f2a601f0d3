"""``compare`` and ``sweep``: many simulations on the same arrivals, reported as CSV, Markdown, PNG
plots and TensorBoard event files (``runs/<scenario>/<policy>/``, the same tags for every policy,
under ``compare/*`` and ``sweep/*``: see :mod:`mig_gym.output.tensorboard`).

Every (policy, seed[, load]) point is an independent simulation; points fan out over a local
process pool (``jobs``) or a Ray cluster (``backend="ray"``, :mod:`mig_gym.runs.backends`). Seed
``i`` of a comparison is ``scenario.seed + i`` for every policy, so all policies see the same
arrivals.
Results stay typed (:class:`Result`, :class:`~mig_gym.metrics.Summary`); :mod:`mig_gym.output`
turns them into files.

A policy ``algo:path/model.zip`` names a saved learned agent. This layer does not import the
learning code (torch): such points run through a ``learned`` runner handed in by the caller, e.g.
:func:`mig_gym.learn.training.run_learned` (the CLI passes it when a policy is learned).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mig_gym import hardware
from mig_gym.metrics.summary import Summary
from mig_gym.output import plots, tables
from mig_gym.output.progress import Progress
from mig_gym.output.tensorboard import ScalarWriter, namespaced, serving_scalars, write_layout
from mig_gym.policies import PolicyError, parse_policy
from mig_gym.runs.backends import run_map
from mig_gym.runs.build import build, load_profiles
from mig_gym.scenario import config as C
from mig_gym.scenario import load_scenario, replace_in

__all__ = [
    "Point",
    "Result",
    "SweepResult",
    "LearnedRunner",
    "is_learned",
    "run_points",
    "compare",
    "sweep",
    "latency_bounded_load",
    "VIOLATION_TARGET",
]

# p95 latency within the SLA <=> at most 5 % of queries miss it (rejections count as misses).
VIOLATION_TARGET = 0.05

# (scenario, "algo:path", seed, num_queries) -> (Summary, time series): one evaluation episode of
# a saved agent. Must be a picklable module-level function (workers receive it with the work).
LearnedRunner = Callable[[C.Scenario, str, int, int | None], tuple[Summary, list[dict]]]


@dataclass(frozen=True)
class Point:
    """One simulation of an experiment: a policy string, a seed and (sweeps) a load multiplier."""

    policy: str
    seed: int
    load: float | None = None


@dataclass(frozen=True)
class Result:
    """A point and what its run measured: the Summary and the recorder's time series (a dict
    per window)."""

    point: Point
    summary: Summary
    series: list[dict]

    def row(self) -> dict:
        """The flat CSV row (:func:`mig_gym.output.tables.flat_row`)."""
        return tables.flat_row(self.summary, self.point.policy, self.point.seed, self.point.load)


@dataclass(frozen=True)
class SweepResult:
    """Every point of a sweep and each policy's latency-bounded load, one value per seed."""

    results: list[Result]
    lbt: dict[str, list[float]]
    base_rate_qps: float

    @property
    def rows(self) -> list[dict]:
        return [r.row() for r in self.results]


def is_learned(policy: str) -> bool:
    """``algo:path/model.zip`` names a saved learned agent rather than a reference policy."""
    return ":" in policy.split("+")[0] and not policy.startswith("scenario")


def _run_point(
    sc: C.Scenario, pt: Point, num_queries: int | None, learned: LearnedRunner | None
) -> tuple[Summary, list[dict]]:
    if is_learned(pt.policy):
        assert learned is not None  # run_points checked
        if pt.load is not None:
            sc = replace_in(sc, "workload.load", pt.load)
        return learned(sc, pt.policy, pt.seed, num_queries)
    run = build(sc, pt.policy, pt.seed, num_queries, pt.load)
    return run.execute(), run.recorder.series


def _worker(
    sc: C.Scenario, item: tuple[Point, int | None, LearnedRunner | None]
) -> tuple[Summary, list[dict]]:
    return _run_point(sc, *item)


def _check_policies(sc: C.Scenario, points: Sequence[Point], learned: LearnedRunner | None) -> None:
    """Fail fast, before any work starts, on a bad policy string, a missing model, or a profile
    without the partition sizes a policy may use."""
    parts = []
    for p in dict.fromkeys(pt.policy for pt in points):
        if not is_learned(p):
            parts.append(parse_policy(p, sc)[0])
            continue
        path = Path(p.partition(":")[2])
        if not path.is_file():
            raise FileNotFoundError(f"model file not found: {path} (policy {p!r})")
        if learned is None:
            raise PolicyError(
                f"policy {p!r} is a saved agent: pass learned=mig_gym.learn.training.run_learned"
            )
    if parts:
        load_profiles(sc, parts)


def run_points(
    sc: C.Scenario,
    points: Sequence[Point],
    num_queries: int | None = None,
    jobs: int | None = None,
    progress: bool = True,
    backend: str = "local",
    address: str | None = None,
    learned: LearnedRunner | None = None,
) -> list[Result]:
    """Simulate every point; results in the order of ``points`` (independent of ``jobs`` and
    of the backend: ``"local"`` process pool or ``"ray"`` cluster at ``address``, see
    :mod:`mig_gym.runs.backends`). ``learned`` runs the points of saved agents."""
    _check_policies(sc, points, learned)
    if backend == "ray":  # workers resolve relative trace/profile paths from their own cwd
        sc = dataclasses.replace(sc, base_dir=str(Path(sc.base_dir).resolve()))
        points = [_absolute_model(pt) for pt in points]
    items = [(pt, num_queries, learned) for pt in points]
    with Progress(len(points), f"{sc.name}: {len(points)} runs", force=False) as bar:
        bar.enabled = bar.enabled and progress
        out = run_map(
            _worker, sc, items, backend=backend, jobs=jobs, address=address, on_result=bar.update
        )
    return [Result(pt, s, ser) for pt, (s, ser) in zip(points, out, strict=True)]


def _absolute_model(pt: Point) -> Point:
    if not is_learned(pt.policy):
        return pt
    algo, _, path = pt.policy.partition(":")
    return dataclasses.replace(pt, policy=f"{algo}:{Path(path).resolve()}")


def _scenario(scenario: str | Path | C.Scenario) -> C.Scenario:
    return scenario if isinstance(scenario, C.Scenario) else load_scenario(scenario)


def _sizes(sc: C.Scenario) -> tuple[int, ...]:
    return hardware.gpu_spec(sc.cluster.gpu).sizes


def _slo_ms(sc: C.Scenario) -> float:
    return min(m.slo_ms for m in sc.models)


def _safe(policy: str) -> str:
    """Folder name of a policy: learned models are named by algorithm and run folder."""
    if is_learned(policy):
        algo, _, path = policy.partition(":")
        return f"{algo}-{Path(path).parent.name}"
    return policy.replace("/", "_").replace(":", "_")


def _by_policy(results: Sequence[Result], policies: Sequence[str]) -> dict[str, list[Result]]:
    return {p: [r for r in results if r.point.policy == p] for p in policies}


# --------------------------------------------------------------------------- compare
def compare(
    scenario: str | Path | C.Scenario,
    policies: Sequence[str],
    seeds: int = 3,
    logdir: Path = Path("runs"),
    num_queries: int | None = None,
    load: float | None = None,
    jobs: int | None = None,
    progress: bool = True,
    quiet: bool = False,
    backend: str = "local",
    address: str | None = None,
    learned: LearnedRunner | None = None,
) -> list[Result]:
    """Run every policy on seeds ``seed .. seed+seeds-1`` and write the report under
    ``logdir/<scenario>/``: ``compare.csv``, ``compare.md``, two plots, TensorBoard scalars per
    policy. Returns one result per (policy, seed). ``backend``/``address``/``learned``: where
    and how the simulations run (:func:`run_points`)."""
    sc = _scenario(scenario)
    points = [Point(p, sc.seed + i, load) for p in policies for i in range(seeds)]
    results = run_points(sc, points, num_queries, jobs, progress, backend, address, learned)
    out = Path(logdir) / sc.name
    out.mkdir(parents=True, exist_ok=True)
    tables.write_csv(out / "compare.csv", [r.row() for r in results])
    groups = _by_policy(results, policies)
    for p, res in groups.items():  # TensorBoard: compare/over_time (x = simulated s, first
        with ScalarWriter(out / _safe(p)) as w:  # seed), compare/by_seed (x = seed index)
            for row in res[0].series:
                w.add_scalars(
                    namespaced(serving_scalars(row), "compare/over_time"), round(row["t_s"])
                )
            for i, r in enumerate(res):
                scal = serving_scalars(r.summary, _sizes(sc))
                w.add_scalars(namespaced(scal, "compare/by_seed"), i)
    write_layout(out, "compare")
    summaries = {p: [r.summary for r in res] for p, res in groups.items()}
    md = tables.compare_markdown(sc.name, summaries, seeds)
    (out / "compare.md").write_text(md)
    note = f"{sc.run.window_s:g} s window (seed {points[0].seed})"
    first = {p: res[0].series for p, res in groups.items()}
    plots.plot_compare(out, sc.name, _slo_ms(sc), note, first, summaries)
    if not quiet:
        print(md)
        print(
            f"\nwrote {out}/compare.csv, compare.md, latency_over_time.png, utilization_by_size.png"
        )
        print(f"TensorBoard: tensorboard --logdir {Path(logdir)}")
    return results


# --------------------------------------------------------------------------- sweep
def latency_bounded_load(
    loads: Sequence[float], violation: Sequence[float], target: float = VIOLATION_TARGET
) -> float:
    """Highest load of the grid up to which every point keeps violations within ``target``
    (p95 latency within the SLA); 0 if even the lowest load fails."""
    best = 0.0
    for ld, v in sorted(zip(loads, violation, strict=True)):
        if v > target:
            break
        best = ld
    return best


# Summary fields whose mean over seeds the sweep logs to TensorBoard per load.
_SWEEP_SCALARS = (
    "latency_p95_ms",
    "latency_p99_ms",
    "latency_p50_ms",
    "sla_violation_rate",
    "goodput_qps",
    "throughput_qps",
    "utilization",
)


def _sweep_lbt(
    results: Sequence[Result], policies: Sequence[str], seeds: Sequence[int]
) -> dict[str, list[float]]:
    lbt: dict[str, list[float]] = {}
    for p in policies:
        lbt[p] = []
        for seed in seeds:
            rs = [r for r in results if r.point.policy == p and r.point.seed == seed]
            lbt[p].append(
                latency_bounded_load(
                    [r.point.load for r in rs], [r.summary.sla_violation_rate for r in rs]
                )
            )
    return lbt


def _by_load(
    results: Sequence[Result], policies: Sequence[str], loads: Sequence[float]
) -> dict[str, dict[float, list[Summary]]]:
    return {
        p: {
            ld: [r.summary for r in results if r.point.policy == p and r.point.load == ld]
            for ld in loads
        }
        for p in policies
    }


def sweep(
    scenario: str | Path | C.Scenario,
    policies: Sequence[str],
    loads: Sequence[float],
    seeds: int = 3,
    logdir: Path = Path("runs"),
    num_queries: int | None = None,
    jobs: int | None = None,
    progress: bool = True,
    quiet: bool = False,
    backend: str = "local",
    address: str | None = None,
    learned: LearnedRunner | None = None,
) -> SweepResult:
    """Latency and violations versus offered load; latency-bounded throughput per policy,
    written under ``logdir/<scenario>/sweep/``. ``backend``/``address``/``learned``: where and
    how the simulations run (:func:`run_points`)."""
    sc = _scenario(scenario)
    points = [Point(p, sc.seed + i, ld) for p in policies for ld in loads for i in range(seeds)]
    results = run_points(sc, points, num_queries, jobs, progress, backend, address, learned)
    out = Path(logdir) / sc.name / "sweep"
    out.mkdir(parents=True, exist_ok=True)
    tables.write_csv(out / "sweep.csv", [r.row() for r in results])
    first = results[0].summary.offered_qps if results else math.nan
    base_rate = first / loads[0] if results and loads[0] else math.nan
    lbt = _sweep_lbt(results, policies, [sc.seed + i for i in range(seeds)])
    by_load = _by_load(results, policies, loads)
    for p, per_load in by_load.items():
        with ScalarWriter(out / _safe(p)) as w:
            for ld, sums in per_load.items():
                mean = {k: float(np.mean([getattr(s, k) for s in sums])) for k in _SWEEP_SCALARS}
                w.add_scalars(namespaced(serving_scalars(mean), "sweep/by_load"), round(ld * 100))
    write_layout(out, "sweep")
    text = tables.sweep_markdown(sc.name, lbt, seeds, base_rate)
    (out / "sweep.md").write_text(text)
    plots.plot_sweep(out, sc.name, _slo_ms(sc), VIOLATION_TARGET, loads, by_load)
    if not quiet:
        print(text)
        print(
            f"wrote {out}/sweep.csv, sweep.md, latency_vs_load.png, violation_vs_load.png; "
            f"TensorBoard step = load x 100"
        )
    return SweepResult(results, lbt, base_rate)
