"""PARIS: a heterogeneous partition plan from profiled latency and the batch-size distribution.

Kim, Choi and Rhu, "PARIS and ELSA", DAC 2022. The structure is confirmed (the authors' patent
abstract): per partition size, from profiled utilization at each batch size, derive a batch-size to
partition-size correspondence; from it and the batch-size distribution, the number of partitions of
each size; then partition the GPUs. The knee rule below is our reconstruction and is a parameter
(``docs/policies.md``):

1. ``max_batch[k]`` per size k by ``knee``: ``utilization`` (smallest batch whose throughput
   reaches ``theta`` x the size's peak over the profiled range), ``sla`` (largest batch whose
   isolated latency stays within ``beta`` x SLA), or ``both`` (the smaller). Made monotone in k.
2. Size k is home of batches in ``(max_batch[prev], max_batch[k]]``; the largest size takes the
   rest; a size whose knee does not exceed its predecessor's gets no range. A batch whose home
   cannot serve it alone within ``beta`` x SLA moves to the smallest size that can.
3. GPC budget split by demand ``W[k] = sum_b P(b) latency(k, b)`` over k's range:
   ``GPC[k] = total * k W[k] / sum_j j W[j]`` (or by query count / batch-weighted).
4. Counts packed into maximal legal layouts on every GPU (local search over how many GPUs use each
   of the hardware's size multisets, minimising the GPC-weighted distance to the targets; moves
   change one or two GPUs at a time).

With several models the GPUs are first split between models by GPC-time demand: the model mix in
force (``PlanContext.shares``: a phase's mix for a plan made for that phase, the mix observed in
the last window for periodic PARIS) times each model's mean GPC-seconds per query.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mig_gym import hardware
from mig_gym.policies.partition.baselines import PlanContext, split_gpus
from mig_gym.sim.entities import Plan

__all__ = ["PARIS", "ModelPlan", "homes", "knees", "pack_counts", "size_targets"]


@dataclass(frozen=True)
class ModelPlan:
    """PARIS's reasoning for one model: knees, batch ranges, targets and the packed counts."""

    model: str
    max_batch: dict[int, int]  # per size, after the knee rule (0 = no batch within the rule)
    ranges: dict[int, tuple[int, int]]  # size -> (lo, hi] batches homed there
    home: dict[int, int]  # batch -> size
    gpc_share: dict[int, float]  # size -> fraction of this model's GPCs
    targets: dict[int, float]  # size -> target partition count (fractional)
    counts: dict[int, int]  # size -> partitions in the packed plan
    gpus: int
    load_per_partition: dict[int, float] = field(default_factory=dict)  # expected utilisation


def knees(
    curves: dict[int, np.ndarray],
    fits: dict[int, int],
    slo_s: float,
    rule: str,
    theta: float,
    beta: float,
) -> dict[int, int]:
    """``max_batch[k]`` per size by the knee rule (before monotonisation).

    Args:
        curves: size -> latency array indexed by batch (index 0 unused) over the profiled range.
        fits: size -> largest batch that fits the partition's memory.
    """
    out: dict[int, int] = {}
    for k, lat in curves.items():
        top = min(fits[k], len(lat) - 1)
        if top < 1:
            out[k] = 0
            continue
        b = np.arange(1, top + 1)
        lat_k = lat[1 : top + 1]
        util = 0
        if rule in ("utilization", "both"):
            thr = b / lat_k  # nan where a table profile starts above batch 1: not a candidate
            if not np.isnan(thr).all():
                util = int(b[np.argmax(thr >= theta * np.nanmax(thr))])
        sla = 0
        if rule in ("sla", "both"):
            ok = np.nonzero(lat_k <= beta * slo_s)[0]
            sla = int(b[ok[-1]]) if len(ok) else 0
        out[k] = {"utilization": util, "sla": sla, "both": min(util, sla)}[rule]
    return out


def homes(
    max_batch: dict[int, int],
    curves: dict[int, np.ndarray],
    fits: dict[int, int],
    batches: Sequence[int],
    slo_s: float,
    beta: float,
) -> tuple[dict[int, int], dict[int, tuple[int, int]]]:
    """Home size per batch (step 2) and each size's range ``(lo, hi]`` after monotonisation."""
    sizes = sorted(max_batch)
    ranges: dict[int, tuple[int, int]] = {}
    prev = 0
    for k in sizes:
        if max_batch[k] > prev:
            ranges[k] = (prev, max_batch[k])
            prev = max_batch[k]
    largest = sizes[-1]
    home: dict[int, int] = {}
    for b in batches:
        k = next((k for k, (lo, hi) in ranges.items() if lo < b <= hi), largest)
        if not _serves(curves, fits, k, b, beta * slo_s):
            ok = [j for j in sizes if _serves(curves, fits, j, b, beta * slo_s)]
            if ok:
                k = ok[0]
            else:  # nothing meets beta x SLA: the fastest size that fits
                cand = [j for j in sizes if b <= fits[j] and b < len(curves[j])]
                k = min(cand, key=lambda j: (curves[j][b], j)) if cand else largest
        home[b] = k
    return home, ranges


