"""Gymnasium environments: checkers, determinism, pickling, replay, vector envs, SB3, policies."""

from __future__ import annotations

import dataclasses
import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env

import mig_gym
from mig_gym.envs import DispatchEnv, reference_policy
from mig_gym.scenario import load_scenario

from .conftest import SCENARIOS, assert_close

sb3 = pytest.importorskip("stable_baselines3", reason="training extra not installed")

IDS = ("mig_gym/Dispatch-v0", "mig_gym/Partition-v0")


def small(env_id: str) -> dict:
    """A small scenario per environment so each test runs in well under a second."""
    sc = load_scenario(SCENARIOS / "paper_resnet50.yaml")
    if env_id.startswith("mig_gym/Partition"):
        sc = load_scenario(SCENARIOS / "diurnal_drift.yaml")
        return dataclasses.replace(
            sc,
            cluster=dataclasses.replace(sc.cluster, num_gpus=2),
            env=dataclasses.replace(sc.env, epoch_s=5.0, epochs_per_episode=4),
        )
    return dataclasses.replace(
        sc,
        cluster=dataclasses.replace(sc.cluster, num_gpus=2),
        env=dataclasses.replace(sc.env, queries_per_episode=300),
        workload=dataclasses.replace(sc.workload, load=0.25),
    )


def random_valid_actions(env: gym.Env, rng: np.random.Generator) -> object:
    u = env.unwrapped
    if isinstance(u, DispatchEnv):
        return int(rng.choice(np.flatnonzero(u.action_masks())))
    return rng.integers(u.choices, size=u.num_gpus)


def rollout(env: gym.Env, seed: int, steps: int = 60) -> tuple[list, list]:
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    observations, rewards = [obs], []
    for _ in range(steps):
        obs, r, term, trunc, _ = env.step(random_valid_actions(env, rng))
        observations.append(obs)
        rewards.append(r)
        if term or trunc:
            break
    return observations, rewards


@pytest.mark.parametrize("env_id", IDS)
def test_registered_and_default_scenario(env_id):
    env = gym.make(env_id)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert "action_mask" in info


@pytest.mark.parametrize("env_id", IDS)
def test_gymnasium_check_env_without_warnings(env_id):
    env = gym.make(env_id, scenario=small(env_id)).unwrapped
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(env, skip_render_check=True)


@pytest.mark.parametrize("env_id", IDS)
def test_sb3_check_env_without_warnings(env_id):
    from stable_baselines3.common.env_checker import check_env

    env = gym.make(env_id, scenario=small(env_id)).unwrapped
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env, warn=True)


@pytest.mark.parametrize("env_id", IDS)
def test_same_seed_same_trajectory(env_id):
    a = rollout(gym.make(env_id, scenario=small(env_id)), seed=3)
    b = rollout(gym.make(env_id, scenario=small(env_id)), seed=3)
    c = rollout(gym.make(env_id, scenario=small(env_id)), seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a[0], b[0], strict=True)) and a[1] == b[1]
    assert not all(np.array_equal(x, y) for x, y in zip(a[0], c[0], strict=False))


@pytest.mark.parametrize("env_id", IDS)
def test_pickle_round_trip_mid_episode(env_id):
    env = gym.make(env_id, scenario=small(env_id)).unwrapped
    rng = np.random.default_rng(0)
    env.reset(seed=5)
    for _ in range(2):  # 2 + 2 steps: within the small Partition episode of 4 epochs
        env.step(random_valid_actions(env, rng))
    twin = pickle.loads(pickle.dumps(env))
    for _ in range(2):
        act = random_valid_actions(env, rng)
        o1, r1, *_ = env.step(act)
        o2, r2, *_ = twin.step(act)
        assert np.array_equal(o1, o2) and r1 == r2


@pytest.mark.parametrize("env_id", IDS)
def test_record_and_replay(env_id):
    env = gym.make(env_id, scenario=small(env_id))
    rng = np.random.default_rng(9)
    env.reset(seed=11)
    actions, rewards = [], []
    while True:
        a = random_valid_actions(env, rng)
        _, r, term, trunc, info = env.step(a)
        actions.append(a)
        rewards.append(r)
        if term or trunc:
            break
    replay = gym.make(env_id, scenario=small(env_id))
    replay.reset(seed=11)
    again = [replay.step(a)[1] for a in actions]
    assert again == rewards
    assert "summary" in info and info["summary"]["conserved"]


def test_dispatch_invalid_actions_are_remapped_penalised_counted():
    env = gym.make(IDS[0], scenario=small(IDS[0]))
    env.reset(seed=0)
    mask = env.unwrapped.action_masks()
    bad = int(np.flatnonzero(~mask)[0])
    for action in (bad, 10**9, -1, np.array([1, 2]), "x"):
        _, _, _, _, info = env.step(action)
        assert info["invalid"] and info["reward_terms"]["invalid_action"] == -1.0
    assert info["invalid_actions"] == 5
    _, _, _, _, info = env.step(int(np.flatnonzero(env.unwrapped.action_masks())[0]))
    assert not info["invalid"] and info["invalid_actions"] == 5


def test_partition_invalid_actions_keep_layout_and_count():
    env = gym.make(IDS[1], scenario=small(IDS[1]))
    env.reset(seed=0)
    keep = env.unwrapped.current_action()
    for action in (np.array([10**6, 0]), np.array([np.nan, 1.0]), np.zeros(5), [-1, -1]):
        _, _, _, _, info = env.step(action)
        assert info["reward_terms"]["invalid_action"] == -1.0
    assert info["invalid_actions"] == 4
    assert env.unwrapped.current_action().shape == keep.shape


