"""``mig_gym/Partition-v0``: choose each GPU's layout at every decision epoch."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from mig_gym import hardware
from mig_gym.envs.base import MigEnv
from mig_gym.envs.common import OBS_CLIP, numeric_action
from mig_gym.envs.render import RENDER_MODES
from mig_gym.envs.rewards import RewardBook
from mig_gym.metrics.summary import Summary
from mig_gym.policies.partition.baselines import homogeneous_layout
from mig_gym.runs.build import Run, build, load_profiles, max_batch
from mig_gym.runs.context import time_average_rate
from mig_gym.scenario import config as C
from mig_gym.sim import epochs
from mig_gym.sim.epochs_pull import epoch_runner
from mig_gym.sim.observers import BatchCounts

__all__ = ["PartitionEnv", "BATCH_BINS", "env_layouts"]

# The stream is generated lazily: this many queries is "as many as the epochs consume".
UNBOUNDED_QUERIES = 10**10
TREND_FEATURES = "rate, mix, mean log2 batch"

# Batch-size histogram bins (upper edges, log2): 1, 2, 4, ..., 128, then everything larger.
BATCH_BINS = (1, 2, 4, 8, 16, 32, 64, 128)


def env_layouts(sc: C.Scenario) -> list[hardware.Layout]:
    """The layouts Partition-v0's actions index: the catalogue's maximal layouts first (indices
    0..L-1 as in ``valid_layouts``), then the non-maximal ones the partitioners produce (the
    homogeneous servers' 3 x 2g and 4g, a ``fixed`` partitioner's layouts), so that ``encode``
    can express every plan the environment may start from."""
    spec = hardware.gpu_spec(sc.cluster.gpu)
    out = list(hardware.valid_layouts(spec.name))
    extra = [homogeneous_layout(spec, k) for k in spec.sizes]
    part = sc.policy.partitioner
    for sizes in getattr(part, "layouts", ()) or ():
        extra.append(hardware.layout_from_sizes(spec.name, sizes))
    for lay in extra:
        if lay not in out:
            out.append(lay)
    return out


def _mean_log2_batch(counts: dict[int, int], top: int) -> float:
    """Mean log2 batch of the counts over log2 of the largest batch (0 when none arrived)."""
    n = sum(counts.values())
    if not n or top <= 1:
        return 0.0
    return sum(c * np.log2(b) for b, c in counts.items()) / n / np.log2(top)


def batch_histogram(counts: dict[int, int]) -> np.ndarray:
    """Fractions of queries per log2 batch bin (``len(BATCH_BINS) + 1`` values)."""
    h = np.zeros(len(BATCH_BINS) + 1)
    for b, c in counts.items():
        h[int(np.searchsorted(BATCH_BINS, b))] += c
    total = h.sum()
    return h / total if total else h


class PartitionEnv(MigEnv):
    """## Description
    One step per decision epoch (``env.epoch_s`` simulated seconds): the agent picks a layout and a
    hosted model for every GPU. Keeping a GPU's current choice costs nothing; changing it pays the
    reconfiguration (drain, then ``cluster.reconfig_s`` of downtime) in the simulator. Inside the
    epoch the scenario's dispatcher (ELSA by default) serves the queries. Made for drift scenarios,
    where one static plan is wrong part of the time. The initial plan is the scenario's
    partitioner's (PARIS by default).

    ## Action Space
    ``MultiDiscrete([L * M] * G)``: for GPU g, ``a[g] = layout * M + model`` where ``layout``
    indexes ``env.layouts`` (:func:`env_layouts`: the 19 maximal layouts of
    ``mig_gym.hardware.valid_layouts(gpu)`` first, in that order, then the non-maximal layouts the
    partitioners produce: 3 x 2g, 1 x 4g and a ``fixed`` partitioner's; L = 21 on A100/H100) and
    ``model`` the scenario's models. ``encode(layout, model)`` and ``decode(a)`` convert; every
    plan the environment can start from is expressible. ``action_masks()`` follows the
    sb3-contrib convention for MultiDiscrete (G blocks of L M booleans): a choice is valid when
    the profile of its model has rows for every partition size of its layout (all True with a
    full profile; a partial one, possible with a homogeneous or fixed initial plan, rules out
    the layouts with sizes the model was never measured on, where every query would be
    rejected). An out-of-range, malformed or masked entry keeps that GPU as it is and is counted
    (``info["invalid_actions"]``, ``info["invalid"]``, the ``invalid_action`` term); an action
    of the wrong shape (anything but ``(G,)``: a ``(1, G)`` array too) or not made of numbers
    (booleans included) keeps every GPU as it is.

    ## Observation Space
    ``Box(0, 10, (M * 9 + 1 + M + S + 3 + S + 1 + 1 + 2 M + G,), float32)``, S = partition sizes
    of the GPU (5; 3 on an A30). "Last epoch" is the epoch that just ended; the observation
    returned by ``reset`` (t = 0, nothing simulated yet) shows the scenario's own expectations
    there instead: its batch-size distribution, rate at t = 0 and model mix, zero utilization and
    latency, flat trends.

    | part | features |
    |---|---|
    | per model | last epoch's batch-size histogram over log2 bins 1, 2, ..., 128, >128 |
    | 1 | last epoch's arrival rate / the scenario's time-average rate over the episode |
    | M | last epoch's model mix |
    | S | per-size utilization (busy / available GPC-s) in the last epoch |
    | 3 | last epoch's p95 latency / SLA (smallest SLA), violation rate, mean latency / SLA |
    | S | partitions of each size / (GPCs per GPU x G) in the current plan |
    | 1 | position in the episode: epochs done / ``env.epochs_per_episode`` |
    | 1 + 2 M | trends (below) of the rate, of each model's mix share and mean batch size |
    | G | each GPU's current action index / (L M - 1) |

    A trend is ``0.5 + change / 2`` clipped to [0, 1], the change being from the epoch before the
    last to the last one: of the rate feature, of each model's mix share, and of each model's mean
    log2 batch / log2 of the largest batch the workload can produce (kept when a model had no
    arrivals). With the position they let a memoryless policy time a schedule.

    ## Rewards
    The reward is the score (:mod:`mig_gym.envs.rewards`): with the default
    ``env.reward_weights`` the episode return equals ``-info["summary"]["sla_violation_rate"]``,
    minus the fraction of the episode's queries that completed late, were rejected or were still
    unfinished past their deadline at its end. Each epoch pays minus its new violations / the
    expected number of queries (time-average rate x horizon); the last epoch settles the
    difference (unfinished queries, the actual number of arrivals). In general ``reward = w_v *
    sla_violation + w_l * latency + w_r * reconfig + w_i * invalid_action`` (terms in
    ``info["reward_terms"]``); the shaping terms ``latency`` (minus the mean latency / SLA of the
    epoch's completions), ``reconfig`` (minus the GPUs reconfigured by the action) and
    ``invalid_action`` (minus one if any entry was invalid) have weight 0 unless the scenario opts
    in. The first action is taken at t = 0, before any arrival.

    ## Episode End
    Truncation after exactly ``env.epochs_per_episode`` steps, each simulating one epoch of
    ``env.epoch_s`` after its action (``epochs_per_episode * epoch_s`` simulated seconds in all).
    Arrivals are generated as the epochs need them, whatever ``run.num_queries`` says; only a
    non-looped trace that ends can end an episode early. ``recorder.series`` then holds one row
    per epoch and ``info["summary"]`` the episode's ``Summary`` fields. A step before ``reset`` or
    after the episode ended raises ``EpisodeEndedError`` (a ``RuntimeError``,
    :mod:`mig_gym.envs.base`), as in every mig_gym environment.

    ## Arguments
    ``gym.make("mig_gym/Partition-v0", scenario=..., render_mode=None | "ansi" | "rgb_array",
    policy=None, fast=True, compiled=True)``;
    ``reset(options={"episode_seed": s})`` runs the arrivals of seed ``s`` exactly.

    ## Simulation loop
    With ``fast=True`` (the default) an episode whose dispatcher has a fast form (ELSA, earliest
    finish, ``fifs_push``; FIFS with numba) and no service noise or faults runs its epochs on the
    epoch fast path (:mod:`mig_gym.sim.epochs`, :mod:`mig_gym.sim.epochs_pull`: no event heap,
    the same trajectories, rewards to rounding); otherwise, or with ``fast=False``, on the event
    loop, with its compiled core where it applies (:mod:`mig_gym.sim.event_core`, the same
    again). ``env.loop`` (``"fast"``/``"events"``, also ``info["loop"]``) says which ran,
    ``env.loop_note`` why the event loop did, ``env.compiled`` whether the fast path ran compiled
    (numba; else Python, the same results). ``compiled=False``: every loop in Python.

    ## Version History
    * v0: initial version; episodes of exactly ``epochs_per_episode`` epochs from t = 0,
      non-maximal layouts in the action list, position and trend features (issue 13).
    """

    metadata = {"render_modes": list(RENDER_MODES), "render_fps": 1}  # noqa: RUF012

    def __init__(
        self,
        scenario: str | dict | C.Scenario | None = None,
        render_mode: str | None = None,
        policy: str | None = None,
        fast: bool = True,
        compiled: bool = True,
    ) -> None:
        super().__init__(scenario, render_mode, policy)
        sc = self.scenario
        self.fast, self._kernels = fast, compiled  # _kernels: numba kernels allowed
        self.loop, self.loop_note, self.compiled = "", "", False
        self._runner: epochs.EpochRunner | None = None
        self.epochs = sc.env.epochs_per_episode
        self.horizon_s = self.epochs * sc.env.epoch_s
        self._mean_rate = max(time_average_rate(sc, self.horizon_s), 1e-9)
        self._top_batch = max_batch(sc)

    def _run_settings(self, sc: C.Scenario) -> dict[str, Any]:
        # Arrivals are generated as the epochs consume them, whatever run.num_queries says.
        return {"drain": False, "window_s": sc.env.epoch_s, "warmup_queries": 0,
                "num_queries": UNBOUNDED_QUERIES}  # fmt: skip

    def _make_spaces(self, sc: C.Scenario) -> tuple[spaces.MultiDiscrete, spaces.Box]:
        self.layouts = env_layouts(sc)
        self.choices = len(self.layouts) * self.num_models
        have = load_profiles(sc, partitioners=[])  # the checks against the plan run in build()
        rows = [set(have[name].sizes) for name in sc.model_names]
        self._choice_ok = np.array(  # index layout * M + model, as the actions
            [set(lay.sizes) <= rows[m] for lay in self.layouts for m in range(self.num_models)]
        )
        sizes = len(self.spec_.sizes)
        m = self.num_models
        n = m * (len(BATCH_BINS) + 1) + 1 + m + sizes + 3 + sizes + 1 + (1 + 2 * m)
        return (
            spaces.MultiDiscrete([self.choices] * self.num_gpus),
            spaces.Box(0.0, OBS_CLIP, (n + self.num_gpus,), np.float32),
        )

    def current_action(self) -> np.ndarray:
        """The action that keeps every GPU as it is (target layout if one is pending)."""
        out = np.zeros(self.num_gpus, dtype=np.int64)
        for g in self.run.sim.gpus:  # type: ignore[union-attr]
            lay, mods = g.target if g.target is not None else (g.layout, g.models)
            out[g.index] = self.encode(lay, mods[0] if mods else 0)
        return out

    def encode(self, layout: hardware.Layout, model: int) -> int:
        """The action index of ``layout`` hosting ``model`` (``self.layouts[i]`` is ``layout``).

        Raises:
            ValueError: ``layout`` is not in the environment's layout list (see
                :func:`env_layouts`).
        """
        try:
            i = self.layouts.index(layout)
        except ValueError:
            raise ValueError(f"layout {layout} is not one of Partition-v0's layouts") from None
        return i * self.num_models + model

    def decode(self, action: int) -> tuple[hardware.Layout, int]:
        """``(layout, model)`` of one GPU's action index."""
        li, model = divmod(int(action), self.num_models)
        return self.layouts[li], model

    def observed_pmfs(self) -> list[dict[int, float]]:
        """Batch-size pmf per model over the last epoch (a model without arrivals there keeps
        its previous pmf; before the first epoch, the scenario's)."""
        return [dict(p) for p in self._pmfs]

    def observed_counts(self) -> list[dict[int, int]]:
        """Arrivals per model and batch size in the last epoch (``counts[m][b]``; empty before
        the first epoch): what periodic PARIS re-plans from (the simulator's ``BatchCounts``)."""
        return [dict(c) for c in self._counts]

    def action_masks(self) -> np.ndarray:
        return np.tile(self._choice_ok, self.num_gpus)

    # ------------------------------------------------------------------ step hooks
    def _build(self, seed: int) -> Run:
        run = build(self.scenario, self.policy, seed, epoch_s=self.scenario.env.epoch_s,
                    compiled=self._kernels)  # fmt: skip
        self._batches = BatchCounts(self.num_models)  # this episode's arrivals, per epoch
        run.sim.observe(self._batches)
        why = epochs.unsupported(run.sim) if self.fast else "fast=False"
        if why is None and run.sim.central and not self._kernels:  # pull: compiled form only
            why = "compiled=False"
        self._runner = epoch_runner(run.sim, self._kernels) if why is None else None
        self.loop, self.loop_note = ("fast", "") if why is None else ("events", why)
        self.compiled = self._runner is not None and self._runner.compiled
        return run

    def _begin(self) -> None:
        """The episode starts at t = 0, before any arrival."""
        run = self.run
        assert run is not None
        ctx = run.context
        self.book = RewardBook(
            run.recorder,
            self.scenario.env.reward_weights,
            run.sim.slo_s,
            expected_measured=self._mean_rate * self.horizon_s,
            per_epoch=True,
        )
        self.epoch = 0
        self._pmfs = [dict(p) for p in ctx.batch_pmfs]
        self._counts: list[dict[int, int]] = [{} for _ in ctx.batch_pmfs]
        # Before the first epoch the "last epoch" features are the scenario's own expectations.
        mix = [s / sum(ctx.shares) for s in ctx.shares]
        self._epoch_stats = np.array([ctx.rate_qps / self._mean_rate, *mix])
        self._hist = [self._pmf_hist(p) for p in ctx.batch_pmfs]
        self._sizes_now = [self._log2_mean(p) for p in ctx.batch_pmfs]
        self._trend = np.full(1 + 2 * self.num_models, 0.5)
        self._snap = self._snapshot()

    def _pmf_hist(self, pmf: dict[int, float]) -> np.ndarray:
        h = np.zeros(len(BATCH_BINS) + 1)
        for b, p in pmf.items():
            h[int(np.searchsorted(BATCH_BINS, b))] += p
        return h / h.sum() if h.sum() else h

    def _log2_mean(self, pmf: dict[int, float]) -> float:
        total = sum(pmf.values())
        if not total or self._top_batch <= 1:
            return 0.0
        return sum(p * np.log2(b) for b, p in pmf.items()) / total / np.log2(self._top_batch)

    def _snapshot(self) -> tuple[dict[int, float], dict[int, float], int, float, int]:
        r = self.run.recorder  # type: ignore[union-attr]
        r.advance(self.run.sim.now)  # type: ignore[union-attr]
        lat = sum(st[2] / slo for st, slo in zip(r.model_stats, self.run.sim.slo_s, strict=True))  # type: ignore[union-attr]
        return (dict(r.busy_s), dict(r.size_avail_s), r.arrived, lat, r.measured_completed)

    def _advance(self) -> bool:
        sim = self.run.sim  # type: ignore[union-attr]
        d = (self._runner or sim).run_until_decision()
        if d is None:
            return True
        self.run.recorder.finish(sim.now)  # type: ignore[union-attr]  # the epoch's series row
        counts = self._counts = self._batches.take()
        for m, c in enumerate(counts):
            if c:
                n = sum(c.values())
                self._pmfs[m] = {b: v / n for b, v in sorted(c.items())}
        self._hist = [batch_histogram(c) for c in counts]
        arrivals = [sum(c.values()) for c in counts]
        total = sum(arrivals)
        before = np.concatenate([self._epoch_stats, self._sizes_now])
        self._epoch_stats = np.array(
            [total / self.scenario.env.epoch_s / self._mean_rate]
            + [a / total if total else 0.0 for a in arrivals]
        )
        self._sizes_now = [
            _mean_log2_batch(c, self._top_batch) if c else self._sizes_now[m]
            for m, c in enumerate(counts)
        ]
        now = np.concatenate([self._epoch_stats, self._sizes_now])
        self._trend = np.clip(0.5 + (now - before) / 2, 0.0, 1.0)
        return False

    def _validate(self, action: Any) -> tuple[np.ndarray, bool]:
        keep = self.current_action()
        a = numeric_action(action)  # None: not numbers (None, strings, objects, huge ints)
        invalid = a is None or a.shape != (self.num_gpus,)
        if invalid:
            a = keep.astype(np.float64)
        bad = ~np.isfinite(a) | (a < 0) | (a >= self.choices) | (a != np.floor(a))
        bad[~bad] = ~self._choice_ok[a[~bad].astype(np.int64)]  # a layout the profile lacks
        invalid = invalid or bool(bad.any())
        return np.where(bad, keep, np.nan_to_num(a)).astype(np.int64), invalid

    def _apply(self, acts: np.ndarray, invalid: bool) -> dict[str, Any]:
        sim = self.run.sim  # type: ignore[union-attr]
        keep = self.current_action()
        changed = 0
        for g, act in enumerate(acts):
            if act == keep[g]:
                continue
            li, model = divmod(int(act), self.num_models)
            lay = self.layouts[li]
            changed += sim.reconfigure(g, lay, [model] * len(lay.placements))
        self._snap = self._snapshot()
        self.epoch += 1
        return {"reconfigured": changed, "loop": self.loop}

    def _truncated(self, over: bool) -> bool:
        return over or self.epoch >= self.epochs

    def _reward(
        self, applied: dict[str, Any], invalid: bool, summary: Summary | None
    ) -> tuple[float, dict[str, float]]:
        return self.book.step(applied["reconfigured"], invalid, summary)

    # ------------------------------------------------------------------ observation / render
    def _observe(self) -> np.ndarray:
        sim = self.run.sim  # type: ignore[union-attr]
        busy0, avail0, _, lat0, done0 = self._snap
        busy1, avail1, _, lat1, done1 = self._snapshot()
        parts = [np.concatenate(self._hist)]
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
        parts.append(
            np.array([counts[k] / (self.spec_.gpcs * self.num_gpus) for k in self.spec_.sizes])
        )
        parts.append(np.array([self.epoch / self.epochs]))
        parts.append(self._trend)
        parts.append(self.current_action() / max(self.choices - 1, 1))
        obs = np.concatenate(parts).astype(np.float32)
        return np.clip(obs, 0.0, OBS_CLIP)

    def _render_text(self) -> str:
        sim = self.run.sim  # type: ignore[union-attr]
        lines = [f"epoch {self.epoch}/{self.epochs}  t={sim.now:.1f}s  in system {sim.active}"]
        for g in sim.gpus:
            tgt = f" -> {g.target[0]}" if g.target is not None else ""
            lines.append(f"GPU {g.index:>3} {g.state:<13} {g.layout!s}{tgt}")
        return "\n".join(lines)
