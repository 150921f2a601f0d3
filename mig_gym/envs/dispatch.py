"""``mig_gym/Dispatch-v0``: choose the partition for every arriving query."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mig_gym.envs.common import (
    OBS_CLIP,
    RewardBook,
    episode_seed,
    numeric_action,
    prepare_scenario,
    with_run,
)
from mig_gym.envs.render import RENDER_MODES, check_render_mode, frame_shape, rgb_frame
from mig_gym.policies.dispatch.baselines import EarliestFinish
from mig_gym.runs.build import Run, build, max_batch
from mig_gym.scenario import config as C
from mig_gym.sim.entities import Partition, Query

__all__ = ["DispatchEnv", "PART_FEATURES"]

PART_FEATURES = ("size", "hosts_model", "backlog", "est_done", "available", "queue")
_GLOBAL = ("rate", "in_system", "progress")
_RATE_TAU_S = 1.0  # time constant of the exponentially decaying arrival-rate estimate


class DispatchEnv(gym.Env):
    """## Description
    One step per arriving query: the agent picks the partition that serves it. The layout is fixed
    for the episode, chosen by the scenario's partitioner (PARIS by default); the simulator is the
    one of ``mig_gym.simulate`` with the agent as its push dispatcher.

    ## Action Space
    ``Discrete(P)``, P = ``num_gpus x 7`` partition slots (slot ``7g + j`` is placement ``j`` of GPU
    ``g``). ``action_masks()`` and ``info["action_mask"]`` mark the valid slots: available, hosting
    the query's model, and with memory for its batch. An invalid action is remapped to the
    earliest-finish valid partition, penalised (``invalid_action`` term) and counted
    (``info["invalid_actions"]``); so is a malformed one (not a single finite integral number:
    None, a string, NaN, a float with a fraction, a list of several entries). Queries that no
    partition can take at the moment (all down) are held by the simulator without a step.

    ## Observation Space
    ``Box(0, 10, (P * 6 + 3 + M + 3,), float32)``; times are divided by the query's SLA so a policy
    transfers across scenarios, and ratios are clipped at 10.

    | index | feature |
    |---|---|
    | ``6i+0`` | slot i size / 7 (0 for an empty slot) |
    | ``6i+1`` | slot i hosts the query's model (0/1) |
    | ``6i+2`` | slot i estimated backlog / SLA |
    | ``6i+3`` | estimated completion of this query on slot i / SLA (10 if it cannot run there) |
    | ``6i+4`` | slot i available (0/1) |
    | ``6i+5`` | slot i queue length / 10 |
    | ``6P+0..2`` | query batch / max batch, time already waited / SLA, model index / M |
    | ``6P+3..`` | model one-hot (M values) |
    | last 3 | arrival rate / scenario mean rate, queries in system / P, episode progress |

    ## Rewards
    ``reward = w_v * sla_violation + w_l * latency + w_i * invalid_action`` with weights
    ``env.reward_weights`` of the scenario and terms in ``info["reward_terms"]``: minus queries that
    finished late or were rejected since the last step, minus the sum of latency / SLA of queries
    that finished since the last step, minus one for an invalid action. The episode return equals
    ``-(w_v * late-or-rejected + w_l * sum(latency / SLA) + w_i * invalid actions)`` over the
    queries that finished during the episode.

    ## Episode End
    Truncation after ``env.queries_per_episode`` arrivals (``terminated`` is always False).
    ``info["summary"]`` then holds the episode's ``Summary`` fields. If no query needs a choice at
    all (none can be served), the first step ends the episode without acting.

    ## Arguments
    ``gym.make("mig_gym/Dispatch-v0", scenario=PATH | dict | Scenario | None, render_mode=None |
    "ansi" | "rgb_array", policy=None, num_queries=None, drain=False)``; ``render_mode="rgb_array"``
    draws :func:`mig_gym.envs.render.rgb_frame`; ``policy`` overrides the scenario's (its
    partitioner sets the layout; its dispatcher serves re-dispatched queries after failures);
    ``num_queries`` overrides ``env.queries_per_episode``; ``drain=True`` lets the last queries
    finish before the episode ends (for evaluation with the same ``Summary`` as ``simulate``).
    ``reset(options={"episode_seed": s})`` runs the arrivals of seed ``s`` exactly (as
    ``mig_gym.simulate(..., seed=s)``); otherwise episode seeds derive from the reset seed.

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": list(RENDER_MODES), "render_fps": 4}  # noqa: RUF012

    def __init__(
        self,
        scenario: str | dict | C.Scenario | None = None,
        render_mode: str | None = None,
        policy: str | None = None,
        num_queries: int | None = None,
        drain: bool = False,
    ) -> None:
        sc = prepare_scenario(scenario)
        n = num_queries if num_queries is not None else sc.env.queries_per_episode
        self.scenario = with_run(
            sc, num_queries=n, drain=drain, warmup_queries=min(sc.run.warmup_queries, n // 10)
        )
        self.policy = policy
        self.render_mode = check_render_mode(render_mode)
        self.num_models = len(sc.models)
        self.slots = sc.cluster.num_gpus * 7
        self.max_batch = max_batch(sc)
        n = self.slots * len(PART_FEATURES) + 3 + self.num_models + len(_GLOBAL)
        self.observation_space = spaces.Box(0.0, OBS_CLIP, (n,), np.float32)
        self.action_space = spaces.Discrete(self.slots)
        self._mean_rate = 1.0
        self.run: Run | None = None
        self.pending_query: Query | None = None
        self.invalid_actions = 0
        self._end_reported = False
        self._mask = np.zeros(self.slots, dtype=bool)
        self._obs = np.zeros(self.observation_space.shape, np.float32)
        self._topology = -1

    # ------------------------------------------------------------------ read-only view
    @property
    def view(self) -> Any:
        """The simulator's read-only ``ClusterView`` (for reference policies)."""
        assert self.run is not None, "call reset() first"
        return self.run.sim.view

    def slot_partition(self, slot: int) -> Partition | None:
        g, j = divmod(int(slot), 7)
        gpus = self.run.sim.gpus  # type: ignore[union-attr]
        if g >= len(gpus) or j >= len(gpus[g].partitions):
            return None
        return gpus[g].partitions[j]

    def partition_slot(self, p: Partition) -> int:
        g = self.run.sim.gpus[p.gpu]  # type: ignore[union-attr]
        return p.gpu * 7 + g.partitions.index(p)

    def action_masks(self) -> np.ndarray:
        """Valid slots for the pending query (all False when there is none)."""
        return self._mask.copy()

    # ------------------------------------------------------------------ gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        ep_seed = episode_seed(self.np_random, options)
        self.run = build(self.scenario, self.policy, ep_seed, external_dispatch=True)
        self._mean_rate = max(self.run.context.rate_qps, 1e-9)
        self.book = RewardBook(self.run.recorder, self.scenario.env.reward_weights)
        self._rate = self._mean_rate
        self._last_t = 0.0
        self.invalid_actions = 0
        self.pending_query = None
        self._end_reported = False
        self._topology = -1
        done = self._advance()
        obs = self._obs if not done else np.zeros(self.observation_space.shape, np.float32)
        return obs, {"action_mask": self.action_masks(), "episode_seed": ep_seed}

    def _advance(self) -> bool:
        """Run to the next query that needs a choice; True if the episode is over."""
        sim = self.run.sim  # type: ignore[union-attr]
        while True:
            d = sim.run_until_decision()
            if d is None:
                self.pending_query = None
                self._mask = np.zeros(self.slots, dtype=bool)
                return True
            if d.kind != "dispatch":
                continue
            q = d.query
            dt = q.arrival_s - self._last_t
            self._last_t = q.arrival_s
            self._rate = self._rate * math.exp(-dt / _RATE_TAU_S) + 1.0 / _RATE_TAU_S
            self.pending_query = q
            self._observe()
            if self._mask.any():
                return False
            sim.dispatch(q, None)  # nothing can take it now: held until capacity returns

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self.run is None or (self.pending_query is None and self._end_reported):
            raise RuntimeError("step() called before reset() or after the episode ended")
        if self.pending_query is None:  # no query needed a choice at all (e.g. none can be
            self._end_reported = True  # served): the first step ends the empty episode
            info0: dict[str, Any] = {
                "reward_terms": self.book.step()[1],
                "invalid": False,
                "invalid_actions": self.invalid_actions,
                "action_mask": self.action_masks(),
                "summary": self.run.summary().to_dict(),
            }
            return np.zeros(self.observation_space.shape, np.float32), 0.0, False, True, info0
        q = self.pending_query
        if isinstance(action, int | np.integer) and not isinstance(action, bool):
            a = int(action)  # the common case, without array conversion
        else:  # one finite integral number (any shape of size 1), else invalid
            x = numeric_action(action)
            ok = x is not None and x.size == 1 and np.isfinite(x[0]) and x[0] == np.floor(x[0])
            a = int(x[0]) if ok and -1 <= x[0] <= self.slots else -1  # type: ignore[index]
        invalid = not 0 <= a < self.slots or not self._mask[a]
        if invalid:
            self.invalid_actions += 1
            p = EarliestFinish().choose(q, self.view)
        else:
            p = self.slot_partition(a)
        self.run.sim.dispatch(q, p)
        done = self._advance()
        reward, terms = self.book.step(invalid=invalid)
        info: dict[str, Any] = {
            "reward_terms": terms,
            "invalid_actions": self.invalid_actions,
            "action_mask": self.action_masks(),
            "invalid": invalid,
        }
        if done:
            self._end_reported = True
            info["summary"] = self.run.summary().to_dict()
            obs = np.zeros(self.observation_space.shape, np.float32)
        else:
            obs = self._obs
        return obs, float(reward), False, done, info

    # ------------------------------------------------------------------ observation / render
    def _slots_layout(self) -> None:
        """Per-slot constants, rebuilt only when the simulator's partitions change: for each model
        a template block (size, hosts-model, available), the service time / SLA of every batch
        (``inf`` where the slot cannot take it) and the resulting mask rows."""
        sim = self.run.sim  # type: ignore[union-attr]
        parts, idx = [], []
        for g in sim.gpus:
            for j, p in enumerate(g.partitions):
                parts.append(p)
                idx.append(g.index * 7 + j)
        self._parts = parts
        self._idx = np.array(idx, dtype=np.int64)
        self._full = idx == list(range(self.slots))
        width = self.max_batch + 1
        lat = np.full((len(parts), width), np.inf)
        for r, p in enumerate(parts):
            n = min(len(p.lat), width)
            lat[r, :n] = p.lat[:n]
        model = np.array([p.model for p in parts])
        avail = np.array([p.available for p in parts], dtype=bool)
        self._template, self._lat_over_slo, self._ok = [], [], []
        for m in range(self.num_models):
            same = model == m
            t = np.zeros((len(parts), len(PART_FEATURES)))
            t[:, 0] = [p.gpcs / 7.0 for p in parts]
            t[:, 1] = same
            t[:, 4] = avail
            ok = (avail & same)[:, None] & (lat < np.inf)
            self._template.append(t)
            self._ok.append(ok)
            self._lat_over_slo.append(np.where(ok, lat, np.inf) / sim.slo_s[m])
        self._topology = sim.topology

    def _observe(self) -> None:
        """Observation and action mask for the pending query (vectorised over the partitions)."""
        sim, q = self.run.sim, self.pending_query  # type: ignore[union-attr]
        assert q is not None
        if self._topology != sim.topology:
            self._slots_layout()
        parts, n, m, b = self._parts, len(self._parts), q.model, q.batch
        now, slo = sim.now, sim.slo_s[m]
        f = len(PART_FEATURES)
        k = self.slots * f
        obs = np.zeros(self.observation_space.shape, np.float32)
        if n:
            block = self._template[m].copy()
            backlog = np.fromiter([p.est_free_s for p in parts], float, n)
            backlog -= now
            np.maximum(backlog, 0.0, out=backlog)
            backlog /= slo
            block[:, 2] = backlog
            block[:, 3] = backlog + self._lat_over_slo[m][:, b]
            block[:, 5] = np.fromiter([len(p.queue) for p in parts], float, n)
            block[:, 5] /= 10.0
            np.minimum(block, OBS_CLIP, out=block)
            ok = self._ok[m][:, b]
            if self._full:
                obs[:k] = block.ravel()
                mask = ok.copy()
            else:
                obs[:k].reshape(self.slots, f)[self._idx] = block
                mask = np.zeros(self.slots, dtype=bool)
                mask[self._idx] = ok
        else:
            mask = np.zeros(self.slots, dtype=bool)
        obs[k] = b / self.max_batch
        obs[k + 1] = min((now - q.arrival_s) / slo, OBS_CLIP)
        obs[k + 2] = m / self.num_models
        obs[k + 3 + m] = 1.0
        k += 3 + self.num_models
        obs[k] = min(self._rate / self._mean_rate, OBS_CLIP)
        obs[k + 1] = min(sim.active / self.slots, OBS_CLIP)
        obs[k + 2] = min(sim.rec.arrived / self.scenario.run.num_queries, 1.0)
        self._obs = obs
        self._mask = mask

    def render(self) -> str | np.ndarray | None:
        """``"ansi"``: a text line per GPU; ``"rgb_array"``: :func:`mig_gym.envs.render.rgb_frame`
        (blank before ``reset``); None without a render mode."""
        if self.render_mode == "rgb_array":
            if self.run is None:
                return np.zeros(frame_shape(self.scenario.cluster.num_gpus), np.uint8)
            return rgb_frame(self.run.sim, self.scenario.cluster.num_gpus)
        if self.render_mode != "ansi" or self.run is None:
            return None
        sim, q = self.run.sim, self.pending_query
        lines = [
            f"t={sim.now:.3f}s  in system {sim.active}  held {len(sim.held)}"
            + (f"  next: query {q.id} model {q.model} batch {q.batch}" if q else "")
        ]
        for g in sim.gpus:
            cells = []
            for p in g.partitions:
                busy = "*" if p.running is not None else " "
                cells.append(f"[{p.gpcs}g{busy}q{len(p.queue):<2}]")
            lines.append(f"GPU {g.index:>3} {g.state:<13} " + "".join(cells))
        return "\n".join(lines)