def test_reward_terms_sum_to_reward():
    sc = small(IDS[0])
    env = gym.make(IDS[0], scenario=sc)
    env.reset(seed=0)
    w = sc.env.reward_weights
    for _ in range(50):
        _, r, _, _, info = env.step(int(np.flatnonzero(env.unwrapped.action_masks())[-1]))
        t = info["reward_terms"]
        expect = (
            w.sla_violation * t["sla_violation"]
            + w.latency * t["latency"]
            + w.reconfig * t["reconfig"]
            + w.invalid_action * t["invalid_action"]
        )
        assert r == pytest.approx(expect)


def test_elsa_through_dispatch_env_equals_simulate():
    sc = load_scenario(SCENARIOS / "paper_resnet50.yaml")
    sc = dataclasses.replace(
        sc,
        env=dataclasses.replace(sc.env, queries_per_episode=4000),
        run=dataclasses.replace(sc.run, drain=False),
    )
    env = gym.make(IDS[0], scenario=sc)
    obs, info = env.reset(seed=21)
    pol = reference_policy(env, "elsa")
    done = False
    while not done:
        a, _ = pol.predict(obs)
        obs, _, term, trunc, step_info = env.step(a)
        done = term or trunc
    seed = info["episode_seed"]
    python_loop = mig_gym.build(sc, "paris+elsa", seed, 4000)
    python_loop.sim.compiled = False  # the loop the environment steps, exactly
    assert step_info["summary"] == python_loop.execute().to_dict()
    # simulate() runs the compiled core: every completion at the same time, sums added in bulk
    direct = mig_gym.simulate(sc, policy="paris+elsa", seed=seed, num_queries=4000)
    assert_close(step_info["summary"], direct.to_dict())


def test_render_ansi():
    for env_id in IDS:
        env = gym.make(env_id, scenario=small(env_id), render_mode="ansi")
        env.reset(seed=0)
        text = env.render()
        assert isinstance(text, str) and "GPU" in text


def test_make_vec_and_subproc_vec_env():
    from stable_baselines3.common.vec_env import SubprocVecEnv

    venv = gym.make_vec(IDS[0], num_envs=2, vectorization_mode="sync", scenario=small(IDS[0]))
    obs, _ = venv.reset(seed=0)
    assert obs.shape[0] == 2
    obs, r, *_ = venv.step(np.array([0, 0]))
    assert r.shape == (2,)
    venv.close()
    sub = SubprocVecEnv([lambda: gym.make(IDS[1], scenario=small(IDS[1]))] * 2, start_method="fork")
    obs = sub.reset()
    obs, _, _, infos = sub.step(np.stack([sub.action_space.sample()] * 2))
    assert obs.shape[0] == 2 and len(infos) == 2
    sub.close()


def test_maskable_ppo_learns_without_error():
    from sb3_contrib import MaskablePPO

    env = gym.make(IDS[0], scenario=small(IDS[0]))
    model = MaskablePPO(
        "MlpPolicy", env, n_steps=256, batch_size=64, n_epochs=2, seed=0, device="cpu"
    )
    model.learn(total_timesteps=1024)
    obs, _ = env.reset(seed=1)
    action, _ = model.predict(obs, action_masks=env.unwrapped.action_masks(), deterministic=True)
    assert env.unwrapped.action_masks()[int(action)]


def test_evaluate_policy_on_reference_policies():
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    venv = DummyVecEnv([lambda: Monitor(gym.make(IDS[0], scenario=small(IDS[0])))])
    elsa, _ = evaluate_policy(reference_policy(venv, "elsa"), venv, n_eval_episodes=2)
    rnd, _ = evaluate_policy(reference_policy(venv, "random"), venv, n_eval_episodes=2)
    assert rnd < elsa <= 0  # the return is minus the violation rate
    penv = Monitor(gym.make(IDS[1], scenario=small(IDS[1])))
    static, _ = evaluate_policy(reference_policy(penv, "static"), penv, n_eval_episodes=1)
    periodic, _ = evaluate_policy(reference_policy(penv, "periodic_paris"), penv, n_eval_episodes=1)
    assert np.isfinite(static) and np.isfinite(periodic)


def test_core_package_does_not_import_torch_or_numba():
    import subprocess
    import sys

    # numba (the compiled loops) loads only when an epoch run or Dispatch-v0's observation asks
    # for it; never torch
    code = (
        "import sys, mig_gym, gymnasium as gym; mig_gym.simulate(num_queries=500);"
        "print('torch' in sys.modules, 'numba' in sys.modules);"
        "gym.make('mig_gym/Dispatch-v0').reset(seed=0); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"]


def test_rules_predict_through_bind():
    from mig_gym.policies import ELSA
    from mig_gym.policies.partition.periodic import PeriodicPARIS

    env = gym.make(IDS[0], scenario=small(IDS[0]))
    obs, _ = env.reset(seed=2)
    with pytest.raises(RuntimeError, match="bind"):
        ELSA().predict(obs)
    elsa, ref = ELSA().bind(env), reference_policy(env, "elsa")
    for _ in range(30):
        a, _ = elsa.predict(obs)
        assert a == ref.predict(obs)[0] and env.unwrapped.action_masks()[int(a)]
        obs, *_ = env.step(a)
    penv = gym.make(IDS[1], scenario=small(IDS[1]))
    obs, _ = penv.reset(seed=2)
    a, _ = PeriodicPARIS(20.0).bind(penv).predict(obs)
    assert penv.action_space.contains(a)
    assert np.array_equal(a, reference_policy(penv, "periodic_paris").predict(obs)[0])
