"""Gymnasium environments, registered on ``import mig_gym``:

* ``mig_gym/Dispatch-v0`` (:class:`DispatchEnv`): one step per arriving query; its
  ``vector_entry_point`` is :class:`mig_gym.envs.vector.DispatchVectorEnv` (N environments in
  one process, batched observations and masks), so ``gymnasium.make_vec`` builds that by default.
* ``mig_gym/Partition-v0`` (:class:`PartitionEnv`): one step per decision epoch.
* the benchmark tasks of :mod:`mig_gym.envs.tasks` (``mig_gym/Dispatch-resnet50-90-v0``, ...):
  those environments on fixed scenarios, rates and horizons (``docs/tasks.md``).
"""

from __future__ import annotations

import gymnasium as gym

from mig_gym.envs.common import EVAL_SEED_BASE, VALIDATION_SEED_BASE
from mig_gym.envs.dispatch import DispatchEnv
from mig_gym.envs.partition import PartitionEnv
from mig_gym.envs.reference import reference_policy
from mig_gym.envs.tasks import register_tasks

__all__ = [
    "EVAL_SEED_BASE",
    "VALIDATION_SEED_BASE",
    "DispatchEnv",
    "PartitionEnv",
    "reference_policy",
    "register_envs",
]


def register_envs() -> None:
    """Register both environments (idempotent)."""
    for env_id, entry, vector in (
        (
            "mig_gym/Dispatch-v0",
            "mig_gym.envs.dispatch:DispatchEnv",
            "mig_gym.envs.vector:DispatchVectorEnv",
        ),
        ("mig_gym/Partition-v0", "mig_gym.envs.partition:PartitionEnv", None),
    ):
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point=entry,
                vector_entry_point=vector,
                disable_env_checker=False,
            )


register_envs()
register_tasks()
