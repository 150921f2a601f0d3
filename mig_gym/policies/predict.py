"""SB3-style ``predict`` for the reference rules themselves.

:class:`Predictor` is the one SB3 ``predict`` adapter of the package (``reference_policy``
returns one too). ``ELSA().bind(env).predict(obs)`` answers what ELSA would do in ``env`` (a
``Dispatch-v0`` or a vector env of them); ``PeriodicPARIS(epoch_s).bind(env).predict(obs)``
re-plans a ``Partition-v0`` as periodic PARIS does in the simulator. The rules need more than the
observation, so they read the environment's documented read-only view (``unwrapped.view``,
``pending_query``, ``partition_slot``, ``run.context``, ``epoch``, ``observed_counts``,
``encode``, ``current_action``); this module only knows those names, not the environment
classes, so policies stay independent of the environments.
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from mig_gym.sim.entities import Plan, match_assignment

__all__ = ["Predictor", "DispatchPredict", "PartitionPredict"]


class Predictor:
    """The one SB3-style ``predict`` adapter for rules that read an environment's view: what
    ``reference_policy(env, name)`` and ``rule.bind(env)`` return, so that
    ``stable_baselines3.common.evaluation.evaluate_policy`` scores heuristics and learned agents
    alike.

    Works on a single environment or on a vector env whose sub-environments are reachable
    (``DummyVecEnv.envs`` or ``gymnasium.vector.SyncVectorEnv.envs``): ``predict`` returns one
    action for a single environment's observation and a stacked batch for a vector env (or a
    batched observation).

    Args:
        env: the environment (or vector env) the policy acts in.
        decide: ``decide(unwrapped_env) -> action`` for one environment.
        name: a label (the rule's name).
    """

    def __init__(self, env: Any, decide: Callable[[Any], Any], name: str = "") -> None:
        self.env = env
        self.decide = decide
        self.name = name

    def _subenvs(self) -> list[Any]:
        envs = getattr(self.env, "envs", None)
        if envs is None:
            return [self.env.unwrapped]
        return [e.unwrapped for e in envs]

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        subs = self._subenvs()
        acts = [self.decide(e) for e in subs]
        obs = np.asarray(observation)
        single = getattr(self.env, "envs", None) is None
        if single and obs.ndim == len(subs[0].observation_space.shape):
            return np.asarray(acts[0]), state
        return np.stack([np.asarray(a) for a in acts]), state


class _Bound:
    def bind(self, env: Any) -> Predictor:
        """A :class:`Predictor` of this rule acting in ``env`` (or a vector env of them)."""
        return Predictor(env, self.decide, getattr(self, "name", type(self).__name__))

    def predict(self, observation: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            f"{type(self).__name__}.predict needs bind(env) first: the rule "
            "reads the environment's view, not only the observation"
        )

    def decide(self, env: Any) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError


class DispatchPredict(_Bound):
    """Mixin for dispatchers: the slot of the partition ``choose`` picks for the pending query."""

    def decide(self, env: Any) -> int:
        q = env.pending_query
        if q is None:
            return 0
        p = self.choose(q, env.view)  # type: ignore[attr-defined]
        return env.partition_slot(p) if p is not None else 0


class PartitionPredict(_Bound):
    """Mixin for partitioners that re-plan ``Partition-v0``: ``env_plan(env) -> Plan | None``
    (None: keep every GPU) becomes an action that keeps the GPUs already matching a wanted
    layout, as ``runs.build.apply_plan`` keeps them in the simulator.

    Such a rule keeps state over an episode (what it saw so far), so ``bind`` gives each
    environment of a vector env its own copy of the rule.
    """

    def env_plan(self, env: Any) -> Plan | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def decide(self, env: Any) -> np.ndarray:
        plan = self.env_plan(env)
        keep = [int(a) for a in env.current_action()]
        if plan is None:
            return np.asarray(keep, dtype=np.int64)
        wanted = [
            env.encode(lay, mods[0]) for lay, mods in zip(plan.layouts, plan.models, strict=True)
        ]
        return np.asarray(match_assignment(keep, wanted), dtype=np.int64)

    def bind(self, env: Any) -> Predictor:
        rules: weakref.WeakKeyDictionary[Any, PartitionPredict] = weakref.WeakKeyDictionary()

        def decide(e: Any) -> np.ndarray:
            rule = rules.get(e)
            if rule is None:  # one copy per environment, gone with it
                rule = rules[e] = copy.deepcopy(self)
            return rule.decide(e)

        return Predictor(env, decide, getattr(self, "name", type(self).__name__))
