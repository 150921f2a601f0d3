"""Training learned agents (stable-baselines3 / sb3-contrib) against the reference policies.

Needs the ``train`` extra (torch, stable-baselines3, sb3-contrib); the rest of mig_gym never
imports this module unless asked to train or to evaluate a saved model.

A run writes, under ``logdir/<scenario>/<algo>-<env>-s<seed>/``: SB3's own TensorBoard scalars,
the periodic evaluation on validation seeds (``VALIDATION_SEED_BASE + i``, never the held-out
seeds that score a finished agent) under ``serving/*`` tags, the
hyperparameters, ``model.zip`` and ``model.json`` (what ``mig-gym compare --policies
ppo:PATH/model.zip`` needs). The reference policies are evaluated once on the same seeds
and drawn as flat lines (``logdir/<scenario>/<reference>-eval/``) on the same charts, except
``random``, whose latencies would squash every other line: it has its own ``random/*`` charts.
A custom-scalars layout (:func:`mig_gym.output.tensorboard.write_layout`) opens on the serving
charts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from sb3_contrib import MaskablePPO
from stable_baselines3 import DQN
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import HParam, configure
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from mig_gym import hardware
from mig_gym.envs import EVAL_SEED_BASE, VALIDATION_SEED_BASE, reference_policy
from mig_gym.learn import nets  # also registers the "SlotPolicy" and "LayoutPolicy" aliases
from mig_gym.learn.callbacks import REFERENCES, ProgressCallback, ServingEvalCallback, TimeLimit
from mig_gym.learn.evaluation import ALGOS, ENV_IDS, make_env
from mig_gym.metrics import strict_dumps
from mig_gym.output.tensorboard import (
    write_layout,
)
from mig_gym.scenario import config as C
from mig_gym.scenario import load_scenario, scenario_to_dict

__all__ = [
    "EVAL_SEED_BASE",
    "VALIDATION_SEED_BASE",
    "train",
    "load_hyperparams",
    "make_vec_env",
    "record_demonstrations",
    "behaviour_clone",
    "ServingEvalCallback",
    "REFERENCES",
]

HYPERPARAMS_DIR = Path(__file__).resolve().parent / "hyperparams"  # package data


# --------------------------------------------------------------------------- configuration
def load_hyperparams(algo: str, env_kind: str, path: str | Path | None = None) -> dict[str, Any]:
    """rl-zoo3-style hyperparameters for ``algo`` on ``env_kind`` (package data: hyperparams/)."""
    path = Path(path) if path is not None else HYPERPARAMS_DIR / f"{algo}.yml"
    if not path.is_file():  # never a silent default: the file sets the policy network
        raise FileNotFoundError(f"hyperparameter file not found: {path}")
    data = yaml.safe_load(path.read_text()) or {}
    env_id = ENV_IDS[env_kind]
    if env_id not in data:
        raise ValueError(f"{path}: no entry for {env_id} (has: {', '.join(data)})")
    return dict(data[env_id])


def make_vec_env(sc: C.Scenario, env_kind: str, n_envs: int, seed: int) -> VecEnv:
    """``n_envs`` copies (subprocesses when more than one), seeded ``seed, seed+1, ...``."""
    fns = [lambda: Monitor(make_env(sc, env_kind)) for _ in range(n_envs)]
    venv: VecEnv = DummyVecEnv(fns) if n_envs == 1 else SubprocVecEnv(fns, start_method="fork")
    venv.seed(seed)
    return venv


# --------------------------------------------------------------------------- warm start
def record_demonstrations(
    sc: C.Scenario, env_kind: str, steps: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Observation/action/mask triples of the reference policy (ELSA for Dispatch-v0, periodic
    PARIS for Partition-v0) over ``steps`` steps of training-seed episodes."""
    env = make_env(sc, env_kind)
    pol = reference_policy(env, "elsa" if env_kind == "dispatch" else "periodic_paris")
    obs, _ = env.reset(seed=seed)
    xs, ys, ms = [], [], []
    for _ in range(steps):
        a, _ = pol.predict(obs)
        xs.append(obs)
        ys.append(a)
        ms.append(env.unwrapped.action_masks())
        obs, _, term, trunc, _ = env.step(a)
        if term or trunc:
            obs, _ = env.reset()
    return np.asarray(xs), np.asarray(ys), np.asarray(ms)