def _serves(
    curves: dict[int, np.ndarray], fits: dict[int, int], k: int, b: int, limit_s: float
) -> bool:
    return b <= fits[k] and b < len(curves[k]) and curves[k][b] <= limit_s


def size_targets(
    home: dict[int, int],
    pmf: dict[int, float],
    curves: dict[int, np.ndarray],
    sizes: Sequence[int],
    weighting: str,
) -> dict[int, float]:
    """Fraction of the GPC budget per size (step 3)."""
    w = dict.fromkeys(sizes, 0.0)
    for b, p in pmf.items():
        k = home[b]
        if weighting == "gpc_time":
            w[k] += p * curves[k][b] * k
        elif weighting == "count":
            w[k] += p * k
        elif weighting == "batch":
            w[k] += p * b * k
        else:
            raise ValueError(f"unknown PARIS weighting {weighting!r}")
    total = sum(w.values())
    return {k: w[k] / total for k in sizes} if total > 0 else dict.fromkeys(sizes, 0.0)


def pack_counts(gpu: str, num_gpus: int, target_gpcs: dict[int, float]) -> list[tuple[int, ...]]:
    """Choose a maximal layout's size multiset for each of ``num_gpus`` GPUs so that the GPCs per
    size come closest (GPC-weighted L1) to ``target_gpcs``; sizes with a positive target get at
    least one partition when that is possible.

    Works on how many GPUs use each size-multiset type (14 on A100/H100), so the cost does not
    grow with the cluster beyond the greedy start: a greedy start, then best-improvement moves that
    change the type of one GPU or of two GPUs at once, all evaluated as numpy arrays. Deterministic.
    Not an exact search: on clusters of up to 5 GPUs it met the brute-force optimum in all but
    one of 1,500 random targets (0.08 GPC off); the tests hold it within half a GPC of it.
    """
    types = hardware.size_multisets(gpu)
    sizes = sorted(target_gpcs)
    mat = np.array([[t.count(k) * k for k in sizes] for t in types], dtype=float)  # GPCs
    tgt = np.array([target_gpcs[k] for k in sizes], dtype=float)
    need = tgt > 0

    def cost(got: np.ndarray) -> np.ndarray:  # got: (..., sizes) GPCs per size
        missing = np.sum(need & (got == 0), axis=-1)
        return np.abs(got - tgt).sum(axis=-1) + 1000.0 * missing - 1e-3 * got.sum(axis=-1)

    n_types = len(types)
    x = np.zeros(n_types, dtype=int)
    got = np.zeros(len(sizes))
    for _ in range(num_gpus):  # greedy: add the GPU type that lowers the cost most
        j = int(np.argmin(cost(got + mat)))
        x[j] += 1
        got += mat[j]
    pairs = np.array([(a, b) for a in range(n_types) for b in range(a, n_types)])
    pair_gpcs = mat[pairs[:, 0]] + mat[pairs[:, 1]]
    move1 = mat[None, :, :] - mat[:, None, :]  # [i, j]: one GPU of type i becomes type j
    move2 = pair_gpcs[None, :, :] - pair_gpcs[:, None, :]  # [p, q]: GPUs of pair p become pair q
    cur = float(cost(got))
    while True:
        c1 = np.where((x > 0)[:, None], cost(got + move1), np.inf)
        i, j = np.unravel_index(np.argmin(c1), c1.shape)
        if c1[i, j] < cur - 1e-9:
            x[i] -= 1
            x[j] += 1
        else:
            a, b = pairs[:, 0], pairs[:, 1]
            have = np.where(a == b, x[a] >= 2, (x[a] >= 1) & (x[b] >= 1))
            c2 = np.where(have[:, None], cost(got + move2), np.inf)
            p, q = np.unravel_index(np.argmin(c2), c2.shape)
            if not c2[p, q] < cur - 1e-9:
                break
            np.subtract.at(x, pairs[p], 1)
            np.add.at(x, pairs[q], 1)
        got = x @ mat
        cur = float(cost(got))
    return [types[j] for j in range(n_types) for _ in range(int(x[j]))]


