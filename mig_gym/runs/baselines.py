"""Baseline score tables of the registered tasks: every reference policy over held-out seeds.

A task's **score** is the SLA violation rate of an episode (``Summary.sla_violation_rate``:
completions later than the SLA, rejections and queries still unfinished past their deadline at
the end, over the measured queries), as the task's environment reports it in
``info["summary"]``. Dispatch tasks are scored with :func:`mig_gym.simulate` on the
environment's own scenario (horizon, warm-up, no drain), so a seed's score is that of the
episode ``reset(options={"episode_seed": seed})``; Partition tasks with
:func:`mig_gym.runs.schedules.run_epochs` (exactly ``env.epochs_per_episode`` epochs).

Rows (:data:`ROWS`), every one with its policy string in the table:

- dispatchers on the task's layout (a Dispatch task's scenario partitioner; static PARIS on
  Partition tasks): ``random``, ``FIFS`` (the
  central queue), ``JSQ``, ``earliest-finish``, ``ELSA`` (default ``alpha``) and ``ELSA tuned``
  (the ``alpha`` of :data:`ALPHA_GRID` with the fewest violations on the **training seeds**);
- partitioners with ELSA: ``static PARIS``, ``periodic PARIS`` (re-planned every
  ``env.epoch_s`` on Partition tasks; every quarter of the expected episode on Dispatch tasks,
  whose episodes last seconds; its default ``prior``), ``periodic PARIS tuned`` (the ``prior`` of
  :data:`PRIOR_GRID` with the fewest violations on the training seeds: the weight of the
  scenario's own distribution in each re-plan is our reconstruction, so the table does not rest
  on one guess of it) and ``best homogeneous`` (``homoK``, K chosen on the training seeds);
- Partition tasks only: the ``clairvoyant`` and ``reactive`` schedules of
  :mod:`mig_gym.runs.schedules`.

Training seeds are ``0 .. train_seeds - 1``, held-out seeds ``eval_base + i``: disjoint as long
as ``train_seeds <= eval_base``. This layer does not import the environments: the caller (the
``mig-gym baselines`` command) describes each task as a :class:`TaskSpec`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mig_gym import hardware, workload
from mig_gym.metrics import strict_dumps
from mig_gym.output.progress import Progress
from mig_gym.runs import schedules
from mig_gym.runs.backends import run_map
from mig_gym.runs.build import simulate
from mig_gym.scenario import config as C

__all__ = [
    "TaskSpec",
    "ROWS",
    "ALPHA_GRID",
    "PRIOR_GRID",
    "task_score",
    "run_baselines",
    "merge_results",
    "markdown",
    "verdict",
    "mean_sd",
]

ALPHA_GRID = (1.0, 0.25, 0.5, 2.0)  # the default first: a tie keeps it
PRIOR_GRID = (0.01, 0.0, 0.05, 0.2)  # periodic PARIS's prior, the default first
DISPATCHERS = {
    "random": "random",
    "FIFS": "fifs",
    "JSQ": "jsq",
    "earliest-finish": "earliest_finish",
    "ELSA": "elsa",
}
ROWS = (
    *DISPATCHERS,
    "ELSA tuned",
    "static PARIS",
    "periodic PARIS",
    "periodic PARIS tuned",
    "best homogeneous",
    "reactive",
    "clairvoyant",
)
HEADROOM = 0.5  # clairvoyant / best static at most this: headroom a learned schedule can find


@dataclass(frozen=True)
class TaskSpec:
    """A registered task as its environment runs it.

    Attributes:
        env_id: the registered id.
        kind: ``"dispatch"`` or ``"partition"``.
        scenario: the environment's scenario (``env.unwrapped.scenario``).
        difficulty: the task's label.
    """

    env_id: str
    kind: str
    scenario: C.Scenario
    difficulty: str


def task_score(spec: TaskSpec, policy: str | schedules.Schedule, seed: int) -> float:
    """One episode's score (SLA violation rate) of ``policy`` on ``spec`` with ``seed``."""
    if spec.kind == "dispatch":
        assert isinstance(policy, str)
        return simulate(spec.scenario, policy, seed).sla_violation_rate
    return schedules.run_epochs(spec.scenario, policy, seed).summary.sla_violation_rate