def behaviour_clone(
    model: Any,
    obs: np.ndarray,
    actions: np.ndarray,
    masks: np.ndarray,
    epochs: int = 15,
    batch_size: int = 256,
    seed: int = 0,
    lr: float = 1e-3,
) -> list[float]:
    """Supervised pre-training of the policy network on reference decisions; returns the mean
    loss (negative log-likelihood, or cross-entropy on Q-values for DQN) per epoch. The
    optimiser's learning rate is ``lr`` during cloning and restored afterwards."""
    pol = model.policy
    dev = pol.device
    rng = np.random.default_rng(seed)
    losses = []
    saved = [g["lr"] for g in pol.optimizer.param_groups]
    for g in pol.optimizer.param_groups:
        g["lr"] = lr
    for _ in range(epochs):
        order = rng.permutation(len(obs))
        tot = 0.0
        for i in range(0, len(obs), batch_size):
            idx = order[i : i + batch_size]
            x = torch.as_tensor(obs[idx], device=dev)
            y = torch.as_tensor(actions[idx], device=dev)
            if isinstance(model, DQN):
                q = pol.q_net(x)
                q = q.masked_fill(~torch.as_tensor(masks[idx], device=dev), -1e9)
                loss = torch.nn.functional.cross_entropy(q, y.long())
            else:
                kw = {"action_masks": masks[idx]} if isinstance(model, MaskablePPO) else {}
                dist = pol.get_distribution(x, **kw)
                loss = -dist.log_prob(y).mean()
            pol.optimizer.zero_grad()
            loss.backward()
            pol.optimizer.step()
            tot += float(loss.detach()) * len(idx)
        losses.append(tot / len(obs))
    for g, old in zip(pol.optimizer.param_groups, saved, strict=True):
        g["lr"] = old
    if isinstance(model, DQN):
        pol.q_net_target.load_state_dict(pol.q_net.state_dict())
    return losses


