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

With numba (and ``compiled_step=True``, the default) the episodes that allow it are stepped
together by one compiled call (:mod:`mig_gym.envs.vec_core`); the others, and every episode
without numba, step one by one in Python, with the same trajectories.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from mig_gym.envs.dispatch import DispatchEnv
from mig_gym.envs.slots import SlotBank
from mig_gym.envs.vec_core import VecCore, packable

__all__ = ["DispatchVectorEnv"]


class DispatchVectorEnv(VectorEnv):
    """``num_envs`` Dispatch-v0 environments in one process (see the module docstring).

    Args:
        num_envs: N.
        autoreset_mode: ``AutoresetMode.NEXT_STEP`` (default) or ``SAME_STEP`` (or their
            values ``"NextStep"``/``"SameStep"``, or ``"next_step"``/``"same_step"``).
        compiled_step: step the episodes that allow it in one compiled call for all
            environments (:mod:`mig_gym.envs.vec_core`, with numba); False: each in Python.
        **kwargs: :class:`~mig_gym.envs.dispatch.DispatchEnv`'s (``scenario``, ``policy``,
            ``num_queries``, ``drain``).
    """

    def __init__(
        self,
        num_envs: int = 1,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        render_mode: str | None = None,
        compiled_step: bool = True,
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
        kernels = VecCore.load() if compiled_step else None
        self.core = VecCore(self.envs, *kernels) if kernels is not None else None
        self.bank = SlotBank(num_envs, e0.slot_width, e0.slots, e0.max_batch, e0.num_models)
        if self.core is None:  # one bank for every row; else each environment keeps its own
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
        core = self.core
        if core is None:
            for i, e in enumerate(self.envs):
                self._live[i] = e.pending_query is not None
            self.bank.compute(self._live)
        elif not core.packed.all():  # packed rows are the kernel's; the others, their banks'
            for i in np.flatnonzero(~core.packed).tolist():
                e = self.envs[i]
                if packable(e):
                    core.pack(i)
                else:
                    live = e.pending_query is not None
                    core.obs[i] = e.bank.obs[0] if live else 0.0
                    core.mask[i] = e.bank.mask[0] if live else False
        infos["action_mask"] = self._mask.copy()

    @property
    def _obs(self) -> np.ndarray:
        return self.bank.obs if self.core is None else self.core.obs

    @property
    def _mask(self) -> np.ndarray:
        return self.bank.mask if self.core is None else self.core.mask

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every environment (``seed + i`` for environment i when ``seed`` is an int)."""
        infos: dict[str, Any] = {}
        for i, (e, s) in enumerate(zip(self.envs, self._seeds(seed), strict=True)):
            _, info = e.reset(seed=s, options=options)
            infos = self._add_info(infos, {"episode_seed": info["episode_seed"]}, i)
        self._done[:] = False
        if self.core is not None:
            self.core.packed[:] = False  # new episodes: packed again by _finish
        self._finish(infos)
        return self._obs.copy(), infos

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        n = self.num_envs
        arr = np.asarray(actions).reshape(n)
        acts = arr.tolist()
        rewards = np.zeros(n)
        term, trunc, invalid = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool)
        infos: dict[str, Any] = {}
        rows = self.core.packed & ~self._done if self.core is not None else self._done & False
        every = rows.all()
        left = self._kernel_step(arr, acts, rows, rewards, invalid) if every or rows.any() else {}
        python = [] if every and not left else np.flatnonzero(~rows).tolist() + list(left)
        for i in sorted(python):  # the Python steps
            e = self.envs[i]
            if self._done[i]:  # NEXT_STEP: this step resets it
                _, info = e.reset()
                infos = self._add_info(infos, {"episode_seed": info["episode_seed"]}, i)
                self._done[i] = False
                continue
            if i in left:
                r, te, tr, info = left[i]
            else:
                _, r, te, tr, info = e._step(acts[i], full=False)
            rewards[i], term[i], trunc[i], invalid[i] = r, te, tr, info["invalid"]
            if te or tr:
                infos = self._ended(infos, i, info)
        count = np.array([e.invalid_actions for e in self.envs], np.int64)
        infos["invalid"], infos["invalid_actions"] = invalid, count
        self._finish(infos)
        return self._obs.copy(), rewards, term, trunc, infos

    def _ended(self, infos: dict[str, Any], i: int, info: dict[str, Any]) -> dict[str, Any]:
        """Environment ``i``'s episode ended this step: its summary, and its reset (SAME_STEP)
        or a reset on the next step (NEXT_STEP)."""
        infos = self._add_info(infos, {"summary": info["summary"]}, i)
        if self.autoreset_mode != AutoresetMode.SAME_STEP:
            self._done[i] = True
            return infos
        final = {"summary": info["summary"], "invalid": info["invalid"]}
        _, info = self.envs[i].reset()
        extra = {
            "final_obs": np.zeros(self.single_observation_space.shape, np.float32),
            "final_info": final,
            "episode_seed": info["episode_seed"],
        }
        return self._add_info(infos, extra, i)

    def _kernel_step(self, arr: np.ndarray, acts: list[Any], rows: np.ndarray,
                     rewards: np.ndarray, invalid: np.ndarray) -> dict[int, tuple]:  # fmt: skip
        """The packed environments' step in one kernel call (:mod:`mig_gym.envs.vec_core`),
        their rewards and invalid flags written in place; returns ``(reward, terminated,
        truncated, info)`` of those whose arrivals ended (the rest of their step in Python)."""
        core = self.core
        assert core is not None
        if arr.dtype.kind == "i":  # out of range is invalid in the kernel (-1 likewise)
            a = arr.astype(np.int64, copy=False)
        else:  # anything else as each environment's own check reads it (-1: invalid)
            a = np.full(self.num_envs, -1, np.int64)
            for i in np.flatnonzero(rows).tolist():
                a[i] = self.envs[i]._validate(acts[i])[0]
        left = core.step(a, rows)
        np.copyto(rewards, core.reward, where=rows)
        np.logical_and(core.invalid, rows, out=invalid)
        if invalid.any():
            for i in np.flatnonzero(invalid).tolist():
                self.envs[i].invalid_actions += 1
        return {i: self._continue(self.envs[i], bool(invalid[i])) for i in left}

    @staticmethod
    def _continue(e: DispatchEnv, invalid: bool) -> tuple[float, bool, bool, dict]:
        """The rest of ``DispatchEnv._step`` after the kernel applied the action."""
        over = e._next_query()
        summary = e.run.summary() if over else None  # type: ignore[union-attr]
        r, _ = e.book.step(invalid=invalid, summary=summary)
        info: dict[str, Any] = {"invalid": invalid}
        if summary is not None:
            e._ended = True
            info["summary"] = summary.to_dict()
        return float(r), False, over, info

    def action_masks(self) -> np.ndarray:
        """(N, P) valid slots of each environment's pending query."""
        return self._mask.copy()

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
