"""Partition-v0 as issue 13 defines it: episodes of exactly ``env.epochs_per_episode`` epochs from
t = 0 whatever ``run.num_queries`` says, every partitioner's layouts expressible, the rate feature
over the time-average rate, one series row per epoch, position and trend features, and the same
trajectory as the library's epoch runs (mig_gym.runs.schedules). Dispatch-v0's episode length, and
the checkers on the default construction and on every scenario file."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env

from mig_gym import hardware
from mig_gym.envs.dispatch import DispatchEnv
from mig_gym.envs.partition import PartitionEnv, env_layouts
from mig_gym.policies.partition.baselines import Homogeneous, homogeneous_layout
from mig_gym.policies.partition.paris import PARIS
from mig_gym.runs import build as engine
from mig_gym.runs import schedules
from mig_gym.scenario import load_scenario

from .conftest import SCENARIOS, SHARED_DATA

FILES = sorted(p.name for p in SCENARIOS.glob("*.yaml"))
HEAVY = {"cluster_1000.yaml"}  # a thousand GPUs: one epoch is millions of queries
TRACES = {"azure_trace.yaml"}  # read ../shared/data, absent in a user's clone


def _needs_data(name: str) -> None:
    if name in TRACES and not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")


def toy(**changes) -> dict:
    sc = {
        "name": "toy_partition",
        "cluster": {"gpu": "A100-80GB", "num_gpus": 2, "reconfig_s": 1.0},
        "models": [{"name": "resnet50", "slo_ms": 100}],
        "workload": {
            "arrivals": {"kind": "poisson", "rate_qps": 100},
            "batch": {"kind": "lognormal", "median": 4, "sigma": 0.5, "max": 16},
        },
        "run": {"num_queries": 50, "warmup_queries": 0},  # far fewer than the episode needs
        "env": {"epoch_s": 5, "epochs_per_episode": 6},
    }
    sc.update(changes)
    return sc


def _episode(env, actions=None) -> tuple[int, dict]:
    env.reset(seed=0, options={"episode_seed": 4})
    steps, info, done = 0, {}, False
    while not done:
        a = env.current_action() if actions is None else actions[steps]
        _, _, _, done, info = env.step(a)
        steps += 1
    return steps, info


def test_episode_is_exactly_the_epochs_whatever_num_queries_says() -> None:
    env = PartitionEnv(toy())
    steps, info = _episode(env)
    assert steps == 6
    s = info["summary"]
    assert s["sim_time_s"] == pytest.approx(30.0) and s["arrived"] > 2000
    assert len(env.run.recorder.series) == 6  # one row per epoch, the last included


def test_keeping_the_plan_equals_the_library_epoch_run() -> None:
    env = PartitionEnv(toy())
    _, info = _episode(env)
    ref = schedules.run_epochs(toy(), "scenario+elsa", seed=4).summary.to_dict()
    for k in ("arrived", "completed", "rejected", "sla_violation_rate", "latency_p95_ms"):
        assert info["summary"][k] == pytest.approx(ref[k], rel=1e-9), k


def test_a_schedule_through_the_env_equals_the_schedule_run() -> None:
    sc = toy(policy={"partitioner": {"kind": "homogeneous", "gpcs": 7}})
    env = PartitionEnv(sc)
    ctx = engine.plan_context(load_scenario(sc), engine.load_profiles(load_scenario(sc)), 0)
    a, b = Homogeneous(7).plan(ctx), Homogeneous(2).plan(ctx)  # 2g: a non-maximal layout
    sched = schedules.Schedule("toy", (a, a, b, b, b, a))
    acts = [[env.encode(p.layouts[g], p.models[g][0]) for g in range(2)] for p in sched.plans]
    _, info = _episode(env, [np.array(x) for x in acts])
    ref = schedules.run_epochs(sc, sched, seed=4).summary.to_dict()
    for k in ("arrived", "completed", "sla_violation_rate", "reconfigurations", "downtime_s"):
        assert info["summary"][k] == pytest.approx(ref[k], rel=1e-9), k
    assert info["summary"]["reconfigurations"] == 4


def test_every_layout_round_trips_through_encode() -> None:
    sc = load_scenario(toy(models=[{"name": "resnet50"}, {"name": "bert"}]))
    env = PartitionEnv(sc)
    spec = hardware.gpu_spec(sc.cluster.gpu)
    wanted = list(hardware.valid_layouts(spec.name)) + [
        homogeneous_layout(spec, k) for k in spec.sizes
    ]
    assert env.layouts[: len(hardware.valid_layouts(spec.name))] == hardware.valid_layouts(
        spec.name
    )
    for lay in wanted:
        for m in range(2):
            assert env.decode(env.encode(lay, m)) == (lay, m)
    with pytest.raises(ValueError, match="not one of Partition-v0's layouts"):
        env.encode(hardware.layout_from_sizes(spec.name, [3]), 0)


@pytest.mark.parametrize("name", [f for f in FILES if f not in HEAVY])
def test_every_initial_plan_is_expressible(name: str) -> None:
    _needs_data(name)
    sc = load_scenario(SCENARIOS / name)
    layouts = env_layouts(sc)
    ctx = engine.plan_context(sc, engine.load_profiles(sc), 0)
    plans = [PARIS().plan(ctx)] + [Homogeneous(k).plan(ctx) for k in ctx.spec.sizes]
    for plan in plans:
        assert all(lay in layouts for lay in plan.layouts)


def test_fixed_layouts_are_in_the_action_list() -> None:
    sc = toy(policy={"partitioner": {"kind": "fixed", "layouts": [[3, 1]]}})
    env = PartitionEnv(sc)
    env.reset(seed=0)
    lay, _ = env.decode(env.current_action()[0])
    assert lay.sizes == (3, 1)


def test_rate_feature_is_relative_to_the_time_average_rate() -> None:
    sc = load_scenario(SCENARIOS / "drift_mix_flip.yaml")
    env = PartitionEnv(sc)
    assert env._mean_rate == pytest.approx(390.0)  # (560 + 220) / 2 over the 240 s episode


def test_position_and_trend_features_follow_the_flip() -> None:
    env = PartitionEnv(load_scenario(SCENARIOS / "drift_mix_flip.yaml"))
    obs, _ = env.reset(seed=0)
    m, sizes, g = 2, 5, 4
    pos = m * 9 + 1 + m + sizes + 3 + sizes
    assert obs[pos] == 0.0 and np.all(obs[pos + 1 : pos + 2 + 2 * m] == 0.5)
    seen = []
    for _ in range(4):  # epochs 1..4: the flip to bert happens at 60 s, the end of epoch 3
        obs, *_ = env.step(env.current_action())
        seen.append(obs.copy())
    assert [o[pos] for o in seen] == pytest.approx([1 / 12, 2 / 12, 3 / 12, 4 / 12])
    rate, bert_mix = pos + 1, pos + 1 + 1 + 1
    assert seen[3][rate] < 0.5 and seen[3][bert_mix] > 0.8  # rate fell, bert's share rose
    assert abs(seen[1][bert_mix] - 0.5) < 0.05  # no change inside a phase
    assert obs.shape == (pos + 1 + 1 + 2 * m + g,)


def test_dispatch_episode_is_exactly_queries_per_episode() -> None:
    sc = toy(env={"queries_per_episode": 80})
    env = DispatchEnv(sc)
    env.reset(seed=0)
    done, info = False, {}
    while not done:
        _, _, _, done, info = env.step(env.action_masks().argmax())
    assert info["summary"]["arrived"] == 80


@pytest.mark.parametrize("env_id", ["mig_gym/Dispatch-v0", "mig_gym/Partition-v0"])
def test_checkers_pass_on_the_default_construction(env_id: str) -> None:
    from stable_baselines3.common.env_checker import check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(gym.make(env_id).unwrapped, skip_render_check=True)
        check_env(gym.make(env_id).unwrapped, warn=True)


def _check_file(cls, name: str) -> None:
    from stable_baselines3.common.env_checker import check_env

    _needs_data(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(cls(SCENARIOS / name), skip_render_check=True)
        check_env(cls(SCENARIOS / name), warn=True)


@pytest.mark.parametrize("name", FILES)
def test_dispatch_checkers_pass_on_every_scenario(name: str) -> None:
    _check_file(DispatchEnv, name)


@pytest.mark.slow
@pytest.mark.parametrize("name", FILES)
def test_partition_checkers_pass_on_every_scenario(name: str) -> None:
    _check_file(PartitionEnv, name)


@pytest.mark.parametrize("name", ["drift_mix_flip.yaml", "drift_tiny_huge.yaml", "faults.yaml"])
def test_partition_checkers_pass_on_the_drift_tasks(name: str) -> None:
    _check_file(PartitionEnv, name)
