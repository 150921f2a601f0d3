"""``mig-gym train``: train a learned agent (the ``train`` extra: torch, stable-baselines3)."""

from __future__ import annotations

import argparse

from mig_gym.cli.args import COUNT, NONNEG, UsageError

__all__ = ["add_parser", "cmd_train"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help="train a learned agent (needs the train extra)")
    t.add_argument("scenario")
    t.add_argument("--env", choices=("dispatch", "partition"), default="dispatch")
    t.add_argument("--algo", choices=("maskable_ppo", "ppo", "dqn"), default="maskable_ppo")
    t.add_argument("--timesteps", type=COUNT, default=None, help="default: hyperparameter file")
    t.add_argument("--seed", type=NONNEG, default=0)
    t.add_argument("--n-envs", type=COUNT, default=None, help="default: hyperparameter file")
    t.add_argument("--logdir", default="runs")
    t.add_argument(
        "--bc-steps",
        type=NONNEG,
        default=0,
        help="warm start: behaviour-clone this many reference decisions first",
    )
    t.add_argument("--eval-freq", type=COUNT, default=None)
    t.add_argument("--eval-episodes", type=COUNT, default=5, help="held-out evaluation seeds")
    t.add_argument("--hyperparams", default=None, help="rl-zoo3-style YAML file")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=cmd_train)


def cmd_train(a: argparse.Namespace) -> int:
    try:
        # Imported here so that every other sub-command runs without torch / stable-baselines3.
        from mig_gym.learn import training
    except ImportError as e:
        raise UsageError(
            f"training needs the train extra ({e.name} is missing): pip install mig_gym[train]"
        ) from None
    path = training.train(
        a.scenario,
        env_kind=a.env,
        algo=a.algo,
        timesteps=a.timesteps,
        seed=a.seed,
        n_envs=a.n_envs,
        logdir=a.logdir,
        bc_steps=a.bc_steps,
        eval_freq=a.eval_freq,
        eval_episodes=a.eval_episodes,
        hyperparams=a.hyperparams,
        progress=not a.no_progress,
    )
    print(f"saved {path}")
    print(f"compare it: mig-gym compare {a.scenario} --policies paris+elsa,{a.algo}:{path}")
    print(f"TensorBoard: tensorboard --logdir {a.logdir}")
    return 0
