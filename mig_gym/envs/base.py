"""The environment base class: one constructor, reset and step skeleton for every mig_gym
environment, in the template of HighwayEnv's ``AbstractEnv``.

A subclass says what differs and nothing else:

* ``_run_settings(sc)``: the ``run`` config changes the environment needs (episode length,
  draining, windows);
* ``_make_spaces(sc)``: ``(action_space, observation_space)``;
* ``_build(seed)``: the episode's :class:`~mig_gym.runs.build.Run` (``external_dispatch`` or
  decision epochs);
* ``_begin()``: per-episode state, and advancing the simulation to the first decision;
* ``_validate(action) -> (decision, invalid)``: never raises for a bad action;
* ``_apply(decision, invalid) -> dict``: act on the simulator; the dict goes into ``info``;
* ``_advance() -> bool``: run to the next decision; True when the simulation has nothing more;
* ``_observe() -> ndarray``, ``_terminated()``, ``_truncated(over)``,
  ``_reward(applied, invalid, summary) -> (reward, terms)`` (``summary``: the episode's
  ``Summary`` on its last step, else None; :class:`mig_gym.envs.rewards.RewardBook` turns it into
  the score), ``action_masks()``, ``_render_text()``.

``step`` is fixed: check that the episode is running, validate, apply, advance, observe,
terminated/truncated, reward, info. Every step's ``info`` has ``reward_terms``, ``invalid``
(this action), ``invalid_actions`` (so far in the episode), ``action_mask`` and what ``_apply``
returned; the last step of an episode adds ``summary`` (the episode's ``Summary`` fields).
Stepping before ``reset`` or after the episode ended raises :class:`EpisodeEndedError` (a
``RuntimeError``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from mig_gym import hardware
from mig_gym.envs.common import episode_seed, prepare_scenario, with_run
from mig_gym.envs.render import RENDER_MODES, check_render_mode, frame_shape, rgb_frame
from mig_gym.metrics.summary import Summary
from mig_gym.policies import parse_policy
from mig_gym.runs.build import Run
from mig_gym.scenario import config as C

__all__ = ["MigEnv", "EpisodeEndedError"]


class EpisodeEndedError(RuntimeError):
    """``step()`` called before ``reset()`` or after the episode ended (terminated or
    truncated)."""


class MigEnv(gym.Env):
    """Base of the mig_gym environments (see the module docstring for the hooks).

    Args:
        scenario: a path, a dict, a ``Scenario`` or None (the default scenario).
        render_mode: None, ``"ansi"`` (``_render_text()``) or ``"rgb_array"``
            (:func:`mig_gym.envs.render.rgb_frame`).
        policy: a policy string overriding the scenario's (``"paris+elsa"``, ...).

    Raises:
        ScenarioError: a malformed scenario.
        PolicyError: a policy string that cannot be parsed or does not fit the scenario.
    """

    metadata = {"render_modes": list(RENDER_MODES), "render_fps": 4}  # noqa: RUF012

    def __init__(
        self,
        scenario: str | dict | C.Scenario | None = None,
        render_mode: str | None = None,
        policy: str | None = None,
    ) -> None:
        sc = prepare_scenario(scenario)
        self.scenario = with_run(sc, **self._run_settings(sc))
        parse_policy(policy, self.scenario)  # a bad policy string fails here, not at reset()
        self.policy = policy
        self.render_mode = check_render_mode(render_mode)
        self.spec_ = hardware.gpu_spec(sc.cluster.gpu)
        self.num_models = len(sc.models)
        self.num_gpus = sc.cluster.num_gpus
        self.run: Run | None = None
        self.invalid_actions = 0
        self._ended = False
        self.action_space, self.observation_space = self._make_spaces(sc)

    # ------------------------------------------------------------------ hooks
    def _run_settings(self, sc: C.Scenario) -> dict[str, Any]:
        return {}

    def _make_spaces(self, sc: C.Scenario) -> tuple[gym.Space, gym.Space]:
        raise NotImplementedError

    def _build(self, seed: int) -> Run:
        raise NotImplementedError

    def _begin(self) -> None:
        raise NotImplementedError

    def _validate(self, action: Any) -> tuple[Any, bool]:
        raise NotImplementedError

    def _apply(self, decision: Any, invalid: bool) -> dict[str, Any]:
        raise NotImplementedError

    def _advance(self) -> bool:
        raise NotImplementedError

    def _observe(self) -> np.ndarray:
        raise NotImplementedError

    def _reward(
        self, applied: dict[str, Any], invalid: bool, summary: Summary | None
    ) -> tuple[float, dict[str, float]]:
        raise NotImplementedError

    def _terminated(self) -> bool:
        return False

    def _truncated(self, over: bool) -> bool:
        return over

    def _render_text(self) -> str:
        raise NotImplementedError

    def action_masks(self) -> np.ndarray:
        raise NotImplementedError

    # ------------------------------------------------------------------ read-only view
    @property
    def view(self) -> Any:
        """The simulator's read-only ``ClusterView`` (for reference policies)."""
        assert self.run is not None, "call reset() first"
        return self.run.sim.view

    # ------------------------------------------------------------------ gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode. ``options={"episode_seed": s}`` runs the arrivals of seed ``s``
        exactly (as ``mig_gym.simulate(..., seed=s)``); otherwise the episode seed is drawn from
        the environment's generator (seeded by ``seed``)."""
        super().reset(seed=seed)
        ep_seed = episode_seed(self.np_random, options)
        self.run = self._build(ep_seed)
        self.invalid_actions = 0
        self._ended = False
        self._begin()
        return self._observe(), {"action_mask": self.action_masks(), "episode_seed": ep_seed}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        return self._step(action, full=True)  # type: ignore[return-value]

    def _step(
        self, action: Any, full: bool
    ) -> tuple[np.ndarray | None, float, bool, bool, dict[str, Any]]:
        """The fixed step; with ``full=False`` (a vector environment that batches observations
        and masks itself) no observation and an info of ``invalid`` (and ``summary``) only."""
        if self.run is None or self._ended:
            raise EpisodeEndedError(
                f"{type(self).__name__}.step() called "
                + ("before reset()" if self.run is None else "after the episode ended")
                + ": call reset() to start an episode"
            )
        decision, invalid = self._validate(action)
        if invalid:
            self.invalid_actions += 1
        applied = self._apply(decision, invalid)
        over = self._advance()
        obs = self._observe() if full else None
        terminated, truncated = self._terminated(), self._truncated(over)
        summary = self.run.summary() if terminated or truncated else None
        reward, terms = self._reward(applied, invalid, summary)
        if full:
            info: dict[str, Any] = {
                "reward_terms": terms,
                "invalid_actions": self.invalid_actions,
                "action_mask": self.action_masks(),
                "invalid": invalid,
                **applied,
            }
        else:
            info = {"invalid": invalid}
        if summary is not None:
            self._ended = True
            info["summary"] = summary.to_dict()
        return obs, float(reward), terminated, truncated, info

    def render(self) -> str | np.ndarray | None:
        """``"ansi"``: a text line per GPU; ``"rgb_array"``: :func:`mig_gym.envs.render.rgb_frame`
        (blank before ``reset``); None without a render mode."""
        if self.render_mode == "rgb_array":
            if self.run is None:
                return np.zeros(frame_shape(self.num_gpus), np.uint8)
            return rgb_frame(self.run.sim, self.num_gpus)
        if self.render_mode != "ansi" or self.run is None:
            return None
        return self._render_text()
