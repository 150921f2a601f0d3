"""``mig_gym/Partition-v0``: choose each GPU's layout at every decision epoch."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mig_gym import hardware
from mig_gym.envs.common import (
    OBS_CLIP,
    RewardBook,
    episode_seed,
    numeric_action,
    prepare_scenario,
    with_run,
)
from mig_gym.envs.render import RENDER_MODES, check_render_mode, frame_shape, rgb_frame
from mig_gym.runs.build import Run, build
from mig_gym.scenario import config as C

__all__ = ["PartitionEnv", "BATCH_BINS"]

# Batch-size histogram bins (upper edges, log2): 1, 2, 4, ..., 128, then everything larger.
BATCH_BINS = (1, 2, 4, 8, 16, 32, 64, 128)


def batch_histogram(counts: dict[int, int]) -> np.ndarray:
    """Fractions of queries per log2 batch bin (``len(BATCH_BINS) + 1`` values)."""
    h = np.zeros(len(BATCH_BINS) + 1)
    for b, c in counts.items():
        h[int(np.searchsorted(BATCH_BINS, b))] += c
    total = h.sum()
    return h / total if total else h


class PartitionEnv(gym.Env):
    """## Description
    One step per decision epoch (``env.epoch_s`` simulated seconds): the agent picks a layout and a
    hosted model for every GPU. Keeping a GPU's current choice costs nothing; changing it pays the
    reconfiguration (drain, then ``cluster.reconfig_s`` of downtime) in the simulator. Inside the
    epoch the scenario's dispatcher (ELSA by default) serves the queries. Made for drift scenarios,
    where one static plan is wrong part of the time. The initial plan is the scenario's
    partitioner's (PARIS by default).

    ## Action Space
    ``MultiDiscrete([L * M] * G)``: for GPU g, ``a[g] = layout * M + model`` where ``layout``
    indexes ``mig_gym.hardware.valid_layouts(gpu)`` (L = 19 on A100/H100) and ``model`` the
    scenario's models. ``action_masks()`` (all True: every legal layout may be chosen) follows the
    sb3-contrib convention for MultiDiscrete. An out-of-range or malformed entry keeps that GPU as
    it is, is penalised and counted (``info["invalid_actions"]``, ``info["invalid"]``); an action
    of the wrong shape or not made of numbers keeps every GPU as it is.

    ## Observation Space
    ``Box(0, 10, (M * 9 + 1 + M + S + 3 + S + G,), float32)``, S = partition sizes of the GPU (5;
    3 on an A30):

    | part | features |
    |---|---|
    | per model | last epoch's batch-size histogram over log2 bins 1, 2, ..., 128, >128 |
    | 1 | last epoch's arrival rate / scenario mean rate |
    | M | last epoch's model mix |
    | S | per-size utilization (busy / available GPC-s) in the last epoch |
    | 3 | last epoch's p95 latency / SLA (smallest SLA), violation rate, mean latency / SLA |
    | S | partitions of each size / (7 G) in the current plan |
    | G | each GPU's current action index / (L M - 1) |

    ## Rewards
    ``reward = w_v * sla_violation + w_l * latency + w_r * reconfig + w_i * invalid_action`` with
    the scenario's ``env.reward_weights``; terms in ``info["reward_terms"]``: minus the epoch's
    violation rate (late or rejected over queries that ended), minus the mean latency / SLA of the
    epoch's completions, minus the number of GPUs reconfigured by the action, minus one if any entry
    was invalid. The episode return is the sum of these per-epoch terms.

    ## Episode End
    Truncation after ``env.epochs_per_episode`` epochs (or when the scenario's arrivals run out).
    ``info["summary"]`` then holds the episode's ``Summary`` fields.

    ## Arguments
    ``gym.make("mig_gym/Partition-v0", scenario=..., render_mode=None | "ansi" | "rgb_array",
    policy=None)``;
    ``reset(options={"episode_seed": s})`` runs the arrivals of seed ``s`` exactly.

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": list(RENDER_MODES), "render_fps": 1}  # noqa: RUF012

    def __init__(
        self,
        scenario: str | dict | C.Scenario | None = None,
        render_mode: str | None = None,
        policy: str | None = None,
    ) -> None:
        sc = prepare_scenario(scenario)
        epochs = sc.env.epochs_per_episode
        self.scenario = with_run(sc, drain=False, window_s=sc.env.epoch_s, warmup_queries=0)
        self.policy = policy
        self.render_mode = check_render_mode(render_mode)
        self.epochs = epochs
        self.spec_ = hardware.gpu_spec(sc.cluster.gpu)
        self.layouts = hardware.valid_layouts(self.spec_.name)
        self.num_models = len(sc.models)
        self.num_gpus = sc.cluster.num_gpus
        self.choices = len(self.layouts) * self.num_models
        self.action_space = spaces.MultiDiscrete([self.choices] * self.num_gpus)
        sizes = len(self.spec_.sizes)
        n = self.num_models * (len(BATCH_BINS) + 1) + 1 + self.num_models + sizes + 3 + sizes
        self.observation_space = spaces.Box(0.0, OBS_CLIP, (n + self.num_gpus,), np.float32)
        self.run: Run | None = None
        self.invalid_actions = 0

    # ------------------------------------------------------------------ read-only view
    @property
    def view(self) -> Any:
        assert self.run is not None, "call reset() first"
        return self.run.sim.view

    def current_action(self) -> np.ndarray:
        """The action that keeps every GPU as it is (target layout if one is pending)."""
        out = np.zeros(self.num_gpus, dtype=np.int64)
        for g in self.run.sim.gpus:  # type: ignore[union-attr]
            lay, mods = g.target if g.target is not None else (g.layout, g.models)
            out[g.index] = self.encode(lay, mods[0] if mods else 0)
        return out

    def encode(self, layout: hardware.Layout, model: int) -> int:
        if layout in self.layouts:
            i = self.layouts.index(layout)
        else:  # a non-maximal layout from the initial plan: nearest by size multiset
            i = next((k for k, lay in enumerate(self.layouts) if lay.sizes == layout.sizes), 0)
        return i * self.num_models + model

    def observed_pmfs(self) -> list[dict[int, float]]:
        """Batch-size pmf per model over the last epoch (the partitioner's view of drift)."""
        return [dict(p) for p in self._pmfs]

    def action_masks(self) -> np.ndarray:
        return np.ones(self.choices * self.num_gpus, dtype=bool)

    # ------------------------------------------------------------------ gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        ep_seed = episode_seed(self.np_random, options)
        self.run = build(self.scenario, self.policy, ep_seed, epoch_s=self.scenario.env.epoch_s)
        self.book = RewardBook(self.run.recorder, self.scenario.env.reward_weights)
        self._mean_rate = max(self.run.context.rate_qps, 1e-9)
        self.epoch = 0
        self.invalid_actions = 0
        self._pmfs = [dict(p) for p in self.run.context.batch_pmfs]
        self._epoch_stats = np.zeros(1 + self.num_models)
        self._snap = self._snapshot()
        self._hist: list[np.ndarray] = []
        done = self._advance()
        self.book.step()  # the first epoch ran before any action: not the agent's reward
        obs = self._obs() if not done else np.zeros(self.observation_space.shape, np.float32)
        return obs, {"action_mask": self.action_masks(), "episode_seed": ep_seed}

    def _snapshot(self) -> tuple[dict[int, float], dict[int, float], int, float, int]:
        r = self.run.recorder  # type: ignore[union-attr]
        r.advance(self.run.sim.now)  # type: ignore[union-attr]
        return (dict(r.busy_s), dict(r.size_avail_s), r.arrived, r.lat_norm_all, r.completed)

    def _advance(self) -> bool:
        sim = self.run.sim  # type: ignore[union-attr]
        d = sim.run_until_decision()
        if d is None:
            return True
        counts = sim.batch_counts or []
        for m, c in enumerate(counts):
            if c:
                n = sum(c.values())
                self._pmfs[m] = {b: v / n for b, v in sorted(c.items())}
        self._hist = [batch_histogram(c) for c in counts]
        arrivals = [sum(c.values()) for c in counts]
        total = sum(arrivals)
        self._epoch_stats = np.array(
            [total / self.scenario.env.epoch_s / self._mean_rate]
            + [a / total if total else 0.0 for a in arrivals]
        )
        for c in counts:
            c.clear()
        return False

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self.run is None:
            raise RuntimeError("step() called before reset()")
        sim = self.run.sim
        keep = self.current_action()
        a = numeric_action(action)  # None: not numbers (None, strings, objects, huge ints)
        invalid = a is None or a.shape != (self.num_gpus,)
        if invalid:
            a = keep.astype(np.float64)
        bad = ~np.isfinite(a) | (a < 0) | (a >= self.choices) | (a != np.floor(a))
        invalid = invalid or bool(bad.any())
        acts = np.where(bad, keep, np.nan_to_num(a)).astype(np.int64)
        if invalid:
            self.invalid_actions += 1
        changed = 0
        for g, act in enumerate(acts):
            if act == keep[g]:
                continue
            li, model = divmod(int(act), self.num_models)
            lay = self.layouts[li]
            changed += sim.reconfigure(g, lay, [model] * len(lay.placements))
        self._snap = self._snapshot()
        self.epoch += 1
        done = self._advance() or self.epoch >= self.epochs
        reward, terms = self.book.step(reconfigured=changed, invalid=invalid, per_query=True)
        info: dict[str, Any] = {
            "reward_terms": terms,
            "invalid_actions": self.invalid_actions,
            "reconfigured": changed,
            "action_mask": self.action_masks(),
            "invalid": invalid,
        }
        if done:
            info["summary"] = self.run.summary().to_dict()
        obs = self._obs()
        return obs, float(reward), False, done, info

    # ------------------------------------------------------------------ observation / render
    def _obs(self) -> np.ndarray:
        sim = self.run.sim  # type: ignore[union-attr]
        busy0, avail0, _, lat0, done0 = self._snap
        busy1, avail1, _, lat1, done1 = self._snapshot()
        # No epoch has ended yet when the arrivals run out before the first one: empty histograms.
        parts = [
            np.concatenate(self._hist)
            if self._hist
            else np.zeros(self.num_models * (len(BATCH_BINS) + 1))
        ]
        parts.append(np.minimum(self._epoch_stats, OBS_CLIP))
        util = [
            (busy1[k] - busy0[k]) / (avail1[k] - avail0[k]) if avail1[k] - avail0[k] > 0 else 0.0
            for k in self.spec_.sizes
        ]
        parts.append(np.array(util))
        rec = self.run.recorder  # type: ignore[union-attr]
        last = rec.series[-1] if rec.series else {}
        slo_ms = min(sim.slo_s) * 1e3
        p95 = last.get("latency_p95_ms", 0.0)
        parts.append(
            np.array(
                [
                    0.0 if p95 != p95 else p95 / slo_ms,
                    last.get("sla_violation_rate", 0.0),
                    (lat1 - lat0) / max(done1 - done0, 1),
                ]
            )
        )
        counts = dict.fromkeys(self.spec_.sizes, 0)
        for g in sim.gpus:
            lay = g.target[0] if g.target is not None else g.layout
            for k in lay.sizes if lay is not None else ():
                counts[k] += 1
        parts.append(np.array([counts[k] / (7 * self.num_gpus) for k in self.spec_.sizes]))
        parts.append(self.current_action() / max(self.choices - 1, 1))
        obs = np.concatenate(parts).astype(np.float32)
        return np.clip(obs, 0.0, OBS_CLIP)

    def render(self) -> str | np.ndarray | None:
        """``"ansi"``: a text line per GPU; ``"rgb_array"``: :func:`mig_gym.envs.render.rgb_frame`
        (blank before ``reset``); None without a render mode."""
        if self.render_mode == "rgb_array":
            if self.run is None:
                return np.zeros(frame_shape(self.scenario.cluster.num_gpus), np.uint8)
            return rgb_frame(self.run.sim, self.scenario.cluster.num_gpus)
        if self.render_mode != "ansi" or self.run is None:
            return None
        sim = self.run.sim
        lines = [f"epoch {self.epoch}/{self.epochs}  t={sim.now:.1f}s  in system {sim.active}"]
        for g in sim.gpus:
            tgt = f" -> {g.target[0]}" if g.target is not None else ""
            lines.append(f"GPU {g.index:>3} {g.state:<13} {g.layout!s}{tgt}")
        return "\n".join(lines)
