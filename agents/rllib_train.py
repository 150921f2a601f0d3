"""Train PPO from RLlib (Ray's new API stack: RLModule, Learner, EnvRunner) on a mig_gym task.

    pip install "ray[rllib]"          # not part of any mig_gym extra (see below)
    python agents/rllib_train.py --iterations 5
    python agents/rllib_train.py --env mig_gym/Partition-mix_flip-v0 --iterations 20

Each iteration prints the mean episode return of the episodes it finished. RLlib builds its
environments from a registered creator, so ``import mig_gym`` happens inside it and works on remote
env runners too. The agent sees the plain ``Discrete`` action space (RLlib's default PPO module has
no action masking): invalid choices are remapped by the environment itself (to the
earliest-finish partition) and counted; a penalty is opt-in (the scenario's
``env.reward_weights.invalid_action``; the default reward is the score alone).

``ray[rllib]`` is not in ``pyproject.toml``'s extras because Ray 2.60's RL extra pins an older
Gymnasium than mig_gym's; install it in an environment of its own.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import gymnasium as gym

try:
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.tune.registry import register_env
except ImportError as _e:  # an optional dependency: one line naming it, not a traceback
    print(f"rllib_train.py needs Ray's RL extra ({_e.name} is missing): pip install 'ray[rllib]'",
          file=sys.stderr)  # fmt: skip
    sys.exit(2)


def _str_keys(x: Any) -> Any:
    """``x`` with every dict key a string, at any depth."""
    return {str(k): _str_keys(v) for k, v in x.items()} if isinstance(x, dict) else x


class StringKeyInfo(gym.Wrapper):
    """The info dicts of ``reset`` and ``step`` with string keys (:func:`_str_keys`)."""

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        obs, info = self.env.reset(**kwargs)
        return obs, _str_keys(info)

    def step(self, action: Any) -> tuple[Any, ...]:
        *out, info = self.env.step(action)
        return (*out, _str_keys(info))


def make_env(config: dict[str, Any]) -> Any:
    """RLlib's env creator: ``config`` holds ``env_id`` and the environment's keyword arguments.
    Info dicts get string keys at every depth (``info["summary"]["utilization_by_size"]`` is keyed
    by partition size), as Gymnasium's vector ``DictInfoToList``, which RLlib applies, needs."""
    import mig_gym  # noqa: F401  (registers the environments in this process)

    kwargs = dict(config)
    return StringKeyInfo(gym.make(kwargs.pop("env_id"), **kwargs))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="mig_gym/Dispatch-resnet50-90-v0", help="a registered id")
    ap.add_argument("--scenario", default=None, help="scenario YAML (default: the env's)")
    ap.add_argument("--num-queries", type=int, default=512, help="Dispatch episode length")
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--batch", type=int, default=1024, help="train batch per learner")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    env_config: dict[str, Any] = {"env_id": a.env}
    if a.scenario:
        env_config["scenario"] = a.scenario
    if "Dispatch" in a.env:
        env_config["num_queries"] = a.num_queries
    register_env("mig_gym_task", make_env)
    config = (
        PPOConfig()
        .environment("mig_gym_task", env_config=env_config)
        .env_runners(num_env_runners=0)  # sample in this process: fine on 2 cores
        .training(
            train_batch_size_per_learner=a.batch,
            minibatch_size=min(256, a.batch),
            num_epochs=4,
            lr=3e-4,
        )
        .debugging(seed=a.seed)
    )
    algo = config.build_algo()
    try:
        for i in range(a.iterations):
            result = algo.train()
            ret = result.get("env_runners", {}).get("episode_return_mean", float("nan"))
            print(f"iteration {i + 1}: episode_return_mean {ret:.2f}")
    finally:
        algo.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
