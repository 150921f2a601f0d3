"""Latency-bounded throughput (LBT): the highest offered load a server sustains, by bisection.

Three criteria, reported side by side (docs/results.md):

- ``serve_all`` (the primary): nothing rejected and p95 latency of the served queries within the
  SLA (at most 5 % of the served queries late; for one model this is exactly p95 <= SLA);
- ``p99``: at most 1 % of the queries late or rejected;
- ``p95``: at most 5 % late or rejected (a server may then refuse up to 1 query in 20).

The load (a multiplier of the scenario's rate) is searched on a geometric grid of ratio
``2**(1/128)`` (0.54 %), so the answer is within 1 % of the true boundary: the bracket doubles (or
halves) from ``start`` until it holds a meeting and a failing load, then integer bisection on the
grid exponent narrows it to neighbouring grid points. No upper cap other than ``max_load`` (the
result says when it was hit). The search assumes the criterion, once failed, stays failed at
higher loads (true up to simulation noise). Every (policy, seed) searches on its own; evaluations
at the same load are shared between criteria, and the simulations of one round of every search run
together on the local pool or Ray (:func:`mig_gym.runs.experiments.run_points`).
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mig_gym import workload
from mig_gym.runs.build import build
from mig_gym.runs.experiments import Point, run_points
from mig_gym.scenario import config as C

__all__ = [
    "CRITERIA",
    "CRITERION_TEXT",
    "GRID_STEPS_PER_DOUBLING",
    "LBTResult",
    "meets",
    "search",
    "measure",
    "rejected_work_share",
    "lbt_markdown",
    "report",
]

CRITERIA = ("serve_all", "p99", "p95")
CRITERION_TEXT = {
    "serve_all": "nothing rejected, p95 of served <= SLA",
    "p99": "<= 1 % late or rejected",
    "p95": "<= 5 % late or rejected",
}
GRID_STEPS_PER_DOUBLING = 128  # grid ratio 2**(1/128) = 1.0054: resolution better than 1 %
_LATE_SHARE = {"serve_all": 0.05, "p99": 0.01, "p95": 0.05}


def meets(criterion: str, summary: dict) -> bool:
    """Whether one run's summary (``Summary.to_dict()``) meets ``criterion``."""
    if criterion not in _LATE_SHARE:
        raise ValueError(f"unknown LBT criterion {criterion!r}; use one of {CRITERIA}")
    if criterion == "serve_all" and summary["rejected"] > 0:
        return False
    return summary["sla_violation_rate"] <= _LATE_SHARE[criterion]


def _load(index: int) -> float:
    return 2.0 ** (index / GRID_STEPS_PER_DOUBLING)


@dataclass(frozen=True)
class LBTResult:
    """One search: ``load`` meets the criterion, ``upper`` (the next grid point up) fails.

    ``load`` is 0 when even ``min_load`` fails; ``capped`` when ``max_load`` still meets it.
    """

    policy: str
    seed: int
    criterion: str
    load: float
    upper: float
    evaluations: int
    capped: bool = False


@dataclass
class _Search:
    policy: str
    seed: int
    criterion: str
    lo: int | None = None  # grid index known to meet
    hi: int | None = None  # grid index known to fail
    done: bool = False
    capped: bool = False

    def next_index(self, start: int, lo_cap: int, hi_cap: int) -> int | None:
        """The next grid index to evaluate, or None (and ``done``) when the bracket is tight."""
        if self.lo is None and self.hi is None:
            return start
        if self.hi is None:  # every load so far met it: double
            if self.lo >= hi_cap:
                self.done = self.capped = True
                return None
            return min(self.lo + GRID_STEPS_PER_DOUBLING, hi_cap)
        if self.lo is None:  # every load so far failed: halve
            if self.hi <= lo_cap:
                self.done = True
                return None
            return max(self.hi - GRID_STEPS_PER_DOUBLING, lo_cap)
        if self.hi - self.lo <= 1:
            self.done = True
            return None
        return (self.lo + self.hi) // 2


