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

from mig_gym.envs.dispatch import DispatchEnv
from mig_gym.envs.partition import PartitionEnv
from mig_gym.policies.predict import Predictor
from mig_gym.policies.registry import DISPATCHERS, PARTITIONERS, STATIC, reference_names

__all__ = ["reference_policy", "DISPATCH_POLICIES", "PARTITION_POLICIES"]

DISPATCH_POLICIES = reference_names("dispatch")
PARTITION_POLICIES = reference_names("partition")


def _unknown(kind: str, name: str, known: tuple[str, ...]) -> ValueError:
    why = ""
    entry = DISPATCHERS.get(name) if kind == "Dispatch-v0" else None
    if entry is not None:  # a pull rule: the agent places each query on arrival
        why = (
            f": {name} is {entry.doc}, which Dispatch-v0 cannot express (its push form: fifs_push)"
        )
    return ValueError(f"unknown {kind} policy {name!r}{why} (known: {known})")


def reference_policy(env: Any, name: str, seed: int = 0, **params: Any) -> Predictor:
    """An SB3-style policy for ``env`` following reference rule ``name``.

    Dispatch-v0: every dispatcher of :mod:`mig_gym.policies.registry` with a push form: ``elsa``
    (params ``alpha``, ``scan_from``, ``home_of``), ``fifs_push`` (the partition that is free
    soonest; ``fifs``, the central queue, has no push form), ``earliest_finish``, ``jsq``,
    ``round_robin``, ``random``.
    Partition-v0: ``static`` (keep the initial plan) and ``paris`` (re-plan every epoch from the
    last epoch's batch sizes; params as ``PARIS``).
    """
    probe = env.envs[0].unwrapped if hasattr(env, "envs") else env.unwrapped
    if isinstance(probe, DispatchEnv):
        if name not in DISPATCH_POLICIES:
            raise _unknown("Dispatch-v0", name, DISPATCH_POLICIES)
        make = DISPATCHERS[name].reference
        rules: weakref.WeakKeyDictionary[DispatchEnv, Any] = weakref.WeakKeyDictionary()

        def decide(e: DispatchEnv) -> int:
            rule = rules.get(e)
            if rule is None:  # one rule per environment (stateful rules), gone with it
                rule = rules[e] = make(seed, **params)  # type: ignore[misc]
            return rule.decide(e)

        return Predictor(env, decide, name)
    if isinstance(probe, PartitionEnv):
        if name not in PARTITION_POLICIES:
            raise _unknown("Partition-v0", name, PARTITION_POLICIES)
        if name == STATIC:
            return Predictor(env, lambda e: e.current_action(), name)
        return Predictor(env, PARTITIONERS[name].reference(**params).decide, name)  # type: ignore[misc]
    raise TypeError(f"reference_policy needs a mig_gym environment, got {type(probe).__name__}")
