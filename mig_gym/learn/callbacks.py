"""Callbacks of a training run: the serving evaluation on validation seeds (with the reference
policies as flat lines, and optionally the best checkpoint kept), the wall-clock budget and the
progress bar (``train`` extra)."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from mig_gym.envs import reference_policy
from mig_gym.learn.evaluation import evaluate, make_env, model_act
from mig_gym.metrics.summary import Summary
from mig_gym.output.progress import Progress
from mig_gym.output.tensorboard import ScalarWriter, reference_scalars, serving_scalars
from mig_gym.policies.registry import reference_curves
from mig_gym.scenario import config as C

__all__ = ["REFERENCES", "ServingEvalCallback", "ProgressCallback", "TimeLimit"]

REFERENCES = {kind: reference_curves(kind) for kind in ("dispatch", "partition")}


def _mean_scalars(summaries: list[Summary], sizes: tuple[int, ...]) -> dict[str, float]:
    rows = [serving_scalars(s, sizes) for s in summaries]
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


SCORE = "serving/sla_violation_rate"  # what the tables rank by, and what keep_best minimises


class ServingEvalCallback(BaseCallback):
    """Every ``eval_freq`` steps, evaluate the model (masked, deterministic) on ``eval_seeds``
    (validation seeds: never the held-out ones) and log the mean serving metrics under the
    ``serving/*`` tags; reference policies are evaluated once on the same seeds and logged as flat
    lines at the same steps. With ``keep_best``, the policy's parameters at the evaluation with
    the lowest mean score (SLA violation rate; a tie keeps the earlier, so the warm start wins
    ties) are put back at the end of training: :attr:`best_step` says which."""

    def __init__(
        self,
        sc: C.Scenario,
        env_kind: str,
        eval_seeds: list[int],
        eval_freq: int,
        ref_dir: Path,
        sizes: tuple[int, ...],
        keep_best: bool = False,
    ) -> None:
        super().__init__()
        self.keep_best = keep_best
        self.best_step: int | None = None
        self.best_score = float("inf")
        self._best_params: dict | None = None
        self.sc, self.env_kind, self.seeds, self.freq = sc, env_kind, eval_seeds, eval_freq
        self.sizes = sizes
        self.refs: dict[str, dict[str, float]] = {}
        self.ref_writers: dict[str, ScalarWriter] = {}
        self.ref_dir = ref_dir
        self.history: list[tuple[int, dict[str, float]]] = []
        self._last = -1

    def _on_training_start(self) -> None:
        probe = make_env(self.sc, self.env_kind)
        probe.reset(seed=0)
        for name in REFERENCES[self.env_kind]:
            pol = reference_policy(probe, name)
            res = evaluate(
                self.sc, self.env_kind, lambda e, _obs, p=pol: p.decide(e.unwrapped), self.seeds
            )
            self.refs[name] = _mean_scalars([s for s, _ in res], self.sizes)
            self.ref_writers[name] = ScalarWriter(self.ref_dir / f"{name}-eval")
        self._evaluate()

    def _evaluate(self) -> None:
        res = evaluate(self.sc, self.env_kind, model_act(self.model), self.seeds)
        scal = _mean_scalars([s for s, _ in res], self.sizes)
        step = self.num_timesteps
        for k, v in scal.items():
            self.logger.record(k, v)
        self.logger.dump(step)
        for name, w in self.ref_writers.items():
            w.add_scalars(reference_scalars(name, self.refs[name]), step)
        self.history.append((step, scal))
        self._last = step
        if scal[SCORE] < self.best_score:
            self.best_score, self.best_step = scal[SCORE], step
            if self.keep_best:
                self._best_params = copy.deepcopy(self.model.policy.state_dict())

    def _on_step(self) -> bool:
        if self.num_timesteps - self._last >= self.freq:
            self._evaluate()
        return True

    def _on_training_end(self) -> None:
        if self._last != self.num_timesteps:
            self._evaluate()
        for w in self.ref_writers.values():
            w.close()
        if self.keep_best and self._best_params is not None:
            self.model.policy.load_state_dict(self._best_params)


class ProgressCallback(BaseCallback):
    def __init__(self, total: int, label: str) -> None:
        super().__init__()
        self.bar = Progress(total, label)

    def _on_step(self) -> bool:
        self.bar.update(self.training_env.num_envs)
        return True

    def _on_training_end(self) -> None:
        self.bar.close()


class TimeLimit(BaseCallback):
    """Stops learning once ``limit_s`` of wall-clock time has passed (None: never)."""

    def __init__(self, limit_s: float | None) -> None:
        super().__init__()
        self.limit_s, self.stopped = limit_s, False
        self._t0 = time.monotonic()

    def _on_training_start(self) -> None:
        self._t0 = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    def _on_step(self) -> bool:
        if self.limit_s is not None and self.elapsed() > self.limit_s:
            self.stopped = True
            return False
        return True