def _work(specs: Sequence[TaskSpec], item: tuple) -> Any:
    """A worker's item: ``("score", task, policy, seed)`` or ``("plans", task)``."""
    if item[0] == "plans":
        sc = specs[item[1]].scenario
        return schedules.choose_plans(sc, sc.env.epochs_per_episode, sc.env.epoch_s)
    _, i, policy, seed = item
    return task_score(specs[i], policy, seed)


def _periodic(spec: TaskSpec, prior: float | None = None) -> str:
    """The periodic PARIS row's policy (``prior``: None for the rule's default)."""
    sc = spec.scenario
    if spec.kind == "partition":
        epoch = f"{sc.env.epoch_s:g}"
    else:
        rate = workload.mean_rate_qps(sc.workload, base_dir=sc.base_dir)
        epoch = f"{sc.run.num_queries / rate / 4:.3g}"
    extra = "" if prior is None else f",prior={prior:g}"
    return f"periodic_paris[epoch_s={epoch}{extra}]+elsa"


def _candidates(spec: TaskSpec) -> dict[str, list[str]]:
    """The tuned rows' candidates (chosen on training seeds)."""
    sizes = hardware.gpu_spec(spec.scenario.cluster.gpu).sizes
    return {
        "ELSA tuned": [f"{_base(spec)}+elsa[alpha={a:g}]" for a in ALPHA_GRID],
        "periodic PARIS tuned": [_periodic(spec, p) for p in PRIOR_GRID],
        "best homogeneous": [f"homo{k}+elsa" for k in sizes],
    }


def _base(spec: TaskSpec) -> str:
    """The dispatcher rows' layout: the Dispatch environment's own (its scenario's partitioner),
    static PARIS on Partition tasks (a scenario's own partitioner may re-plan there)."""
    return "scenario" if spec.kind == "dispatch" else "paris"


def _fixed_rows(spec: TaskSpec) -> dict[str, str]:
    rows = {label: f"{_base(spec)}+{d}" for label, d in DISPATCHERS.items()}
    rows["static PARIS"] = "paris+elsa"
    rows["periodic PARIS"] = _periodic(spec)
    return rows


def _mapped(
    fn: Callable[[Sequence[TaskSpec], tuple], Any],
    specs: Sequence[TaskSpec],
    items: list[tuple],
    jobs: int,
    label: str,
    progress: bool,
) -> list[Any]:
    with Progress(len(items), label) as bar:
        bar.enabled = bar.enabled and progress
        return run_map(fn, list(specs), items, jobs=jobs, on_result=bar.update)


def _tune(
    specs: Sequence[TaskSpec], train_seeds: int, jobs: int, progress: bool
) -> tuple[list[dict[str, str]], dict[int, list]]:
    """Per task: the tuned rows' chosen policy strings; per Partition task: its plans."""
    items: list[tuple] = []
    for i, spec in enumerate(specs):
        if spec.kind == "partition":
            items.append(("plans", i))
        for pols in _candidates(spec).values():
            items += [("score", i, p, s) for p in pols for s in range(train_seeds)]
    out = _mapped(_work, specs, items, jobs, f"tuning on {train_seeds} training seeds", progress)
    plans = {it[1]: res for it, res in zip(items, out, strict=True) if it[0] == "plans"}
    train: dict[tuple[int, str], list[float]] = {}
    for it, res in zip(items, out, strict=True):
        if it[0] == "score":
            train.setdefault((it[1], it[2]), []).append(res)
    chosen = []
    for i, spec in enumerate(specs):
        pick = {}
        for label, pols in _candidates(spec).items():  # min() keeps the first of equals
            pick[label] = min(pols, key=lambda p, i=i: float(np.mean(train[(i, p)])))
        chosen.append(pick)
    return chosen, plans


