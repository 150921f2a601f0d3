"""Reference policies acting through the environments (SB3 ``predict`` interface).

``reference_policy(env, "elsa")`` returns an object whose ``predict(obs, state, episode_start,
deterministic)`` answers what the named reference rule would do in ``env`` (a single environment or
a ``DummyVecEnv``/``SyncVectorEnv`` of them), so ``stable_baselines3.common.evaluation.
evaluate_policy`` can score heuristics and learned agents alike. The rules read the environment's
documented read-only view (``env.unwrapped.view``, ``pending_query``, ``observed_pmfs()``), never
the observation alone, and never change the simulator.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from mig_gym.envs.common import ReferencePolicy
from mig_gym.envs.dispatch import DispatchEnv
from mig_gym.envs.partition import PartitionEnv
from mig_gym.policies import (
    ELSA,
    EarliestFinish,
    FirstFree,
    JoinShortestQueue,
    RandomDispatch,
    RoundRobin,
)
from mig_gym.policies.partition.paris import PARIS

__all__ = ["reference_policy", "DISPATCH_POLICIES", "PARTITION_POLICIES"]

DISPATCH_POLICIES = ("elsa", "fifs", "earliest_finish", "jsq", "round_robin", "random")
PARTITION_POLICIES = ("static", "paris")


def _dispatch_rule(name: str, seed: int, **params: Any) -> Any:
    if name == "elsa":
        return ELSA(**params)
    if name == "fifs":  # push form of first-idle-first-serve: the partition free soonest
        return FirstFree()
    if name == "random":
        return RandomDispatch(np.random.default_rng(seed))
    return {"earliest_finish": EarliestFinish, "jsq": JoinShortestQueue, "round_robin": RoundRobin}[
        name
    ]()


def reference_policy(env: Any, name: str, seed: int = 0, **params: Any) -> ReferencePolicy:
    """An SB3-style policy for ``env`` following reference rule ``name``.

    Dispatch-v0: ``elsa`` (params ``alpha``, ``scan_from``), ``fifs`` (push form: the partition that
    is free soonest), ``earliest_finish``, ``jsq``, ``round_robin``, ``random``.
    Partition-v0: ``static`` (keep the initial plan) and ``paris`` (re-plan every epoch from the
    last epoch's batch sizes, i.e. periodic PARIS; params as ``PARIS``).
    """
    probe = env.envs[0].unwrapped if hasattr(env, "envs") else env.unwrapped
    if isinstance(probe, DispatchEnv):
        if name not in DISPATCH_POLICIES:
            raise ValueError(f"unknown Dispatch-v0 policy {name!r} (known: {DISPATCH_POLICIES})")
        rules: weakref.WeakKeyDictionary[DispatchEnv, Any] = weakref.WeakKeyDictionary()

        def decide(e: DispatchEnv) -> int:
            rule = rules.get(e)
            if rule is None:  # one rule per environment (stateful rules), gone with it
                rule = rules[e] = _dispatch_rule(name, seed, **params)
            return rule.decide(e)

        return ReferencePolicy(env, decide, name)
    if isinstance(probe, PartitionEnv):
        if name not in PARTITION_POLICIES:
            raise ValueError(f"unknown Partition-v0 policy {name!r} (known: {PARTITION_POLICIES})")
        if name == "static":
            return ReferencePolicy(env, lambda e: e.current_action(), name)
        return ReferencePolicy(env, PARIS(**params).decide, name)
    raise TypeError(f"reference_policy needs a mig_gym environment, got {type(probe).__name__}")
