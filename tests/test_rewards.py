"""The reward is the score (issue 15 item 2): with the default weights an episode's return equals
minus the episode's ``Summary.sla_violation_rate``; shaping terms are opt-in by name."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

import mig_gym  # noqa: F401  (registers the environments)
from mig_gym.envs import reference_policy
from mig_gym.scenario import config as C
from mig_gym.scenario import load_scenario
from tests.conftest import SCENARIOS

DISPATCH, PARTITION = "mig_gym/Dispatch-v0", "mig_gym/Partition-v0"


def _overloaded() -> C.Scenario:
    """Two GPUs at twice what they serve: late completions, rejections (batches too large for
    the small partitions' memory are not the point; overload is) and queries unfinished past
    their deadline when the episode is cut."""
    sc = load_scenario(SCENARIOS / "paper_resnet50.yaml")
    return dataclasses.replace(
        sc,
        cluster=dataclasses.replace(sc.cluster, num_gpus=2),
        env=dataclasses.replace(sc.env, queries_per_episode=600),
    )


def _episode(env: gym.Env, act, seed: int) -> tuple[float, dict, int]:
    obs, _ = env.reset(seed=seed)
    ret, steps, done = 0.0, 0, False
    while not done:
        obs, r, term, trunc, info = env.step(act(env, obs))
        ret += r
        steps += 1
        done = term or trunc
    return ret, info, steps


def _random(seed: int):
    rng = np.random.default_rng(seed)
    return lambda env, obs: int(rng.integers(env.action_space.n))


CASES = [
    ("dispatch-overloaded-random", DISPATCH, _overloaded, "random"),
    ("dispatch-overloaded-elsa", DISPATCH, _overloaded, "elsa"),
    ("dispatch-faults-ef", DISPATCH, lambda: SCENARIOS / "faults.yaml", "earliest_finish"),
    ("partition-mixflip-static", PARTITION, lambda: SCENARIOS / "drift_mix_flip.yaml", "static"),
    (
        "partition-mixflip-periodic",
        PARTITION,
        lambda: SCENARIOS / "drift_mix_flip.yaml",
        "periodic_paris",
    ),
]


@pytest.mark.parametrize(("case", "env_id", "scenario", "policy"), CASES, ids=[c[0] for c in CASES])
def test_default_return_is_minus_the_violation_rate(case, env_id, scenario, policy):
    kw = {"num_queries": 3000} if case == "dispatch-faults-ef" else {}
    env = gym.make(env_id, scenario=scenario(), **kw)
    if policy == "random":
        act = _random(1)
    else:
        pol = reference_policy(env, policy)
        act = lambda e, obs: pol.predict(obs)[0]  # noqa: E731
    ret, info, steps = _episode(env, act, seed=4)
    run_summary = env.unwrapped.run.summary()  # the same episode's Summary, from the recorder
    assert info["summary"] == run_summary.to_dict()
    rate = run_summary.sla_violation_rate
    assert ret == pytest.approx(-rate, rel=1e-9, abs=1e-12)
    assert steps > 1
    if case.startswith("dispatch-overloaded"):  # the population the score counts is all there
        assert run_summary.violations > 0 and rate > 0.01
        assert run_summary.unfinished_late > 0 or run_summary.rejected > 0


def test_unfinished_late_queries_are_paid_at_the_last_step():
    env = gym.make(DISPATCH, scenario=_overloaded())
    ret, info, _ = _episode(env, _random(2), seed=0)
    s = env.unwrapped.run.summary()
    assert s.unfinished_late > 0  # queries still queued past their deadline when the episode ends
    paid_before_end = ret - info["reward_terms"]["sla_violation"]
    counted = s.violations - s.unfinished_late  # completed late or rejected
    # every step before the last paid 1 / (expected measured queries) per violation
    expected = s.measured  # all arrivals of the episode came (no trace ends early)
    assert paid_before_end == pytest.approx(-counted / expected, rel=1e-9)
    assert ret == pytest.approx(-s.violations / s.measured, rel=1e-9)


def test_shaping_terms_are_opt_in_and_named():
    base = _overloaded()
    weights = C.RewardWeights(sla_violation=2.0, latency=0.1, reconfig=0.5, invalid_action=0.25)
    shaped = dataclasses.replace(base, env=dataclasses.replace(base.env, reward_weights=weights))
    plain, opt = gym.make(DISPATCH, scenario=base), gym.make(DISPATCH, scenario=shaped)
    plain.reset(seed=3)
    opt.reset(seed=3)
    rng = np.random.default_rng(0)
    latency_seen = 0.0
    for _ in range(200):
        a = int(rng.integers(plain.action_space.n))
        _, r0, *_, i0 = plain.step(a)
        _, r1, *_, i1 = opt.step(a)
        t = i1["reward_terms"]
        assert i0["reward_terms"] == t  # the same terms; only the weights differ
        assert r0 == t["sla_violation"]  # default: the score's term alone
        assert r1 == pytest.approx(
            2.0 * t["sla_violation"] + 0.1 * t["latency"] + 0.25 * t["invalid_action"]
        )
        latency_seen += t["latency"]
    assert latency_seen < 0  # the latency term is measured by default, just not weighted


def _mean_return(name: str, episodes: int) -> float:
    venv = DummyVecEnv([lambda: Monitor(gym.make(DISPATCH))])
    venv.seed(0)
    mean, _ = evaluate_policy(reference_policy(venv, name), venv, n_eval_episodes=episodes)
    return mean


def test_elsa_ranks_first_by_the_default_reward_on_default_dispatch():
    """By the reward, as by the tables: ELSA above push-FIFS, earliest-finish and random."""
    elsa = _mean_return("elsa", 4)
    others = {n: _mean_return(n, 4) for n in ("fifs_push", "earliest_finish", "random")}
    assert elsa >= others["fifs_push"]
    assert elsa > others["earliest_finish"] > others["random"]
