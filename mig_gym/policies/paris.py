"""PARIS: a heterogeneous partition plan from profiled latency and the batch-size distribution.

Kim, Choi and Rhu, "PARIS and ELSA", DAC 2022. The structure is confirmed (the authors' patent
abstract): per partition size, from profiled utilization at each batch size, derive a batch-size to
partition-size correspondence; from it and the batch-size distribution, the number of partitions of
each size; then partition the GPUs. The knee rule below is our reconstruction and is a parameter
(design section 6, ``docs/policies.md``):

1. ``max_batch[k]`` per size k by ``knee``: ``utilization`` (smallest batch whose throughput reaches
   ``theta`` x the size's peak over the profiled range), ``sla`` (largest batch whose isolated latency
   stays within ``beta`` x SLA), or ``both`` (the smaller). Made monotone in k.
2. Size k is home of batches in ``(max_batch[prev], max_batch[k]]``; the largest size takes the
   rest; a size whose knee does not exceed its predecessor's gets no range. A batch whose home cannot
   serve it alone within ``beta`` x SLA moves to the smallest size that can.
3. GPC budget split by demand ``W[k] = sum_b P(b) latency(k, b)`` over k's range:
   ``GPC[k] = total * k W[k] / sum_j j W[j]`` (or by query count / batch-weighted).
4. Counts packed into maximal legal layouts on every GPU (local search over how many GPUs use each
   of the hardware's size multisets, minimising the GPC-weighted distance to the targets).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mig_gym import hardware
from mig_gym.cluster import Plan
from mig_gym.policies.partitioners import PlanContext, split_gpus

__all__ = ["PARIS", "ModelPlan", "knees", "homes", "size_targets", "pack_counts"]


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


def knees(curves: dict[int, np.ndarray], fits: dict[int, int], slo_s: float, rule: str,
          theta: float, beta: float) -> dict[int, int]:
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
            thr = b / lat_k
            util = int(b[np.argmax(thr >= theta * thr.max())])
        sla = 0
        if rule in ("sla", "both"):
            ok = np.nonzero(lat_k <= beta * slo_s)[0]
            sla = int(b[ok[-1]]) if len(ok) else 0
        out[k] = {"utilization": util, "sla": sla, "both": min(util, sla)}[rule]
    return out


def homes(max_batch: dict[int, int], curves: dict[int, np.ndarray], fits: dict[int, int],
          batches: Sequence[int], slo_s: float, beta: float) -> tuple[dict[int, int],
                                                                     dict[int, tuple[int, int]]]:
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


def _serves(curves: dict[int, np.ndarray], fits: dict[int, int], k: int, b: int,
            limit_s: float) -> bool:
    return b <= fits[k] and b < len(curves[k]) and curves[k][b] <= limit_s


def size_targets(home: dict[int, int], pmf: dict[int, float], curves: dict[int, np.ndarray],
                 sizes: Sequence[int], weighting: str) -> dict[int, float]:
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
    least one partition when that is possible. Deterministic local search from a greedy start."""
    types = hardware.size_multisets(gpu)
    sizes = sorted(target_gpcs)
    mat = np.array([[t.count(k) * k for k in sizes] for t in types], dtype=float)  # GPCs
    tgt = np.array([target_gpcs[k] for k in sizes])
    need = tgt > 0

    def cost(x: np.ndarray) -> float:
        got = x @ mat
        missing = np.sum(need & (got == 0))
        return float(np.abs(got - tgt).sum() + 1000.0 * missing - 1e-3 * got.sum())

    x = np.zeros(len(types), dtype=int)
    for _ in range(num_gpus):  # greedy: add the GPU type that lowers the cost most
        best = min(range(len(types)), key=lambda j: (cost(x + np.eye(len(types), dtype=int)[j]), j))
        x[best] += 1
    cur = cost(x)
    improved = True
    while improved:  # best-improvement swaps of one GPU's type
        improved = False
        best_move, best_cost = None, cur
        for i in np.nonzero(x)[0]:
            for j in range(len(types)):
                if j == i:
                    continue
                x[i] -= 1
                x[j] += 1
                c = cost(x)
                if c < best_cost - 1e-9:
                    best_move, best_cost = (i, j), c
                x[i] += 1
                x[j] -= 1
        if best_move is not None:
            x[best_move[0]] -= 1
            x[best_move[1]] += 1
            cur, improved = best_cost, True
    return [types[j] for j in range(len(types)) for _ in range(int(x[j]))]


