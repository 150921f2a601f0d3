"""A native vector environment for ``mig_gym/Dispatch-v0``: N environments stepped in one process,
their observations and action masks computed together in one :class:`~mig_gym.envs.slots.SlotBank`
(one numpy pass per step for all N, instead of one per environment, and no per-environment
wrappers or info dicts).

``gymnasium.make_vec("mig_gym/Dispatch-v0", num_envs=N)`` (vectorization mode
``"vector_entry_point"``, the default for this id) builds one; every keyword of
:class:`~mig_gym.envs.dispatch.DispatchEnv` but ``render_mode`` is accepted. The trajectories are
those of N independent ``DispatchEnv`` seeded ``seed + i`` (as ``SyncVectorEnv`` seeds them),
with gymnasium 1.x's autoreset modes: ``NEXT_STEP`` (the default: the step after an episode ends
resets that environment, ignores its action and returns reward 0) or ``SAME_STEP`` (an ended
environment is reset at once; ``info["final_obs"]`` and ``info["final_info"]`` hold what the
episode ended with, masked by ``info["_final_obs"]``).

``info`` holds, batched: ``action_mask`` (N, P), ``invalid`` and ``invalid_actions`` (N,),
``episode_seed`` at resets, ``summary`` at episode ends (masked ``_``-keys as in gymnasium).
``action_masks()`` returns the (N, P) masks. :class:`mig_gym.learn.vecenv.DispatchSB3VecEnv`
adapts it to stable-baselines3 (and sb3-contrib's ``MaskablePPO``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from mig_gym.envs.dispatch import DispatchEnv
from mig_gym.envs.slots import SlotBank

__all__ = ["DispatchVectorEnv"]


class DispatchVectorEnv(VectorEnv):
    """``num_envs`` Dispatch-v0 environments in one process (see the module docstring).

    Args:
        num_envs: N.
        autoreset_mode: ``AutoresetMode.NEXT_STEP`` (default) or ``SAME_STEP`` (or their
            values ``"NextStep"``/``"SameStep"``, or ``"next_step"``/``"same_step"``).
        **kwargs: :class:`~mig_gym.envs.dispatch.DispatchEnv`'s (``scenario``, ``policy``,
            ``num_queries``, ``drain``).
    """

    def __init__(
        self,
        num_envs: int = 1,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        render_mode: str | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(num_envs, int) or isinstance(num_envs, bool) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        modes = {"next_step": AutoresetMode.NEXT_STEP, "same_step": AutoresetMode.SAME_STEP}
        mode = modes.get(str(autoreset_mode).lower(), autoreset_mode)
        if mode not in modes.values() and mode not in ("NextStep", "SameStep"):
            raise ValueError(
                f"autoreset_mode must be NEXT_STEP or SAME_STEP, got {autoreset_mode!r}"
            )
        mode = AutoresetMode(mode)
        if render_mode is not None:
            raise ValueError("DispatchVectorEnv does not render: use render_mode=None")
        kwargs.pop("max_episode_steps", None)  # (episodes end by num_queries)
        self.envs = [DispatchEnv(**kwargs) for _ in range(num_envs)]
        e0 = self.envs[0]
        self.bank = SlotBank(num_envs, e0.slot_width, e0.slots, e0.max_batch, e0.num_models)
        for i, e in enumerate(self.envs):
            e.share_bank(self.bank, i)
        self.num_envs = num_envs
        self.autoreset_mode = mode
        self.metadata = {"autoreset_mode": mode, "render_modes": []}
        self.render_mode = None
        self.single_observation_space = e0.observation_space
        self.single_action_space = e0.action_space
        self.observation_space = batch_space(e0.observation_space, num_envs)
        self.action_space = batch_space(e0.action_space, num_envs)
        self._done = np.zeros(num_envs, bool)  # NEXT_STEP: reset on the next step
        self._live = np.ones(num_envs, bool)

    def _seeds(self, seed: int | list[int | None] | None) -> list[int | None]:
        if seed is None:
            return [None] * self.num_envs
        if isinstance(seed, int):
            return [seed + i for i in range(self.num_envs)]
        if len(seed) != self.num_envs:
            raise ValueError(f"seed needs {self.num_envs} entries, got {len(seed)}")
        return list(seed)

    def _finish(self, infos: dict[str, Any]) -> None:
        """Compute every row, note which have a pending query, add the batched mask."""
        for i, e in enumerate(self.envs):
            self._live[i] = e.pending_query is not None
        self.bank.compute(self._live)
        infos["action_mask"] = self.bank.mask.copy()

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every environment (``seed + i`` for environment i when ``seed`` is an int)."""
        infos: dict[str, Any] = {}
        for i, (e, s) in enumerate(zip(self.envs, self._seeds(seed), strict=True)):
            _, info = e.reset(seed=s, options=options)
            infos = self._add_info(infos, {"episode_seed": info["episode_seed"]}, i)
        self._done[:] = False
        self._finish(infos)
        return self.bank.obs.copy(), infos

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        acts = np.asarray(actions).reshape(self.num_envs).tolist()
        n = self.num_envs
        rewards = np.zeros(n)
        term, trunc = np.zeros(n, bool), np.zeros(n, bool)
        invalid, count = np.zeros(n, bool), np.zeros(n, np.int64)
        infos: dict[str, Any] = {}
        same = self.autoreset_mode == AutoresetMode.SAME_STEP
        for i, e in enumerate(self.envs):
            if self._done[i]:  # NEXT_STEP: this step resets it
                _, info = e.reset()
                infos = self._add_info(infos, {"episode_seed": info["episode_seed"]}, i)
                self._done[i] = False
                continue
            _, r, te, tr, info = e._step(acts[i], full=False)
            rewards[i], term[i], trunc[i], invalid[i] = r, te, tr, info["invalid"]
            count[i] = e.invalid_actions
            if te or tr:
                infos = self._add_info(infos, {"summary": info["summary"]}, i)
                if same:
                    final = {"summary": info["summary"], "invalid": info["invalid"]}
                    _, info = e.reset()
                    infos = self._add_info(
                        infos,
                        {
                            "final_obs": np.zeros(self.single_observation_space.shape, np.float32),
                            "final_info": final,
                            "episode_seed": info["episode_seed"],
                        },
                        i,
                    )
                else:
                    self._done[i] = True
        infos["invalid"], infos["invalid_actions"] = invalid, count
        self._finish(infos)
        return self.bank.obs.copy(), rewards, term, trunc, infos

    def action_masks(self) -> np.ndarray:
        """(N, P) valid slots of each environment's pending query."""
        return self.bank.mask.copy()

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Call (or read) ``name`` on every environment."""
        out = []
        for e in self.envs:
            x = getattr(e, name)
            out.append(x(*args, **kwargs) if callable(x) else x)
        return tuple(out)

    def get_attr(self, name: str) -> tuple[Any, ...]:
        return tuple(getattr(e, name) for e in self.envs)

    def set_attr(self, name: str, values: Any) -> None:
        if not isinstance(values, list | tuple):
            values = [values] * self.num_envs
        for e, v in zip(self.envs, values, strict=True):
            setattr(e, name, v)

    def close_extras(self, **kwargs: Any) -> None:
        for e in self.envs:
            e.close()
