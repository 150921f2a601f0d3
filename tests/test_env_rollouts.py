"""Rollout digests: both environments replay the exact trajectories recorded before the environment
base class (issue 10 item 7) was introduced.

Each case runs a few hundred steps (resetting at episode ends, so truncation and reset are covered)
under a reference policy or seeded random actions (invalid ones included) and hashes, step by step,
two streams: ``dynamics`` (observation, terminated, truncated, the action mask, ``info["invalid"]``,
``info["invalid_actions"]``, ``info["reconfigured"]``, ``info["episode_seed"]`` at reset) and
``reward`` (the reward and ``info["reward_terms"]``). ``info["summary"]`` is left out (its fields
are the metrics layer's, checked in test_metrics.py); the test checks it is present at each episode
end. The Partition-v0 cases run on the Python event loop (``fast=False, compiled=False``): the
epoch fast path and the event loop's compiled core give the same trajectories with rewards to
floating-point rounding only (tests/test_partition_fast.py, tests/test_event_core.py), not bit
for bit. The digests below were recorded on the tree before the refactoring; re-record with
``python tests/test_env_rollouts.py`` only for a deliberate change of behaviour, and say so in the
commit. Re-recorded so far: the ``reward`` stream once, when the default reward became the score
(issue 15 item 2; the ``dynamics`` stream unchanged). Added since: ``partition-mixflip-
periodic_paris``, when Partition-v0's re-planning reference became the simulator's periodic
PARIS (issue 10 item 2); the ``partition-mixflip-paris`` case keeps the rule it was recorded
with.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml

import mig_gym  # noqa: F401  (registers the environments)
from mig_gym.envs import reference_policy
from mig_gym.policies.partition.paris import PARIS
from mig_gym.policies.predict import Predictor
from mig_gym.sim.entities import match_assignment

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


def _scenario(name: str | None, **edits: object) -> dict | None:
    if name is None:
        return None
    data = yaml.safe_load((SCENARIOS / f"{name}.yaml").read_text())
    data.update(edits)
    return data


# Faults moved early so that a short episode sees a failure, a recovery and a GPU lost for good.
_EARLY_FAULTS = [
    {"gpu": 2, "down_at_s": 0.5, "up_at_s": 1.5},
    {"gpu": 5, "down_at_s": 1.0, "up_at_s": 1.1},
    {"gpu": 7, "down_at_s": 2.0},
]

# case id -> (env id, scenario, make kwargs, policy name or "random", steps)
CASES: dict[str, tuple[str, dict | None, dict, str, int]] = {
    "dispatch-default-elsa": ("mig_gym/Dispatch-v0", None, {"num_queries": 150}, "elsa", 400),
    "dispatch-default-random": ("mig_gym/Dispatch-v0", None, {"num_queries": 150}, "random", 400),
    "dispatch-multi-jsq": (
        "mig_gym/Dispatch-v0",
        _scenario("multi_model"),
        {"num_queries": 200},
        "jsq",
        300,
    ),
    "dispatch-bursty-random": (
        "mig_gym/Dispatch-v0",
        _scenario("bursty"),
        {"num_queries": 120},
        "random",
        300,
    ),
    "dispatch-faults-ef": (
        "mig_gym/Dispatch-v0",
        _scenario("faults", faults=_EARLY_FAULTS),
        {"num_queries": 2500},
        "earliest_finish",
        2600,
    ),
    "partition-mixflip-paris": (  # PARIS on the last epoch's pmfs (Partition-v0's former "paris")
        "mig_gym/Partition-v0",
        _scenario("drift_mix_flip"),
        {"fast": False, "compiled": False},
        "last_epoch_paris",
        14,
    ),
    "partition-mixflip-periodic_paris": (
        "mig_gym/Partition-v0",
        _scenario("drift_mix_flip"),
        {"fast": False, "compiled": False},
        "periodic_paris",
        14,
    ),
    "partition-mixflip-random": (
        "mig_gym/Partition-v0",
        _scenario("drift_mix_flip"),
        {"fast": False, "compiled": False},
        "random",
        14,
    ),
    "partition-tinyhuge-static": (
        "mig_gym/Partition-v0",
        _scenario("drift_tiny_huge"),
        {"fast": False, "compiled": False},
        "static",
        13,
    ),
}

EXPECTED: dict[str, tuple[str, str]] = {
    "dispatch-bursty-random": ("9f4941c64a68685cf8137adf", "8a51a6e80a52867f3a5462f4"),
    "dispatch-default-elsa": ("4d9f750e41d11494d64681f5", "cfdc441806fd8f4638fcc4fa"),
    "dispatch-default-random": ("d20bd0e945df22cc30bcf5a5", "3bcf598ff784b85b8ed9249a"),
    "dispatch-faults-ef": ("ab5d5d35af936ff4e6fa7c78", "f4c657572be481eb226a1e85"),
    "dispatch-multi-jsq": ("4fd30df24d390f1439696b04", "0ac49a8eeaf07579b8af8601"),
    "partition-mixflip-paris": ("8f5f7382a4f5223264e37fd1", "6cd82e9740992cbd025295ab"),
    "partition-mixflip-periodic_paris": ("5fec1191b37e23a46d3b0afd", "d9e50ee29647a418a636c6fc"),
    "partition-mixflip-random": ("5f009745ac940d4e49d987aa", "3e775bb98081a497443c3aba"),
    "partition-tinyhuge-static": ("b71ea162116dd9476ea04dab", "6189625e98a234e849fe6a59"),
}


def _feed(h: hashlib._Hash, *values: object) -> None:
    for v in values:
        if isinstance(v, np.ndarray):
            h.update(str(v.dtype).encode() + str(v.shape).encode() + v.tobytes())
        elif isinstance(v, dict):
            for k in sorted(v):
                h.update(str(k).encode())
                _feed(h, v[k])
        elif isinstance(v, float | np.floating):
            h.update(float(v).hex().encode())
        else:
            h.update(repr(v).encode())
        h.update(b"|")


def _random_action(env: gym.Env, rng: np.random.Generator) -> object:
    space = env.action_space
    if isinstance(space, gym.spaces.Discrete):  # about one in ten out of range or masked out
        return (
            int(rng.integers(-1, space.n + 1)) if rng.random() < 0.1 else int(rng.integers(space.n))
        )
    return rng.integers(0, space.nvec + (rng.random() < 0.1))


def _last_epoch_paris(env: gym.Env) -> Predictor:
    """PARIS re-planned on the last epoch's pmfs with the scenario's mix and no prior: the rule
    the ``partition-mixflip-paris`` digest was recorded with (Partition-v0's reference ``paris``
    until periodic PARIS took its place), kept so the digest still checks the dynamics."""

    def decide(e: gym.Env) -> np.ndarray:
        plan = PARIS().plan(e.run.context, e.observed_pmfs())
        keep = [int(a) for a in e.current_action()]
        wanted = [
            e.encode(lay, mods[0]) for lay, mods in zip(plan.layouts, plan.models, strict=True)
        ]
        return np.asarray(match_assignment(keep, wanted), dtype=np.int64)

    return Predictor(env, decide, "last_epoch_paris")


def rollout(case: str) -> tuple[str, str]:
    env_id, scenario, kwargs, policy, steps = CASES[case]
    env = gym.make(env_id, scenario=scenario, **kwargs)
    dyn, rew = hashlib.sha256(), hashlib.sha256()
    rng = np.random.default_rng(7)
    if policy == "last_epoch_paris":
        pol = _last_epoch_paris(env)
    else:
        pol = None if policy == "random" else reference_policy(env, policy, seed=3)
    obs, info = env.reset(seed=11)
    _feed(dyn, obs, info["action_mask"], info["episode_seed"])
    for _ in range(steps):
        action = _random_action(env, rng) if pol is None else pol.predict(obs)[0]
        obs, reward, term, trunc, info = env.step(action)
        extra = [info.get(k) for k in ("invalid", "invalid_actions", "reconfigured")]
        _feed(dyn, obs, term, trunc, info["action_mask"], *extra)
        _feed(rew, float(reward), info["reward_terms"])
        if term or trunc:
            assert "summary" in info
            obs, info = env.reset()
            _feed(dyn, obs, info["action_mask"], info["episode_seed"])
    env.close()
    return dyn.hexdigest()[:24], rew.hexdigest()[:24]


@pytest.mark.parametrize("case", sorted(CASES))
def test_rollout_matches_recorded_digest(case: str) -> None:
    dynamics, reward = rollout(case)
    want_dynamics, want_reward = EXPECTED[case]
    assert dynamics == want_dynamics, f"{case}: observations/dones/masks changed"
    assert reward == want_reward, f"{case}: rewards changed"


if __name__ == "__main__":  # print the table to paste into EXPECTED
    for c in sorted(CASES) if len(sys.argv) < 2 else sys.argv[1:]:
        print(f"    {c!r}: {rollout(c)!r},")
