"""Evaluating agents and running saved ones: episodes on held-out seeds, typed Summaries.

A saved agent is ``model.zip`` with ``model.json`` beside it (what it was trained on).
:func:`run_learned` is the hook ``mig_gym.runs.experiments`` takes for ``algo:path`` policies
(the CLI hands it over), so experiments never import torch themselves.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.policies import ActorCriticPolicy, BaseModel

from mig_gym.metrics.summary import Summary
from mig_gym.policies import PolicyError
from mig_gym.scenario import config as C

__all__ = [
    "ALGOS",
    "ENV_IDS",
    "make_env",
    "evaluate",
    "model_act",
    "LearnedPolicy",
    "load_learned",
    "run_learned",
]

ALGOS: dict[str, Any] = {"maskable_ppo": MaskablePPO, "ppo": PPO, "dqn": DQN}
ENV_IDS = {"dispatch": "mig_gym/Dispatch-v0", "partition": "mig_gym/Partition-v0"}

# act(env, obs) -> action: how an episode is driven (a model, a reference policy, ...).
Act = Callable[[gym.Env, np.ndarray], Any]


def make_env(sc: C.Scenario, env_kind: str, **kwargs: Any) -> gym.Env:
    """The environment of ``env_kind`` (``dispatch`` or ``partition``) on ``sc``."""
    return gym.make(ENV_IDS[env_kind], scenario=sc, **kwargs)


def evaluate(
    sc: C.Scenario,
    env_kind: str,
    act: Act,
    seeds: list[int],
    num_queries: int | None = None,
    drain: bool = False,
) -> list[tuple[Summary, list[dict]]]:
    """Run one episode per seed with ``act(env, obs) -> action``; each episode's Summary and
    time series (a dict per window)."""
    out = []
    for s in seeds:
        kw = {"num_queries": num_queries, "drain": drain} if env_kind == "dispatch" else {}
        env = make_env(sc, env_kind, **kw)
        obs, _ = env.reset(options={"episode_seed": s})
        done = False
        while not done:
            obs, _, term, trunc, _ = env.step(act(env, obs))
            done = term or trunc
        run = env.unwrapped.run  # the episode's Run: the same Summary as info["summary"]
        out.append((run.summary(), run.recorder.series))
        env.close()
    return out


# sb3-contrib's MaskableCategorical sets the logits of invalid actions to this value.
_MASKED_LOGIT = -1e8
_LIBRARY_GET_DISTRIBUTION = (
    ActorCriticPolicy.get_distribution,
    MaskableActorCriticPolicy.get_distribution,
)
_LIBRARY_DIST_FROM_LATENT = {
    False: ActorCriticPolicy._get_action_dist_from_latent,
    True: MaskableActorCriticPolicy._get_action_dist_from_latent,
}


def model_act(model: Any) -> Act:
    """A trained model's deterministic action (with the action mask for MaskablePPO).

    For actor-critic models (PPO, MaskablePPO) with a ``Discrete`` action space the action is
    computed as ``predict(..., deterministic=True)`` computes it (the mode of the categorical
    over the masked, normalised logits; a test compares them) without ``predict``'s input checks,
    conversions and distribution objects, about 6x cheaper on Dispatch-v0's small networks.
    Other models go through ``predict``."""
    masked = isinstance(model, MaskablePPO)
    policy = model.policy
    # Only where get_distribution is the library's own (features, actor latent, action_net
    # logits, categorical): a policy that overrides it goes through predict.
    direct = (
        isinstance(model.action_space, gym.spaces.Discrete)
        and getattr(type(policy), "get_distribution", None) in _LIBRARY_GET_DISTRIBUTION
        and getattr(type(policy), "_get_action_dist_from_latent", None)
        is _LIBRARY_DIST_FROM_LATENT[masked]
    )
    policy.set_training_mode(False)  # as predict() does

    def act(env: gym.Env, obs: np.ndarray) -> Any:
        if direct:
            with torch.no_grad():
                x = torch.as_tensor(obs, dtype=torch.float32)[None]
                features = BaseModel.extract_features(policy, x, policy.pi_features_extractor)
                logits = policy.action_net(policy.mlp_extractor.forward_actor(features))
                # The distributions' own arithmetic, step for step (ties must break alike):
                # Categorical normalises its logits; MaskableCategorical masks the normalised
                # logits and normalises again.
                logits = logits - logits.logsumexp(dim=-1, keepdim=True)
                if masked:
                    m = torch.as_tensor(env.unwrapped.action_masks())[None]
                    logits = torch.where(m, logits, torch.tensor(_MASKED_LOGIT))
                    logits = logits - logits.logsumexp(dim=-1, keepdim=True)
                return np.int64(torch.argmax(torch.softmax(logits, dim=-1), dim=1).item())
        if masked:
            masks = env.unwrapped.action_masks()
            a, _ = model.predict(obs, action_masks=masks, deterministic=True)
        else:
            a, _ = model.predict(obs, deterministic=True)
        return a

    return act


@dataclasses.dataclass
class LearnedPolicy:
    """A saved model with what it was trained on (``model.json`` beside ``model.zip``)."""

    model: Any
    algo: str
    env_kind: str
    path: Path

    def run(
        self, sc: C.Scenario, seed: int, num_queries: int | None = None
    ) -> tuple[Summary, list[dict]]:
        """One evaluation episode on ``sc``'s arrivals for ``seed`` (same as ``simulate``); the
        Summary's policy is ``algo:path``."""
        n = num_queries if num_queries is not None else sc.run.num_queries
        probe = make_env(sc, self.env_kind)
        want, got = self.model.observation_space.shape, probe.observation_space.shape
        if want != got or self.model.action_space != probe.action_space:
            raise PolicyError(
                f"model {self.path} was trained for observations {want} and actions "
                f"{self.model.action_space}, but {sc.name} gives {got} and {probe.action_space} "
                "(a different number of GPUs or models): train a model for this scenario"
            )
        ((summary, series),) = evaluate(
            sc, self.env_kind, model_act(self.model), [seed], num_queries=n, drain=sc.run.drain
        )
        return dataclasses.replace(summary, policy=f"{self.algo}:{self.path}"), series


def load_learned(spec: str) -> LearnedPolicy:
    """Load ``"algo:path/model.zip"`` (algo: maskable_ppo, ppo or dqn; ``ppo`` also loads a
    MaskablePPO model when ``model.json`` says so)."""
    algo, _, path = spec.partition(":")
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"model file not found: {p}")
    meta_path = p.with_name("model.json")
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    algo = meta.get("algo", algo)
    if algo not in ALGOS:
        raise ValueError(f"{spec}: unknown algorithm {algo!r} (known: {', '.join(ALGOS)})")
    model = ALGOS[algo].load(p, device="cpu")
    # without model.json (e.g. rl_zoo3's output) the action space tells: MultiDiscrete = Partition
    partition = (
        meta["env"] == ENV_IDS["partition"]
        if "env" in meta
        else isinstance(model.action_space, gym.spaces.MultiDiscrete)
    )
    return LearnedPolicy(model, algo, "partition" if partition else "dispatch", p)


def run_learned(
    sc: C.Scenario, policy: str, seed: int, num_queries: int | None
) -> tuple[Summary, list[dict]]:
    """One episode of the saved agent ``policy`` (``algo:path``): the ``learned`` runner of
    :func:`mig_gym.runs.experiments.run_points`. Runs with one torch thread: a small network's
    forward pass gains nothing from more, and several workers with several threads each
    oversubscribe the cores (7x slower under load, issue #14)."""
    torch.set_num_threads(1)
    return load_learned(policy).run(sc, seed, num_queries)
