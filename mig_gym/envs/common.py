"""Shared pieces of the environments: scenario preparation and action parsing. (The reward is in
:mod:`mig_gym.envs.rewards`; the SB3 ``predict`` adapter of reference policies is
:class:`mig_gym.policies.predict.Predictor`.)"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from mig_gym.scenario import config as C
from mig_gym.scenario import load_scenario

__all__ = [
    "prepare_scenario",
    "numeric_action",
    "OBS_CLIP",
    "EVAL_SEED_BASE",
    "VALIDATION_SEED_BASE",
]

OBS_CLIP = 10.0  # ratios to the SLA (or to the mean rate) are clipped here to keep bounds finite
# Held-out evaluation seeds are EVAL_SEED_BASE + i; training episodes draw their seeds from the
# environment's generator, so they coincide with these only by (negligible) chance.
EVAL_SEED_BASE = 1_000_000
# Validation seeds (VALIDATION_SEED_BASE + i) are what training evaluates on while it learns (the
# learning curve and the choice of the checkpoint kept): never the held-out seeds, which only score
# a finished agent.
VALIDATION_SEED_BASE = 500_000


def _has_bool(action: Any) -> bool:
    if isinstance(action, bool | np.bool_):
        return True
    if isinstance(action, list | tuple):
        return any(_has_bool(x) for x in action)
    return isinstance(action, np.ndarray) and action.dtype.kind == "O" and _has_bool(list(action))


def numeric_action(action: Any) -> np.ndarray | None:
    """An action's entries as a float64 array of the action's own shape (never flattened), or
    None when it is not numbers at all: None, strings, bytes, complex, objects, ragged lists,
    integers beyond float range, and anything bool-like (Python or numpy booleans, boolean
    arrays, lists holding a boolean). Callers still check shape, finiteness, integrality and
    range."""
    if _has_bool(action):
        return None
    try:
        a = np.asarray(action)
        if a.dtype.kind == "O":  # Python ints beyond int64, mixed lists
            a = a.astype(np.float64)
    except (TypeError, ValueError, OverflowError):
        return None
    if a.dtype.kind not in "iuf":
        return None
    return a.astype(np.float64)


def episode_seed(np_random: np.random.Generator, options: dict[str, Any] | None) -> int:
    """The episode's seed: ``options["episode_seed"]`` when given (the arrivals of
    ``mig_gym.simulate(..., seed=s)``), else drawn from the environment's generator. The draw
    happens either way, so later episodes do not depend on whether a seed was forced."""
    drawn = int(np_random.integers(2**31 - 1))
    return int(options["episode_seed"]) if options and "episode_seed" in options else drawn


def prepare_scenario(scenario: str | dict | C.Scenario | None) -> C.Scenario:
    """Load a scenario for an environment (path, dict, ``Scenario`` or None = default)."""
    if isinstance(scenario, C.Scenario):
        return scenario
    return load_scenario(scenario)


def with_run(sc: C.Scenario, **changes: Any) -> C.Scenario:
    return dataclasses.replace(sc, run=dataclasses.replace(sc.run, **changes))
