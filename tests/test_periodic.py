"""Periodic PARIS (mig_gym.policies.partition.periodic) is one rule: Partition-v0's reference
``periodic_paris`` plays exactly the episode the baseline table runs for a task
(``run_epochs(scenario, "periodic_paris[epoch_s=E]+elsa", seed)``), on the epoch fast path and on
the event loop; the label ``paris`` is not a re-planning reference; the relation at t = 0 when the
environment starts from another plan."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv

import mig_gym  # noqa: F401  (registers the tasks)
from mig_gym.envs import EVAL_SEED_BASE, reference_policy
from mig_gym.envs.partition import PartitionEnv
from mig_gym.learn.callbacks import REFERENCES
from mig_gym.policies.partition.periodic import PeriodicPARIS
from mig_gym.runs import schedules

TASKS = ("tiny_huge", "mix_flip", "load_ramp")


def _close(a: object, b: object, path: str = "") -> list[str]:
    """Paths where two summary values differ by more than 1e-9 (relative or absolute)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{path}: keys {sorted(a)} != {sorted(b)}"]
        return [d for k in a for d in _close(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, float) and isinstance(b, float):
        same = (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
        return [] if same else [f"{path}: {a} != {b}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def _episode(env: gym.Env, seed: int, **params: float) -> dict:
    pol = reference_policy(env, "periodic_paris", **params)
    obs, _ = env.reset(options={"episode_seed": seed})
    while True:
        a = pol.predict(obs)[0]
        assert np.array_equal(a, pol.predict(obs)[0])  # asking twice does not re-plan twice
        obs, _, term, trunc, info = env.step(a)
        if term or trunc:
            return info["summary"]


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "events"])
@pytest.mark.parametrize(
    "task", [*TASKS, pytest.param("diurnal", marks=pytest.mark.slow)]
)  # fmt: skip
def test_the_env_reference_plays_the_baseline_tables_periodic_paris(task: str, fast: bool):
    if not fast and task != "tiny_huge":
        pytest.skip("the event loop once is enough")
    env = gym.make(f"mig_gym/Partition-{task}-v0", fast=fast)
    sc = env.unwrapped.scenario
    seed = EVAL_SEED_BASE
    got = _episode(env, seed)
    want = schedules.run_epochs(sc, f"periodic_paris[epoch_s={sc.env.epoch_s:g}]+elsa", seed)
    want_d = want.summary.to_dict()
    got.pop("policy"), want_d.pop("policy")  # the env's label is its scenario's policy
    assert _close(got, want_d) == []
    assert got["reconfigurations"] > 0  # it did re-plan


def test_the_prior_is_one_parameter_of_both_drivers():
    """``prior`` means the same in the simulator's rule (policy string, scenario config) and in
    the environment's reference; on tiny_huge it matters (the default keeps room for batches the
    window never shows)."""
    env = gym.make("mig_gym/Partition-tiny_huge-v0")
    sc = env.unwrapped.scenario
    seed = EVAL_SEED_BASE
    got = _episode(env, seed, prior=0.0)
    want = schedules.run_epochs(
        sc, f"periodic_paris[epoch_s={sc.env.epoch_s:g},prior=0]+elsa", seed
    )
    want_d = want.summary.to_dict()
    got.pop("policy"), want_d.pop("policy")
    assert _close(got, want_d) == []
    default = schedules.run_epochs(sc, f"periodic_paris[epoch_s={sc.env.epoch_s:g}]+elsa", seed)
    assert default.summary.sla_violation_rate > 2 * got["sla_violation_rate"]
    with pytest.raises(ValueError, match="prior"):
        schedules.run_epochs(sc, "periodic_paris[prior=1]+elsa", seed)


def test_paris_is_not_a_partition_reference_and_training_draws_periodic_paris():
    env = gym.make("mig_gym/Partition-tiny_huge-v0")
    with pytest.raises(ValueError, match=r"static PARIS plan.*static.*periodic_paris"):
        reference_policy(env, "paris")
    assert REFERENCES["partition"] == ("static", "periodic_paris")


def _toy(partitioner: dict) -> dict:
    return {
        "name": "toy_periodic",
        "cluster": {"gpu": "A100-80GB", "num_gpus": 2, "reconfig_s": 1.0},
        "models": [{"name": "resnet50", "slo_ms": 100}],
        "workload": {
            "arrivals": {"kind": "poisson", "rate_qps": 100},
            "batch": {"kind": "lognormal", "median": 4, "sigma": 0.5, "max": 16},
        },
        "policy": {"partitioner": partitioner},
        "env": {"epoch_s": 5, "epochs_per_episode": 3},
    }


def test_at_t0_it_installs_its_initial_plan_so_another_start_pays_one_reconfiguration():
    # The documented difference: run_epochs installs the rule's initial plan at t = 0 for free;
    # an environment that starts from another plan (here homo7) is re-partitioned at t = 0.
    env = PartitionEnv(_toy({"kind": "homogeneous", "gpcs": 7}))
    obs, _ = env.reset(options={"episode_seed": 1})
    pol = reference_policy(env, "periodic_paris")
    plan = PeriodicPARIS(5.0).plan(env.run.context)
    a = pol.predict(obs)[0]
    want = [env.encode(lay, m[0]) for lay, m in zip(plan.layouts, plan.models, strict=True)]
    assert sorted(a.tolist()) == sorted(want) and not np.array_equal(a, env.current_action())
    _, _, _, _, info = env.step(a)
    assert info["reconfigured"] == env.num_gpus and env.run.sim.now == 5.0
    paris = PartitionEnv(_toy({"kind": "paris"}))  # starting from PARIS's plan: nothing to do
    obs, _ = paris.reset(options={"episode_seed": 1})
    a = reference_policy(paris, "periodic_paris").predict(obs)[0]
    assert np.array_equal(a, paris.current_action())


def test_each_environment_of_a_vector_env_has_its_own_rule_state():
    def make() -> gym.Env:
        return gym.make("mig_gym/Partition-tiny_huge-v0")

    venv = DummyVecEnv([make, make])
    venv.seed(3)
    pol = reference_policy(venv, "periodic_paris")
    obs = venv.reset()
    seeds = [e.unwrapped.run.seed for e in venv.envs]
    acts = []
    for _ in range(4):
        a, _ = pol.predict(obs)
        acts.append(a)
        obs, *_ = venv.step(a)
    for i, seed in enumerate(seeds):  # each alone, from the same episode seed
        env = make()
        solo = reference_policy(env, "periodic_paris")
        o, _ = env.reset(options={"episode_seed": seed})
        for a in acts:
            mine = solo.predict(o)[0]
            assert np.array_equal(mine, a[i])
            o, *_ = env.step(mine)