def run_baselines(
    specs: Sequence[TaskSpec],
    seeds: int = 10,
    train_seeds: int = 5,
    eval_base: int = 1_000_000,
    jobs: int = 1,
    progress: bool = True,
) -> dict[str, dict]:
    """Score every row of :data:`ROWS` that applies on each task; a JSON-ready dict per task id:
    ``{"kind", "difficulty", "seeds", "train_seeds", "rows": {label: {"policy", "scores"}}}``
    (``scores``: one violation rate per held-out seed, ``eval_base + i``)."""
    if not 1 <= train_seeds <= eval_base:
        raise ValueError(
            f"train_seeds must be in [1, eval_base={eval_base}] (disjoint), got {train_seeds}"
        )
    chosen, plans = _tune(specs, train_seeds, jobs, progress)
    rows: list[tuple[int, str, str | schedules.Schedule]] = []
    for i, spec in enumerate(specs):
        named: dict[str, str | schedules.Schedule] = {**_fixed_rows(spec), **chosen[i]}
        if spec.kind == "partition":
            sc = spec.scenario
            e, s = sc.env.epochs_per_episode, sc.env.epoch_s
            named["reactive"] = schedules.reactive(sc, e, s, plans[i])
            named["clairvoyant"] = schedules.clairvoyant(sc, e, s, plans[i])
        rows += [(i, label, named[label]) for label in ROWS if label in named]
    # One run per distinct (task, policy, seed): the tuned prior's default spelled out is the
    # periodic PARIS row's run (so are equal strings, e.g. ELSA = static PARIS on Partition tasks).
    keys = [
        (i, _same_run(specs[i], pol), eval_base + k) for i, _, pol in rows for k in range(seeds)
    ]
    distinct = list(dict.fromkeys(keys))
    done = _mapped(
        _work, specs, [("score", *key) for key in distinct], jobs,
        f"{len(specs)} tasks x {seeds} seeds", progress,
    )  # fmt: skip
    by_key = dict(zip(distinct, done, strict=True))
    out = [by_key[key] for key in keys]
    res: dict[str, dict] = {
        s.env_id: {"kind": s.kind, "difficulty": s.difficulty, "seeds": seeds,
                   "eval_base": eval_base, "train_seeds": train_seeds, "rows": {}}
        for s in specs
    }  # fmt: skip
    for n, (i, label, pol) in enumerate(rows):
        name = pol if isinstance(pol, str) else f"schedule:{pol.name}"
        scores = [float(x) for x in out[n * seeds : (n + 1) * seeds]]
        res[specs[i].env_id]["rows"][label] = {"policy": name, "scores": scores}
    return res


def _same_run(spec: TaskSpec, pol: str | schedules.Schedule) -> str | schedules.Schedule:
    """``pol``, or the equal policy string the table already runs (the default prior)."""
    return _periodic(spec) if pol == _periodic(spec, PRIOR_GRID[0]) else pol


def headroom(task: dict) -> float | None:
    """Partition task: clairvoyant's mean violations over the best static plan's (the better of
    static PARIS and the best homogeneous server); None without those rows."""
    rows = task["rows"]
    if not {"clairvoyant", "static PARIS", "best homogeneous"} <= set(rows):
        return None
    mean = {k: float(np.mean(v["scores"])) for k, v in rows.items()}
    best = min(mean["static PARIS"], mean["best homogeneous"])
    return mean["clairvoyant"] / best if best > 0 else float("nan")


def merge_results(path: Path, new: dict[str, dict], known: Sequence[str]) -> dict[str, dict]:
    """The results file ``path`` updated with ``new`` (tasks not run keep their rows; ids not in
    ``known``, tasks no longer registered, are dropped). Written back, ordered as ``known``."""
    old = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    both = {**old, **new}
    out = {k: both[k] for k in known if k in both}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(strict_dumps(out, indent=1) + "\n", encoding="utf-8")
    return out


