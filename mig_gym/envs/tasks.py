"""Registered, versioned benchmark tasks: a typed preset per task, registered in a loop.

A task is a scenario file of ``scenarios/`` with its arrival rate, horizon and difficulty fixed,
so a paper can name it (``gym.make("mig_gym/Dispatch-resnet50-90-v0")``) and report its score. The
Dispatch rates are measured once by ``tools/task_rates.py`` and written here, so ``gym.make`` never
simulates to find them. ``docs/tasks.md`` lists every task. A task's version changes whenever its
scenario, rate, horizon or reward would give a different score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from mig_gym.envs.dispatch import DispatchEnv
from mig_gym.envs.partition import PartitionEnv
from mig_gym.scenario import config as C
from mig_gym.scenario import load_scenario
from mig_gym.scenario.files import scenario_file

__all__ = [
    "DISPATCH_TASKS",
    "PARTITION_TASKS",
    "DispatchTask",
    "PartitionTask",
    "get_task",
    "register_tasks",
]

DIFFICULTIES = ("easy", "medium", "hard")


@dataclass(frozen=True)
class DispatchTask:
    """A ``Dispatch-v0`` preset.

    Attributes:
        name: the id part, ``mig_gym/Dispatch-<name>-v<version>``.
        scenario: file name in ``scenarios/``, found by ``scenario_file`` (a wheel ships them).
        difficulty: one of :data:`DIFFICULTIES`.
        horizon: queries per episode (``num_queries``).
        rate_qps: Poisson arrival rate replacing the scenario's (None: the scenario's).
        overrides: top-level scenario sections merged over the file's (``load_scenario``).
        note: what the task is, for ``docs/tasks.md``.
        version: the id's version.
    """

    name: str
    scenario: str
    difficulty: str
    horizon: int = 2000
    rate_qps: float | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    version: int = 0

    @property
    def env_id(self) -> str:
        return f"mig_gym/Dispatch-{self.name}-v{self.version}"

    def load(self) -> C.Scenario:
        """The task's scenario (rate and overrides applied)."""
        over = dict(self.overrides)
        # The horizon in the scenario too, so that Dispatch-v0 on this scenario is the task.
        over["env"] = {**over.get("env", {}), "queries_per_episode": self.horizon}
        if self.rate_qps is not None:
            over["workload"] = {"arrivals": {"kind": "poisson", "rate_qps": self.rate_qps}}
        return load_scenario(scenario_file(self.scenario), **over)


@dataclass(frozen=True)
class PartitionTask:
    """A ``Partition-v0`` preset: a drift scenario with its own ``env`` section (epochs, horizon).

    Attributes are those of :class:`DispatchTask` that apply; the horizon is the scenario's
    ``env.epochs_per_episode`` x ``env.epoch_s``.
    """

    name: str
    scenario: str
    difficulty: str
    note: str = ""
    version: int = 0

    @property
    def env_id(self) -> str:
        return f"mig_gym/Partition-{self.name}-v{self.version}"

    def load(self) -> C.Scenario:
        return load_scenario(scenario_file(self.scenario))


# PARIS+ELSA's latency-bounded throughput under the serve-all criterion of mig_gym.runs.lbt (no
# rejection, <= 5 % late), by bisection at 1 % resolution, mean of seeds 0-2 with 20 000 queries
# each (tools/task_rates.py, 2026-12-02): resnet50 1593 +- 5 q/s, mobilenet 2980 +- 9 q/s,
# bert 405 +- 0 q/s. The tasks run at 70 %, 90 % and 110 % of it (rounded to 1 q/s).
_LBT_RATES = {
    "resnet50": (1115, 1434, 1752),
    "mobilenet": (2086, 2682, 3278),
    "bert": (283, 364, 445),
}
_LEVELS = (
    (70, "easy", "below capacity"),
    (90, "medium", "near capacity"),
    (110, "hard", "overloaded: violations unavoidable"),
)