class PARIS:
    """The PARIS partitioner. Parameters as in :class:`mig_gym.config.PARISConfig`."""

    name = "paris"

    def __init__(self, knee: str = "sla", theta: float = 0.9, beta: float = 0.5,
                 weighting: str = "gpc_time") -> None:
        if knee not in ("utilization", "sla", "both"):
            raise ValueError(f"PARIS knee must be utilization, sla or both; got {knee!r}")
        self.knee, self.theta, self.beta, self.weighting = knee, theta, beta, weighting
        self.last: list[ModelPlan] = []
        self._by_model: dict[int, ModelPlan] = {}

    def _curves(self, ctx: PlanContext, m: int) -> tuple[dict[int, np.ndarray], dict[int, int]]:
        prof = ctx.profiles[ctx.model_names[m]]
        top = prof.max_batch
        curves, fits = {}, {}
        for k in ctx.spec.sizes:
            curves[k] = prof.latency_curve(k, top)
            mem = ctx.spec.profile_for(k).mem_gb
            ok = [b for b in range(1, top + 1) if prof.memory_gb(b) <= mem]
            fits[k] = ok[-1] if ok else 0
        return curves, fits

    def model_plan(self, ctx: PlanContext, m: int, pmf: dict[int, float] | None = None,
                   gpus: int = 0) -> tuple[ModelPlan, dict[int, float]]:
        """Steps 1-3 for model ``m``: the plan's reasoning and the size shares of its GPC budget."""
        pmf = pmf if pmf is not None else ctx.batch_pmfs[m]
        curves, fits = self._curves(ctx, m)
        slo = ctx.slo_s[m]
        mb = knees(curves, fits, slo, self.knee, self.theta, self.beta)
        home, ranges = homes(mb, curves, fits, sorted(pmf), slo, self.beta)
        share = size_targets(home, pmf, curves, ctx.spec.sizes, self.weighting)
        mp = ModelPlan(ctx.model_names[m], mb, ranges, home, share, {}, {}, gpus)
        return mp, share

    def plan(self, ctx: PlanContext, pmfs: Sequence[dict[int, float]] | None = None) -> Plan:
        pmfs = list(pmfs) if pmfs is not None else list(ctx.batch_pmfs)
        prelim = [self.model_plan(ctx, m, pmfs[m]) for m in range(len(ctx.model_names))]
        # Split GPUs between models by GPC-time demand: rate share x mean GPC-seconds per query.
        demand = []
        for m, (mp, _) in enumerate(prelim):
            curves, _ = self._curves(ctx, m)
            per_q = sum(p * curves[mp.home[b]][b] * mp.home[b] for b, p in pmfs[m].items())
            demand.append(ctx.shares[m] * per_q)
        gpus_per_model = split_gpus(ctx.num_gpus, demand)
        layouts, models, plans = [], [], []
        self._by_model = {}
        for m, (mp, share) in enumerate(prelim):
            n = gpus_per_model[m]
            if n == 0:
                continue
            total = n * ctx.spec.gpcs
            tgt_gpcs = {k: total * share[k] for k in share}
            packed = pack_counts(ctx.spec.name, n, tgt_gpcs)
            counts = dict.fromkeys(ctx.spec.sizes, 0)
            for sizes in packed:
                for k in sizes:
                    counts[k] += 1
            curves, _ = self._curves(ctx, m)
            rate = ctx.rate_qps * ctx.shares[m] / sum(ctx.shares)
            load = {}
            for k in ctx.spec.sizes:
                work = sum(p * curves[k][b] for b, p in pmfs[m].items() if mp.home[b] == k)
                if counts[k]:
                    load[k] = rate * work / counts[k]
            plans.append(ModelPlan(mp.model, mp.max_batch, mp.ranges, mp.home, share,
                                   {k: tgt_gpcs[k] / k for k in share}, counts, n, load))
            self._by_model[m] = plans[-1]
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
        return mp.home.get(batch, max(mp.ranges) if mp.ranges else 1)

    @staticmethod
    def describe(mp: ModelPlan) -> str:
        rng = ", ".join(f"{k}g:({lo},{hi}]" for k, (lo, hi) in mp.ranges.items())
        return f"{mp.model}: knees {mp.max_batch}; ranges {rng}; counts {mp.counts}"
