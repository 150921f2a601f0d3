"""Evaluation of learned agents: the direct deterministic action equals ``model.predict``'s."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest

from mig_gym.scenario import load_scenario

from .conftest import SCENARIOS

pytest.importorskip("sb3_contrib", reason="training extra not installed")


def _scenario():
    sc = load_scenario(SCENARIOS / "paper_resnet50.yaml")
    return dataclasses.replace(
        sc,
        cluster=dataclasses.replace(sc.cluster, num_gpus=2),
        env=dataclasses.replace(sc.env, queries_per_episode=150),
    )


@pytest.mark.parametrize("kind", ["maskable_mlp", "maskable_slot", "ppo_mlp"])
def test_model_act_equals_predict(kind):
    from sb3_contrib import MaskablePPO
    from stable_baselines3 import PPO

    from mig_gym.learn.evaluation import model_act
    from mig_gym.learn.nets import SlotPolicy

    env = gym.make("mig_gym/Dispatch-v0", scenario=_scenario())
    algo, policy = {
        "maskable_mlp": (MaskablePPO, "MlpPolicy"),
        "maskable_slot": (MaskablePPO, SlotPolicy),  # untrained: many exactly tied logits
        "ppo_mlp": (PPO, "MlpPolicy"),
    }[kind]
    model = algo(policy, env, seed=0, device="cpu")
    act = model_act(model)
    obs, _ = env.reset(seed=0)
    for _ in range(300):
        a = act(env, obs)
        if algo is MaskablePPO:
            mask = env.unwrapped.action_masks()
            b, _ = model.predict(obs, action_masks=mask, deterministic=True)
        else:
            b, _ = model.predict(obs, deterministic=True)
        assert np.shape(a) == np.shape(b) and int(a) == int(b)
        obs, _, _, trunc, _ = env.step(a)
        if trunc:
            obs, _ = env.reset()