DISPATCH_TASKS: tuple[DispatchTask, ...] = (
    *(
        DispatchTask(
            f"{model}-{pct}",
            f"paper_{model}.yaml",
            diff,
            rate_qps=rates[i],
            note=f"paper {model}, {pct} % of PARIS+ELSA's LBT ({note})",
        )
        for model, rates in _LBT_RATES.items()
        for i, (pct, diff, note) in enumerate(_LEVELS)
    ),
    # bursty.yaml's MMPP with the same rates (800 / 2400 q/s, mean 1120 q/s) but phases 10x shorter
    # (2 s low, 0.5 s high), so one 8000-query episode (about 7 s) sees several bursts.
    DispatchTask(
        "bursty",
        "bursty.yaml",
        "hard",
        horizon=8000,
        overrides={
            "workload": {
                "arrivals": {
                    "kind": "mmpp",
                    "rate_low_qps": 800,
                    "rate_high_qps": 2400,
                    "mean_low_s": 2.0,
                    "mean_high_s": 0.5,
                }
            }
        },
        note="resnet50, MMPP bursts of 3x the base rate (the high phase is 150 % of LBT)",
    ),
    # paper_resnet50 at 90 % of LBT with faults inside a 4000-query episode (about 2.8 s): GPU 2 is
    # down from 0.5 s to 1.5 s, GPU 5 from 1.0 s to the end (faults.yaml's times fall after it).
    DispatchTask(
        "resnet50-faults",
        "paper_resnet50.yaml",
        "hard",
        horizon=4000,
        rate_qps=1434,
        overrides={
            "faults": [{"gpu": 2, "down_at_s": 0.5, "up_at_s": 1.5}, {"gpu": 5, "down_at_s": 1.0}]
        },
        note="resnet50 at 90 % of LBT, one GPU down for 1 s and one for good",
    ),
)

# Difficulty from the headroom column of docs/tasks.md (mig-gym baselines): the clairvoyant
# schedule's violations over the best static plan's; <= 0.5 is medium (tests/test_baselines.py).
PARTITION_TASKS: tuple[PartitionTask, ...] = (
    PartitionTask(
        "mix_flip",
        "drift_mix_flip.yaml",
        "medium",
        note="model mix flips",
    ),
    PartitionTask(
        "tiny_huge",
        "drift_tiny_huge.yaml",
        "medium",
        note="query sizes swing tiny <-> huge",
    ),
    PartitionTask(
        "load_ramp",
        "drift_load_ramp.yaml",
        "medium",
        note="load ramps past capacity",
    ),
    PartitionTask(
        "diurnal", "diurnal_drift.yaml", "hard", note="diurnal rate and size drift over 2 h"
    ),
)


def make_dispatch_task(task: str, **kwargs: Any) -> gym.Env:
    """Entry point of the Dispatch tasks: ``DispatchEnv`` on the task's scenario and horizon."""
    t = _BY_ID[task]
    assert isinstance(t, DispatchTask)
    kwargs.setdefault("num_queries", t.horizon)
    return DispatchEnv(scenario=t.load(), **kwargs)


def make_partition_task(task: str, **kwargs: Any) -> gym.Env:
    """Entry point of the Partition tasks: ``PartitionEnv`` on the task's scenario."""
    return PartitionEnv(scenario=_BY_ID[task].load(), **kwargs)


_BY_ID: dict[str, DispatchTask | PartitionTask] = {
    t.env_id: t for t in (*DISPATCH_TASKS, *PARTITION_TASKS)
}


def get_task(name: str) -> DispatchTask | PartitionTask:
    """The task registered as ``name`` (the ``mig_gym/`` prefix optional)."""
    full = name if name.startswith("mig_gym/") else f"mig_gym/{name}"
    if full not in _BY_ID:
        raise KeyError(f"unknown task {name!r}; known: {', '.join(_BY_ID)}")
    return _BY_ID[full]


def register_tasks() -> None:
    """Register every task id (idempotent)."""
    for t in (*DISPATCH_TASKS, *PARTITION_TASKS):
        assert t.difficulty in DIFFICULTIES, t
        if t.env_id not in gym.registry:
            entry = make_dispatch_task if isinstance(t, DispatchTask) else make_partition_task
            gym.register(id=t.env_id, entry_point=entry, kwargs={"task": t.env_id})
