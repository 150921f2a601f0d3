"""Training an agent on a registered task with the recipe shipped for it, and scoring it.

A **recipe** (package data ``hyperparams/tasks.yml``) says how ``mig-gym train TASK`` trains: the
algorithm, its rl-zoo3-style hyperparameters, the warm start and a wall-clock budget. A task
without its own entry takes the defaults of its kind (``partition`` or ``dispatch``); an entry
overrides the defaults key by key (``hyperparams`` merged one level). :func:`score` runs a saved
agent on held-out seeds exactly as ``mig-gym baselines`` scores the reference policies: the SLA
violation rate of the episode with ``reset(options={"episode_seed": seed})``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mig_gym.envs.tasks import DispatchTask, get_task
from mig_gym.learn import training
from mig_gym.learn.evaluation import evaluate, load_learned, model_act

__all__ = ["RECIPES", "Recipe", "load_recipe", "train_task", "score", "task_kind"]

RECIPES = training.HYPERPARAMS_DIR / "tasks.yml"


@dataclass(frozen=True)
class Recipe:
    """How one task is trained (see the module docstring and ``hyperparams/tasks.yml``)."""

    algo: str
    time_limit_min: float
    bc_steps: int = 0
    bc_epochs: int = 15
    eval_episodes: int = 3
    keep_best: bool = False
    hyperparams: dict[str, Any] = field(default_factory=dict)


def task_kind(task_id: str) -> str:
    """``"dispatch"`` or ``"partition"``: the environment the task is made of."""
    return "dispatch" if isinstance(get_task(task_id), DispatchTask) else "partition"


def load_recipe(task_id: str, path: str | Path | None = None) -> Recipe:
    """The recipe of ``task_id`` (the ``mig_gym/`` prefix optional) from ``path`` (default:
    the package's ``hyperparams/tasks.yml``)."""
    path = Path(path) if path is not None else RECIPES
    if not path.is_file():
        raise FileNotFoundError(f"recipe file not found: {path}")
    data = yaml.safe_load(path.read_text()) or {}
    task = get_task(task_id)
    base = dict((data.get("defaults") or {}).get(task_kind(task_id)) or {})
    own = dict(data.get(task.env_id) or {})
    hp = {**base.get("hyperparams", {}), **own.pop("hyperparams", {})}
    merged = {**base, **own, "hyperparams": hp}
    known = [
        "algo", "time_limit_min", "bc_steps", "bc_epochs", "eval_episodes", "keep_best",
        "hyperparams",
    ]  # fmt: skip
    if bad := sorted(set(merged) - set(known)):
        raise ValueError(f"{path}: {task.env_id}: unknown recipe keys {bad} (known: {known})")
    if "algo" not in merged or "time_limit_min" not in merged:
        raise ValueError(f"{path}: {task.env_id}: a recipe needs algo and time_limit_min")
    return Recipe(**merged)


def train_task(
    task_id: str,
    seed: int = 0,
    logdir: str | Path = "runs",
    timesteps: int | None = None,
    time_limit_min: float | None = None,
    eval_freq: int | None = None,
    eval_episodes: int | None = None,
    recipes: str | Path | None = None,
    progress: bool = True,
) -> Path:
    """Train on the task with its recipe; the saved ``model.zip`` under ``logdir/<task>/``.

    ``timesteps``, ``time_limit_min`` and ``eval_episodes`` override the recipe's; that many
    validation seeds are evaluated ``eval_freq`` steps apart during training (the learning curve,
    and with the recipe's ``keep_best`` the checkpoint saved)."""
    task = get_task(task_id)
    recipe = load_recipe(task.env_id, recipes)
    short = task.env_id.removeprefix("mig_gym/")
    limit = time_limit_min if time_limit_min is not None else recipe.time_limit_min
    return training.train(
        task.load(),
        task_kind(task.env_id),
        algo=recipe.algo,
        timesteps=timesteps,
        seed=seed,
        logdir=Path(logdir) / short,
        bc_steps=recipe.bc_steps,
        bc_epochs=recipe.bc_epochs,
        eval_freq=eval_freq,
        eval_episodes=eval_episodes if eval_episodes is not None else recipe.eval_episodes,
        keep_best=recipe.keep_best,
        hyperparams=dict(recipe.hyperparams),
        progress=progress,
        run_name=f"{recipe.algo}-s{seed}",
        time_limit_s=60.0 * limit,
    )


def score(model_path: str | Path, task_id: str, seeds: list[int]) -> list[float]:
    """The saved agent's score (SLA violation rate) on the task for each of ``seeds``."""
    task = get_task(task_id)
    agent = load_learned(f"maskable_ppo:{model_path}")
    runs = evaluate(task.load(), task_kind(task.env_id), model_act(agent.model), seeds)
    return [float(s.sla_violation_rate) for s, _ in runs]
