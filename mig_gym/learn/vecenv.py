"""stable-baselines3's view of :class:`~mig_gym.envs.vector.DispatchVectorEnv`: a ``VecEnv`` that
SB3 algorithms and sb3-contrib's ``MaskablePPO`` train on directly, N Dispatch-v0 environments in
one process (no subprocesses, one numpy pass per step for all N).

SB3's conventions: an ended environment is reset in the same step (the vector environment runs
in ``SAME_STEP`` mode), ``infos`` is a list of N dicts, the last observation of an episode is in
``infos[i]["terminal_observation"]``, ``infos[i]["TimeLimit.truncated"]`` says the episode was
cut (Dispatch-v0 episodes are always truncated, never terminated) and ``infos[i]["summary"]``
holds its ``Summary`` fields. ``env_method("action_masks")`` (what ``MaskablePPO`` calls) and
``action_masks()`` give each environment's mask, read from the batched (N, P) array.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from mig_gym.envs.vector import DispatchVectorEnv

__all__ = ["DispatchSB3VecEnv"]


def _entry(batched: Any, i: int) -> Any:
    """Environment ``i``'s value of a gymnasium batched info (nested dicts of arrays)."""
    if isinstance(batched, dict):
        return {k: _entry(v, i) for k, v in batched.items() if not str(k).startswith("_")}
    return batched[i]


class DispatchSB3VecEnv(VecEnv):
    """``num_envs`` Dispatch-v0 environments as one SB3 ``VecEnv``; ``**kwargs`` are
    :class:`~mig_gym.envs.dispatch.DispatchEnv`'s (``scenario``, ``policy``, ...)."""

    def __init__(self, num_envs: int, seed: int | None = None, **kwargs: Any) -> None:
        self.venv = DispatchVectorEnv(num_envs, autoreset_mode="same_step", **kwargs)
        super().__init__(
            num_envs, self.venv.single_observation_space, self.venv.single_action_space
        )
        self._actions: np.ndarray | None = None
        if seed is not None:
            self.seed(seed)

    def reset(self) -> np.ndarray:
        seeds = list(self._seeds) if any(s is not None for s in self._seeds) else None
        obs, _ = self.venv.reset(seed=seeds, options=self._options[0] or None)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        obs, rewards, term, trunc, info = self.venv.step(self._actions)
        dones = term | trunc
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for i in np.flatnonzero(dones):
            infos[i] = {
                "terminal_observation": info["final_obs"][i],
                "TimeLimit.truncated": bool(trunc[i] and not term[i]),
                "summary": _entry(info["final_info"]["summary"], i),
            }
        return obs, rewards.astype(np.float32), dones, infos

    def action_masks(self) -> np.ndarray:
        return self.venv.action_masks()

    def close(self) -> None:
        self.venv.close()

    def _targets(self, indices: Any) -> list[int]:
        return list(self._get_indices(indices))

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self.venv.envs[i], attr_name) for i in self._targets(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        for i in self._targets(indices):
            setattr(self.venv.envs[i], attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any
    ) -> list[Any]:
        idx = self._targets(indices)
        if method_name == "action_masks":  # one batched copy, not N method calls
            masks = self.venv.action_masks()
            return [masks[i] for i in idx]
        return [getattr(self.venv.envs[i], method_name)(*method_args, **method_kwargs) for i in idx]

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False for _ in self._targets(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None for _ in range(self.num_envs)]