def search(
    evaluate: Callable[[list[tuple[str, int, float]]], list[dict]],
    policies: Sequence[str],
    seeds: Sequence[int],
    criteria: Sequence[str] = CRITERIA,
    start: float = 1.0,
    min_load: float = 1 / 64,
    max_load: float = 64.0,
) -> list[LBTResult]:
    """Bisection LBT for every (policy, seed, criterion).

    Args:
        evaluate: runs a batch of ``(policy, seed, load)`` simulations and returns their summary
            dicts in the same order (e.g. through ``run_points``).
        policies, seeds: what to search; seeds are absolute.
        criteria: subset of :data:`CRITERIA`.
        start, min_load, max_load: first load tried and the search limits (multipliers).

    Returns:
        One :class:`LBTResult` per (policy, seed, criterion), in that nesting order.
    """
    if bad := [c for c in criteria if c not in _LATE_SHARE]:
        raise ValueError(f"unknown LBT criterion {bad}; use some of {CRITERIA}")
    to_index = GRID_STEPS_PER_DOUBLING / math.log(2.0)
    first = round(math.log(start) * to_index)
    lo_cap, hi_cap = (
        math.floor(math.log(min_load) * to_index),
        math.ceil(math.log(max_load) * to_index),
    )
    jobs = [_Search(p, s, c) for p in policies for s in seeds for c in criteria]
    cache = _bisect_all(jobs, evaluate, first, lo_cap, hi_cap)
    n_eval: dict[tuple[str, int], int] = {}
    for p, s, _ in cache:
        n_eval[p, s] = n_eval.get((p, s), 0) + 1
    return [
        LBTResult(
            j.policy,
            j.seed,
            j.criterion,
            _load(j.lo) if j.lo is not None else 0.0,
            _load(j.hi) if j.hi is not None else math.inf,
            n_eval[j.policy, j.seed],
            j.capped,
        )
        for j in jobs
    ]


def _bisect_all(
    jobs: list[_Search],
    evaluate: Callable[[list[tuple[str, int, float]]], list[dict]],
    first: int,
    lo_cap: int,
    hi_cap: int,
) -> dict[tuple[str, int, int], dict]:
    """Advance every search until all are done; each round evaluates, in one batch, the grid
    points some search needs next and no earlier round measured. Returns every measured point,
    keyed ``(policy, seed, grid index)``; criteria of one (policy, seed) share their points."""
    cache: dict[tuple[str, int, int], dict] = {}
    while True:
        wanted = {}
        for j in jobs:
            while not j.done:
                i = j.next_index(first, lo_cap, hi_cap)
                if i is None:
                    break
                key = (j.policy, j.seed, i)
                if key not in cache:
                    wanted[key] = None
                    break
                j.lo, j.hi = (i, j.hi) if meets(j.criterion, cache[key]) else (j.lo, i)
        if not wanted:
            return cache
        keys = list(wanted)
        for key, d in zip(keys, evaluate([(p, s, _load(i)) for p, s, i in keys]), strict=True):
            cache[key] = d


def measure(
    sc: C.Scenario,
    policies: Sequence[str],
    seeds: int = 3,
    num_queries: int | None = None,
    criteria: Sequence[str] = CRITERIA,
    jobs: int | None = None,
    backend: str = "local",
    address: str | None = None,
    progress: bool = False,
) -> list[LBTResult]:
    """:func:`search` on seeds ``sc.seed .. sc.seed + seeds - 1``, simulating with
    :func:`~mig_gym.runs.experiments.run_points` (``num_queries`` per run)."""

    def evaluate(items: list[tuple[str, int, float]]) -> list[dict]:
        pts = [Point(p, s, ld) for p, s, ld in items]
        res = run_points(sc, pts, num_queries, jobs, progress, backend, address)
        return [r.summary.to_dict() for r in res]

    return search(evaluate, policies, [sc.seed + i for i in range(seeds)], criteria)


