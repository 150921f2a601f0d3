"""``mig_gym/Dispatch-v0``: choose the partition for every arriving query."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces

from mig_gym.envs.base import MigEnv
from mig_gym.envs.common import OBS_CLIP, numeric_action
from mig_gym.envs.render import RENDER_MODES
from mig_gym.envs.rewards import RewardBook
from mig_gym.envs.slots import PART_FEATURES, SlotBank
from mig_gym.metrics.summary import Summary
from mig_gym.policies.dispatch.baselines import EarliestFinish
from mig_gym.runs.build import Run, build, max_batch
from mig_gym.scenario import config as C
from mig_gym.sim.entities import Partition, Query

__all__ = ["DispatchEnv", "PART_FEATURES"]

_GLOBAL = ("rate", "in_system", "progress")
_RATE_TAU_S = 1.0  # time constant of the exponentially decaying arrival-rate estimate


class DispatchEnv(MigEnv):
    """## Description
    One step per arriving query: the agent picks the partition that serves it. The layout is fixed
    for the episode, chosen by the scenario's partitioner (PARIS by default); the simulator is the
    one of ``mig_gym.simulate`` with the agent as its push dispatcher.

    ## Action Space
    ``Discrete(P)``, P = ``num_gpus x W`` partition slots, W = ``slot_width``, the GPU's GPC count
    in the hardware catalogue (7 on A100/H100, 4 on A30: no GPU holds more partitions than GPCs);
    slot ``W g + j`` is placement ``j`` of GPU ``g``. ``action_masks()`` and
    ``info["action_mask"]`` mark the valid slots: available, hosting the query's model, and with
    memory for its batch. An invalid action is remapped to the earliest-finish valid partition,
    counted (``info["invalid_actions"]``) and penalised only if the scenario weights the
    ``invalid_action`` term; so is a malformed one (not a single finite integral number:
    None, a string, NaN, a float with a fraction, a list of several entries, and anything
    bool-like: ``True``, ``np.bool_(False)``, a boolean array). Queries that no
    partition can take at the moment (all down) are held by the simulator without a step.

    ## Observation Space
    ``Box(0, 10, (P * 6 + 3 + M + 3,), float32)``; times are divided by the query's SLA so a policy
    transfers across scenarios, and ratios are clipped at 10.

    | index | feature |
    |---|---|
    | ``6i+0`` | slot i size / W (0 for an empty slot) |
    | ``6i+1`` | slot i hosts the query's model (0/1) |
    | ``6i+2`` | slot i estimated backlog / SLA |
    | ``6i+3`` | estimated completion of this query on slot i / SLA (10 if it cannot run there) |
    | ``6i+4`` | slot i available (0/1) |
    | ``6i+5`` | slot i queue length / 10 |
    | ``6P+0..2`` | query batch / max batch, time already waited / SLA, model index / M |
    | ``6P+3..`` | model one-hot (M values) |
    | last 3 | arrival rate / scenario mean rate, queries in system / P, episode progress |

    ## Rewards
    The reward is the score (:mod:`mig_gym.envs.rewards`): with the default
    ``env.reward_weights`` the episode return equals ``-info["summary"]["sla_violation_rate"]``,
    minus the fraction of the episode's measured queries (after its warm-up of
    ``min(run.warmup_queries, queries_per_episode // 10)``) that completed late, were rejected or
    were still unfinished past their deadline when the episode ended. Each step pays minus its new
    violations / the number of measured queries; the last step adds the unfinished ones. In
    general ``reward = w_v * sla_violation + w_l * latency + w_i * invalid_action`` (terms in
    ``info["reward_terms"]``); the shaping terms ``latency`` (minus the sum of latency / SLA of the
    measured queries completed since the last step) and ``invalid_action`` (minus one for an
    invalid action) have weight 0 unless the scenario opts in.

    ## Episode End
    Truncation after ``env.queries_per_episode`` arrivals (``terminated`` is always False).
    ``info["summary"]`` then holds the episode's ``Summary`` fields. If no query needs a choice at
    all (none can be served), the first step ends the episode without acting. A step before
    ``reset`` or after the episode ended raises ``EpisodeEndedError`` (a ``RuntimeError``,
    :mod:`mig_gym.envs.base`), as in every mig_gym environment.

    ## Arguments
    ``gym.make("mig_gym/Dispatch-v0", scenario=PATH | dict | Scenario | None, render_mode=None |
    "ansi" | "rgb_array", policy=None, num_queries=None, drain=False)``; ``render_mode="rgb_array"``
    draws :func:`mig_gym.envs.render.rgb_frame`; ``policy`` overrides the scenario's (its
    partitioner sets the layout; its dispatcher serves re-dispatched queries after failures);
    ``num_queries`` overrides ``env.queries_per_episode``; ``drain=True`` lets the last queries
    finish before the episode ends (for evaluation with the same ``Summary`` as ``simulate``).
    ``reset(options={"episode_seed": s})`` runs the arrivals of seed ``s`` exactly (as
    ``mig_gym.simulate(..., seed=s)``); otherwise episode seeds derive from the reset seed.

    ## Speed and vectorisation
    The observation and mask are kept incrementally (:mod:`mig_gym.envs.slots`): layout tables are
    rebuilt only when the partitions change, per-slot state is copied only for the partitions the
    simulator touched since the last step, and the clock-dependent columns are one compiled call
    where numba is installed (``env.bank.compiled``; :mod:`mig_gym.envs.obs_kernel`), else one
    vectorised numpy pass, with the same observations.
    ``gymnasium.make_vec("mig_gym/Dispatch-v0", num_envs=N)`` builds the native
    :class:`~mig_gym.envs.vector.DispatchVectorEnv` (N environments in one process, batched
    observations and masks, the trajectories of N independent environments seeded ``seed + i``;
    with numba, one compiled call steps every episode that allows it, :mod:`mig_gym.envs.vec_core`);
    :class:`mig_gym.learn.vecenv.DispatchSB3VecEnv` is its SB3 ``VecEnv`` (MaskablePPO included).

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
        self._num_queries, self._drain = num_queries, drain
        super().__init__(scenario, render_mode, policy)
        self._mean_rate = 1.0
        self.pending_query: Query | None = None
        self.bank = SlotBank(1, self.slot_width, self.slots, self.max_batch, self.num_models)
        self._row = 0
        self._solo = True  # False in a DispatchVectorEnv: its shared bank computes all rows

    def _run_settings(self, sc: C.Scenario) -> dict[str, Any]:
        n = self._num_queries if self._num_queries is not None else sc.env.queries_per_episode
        return {
            "num_queries": n,
            "drain": self._drain,
            "warmup_queries": min(sc.run.warmup_queries, n // 10),
        }

    def _make_spaces(self, sc: C.Scenario) -> tuple[spaces.Discrete, spaces.Box]:
        self.slot_width = self.spec_.gpcs  # at most one partition per GPC
        self.slots = sc.cluster.num_gpus * self.slot_width
        self.max_batch = max_batch(sc)
        n = self.slots * len(PART_FEATURES) + 3 + self.num_models + len(_GLOBAL)
        return spaces.Discrete(self.slots), spaces.Box(0.0, OBS_CLIP, (n,), np.float32)

    # ------------------------------------------------------------------ read-only view
    def slot_partition(self, slot: int) -> Partition | None:
        g, j = divmod(int(slot), self.slot_width)
        gpus = self.run.sim.gpus  # type: ignore[union-attr]
        if g >= len(gpus) or j >= len(gpus[g].partitions):
            return None
        return gpus[g].partitions[j]

    def share_bank(self, bank: SlotBank, row: int) -> None:
        """Keep this environment's observation and mask in row ``row`` of ``bank`` (a
        :class:`~mig_gym.envs.vector.DispatchVectorEnv`'s); ``bank.compute()`` is then the
        owner's job after every step."""
        self.bank, self._row, self._solo = bank, row, False

    def partition_slot(self, p: Partition) -> int:
        g = self.run.sim.gpus[p.gpu]  # type: ignore[union-attr]
        return p.gpu * self.slot_width + g.partitions.index(p)

    def action_masks(self) -> np.ndarray:
        """Valid slots for the pending query (all False when there is none)."""
        return self.bank.mask[self._row].copy()

    # ------------------------------------------------------------------ step hooks
    def _build(self, seed: int) -> Run:
        return build(self.scenario, self.policy, seed, external_dispatch=True)

    def _begin(self) -> None:
        self._mean_rate = max(self.run.context.rate_qps, 1e-9)  # type: ignore[union-attr]
        run, rc = self.run, self.scenario.run
        assert run is not None
        self.book = RewardBook(
            run.recorder,
            self.scenario.env.reward_weights,
            run.sim.slo_s,
            expected_measured=rc.num_queries - rc.warmup_queries,
        )
        self._rate = self._mean_rate
        self._last_t = 0.0
        self.pending_query = None
        self.bank.reset_row(self._row)
        self._next_query()

    def _advance(self) -> bool:
        """True if the episode is over; the first step of an episode in which no query needed a
        choice at all (none could be served) ends it without acting."""
        return self.pending_query is None or self._next_query()

    def _next_query(self) -> bool:
        """Run to the next query that needs a choice; True if the simulation is over."""
        sim = self.run.sim  # type: ignore[union-attr]
        bank, i, n = self.bank, self._row, self.scenario.run.num_queries
        while True:
            q = sim.next_query()
            if q is None:
                self.pending_query = None
                bank.blank(i)
                return True
            dt = q.arrival_s - self._last_t
            self._last_t = q.arrival_s
            self._rate = self._rate * math.exp(-dt / _RATE_TAU_S) + 1.0 / _RATE_TAU_S
            self.pending_query = q
            bank.sync(i, sim)
            if q.batch <= bank.max_batch and bank.rows[i].any_ok[q.model][q.batch]:  # a slot can
                tail = (
                    min(self._rate / self._mean_rate, OBS_CLIP),
                    min(sim.active / self.slots, OBS_CLIP),
                    min(sim.rec.arrived / n, 1.0),
                )
                bank.stage(i, q, sim.now, sim.slo_s[q.model], tail, compute=self._solo)
                return False
            sim.dispatch(q, None)  # nothing can take it now: held until capacity returns

    def _validate(self, action: Any) -> tuple[int, bool]:
        if type(action) is int or (isinstance(action, np.integer) and not isinstance(action, bool)):
            a = int(action)  # the common case, without array conversion
        else:  # one finite integral number (any shape of size 1), else invalid
            x = numeric_action(action)
            x = x.reshape(-1) if x is not None else None
            ok = x is not None and x.size == 1 and np.isfinite(x[0]) and x[0] == np.floor(x[0])
            a = int(x[0]) if ok and -1 <= x[0] <= self.slots else -1  # type: ignore[index]
        if self.pending_query is None:  # the empty episode: nothing to decide
            return a, False
        return a, not 0 <= a < self.slots or not self.bank.mask[self._row, a]

    def _apply(self, slot: int, invalid: bool) -> dict[str, Any]:
        q = self.pending_query
        if q is not None:
            if invalid:
                p = EarliestFinish().choose(q, self.view)
            else:
                p = self.bank.rows[self._row].slot_part[slot]
            self.run.sim.dispatch(q, p)  # type: ignore[union-attr]
        return {}

    def _observe(self) -> np.ndarray:
        return self.bank.obs[self._row].copy()

    def _reward(
        self, applied: dict[str, Any], invalid: bool, summary: Summary | None
    ) -> tuple[float, dict[str, float]]:
        return self.book.step(invalid=invalid, summary=summary)

    # ------------------------------------------------------------------ render
    def _render_text(self) -> str:
        sim, q = self.run.sim, self.pending_query  # type: ignore[union-attr]
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