def mean_sd(xs: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value), as every table reports them."""
    a = np.asarray(xs, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def _cell(row: dict | None, best: float) -> str:
    if row is None:
        return "—"
    m, sd = mean_sd(100 * np.asarray(row["scores"]))
    text = f"{m:.2f} ± {sd:.2f}"
    return f"**{text}**" if np.isclose(m, best) else text


def _param(row: dict | None) -> str:
    """The tuned row's choice, e.g. ``alpha=0.5``, ``prior=0`` or ``homo7``."""
    if row is None:
        return ""
    p = row["policy"]
    if "[" not in p:
        return p.split("+")[0]
    return p[p.index("[") + 1 : p.index("]")].split(",")[-1]


def _table(results: dict[str, dict], kind: str) -> list[str]:
    labels = [r for r in ROWS if kind == "partition" or r not in ("reactive", "clairvoyant")]
    head = ["task", "difficulty", *labels] + (["headroom"] if kind == "partition" else [])
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for env_id, t in results.items():
        if t["kind"] != kind:
            continue
        rows = t["rows"]
        means = [100 * float(np.mean(r["scores"])) for k, r in rows.items() if k != "random"]
        best = min(means) if means else float("nan")
        cells = []
        for label in labels:
            c = _cell(rows.get(label), best)
            if (
                label in ("ELSA tuned", "periodic PARIS tuned", "best homogeneous")
                and label in rows
            ):
                c += f" ({_param(rows[label])})"
            cells.append(c)
        short = env_id.removeprefix("mig_gym/")
        if kind == "partition":
            h = headroom(t)
            cells.append("—" if h is None else f"{h:.2f}")
        out.append(f"| `{short}` | {t['difficulty']} | " + " | ".join(cells) + " |")
    return out


def markdown(results: dict[str, dict]) -> str:
    """The generated section of ``docs/tasks.md``: a table per task kind."""
    any_t = next(iter(results.values()), None)
    if any_t is None:
        return "(no results yet: run `mig-gym baselines`)\n"
    n, base, tr = any_t["seeds"], any_t["eval_base"], any_t["train_seeds"]
    out = [
        f"SLA violations % (score), mean ± sd over {n} held-out seeds ({base} .. {base + n - 1});",
        f"tuned rows chose their parameter on training seeds 0 .. {tr - 1}. The best non-random",
        "row of each task is in bold; each row's policy string is in the JSON file.",
        "",
        "### Dispatch tasks",
        "",
        *_table(results, "dispatch"),
        "",
        "### Partition tasks",
        "",
        *_table(results, "partition"),
        "",
        f"Headroom: clairvoyant over the best static plan (static PARIS or best homogeneous); at "
        f"most {HEADROOM:g} is `medium` (a learned schedule can win), above it `hard`.",
    ]
    return "\n".join(out) + "\n"


def verdict(agent: Sequence[float], base: Sequence[float], kind: str) -> str:
    """How a trained agent's per-seed scores compare with a baseline row's (:func:`mean_sd`).

    Partition goal (beat the baseline): ``wins`` when the spreads are apart with the agent
    lower, ``loses`` when apart with it higher, otherwise ``tie (spreads overlap)``. Dispatch goal
    (no worse than the baseline): ``no worse`` when the agent's mean is at most the baseline's,
    otherwise ``worse`` (``, within spread`` when the spreads overlap)."""
    (a, sa), (b, sb) = mean_sd(agent), mean_sd(base)
    apart = a + sa < b - sb or a - sa > b + sb
    if kind == "dispatch":
        if a <= b:
            return "no worse"
        return "worse" if apart else "worse, within spread"
    if not apart:
        return "tie (spreads overlap)"
    return "wins" if a < b else "loses"


def with_num_queries(spec: TaskSpec, n: int) -> TaskSpec:
    """``spec`` with a shorter Dispatch horizon (tests and quick looks)."""
    run = dataclasses.replace(spec.scenario.run, num_queries=n)
    return dataclasses.replace(spec, scenario=dataclasses.replace(spec.scenario, run=run))