def rejected_work_share(sc: C.Scenario, policy: str, seed: int) -> float:
    """Share of the offered work (batch items) that the policy's initial layout cannot serve.

    Rejections in a static plan come only from batches no hosting partition admits, so this is
    ``sum P(b) b`` over those batches over ``sum P(b) b``, from the scenario's batch pmf.
    """
    run = build(sc, policy, seed, num_queries=max(sc.run.warmup_queries + 1, 2))
    tables, work, lost = run.sim.tables, 0.0, 0.0
    for m, pmf in enumerate(run.context.batch_pmfs):
        share = run.context.shares[m] / max(sum(run.context.shares), 1e-300)
        sizes = {
            pl.profile.gpcs
            for g in run.sim.gpus
            for pl, mm in zip(g.layout.placements, g.models, strict=True)
            if mm == m
        }
        for b, p in pmf.items():
            served = any(math.isfinite(tables[(m, k)][b]) for k in sizes)
            work += share * p * b
            lost += 0.0 if served else share * p * b
    return lost / work if work > 0 else 0.0


def _fmt(xs: Sequence[float], digits: int = 2) -> str:
    a = np.asarray(xs, dtype=float)
    if len(a) > 1:
        return f"{a.mean():.{digits}f} ± {a.std(ddof=1):.{digits}f}"
    return f"{a[0]:.{digits}f}"


def lbt_markdown(
    results: Sequence[LBTResult], rejected_work: dict[str, float], rate_qps: float
) -> str:
    """Table: LBT per policy under each criterion (mean ± sd over seeds), and rejected work."""
    criteria = [c for c in CRITERIA if any(r.criterion == c for r in results)]
    policies = list(dict.fromkeys(r.policy for r in results))
    head = " | ".join(f"LBT {c} (x rate)" for c in criteria)
    lines = [
        f"| policy | {head} | {criteria[0]} q/s | rejected work |",
        "|---|" + "---|" * (len(criteria) + 2),
    ]
    for p in policies:
        cells = []
        for c in criteria:
            rs = [r for r in results if r.policy == p and r.criterion == c]
            cells.append(_fmt([r.load for r in rs]) + ("+" if any(r.capped for r in rs) else ""))
        primary = [
            r.load * rate_qps for r in results if r.policy == p and r.criterion == criteria[0]
        ]
        lines.append(
            f"| {p} | {' | '.join(cells)} | {_fmt(primary, 0)} | {rejected_work.get(p, 0.0):.1%} |"
        )
    return "\n".join(lines)


def report(
    sc: C.Scenario, policies: Sequence[str], out: Path, seeds: int = 3, **kwargs: object
) -> str:
    """Measure LBT (``kwargs`` as for :func:`measure`), write ``lbt.csv`` and ``lbt.md`` under
    ``out`` and return the Markdown."""
    results = measure(sc, policies, seeds, **kwargs)
    work = {p: rejected_work_share(sc, p, sc.seed) for p in policies}
    rate = workload.mean_rate_qps(sc.workload, base_dir=sc.base_dir) / sc.workload.load
    title = f"### {sc.name}: latency-bounded throughput by bisection (1 %), {seeds} seed(s)"
    notes = "; ".join(f"{c}: {t}" for c, t in CRITERION_TEXT.items())
    text = f"{title}\n\nCriteria: {notes}. `+`: still met at the search limit.\n\n"
    text += lbt_markdown(results, work, rate) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "lbt.md").write_text(text)
    with (out / "lbt.csv").open("w", newline="") as f:
        w = csv.DictWriter(
            f, fieldnames=[*(x.name for x in dataclasses.fields(LBTResult)), "rejected_work"]
        )
        w.writeheader()
        for r in results:
            w.writerow({**dataclasses.asdict(r), "rejected_work": work[r.policy]})
    return text
