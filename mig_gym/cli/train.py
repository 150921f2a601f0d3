"""``mig-gym train``: train a learned agent (the ``train`` extra: torch, stable-baselines3).

``mig-gym train TASK`` trains on a registered task (docs/tasks.md) with the recipe shipped for it
(``mig_gym/learn/hyperparams/tasks.yml``: algorithm, hyperparameters, warm start, a 30-minute
budget on 2 cores); ``mig-gym train SCENARIO.yaml --env dispatch|partition`` trains on any
scenario with the algorithm's hyperparameter file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mig_gym.cli.args import COUNT, NONNEG, UsageError, number
from mig_gym.envs.tasks import get_task

__all__ = ["add_parser", "cmd_train"]

# Options that only a scenario run takes: a task's recipe fixes them.
SCENARIO_ONLY = ("env", "algo", "n_envs", "bc_steps", "hyperparams", "keep_best")


def add_parser(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help="train a learned agent (needs the train extra)")
    t.add_argument("target", help="a registered task id (docs/tasks.md) or a scenario YAML file")
    t.add_argument("--env", choices=("dispatch", "partition"), default=None, help="scenario only")
    t.add_argument("--algo", choices=("maskable_ppo", "ppo", "dqn"), default=None)
    t.add_argument(
        "--timesteps", type=COUNT, default=None, help="default: recipe / hyperparameters"
    )
    t.add_argument("--seed", type=NONNEG, default=0)
    t.add_argument("--n-envs", type=COUNT, default=None, help="default: hyperparameter file")
    t.add_argument("--logdir", default="runs")
    t.add_argument(
        "--bc-steps",
        type=NONNEG,
        default=None,
        help="warm start: behaviour-clone this many reference decisions first",
    )
    t.add_argument(
        "--time-limit",
        type=number(float, 0.0, lo_open=True),
        default=None,
        help="minutes of learning; the warm start and the evaluations come on top (task: recipe's)",
    )
    t.add_argument("--eval-freq", type=COUNT, default=None)
    t.add_argument(
        "--eval-episodes",
        type=COUNT,
        default=None,
        help="validation seeds evaluated during training (task: recipe's)",
    )
    t.add_argument(
        "--keep-best",
        action="store_const",
        const=True,
        default=None,
        help="save the checkpoint with the fewest SLA violations on the validation seeds",
    )
    t.add_argument("--hyperparams", default=None, help="rl-zoo3-style YAML file")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=cmd_train)


def _task(target: str) -> str | None:
    """The task id ``target`` names, or None when it is a scenario file."""
    if target.endswith((".yaml", ".yml")) or Path(target).exists():
        return None
    try:
        return get_task(target).env_id
    except KeyError as e:
        raise UsageError(f"{target}: neither a scenario file nor a task ({e.args[0]})") from None


def cmd_train(a: argparse.Namespace) -> int:
    task = _task(a.target)
    if task is not None and (given := [o for o in SCENARIO_ONLY if getattr(a, o) is not None]):
        flags = ", ".join("--" + o.replace("_", "-") for o in given)
        raise UsageError(
            f"{flags}: a task's recipe fixes these (edit tasks.yml, or train on a file)"
        )
    try:
        # Imported here so that every other sub-command runs without torch / stable-baselines3.
        from mig_gym.learn import tasks, training
    except ImportError as e:
        raise UsageError(
            f"training needs the train extra ({e.name} is missing): pip install 'mig_gym[train]'"
        ) from None
    limit = a.time_limit
    if task is not None:
        path = tasks.train_task(
            task,
            seed=a.seed,
            logdir=a.logdir,
            timesteps=a.timesteps,
            time_limit_min=limit,
            eval_freq=a.eval_freq,
            eval_episodes=a.eval_episodes,
            progress=not a.no_progress,
        )
        target, policy = task, f"maskable_ppo:{path}"
    else:
        algo = a.algo or "maskable_ppo"
        path = training.train(
            a.target,
            env_kind=a.env or "dispatch",
            algo=algo,
            timesteps=a.timesteps,
            seed=a.seed,
            n_envs=a.n_envs,
            logdir=a.logdir,
            bc_steps=a.bc_steps or 0,
            eval_freq=a.eval_freq,
            eval_episodes=a.eval_episodes or 5,
            hyperparams=a.hyperparams,
            progress=not a.no_progress,
            time_limit_s=None if limit is None else 60.0 * limit,
            keep_best=bool(a.keep_best),
        )
        target, policy = a.target, f"{algo}:{path}"
    print(f"saved {path}")
    if task is None:
        print(f"compare it: mig-gym compare {target} --policies paris+elsa,{policy}")
    print(f"TensorBoard: tensorboard --logdir {a.logdir}")
    return 0