class PARIS:
    """The PARIS partitioner. Parameters as in :class:`mig_gym.scenario.config.PARISConfig`."""

    name = "paris"

    def __init__(
        self, knee: str = "sla", theta: float = 0.9, beta: float = 0.5, weighting: str = "gpc_time"
    ) -> None:
        if knee not in ("utilization", "sla", "both"):
            raise ValueError(f"PARIS knee must be utilization, sla or both; got {knee!r}")
        self.knee, self.theta, self.beta, self.weighting = knee, theta, beta, weighting
        self.last: list[ModelPlan] = []
        self._by_model: dict[int, ModelPlan] = {}
        self._home_all: dict[int, dict[int, int]] = {}

    def _curves(
        self, ctx: PlanContext, m: int, top: int
    ) -> tuple[dict[int, np.ndarray], dict[int, int]]:
        """Latency per size for batches ``0..top`` and the largest batch fitting each size."""
        prof = ctx.profiles[ctx.model_names[m]]
        curves, fits = {}, {}
        for k in ctx.spec.sizes:
            curves[k] = prof.latency_curve(k, top)
            fits[k] = prof.admitted_max(k, ctx.spec.profile_for(k).mem_gb, top)
        return curves, fits

    def _reason(
        self, ctx: PlanContext, m: int, pmf: dict[int, float]
    ) -> tuple[ModelPlan, dict[int, np.ndarray], dict[int, int]]:
        # The curves cover the profiled range and every batch of the pmf (an extrapolating profile
        # may serve batches above its profiled range). Homes are computed for all those batches,
        # not only the pmf's, so that ``home_of`` is right for batches the pmf did not contain.
        top = max(ctx.profiles[ctx.model_names[m]].max_batch, max(pmf, default=1))
        curves, fits = self._curves(ctx, m, top)
        slo = ctx.slo_s[m]
        mb = knees(curves, fits, slo, self.knee, self.theta, self.beta)
        home_all, ranges = homes(mb, curves, fits, range(1, top + 1), slo, self.beta)
        home = {b: home_all[b] for b in sorted(pmf)}
        share = size_targets(home, pmf, curves, ctx.spec.sizes, self.weighting)
        mp = ModelPlan(ctx.model_names[m], mb, ranges, home, share, {}, {}, 0)
        return mp, curves, home_all

    def model_plan(
        self, ctx: PlanContext, m: int, pmf: dict[int, float] | None = None, gpus: int = 0
    ) -> tuple[ModelPlan, dict[int, float]]:
        """Steps 1-3 for model ``m``: the plan's reasoning and the size shares of its GPC budget."""
        mp, _, _ = self._reason(ctx, m, pmf if pmf is not None else ctx.batch_pmfs[m])
        return dataclasses.replace(mp, gpus=gpus), mp.gpc_share

    def plan(self, ctx: PlanContext, pmfs: Sequence[dict[int, float]] | None = None) -> Plan:
        pmfs = list(pmfs) if pmfs is not None else list(ctx.batch_pmfs)
        prelim = [self._reason(ctx, m, pmfs[m]) for m in range(len(ctx.model_names))]
        # Split GPUs between models by GPC-time demand: mix in force x mean GPC-seconds per query.
        demand = []
        for m, (mp, curves, _) in enumerate(prelim):
            per_q = sum(p * curves[mp.home[b]][b] * mp.home[b] for b, p in pmfs[m].items())
            demand.append(ctx.shares[m] * per_q)
        gpus_per_model = split_gpus(ctx.num_gpus, demand)
        layouts, models, plans = [], [], []
        self._by_model, self._home_all = {}, {}
        for m, (mp, curves, home_all) in enumerate(prelim):
            n = gpus_per_model[m]
            if n == 0:
                continue
            share = mp.gpc_share
            total = n * ctx.spec.gpcs
            tgt_gpcs = {k: total * share[k] for k in share}
            packed = pack_counts(ctx.spec.name, n, tgt_gpcs)
            counts = dict.fromkeys(ctx.spec.sizes, 0)
            for sizes in packed:
                for k in sizes:
                    counts[k] += 1
            rate = ctx.rate_qps * ctx.shares[m] / sum(ctx.shares)
            load = {}
            for k in ctx.spec.sizes:
                work = sum(p * curves[k][b] for b, p in pmfs[m].items() if mp.home[b] == k)
                if counts[k]:
                    load[k] = rate * work / counts[k]
            plans.append(
                dataclasses.replace(
                    mp,
                    targets={k: tgt_gpcs[k] / k for k in share},
                    counts=counts,
                    gpus=n,
                    load_per_partition=load,
                )
            )
            self._by_model[m], self._home_all[m] = plans[-1], home_all
            for sizes in packed:
                lay = hardware.layout_from_sizes(ctx.spec.name, sizes)
                layouts.append(lay)
                models.append(tuple([m] * len(lay.placements)))
        self.last = plans
        return Plan(tuple(layouts), tuple(models), f"PARIS knee={self.knee}")

    def home_of(self, model: int, batch: int) -> int:
        """Home size of ``batch`` for ``model`` in the last plan (ELSA's optional scan start)."""
        mp = self._by_model.get(model)
        if mp is None:
            return 1
        return self._home_all[model].get(batch, max(mp.ranges) if mp.ranges else 1)

    @staticmethod
    def describe(mp: ModelPlan) -> str:
        rng = ", ".join(f"{k}g:({lo},{hi}]" for k, (lo, hi) in mp.ranges.items())
        return f"{mp.model}: knees {mp.max_batch}; ranges {rng}; counts {mp.counts}"
