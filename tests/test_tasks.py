"""The registered benchmark tasks: every id makes, passes Gymnasium's checker, matches its table."""

from __future__ import annotations

import warnings

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import mig_gym  # noqa: F401  (registers the environments and the tasks)
from mig_gym.envs.tasks import DIFFICULTIES, DISPATCH_TASKS, PARTITION_TASKS

from .conftest import REPO, SCENARIOS

TASKS = (*DISPATCH_TASKS, *PARTITION_TASKS)


def test_ids_are_unique_versioned_and_registered():
    ids = [t.env_id for t in TASKS]
    assert len(set(ids)) == len(ids) == 15
    assert "mig_gym/Dispatch-resnet50-90-v0" in ids
    for t in TASKS:
        assert t.env_id in gym.registry and t.env_id.endswith(f"-v{t.version}")
        assert t.difficulty in DIFFICULTIES and (SCENARIOS / t.scenario).is_file()


# A Partition step simulates a whole epoch: their checks take 3-18 s each, so they are slow-marked.
CHECKED = (
    *DISPATCH_TASKS,
    *(pytest.param(t, marks=pytest.mark.slow) for t in PARTITION_TASKS),
)


@pytest.mark.parametrize("task", CHECKED, ids=lambda t: t.env_id)
def test_task_passes_check_env(task):
    env = gym.make(task.env_id, disable_env_checker=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped, skip_render_check=False)
    env.close()


@pytest.mark.parametrize("task", DISPATCH_TASKS, ids=lambda t: t.env_id)
def test_dispatch_task_uses_its_rate_and_horizon(task):
    env = gym.make(task.env_id).unwrapped
    assert env.scenario.run.num_queries == task.horizon
    if task.rate_qps is not None:
        assert env.scenario.workload.arrivals.rate_qps == task.rate_qps


def test_docs_table_lists_every_task():
    text = (REPO / "docs" / "tasks.md").read_text(encoding="utf-8")
    for t in TASKS:
        assert f"`{t.env_id}`" in text and t.scenario in text