# --------------------------------------------------------------------------- training
def train(
    scenario: str | Path | dict | C.Scenario | None = None,
    env_kind: str = "dispatch",
    algo: str = "maskable_ppo",
    timesteps: int | None = None,
    seed: int = 0,
    n_envs: int | None = None,
    logdir: str | Path = "runs",
    bc_steps: int = 0,
    bc_epochs: int = 15,
    bc_lr: float = 1e-3,
    eval_freq: int | None = None,
    eval_episodes: int = 5,
    hyperparams: str | Path | dict[str, Any] | None = None,
    progress: bool = True,
    run_name: str | None = None,
    time_limit_s: float | None = None,
    keep_best: bool = False,
) -> Path:
    """Train an agent and return the path of the saved ``model.zip``.

    Args:
        env_kind: ``"dispatch"`` (Dispatch-v0) or ``"partition"`` (Partition-v0).
        algo: ``maskable_ppo`` (default), ``ppo`` or ``dqn`` (Dispatch-v0 only).
        timesteps, n_envs: override the hyperparameter file's ``n_timesteps`` / ``n_envs``.
        bc_steps: warm start by behaviour cloning on this many reference decisions first.
        eval_freq: steps between evaluations (default: timesteps / 10).
        eval_episodes: number of validation seeds (``VALIDATION_SEED_BASE + i``) evaluated.
        hyperparams: an rl-zoo3-style YAML file (default: the package's ``hyperparams/<algo>.yml``),
            or the hyperparameters themselves (a dict as one entry of such a file).
        time_limit_s: stop learning after this much wall-clock time (``model.json`` then says
            ``stopped_early`` and the steps done); the final evaluation still runs.
        keep_best: save the parameters of the evaluation with the fewest SLA violations on the
            validation seeds (ties: the earlier; the first evaluation is the warm start's) instead
            of the last; ``model.json`` says which step (``selected_step``).
    """
    _check_choice(env_kind, algo)
    sc = scenario if isinstance(scenario, C.Scenario) else load_scenario(scenario)
    hp = dict(hyperparams) if isinstance(hyperparams, dict) else None
    hp = hp if hp is not None else load_hyperparams(algo, env_kind, hyperparams)
    timesteps = int(timesteps if timesteps is not None else hp.get("n_timesteps", 100_000))
    n_envs = int(n_envs if n_envs is not None else hp.get("n_envs", 1))
    hp.pop("n_timesteps", None), hp.pop("n_envs", None)
    policy = hp.pop("policy", "MlpPolicy")
    logged = {k: str(v) for k, v in hp.items()}  # before the (long) layout features go in
    name = run_name or f"{algo}-{env_kind}-s{seed}{'-bc' if bc_steps else ''}"
    run_dir = _run_dir(Path(logdir) / sc.name / name)
    venv = make_vec_env(sc, env_kind, n_envs, seed)
    model = _make_model(algo, policy, venv, sc, seed, hp, run_dir)
    bc_losses = _warm_start(model, sc, env_kind, bc_steps, seed, bc_epochs, bc_lr)
    freq = eval_freq or max(timesteps // 10, 1)
    evalcb = _evaluator(sc, env_kind, eval_episodes, freq, run_dir, keep_best)
    clock = _learn(model, timesteps, evalcb, time_limit_s, f"train {name}" if progress else None)
    run = {"algo": algo, "env": ENV_IDS[env_kind], "timesteps": timesteps, "seed": seed}
    run |= _outcome(model, clock, evalcb)
    hparams = {**run, "n_envs": n_envs, "bc_steps": bc_steps, "policy": str(policy), **logged}
    _save(model, run_dir, sc, hparams, evalcb, bc_losses, evalcb.seeds)
    venv.close()
    return run_dir / "model.zip"


def _evaluator(
    sc: C.Scenario, env_kind: str, episodes: int, freq: int, run_dir: Path, keep_best: bool
) -> ServingEvalCallback:
    """The evaluation on ``episodes`` validation seeds every ``freq`` steps."""
    seeds = [VALIDATION_SEED_BASE + i for i in range(episodes)]
    sizes = hardware.gpu_spec(sc.cluster.gpu).sizes
    return ServingEvalCallback(sc, env_kind, seeds, freq, run_dir.parent, sizes, keep_best)


def _outcome(model: Any, clock: TimeLimit, evalcb: ServingEvalCallback) -> dict[str, Any]:
    """What a finished run records: steps done, the budget, and which parameters were saved."""
    kept = evalcb.best_step if evalcb.keep_best else model.num_timesteps
    return {
        "steps_done": model.num_timesteps,
        "stopped_early": clock.stopped,
        "train_s": clock.elapsed(),
        "keep_best": evalcb.keep_best,
        "selected_step": kept,
    }


def _make_model(
    algo: str, policy: str, venv: VecEnv, sc: C.Scenario, seed: int, hp: dict, run_dir: Path
) -> Any:
    torch.manual_seed(seed)
    torch.set_num_threads(1)  # small networks: more threads only contend with the env workers
    if policy == "LayoutPolicy":  # its choice features come from the environment's layouts
        hp["policy_kwargs"] = {**hp.get("policy_kwargs", {}), **_layout_kwargs(sc)}
    model = ALGOS[algo](policy, venv, seed=seed, device="cpu", verbose=0, **hp)
    model.set_logger(configure(str(run_dir), ["tensorboard", "csv"]))
    return model


def _run_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    write_layout(path, "train")  # TensorBoard's Custom Scalars tab opens on the serving charts
    return path


def _learn(
    model: Any, timesteps: int, evalcb: BaseCallback, limit_s: float | None, label: str | None
) -> TimeLimit:
    """``model.learn`` with the evaluation, the wall-clock budget and a progress bar."""
    clock = TimeLimit(limit_s)
    cbs: list[BaseCallback] = [evalcb, clock]
    if label is not None:
        cbs.append(ProgressCallback(timesteps, label))
    model.learn(total_timesteps=timesteps, callback=CallbackList(cbs))
    return clock


def _layout_kwargs(sc: C.Scenario) -> dict[str, Any]:
    """``LayoutPolicy``'s ``choice_features`` for Partition-v0 on ``sc``."""
    env = make_env(sc, "partition", disable_env_checker=True).unwrapped
    sizes = hardware.gpu_spec(sc.cluster.gpu).sizes
    phi = nets.choice_features([lay.sizes for lay in env.layouts], sizes, env.num_models)
    env.close()
    return {"choice_features": phi}


def _check_choice(env_kind: str, algo: str) -> None:
    if env_kind not in ENV_IDS:
        raise ValueError(f"env must be one of {', '.join(ENV_IDS)}, got {env_kind!r}")
    if algo not in ALGOS:
        raise ValueError(f"algo must be one of {', '.join(ALGOS)}, got {algo!r}")
    if algo == "dqn" and env_kind == "partition":
        raise ValueError("dqn needs a Discrete action space: use it with --env dispatch")


def _warm_start(
    model: Any, sc: C.Scenario, env_kind: str, steps: int, seed: int, epochs: int, lr: float
) -> list[float]:
    """Behaviour cloning on ``steps`` reference decisions (none if 0); the loss per epoch."""
    if not steps:
        return []
    demo = record_demonstrations(sc, env_kind, steps, seed)
    losses = behaviour_clone(model, *demo, epochs=epochs, seed=seed, lr=lr)
    for i, loss in enumerate(losses):
        model.logger.record("bc/loss", loss)
        model.logger.dump(i)
    return losses


def _save(
    model: Any,
    run_dir: Path,
    sc: C.Scenario,
    hparams: dict[str, Any],
    evalcb: ServingEvalCallback,
    bc_losses: list[float],
    seeds: list[int],
) -> None:
    """``model.zip``, and ``model.json``: what the model was trained on and how it evaluated."""
    final = evalcb.history[-1][1]
    model.logger.record(
        "hparams",
        HParam(hparams, {"serving/p95_ms": final["serving/p95_ms"]}),
        exclude=("stdout", "log", "json", "csv"),
    )
    model.logger.dump(hparams["timesteps"])
    model.save(run_dir / "model.zip")
    meta = {
        **hparams,
        "scenario": scenario_to_dict(sc),
        "scenario_name": sc.name,
        "bc_losses": bc_losses,
        "eval_seeds": seeds,
        "eval_history": [{"step": s, **v} for s, v in evalcb.history],
        "references": evalcb.refs,
    }
    (run_dir / "model.json").write_text(strict_dumps(meta, indent=2, default=str))
