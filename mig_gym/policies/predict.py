"""SB3-style ``predict`` for the reference rules themselves.

``ELSA().bind(env).predict(obs)`` answers what ELSA would do in ``env`` (a ``Dispatch-v0`` or a
vector env of them); ``PARIS().bind(env).predict(obs)`` re-plans a ``Partition-v0`` from the last
epoch's batch sizes. The rules need more than the observation, so they read the environment's
documented read-only view (``unwrapped.view``, ``pending_query``, ``partition_slot``,
``observed_pmfs``, ``encode``, ``current_action``); this module only knows those names, not the
environment classes, so policies stay independent of the environments.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mig_gym.sim.entities import match_assignment

__all__ = ["DispatchPredict", "PartitionPredict"]


def _subenvs(env: Any) -> tuple[list[Any], bool]:
    envs = getattr(env, "envs", None)
    if envs is None:
        return [env.unwrapped], True
    return [e.unwrapped for e in envs], False


class _Bound:
    _env: Any = None

    def bind(self, env: Any) -> Any:
        """Attach the environment (or vector env) whose view ``predict`` reads; returns self."""
        self._env = env
        return self

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        if self._env is None:
            raise RuntimeError(
                f"{type(self).__name__}.predict needs bind(env) first: the rule "
                "reads the environment's view, not only the observation"
            )
        subs, single = _subenvs(self._env)
        acts = [self.decide(e) for e in subs]
        if single:
            return np.asarray(acts[0]), state
        return np.stack([np.asarray(a) for a in acts]), state

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
    """Mixin for partitioners: re-plan on the last epoch's batch sizes, keeping matching GPUs."""

    def decide(self, env: Any) -> np.ndarray:
        plan = self.plan(env.run.context, env.observed_pmfs())  # type: ignore[attr-defined]
        keep = [int(a) for a in env.current_action()]
        wanted = [
            env.encode(lay, mods[0]) for lay, mods in zip(plan.layouts, plan.models, strict=True)
        ]
        return np.asarray(match_assignment(keep, wanted), dtype=np.int64)
