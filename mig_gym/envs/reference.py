"""Reference policies acting through the environments (SB3 ``predict`` interface).

``reference_policy(env, "elsa")`` returns an object whose ``predict(obs, state, episode_start,
deterministic)`` answers what the named reference rule would do in ``env`` (a single environment or
a ``DummyVecEnv``/``SyncVectorEnv`` of them), so ``stable_baselines3.common.evaluation.
evaluate_policy`` can score heuristics and learned agents alike. The rules read the environment's
documented read-only view (``env.unwrapped.view``, ``pending_query``, ``observed_counts()``),
never the observation alone, and never change the simulator. A name means one rule everywhere:
``periodic_paris`` here is the simulator's periodic PARIS (one implementation,
:class:`~mig_gym.policies.partition.periodic.PeriodicPARIS`), so an episode of it on a
Partition task is the baseline table's ``periodic_paris[epoch_s=E]+elsa`` run.
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
    if kind == "Partition-v0" and name == "paris":
        why = (
            ": paris is the static PARIS plan; keeping the initial plan (PARIS's on every "
            "Partition task) is static, PARIS re-planned every epoch is periodic_paris"
        )
    return ValueError(f"unknown {kind} policy {name!r}{why} (known: {known})")


def reference_policy(env: Any, name: str, seed: int = 0, **params: Any) -> Predictor:
    """An SB3-style policy for ``env`` following reference rule ``name``.

    Dispatch-v0: every dispatcher of :mod:`mig_gym.policies.registry` with a push form: ``elsa``
    (params ``alpha``, ``scan_from``, ``home_of``), ``fifs_push`` (the partition that is free
    soonest; ``fifs``, the central queue, has no push form), ``earliest_finish``, ``jsq``,
    ``round_robin``, ``random``.
    Partition-v0: ``static`` (keep the initial plan) and ``periodic_paris`` (periodic PARIS:
    at t = 0 its initial plan, then every epoch PARIS re-planned from the last epoch's arrivals,
    blended with the scenario's distribution and mix by ``prior``; params ``prior`` and as
    ``PARIS``), the same rule and code as the simulator's ``periodic_paris`` partitioner.
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
        return PARTITIONERS[name].reference(**params).bind(env)  # type: ignore[misc]
    raise TypeError(f"reference_policy needs a mig_gym environment, got {type(probe).__name__}")
