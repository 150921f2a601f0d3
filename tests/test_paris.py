"""PARIS (mig_gym.policies.partition.paris) and the partitioners built on it: knees, batch ranges,
the re-homing guard, size targets, packing into layouts, several models, PARIS_tuned, periodic
PARIS.

The synthetic profile has the knee shape of docs/profiles.md, with values chosen so that every
expected number below is computed by hand: ``L_k(b) = floor_k * max(1, b / n_k)`` with floors 30 ms
on 1g and 10 ms elsewhere and knees ``n = {1: 4, 2: 8, 3: 12, 4: 16, 7: 32}``, batches 1..64.
Throughput ``b / L`` peaks at ``n_k / floor_k`` for ``b >= n_k``, so the utilization knee is
``ceil(theta * n_k)``; the SLA knee is the largest ``b`` with ``floor_k * b / n_k <= beta * SLA``.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter

import numpy as np
import pytest
import yaml

import mig_gym
from mig_gym import hardware
from mig_gym.hardware import profiles
from mig_gym.hardware.profiles import LatencyProfile, MemoryModel, ProfileSet, TableCurve
from mig_gym.policies.partition.baselines import PlanContext, split_gpus
from mig_gym.policies.partition.paris import PARIS, homes, knees, pack_counts, size_targets
from mig_gym.policies.partition.periodic import PeriodicPARIS
from mig_gym.policies.partition.tuned import PARISTuned
from mig_gym.runs import build as engine
from mig_gym.scenario import load_scenario
from mig_gym.sim.entities import Plan
from tests.conftest import SCENARIOS

GPU = "A100-80GB"
SPEC = hardware.gpu_spec(GPU)
SIZES = (1, 2, 3, 4, 7)
TOP = 64
FLOOR_S = {1: 0.030, 2: 0.010, 3: 0.010, 4: 0.010, 7: 0.010}
KNEE = {1: 4, 2: 8, 3: 12, 4: 16, 7: 32}
ALL_FIT = dict.fromkeys(SIZES, TOP)
MULTISETS = set(hardware.size_multisets(GPU))
MAX_GPCS_OF = {1: 7, 2: 6, 3: 6, 4: 4, 7: 7}  # most GPCs one GPU can give to one size
PAPER = ("paper_resnet50", "paper_mobilenet", "paper_bert")


def _curves(floor_s: dict[int, float] = FLOOR_S) -> dict[int, np.ndarray]:
    b = np.arange(TOP + 1, dtype=float)
    out = {k: floor_s[k] * np.maximum(1.0, b / KNEE[k]) for k in SIZES}
    for c in out.values():
        c[0] = np.nan
    return out


def _knee_profile(model: str = "toy", memory: MemoryModel | None = None) -> ProfileSet:
    """The synthetic profile as a table (linear interpolation is exact on the two segments)."""
    curves = {
        k: TableCurve(
            (1, KNEE[k], TOP), (FLOOR_S[k], FLOOR_S[k], FLOOR_S[k] * TOP / KNEE[k]), "linear"
        )
        for k in SIZES
    }
    lp = LatencyProfile(
        model, GPU, curves, dict.fromkeys(SIZES, (1, TOP)), memory=memory or MemoryModel()
    )
    return ProfileSet(GPU, {model: lp})


def _ctx(
    prof: ProfileSet,
    pmfs: list[dict[int, float]],
    slo_s: list[float],
    shares: list[float] | None = None,
    num_gpus: int = 8,
) -> PlanContext:
    return PlanContext(
        spec=SPEC,
        num_gpus=num_gpus,
        profiles=prof,
        model_names=prof.models,
        shares=tuple(shares or [1.0] * len(pmfs)),
        slo_s=tuple(slo_s),
        batch_pmfs=tuple(pmfs),
        rate_qps=100.0,
    )


def _scenario_ctx(name: str, num_gpus: int | None = None) -> PlanContext:
    data = yaml.safe_load((SCENARIOS / f"{name}.yaml").read_text())
    if num_gpus is not None:
        data["cluster"]["num_gpus"] = num_gpus
    sc = load_scenario(data)
    return engine.plan_context(sc, engine.load_profiles(sc), sc.seed)


def _gpcs_by_size(sizes_per_gpu) -> dict[int, int]:
    c: Counter[int] = Counter()
    for sizes in sizes_per_gpu:
        for k in sizes:
            c[k] += k
    return {k: c[k] for k in SIZES}


def _check_plan_uses_every_gpu(plan: Plan, num_gpus: int) -> None:
    assert len(plan.layouts) == len(plan.models) == num_gpus
    for lay, mods in zip(plan.layouts, plan.models, strict=True):
        assert hardware.is_maximal(lay), lay
        assert lay.placements and all(m >= 0 for m in mods)
        assert len(set(mods)) == 1  # one model per GPU


# --------------------------------------------------------------------------- step 1: knees
KNEE_TABLE = [
    # rule, theta, beta, SLA (s), fits, expected max_batch
    ("utilization", 0.9, 0.5, 0.112, ALL_FIT, {1: 4, 2: 8, 3: 11, 4: 15, 7: 29}),
    ("utilization", 0.8, 0.5, 0.112, ALL_FIT, {1: 4, 2: 7, 3: 10, 4: 13, 7: 26}),
    ("sla", 0.9, 0.5, 0.112, ALL_FIT, {1: 7, 2: 44, 3: 64, 4: 64, 7: 64}),  # 56 ms
    ("sla", 0.9, 0.2, 0.112, ALL_FIT, {1: 0, 2: 17, 3: 26, 4: 35, 7: 64}),  # 22.4 ms
    ("sla", 0.9, 0.1, 0.112, ALL_FIT, {1: 0, 2: 8, 3: 13, 4: 17, 7: 35}),  # 11.2 ms
    ("sla", 0.9, 0.05, 0.112, ALL_FIT, dict.fromkeys(SIZES, 0)),  # 5.6 ms: below every floor
    ("both", 0.9, 0.2, 0.112, ALL_FIT, {1: 0, 2: 8, 3: 11, 4: 15, 7: 29}),
    ("both", 0.8, 0.5, 0.112, ALL_FIT, {1: 4, 2: 7, 3: 10, 4: 13, 7: 26}),
    # memory caps the batches considered: the peak is taken over the batches that fit
    (
        "utilization",
        0.9,
        0.5,
        0.112,
        {1: 3, 2: 6, 3: 13, 4: 13, 7: 26},
        {1: 3, 2: 6, 3: 11, 4: 12, 7: 24},
    ),
    ("sla", 0.9, 0.5, 0.112, {1: 3, 2: 6, 3: 13, 4: 13, 7: 0}, {1: 3, 2: 6, 3: 13, 4: 13, 7: 0}),
]


@pytest.mark.parametrize(("rule", "theta", "beta", "slo", "fits", "expected"), KNEE_TABLE)
def test_knees(rule, theta, beta, slo, fits, expected):
    assert knees(_curves(), fits, slo, rule, theta, beta) == expected


@pytest.mark.parametrize(
    ("rule", "theta", "beta", "slo", "fits", "expected"),
    [row for row in KNEE_TABLE if row[4] is ALL_FIT],
)
def test_paris_plan_reports_the_knees(rule, theta, beta, slo, fits, expected):
    paris = PARIS(rule, theta, beta)
    paris.plan(_ctx(_knee_profile(), [{1: 0.5, 40: 0.5}], [slo]))
    assert paris.last[0].max_batch == expected


def test_paris_knees_respect_partition_memory():
    # 3 GiB per item: 1g (9.75 GiB) holds 3, 2g 6, 3g/4g 13, 7g 26 (as in the table above)
    paris = PARIS("utilization", 0.9)
    paris.plan(_ctx(_knee_profile(memory=MemoryModel(0.0, 3.0)), [{1: 1.0}], [0.112]))
    assert paris.last[0].max_batch == {1: 3, 2: 6, 3: 11, 4: 12, 7: 24}


def test_utilization_knee_ignores_unprofiled_batches():
    """A measured table starting above batch 1 has nan there; the knee uses the profiled part."""
    curves = _curves()
    for k in SIZES:
        curves[k][1:3] = np.nan
    assert knees(curves, ALL_FIT, 0.112, "utilization", 0.9, 0.5) == {
        1: 4,
        2: 8,
        3: 11,
        4: 15,
        7: 29,
    }


def test_unknown_knee_rule_is_rejected():
    with pytest.raises(ValueError, match="knee"):
        PARIS("median")


# --------------------------------------------------------------------------- step 2: ranges
FLAT = {k: np.full(TOP + 1, 0.001) for k in SIZES}  # every size serves every batch in 1 ms


@pytest.mark.parametrize(
    ("max_batch", "ranges", "some_homes"),
    [
        (
            {1: 4, 2: 8, 3: 11, 4: 15, 7: 29},
            {1: (0, 4), 2: (4, 8), 3: (8, 11), 4: (11, 15), 7: (15, 29)},
            {1: 1, 4: 1, 5: 2, 8: 2, 9: 3, 12: 4, 15: 4, 16: 7, 29: 7, 30: 7, 64: 7},
        ),
        # not monotone: 2g (6 <= 8) and 4g (20 <= 20) get no range
        (
            {1: 8, 2: 6, 3: 20, 4: 20, 7: 30},
            {1: (0, 8), 3: (8, 20), 7: (20, 30)},
            {6: 1, 8: 1, 9: 3, 20: 3, 21: 7, 64: 7},
        ),
        ({1: 0, 2: 0, 3: 10, 4: 5, 7: 10}, {3: (0, 10)}, {1: 3, 10: 3, 11: 7, 64: 7}),
        # the largest size takes the rest even without a range of its own
        (
            {1: 10, 2: 20, 3: 30, 4: 40, 7: 35},
            {1: (0, 10), 2: (10, 20), 3: (20, 30), 4: (30, 40)},
            {10: 1, 11: 2, 40: 4, 41: 7, 64: 7},
        ),
        (dict.fromkeys(SIZES, 0), {}, {1: 7, 64: 7}),
    ],
)
def test_ranges_and_homes(max_batch, ranges, some_homes):
    home, got = homes(max_batch, FLAT, ALL_FIT, range(1, TOP + 1), 1.0, 0.5)
    assert got == ranges
    assert {b: home[b] for b in some_homes} == some_homes
    for k, (lo, hi) in ranges.items():  # ranges are disjoint, increasing and cover (0, max]
        assert all(home[b] == k for b in range(lo + 1, hi + 1))


# Knees of the utilization rule (theta 0.9) with the synthetic curves (1g floor 30 ms).
UTIL_KNEES = {1: 4, 2: 8, 3: 11, 4: 15, 7: 29}


@pytest.mark.parametrize(
    ("beta", "fits", "expected"),
    [
        # 22.4 ms: 1g serves nothing, 2g b <= 17, 3g <= 26, 4g <= 35, 7g all
        (0.2, ALL_FIT, {1: 2, 4: 2, 5: 2, 8: 2, 9: 3, 12: 4, 16: 7, 40: 7, 64: 7}),
        # 11.2 ms: 2g serves b <= 8, 3g <= 13, 4g <= 17, 7g <= 35; 1g nothing. Batch 40:
        # no size in time, the fastest that fits
        (0.1, ALL_FIT, {1: 2, 4: 2, 8: 2, 9: 3, 12: 4, 14: 4, 16: 7, 29: 7, 40: 7}),
        # 5.6 ms: nothing serves in time: the fastest size that fits (ties to the smaller)
        (0.05, ALL_FIT, {1: 2, 4: 2, 9: 3, 20: 7, 64: 7}),
        # 56 ms, memory: 1g holds only 2, so batches 3 and 4 move to 2g
        (0.5, {1: 2, 2: TOP, 3: TOP, 4: TOP, 7: TOP}, {1: 1, 2: 1, 3: 2, 4: 2, 5: 2}),
    ],
)
def test_rehoming_guard(beta, fits, expected):
    home, _ = homes(UTIL_KNEES, _curves(), fits, range(1, TOP + 1), 0.112, beta)
    assert {b: home[b] for b in expected} == expected


@pytest.mark.parametrize("scenario", PAPER)
@pytest.mark.parametrize("rule", ["utilization", "sla", "both"])
def test_no_batch_homed_where_it_surely_misses(scenario, rule):
    ctx = _scenario_ctx(scenario)
    paris = PARIS(rule)
    paris.plan(ctx)
    prof, limit = ctx.profiles[ctx.model_names[0]], paris.beta * ctx.slo_s[0]
    for b, k in paris.last[0].home.items():
        ok = [
            j
            for j in SIZES
            if prof.latency_s(j, b) <= limit and prof.memory_gb(b) <= SPEC.profile_for(j).mem_gb
        ]
        if ok:
            assert k in ok
            rng = paris.last[0].ranges.get(k)  # in k's range, re-homed, or the largest's rest
            assert (rng and rng[0] < b <= rng[1]) or k == ok[0] or k == SIZES[-1]


def test_home_of_covers_batches_outside_the_planned_pmf():
    paris = PARIS("utilization", 0.9, 0.5)
    paris.plan(_ctx(_knee_profile(), [{1: 0.5, 40: 0.5}], [1.0]))
    assert paris.last[0].home == {1: 1, 40: 7}
    assert [paris.home_of(0, b) for b in (1, 4, 5, 9, 12, 16, 64)] == [1, 1, 2, 3, 4, 7, 7]
    assert paris.home_of(1, 5) == 1  # a model without a plan: the smallest size


def test_paris_plans_batches_beyond_the_profiled_range_when_extrapolating():
    data = yaml.safe_load((SCENARIOS / "paper_resnet50.yaml").read_text())
    data["profiles"] = {"extrapolate": True}
    data["workload"]["batch"].update(max=400, median=64)
    sc = load_scenario(data)
    paris = PARIS()
    plan = paris.plan(engine.plan_context(sc, engine.load_profiles(sc), 0))
    _check_plan_uses_every_gpu(plan, 8)
    assert paris.last[0].home[400] == 7


# --------------------------------------------------------------------------- step 3: targets
TINY_PMF = {1: 0.5, 4: 0.3, 16: 0.2}
TINY_HOME = {1: 1, 4: 2, 16: 7}
CONST = {
    1: np.full(17, 0.010),
    2: np.full(17, 0.020),
    3: np.full(17, 0.015),
    4: np.full(17, 0.012),
    7: np.full(17, 0.040),
}


@pytest.mark.parametrize(
    ("weighting", "expected"),
    [
        # k * sum P(b) L(k, b): 1g 0.5*10ms*1, 2g 0.3*20ms*2, 7g 0.2*40ms*7 = 5 : 12 : 56
        ("gpc_time", {1: 5 / 73, 2: 12 / 73, 3: 0.0, 4: 0.0, 7: 56 / 73}),
        # k * sum P(b): 0.5, 0.6, 1.4
        ("count", {1: 0.2, 2: 0.24, 3: 0.0, 4: 0.0, 7: 0.56}),
        # k * sum P(b) b: 0.5, 2.4, 22.4
        ("batch", {1: 0.5 / 25.3, 2: 2.4 / 25.3, 3: 0.0, 4: 0.0, 7: 22.4 / 25.3}),
    ],
)
def test_size_targets(weighting, expected):
    got = size_targets(TINY_HOME, TINY_PMF, CONST, SIZES, weighting)
    assert got == pytest.approx(expected, abs=1e-12)


def test_size_targets_rejects_unknown_weighting():
    with pytest.raises(ValueError, match="weighting"):
        size_targets(TINY_HOME, TINY_PMF, CONST, SIZES, "latency")


@pytest.mark.parametrize(
    ("weighting", "share"),
    [
        ("count", {1: 0.2, 2: 0.24, 7: 0.56}),
        # L(1g,1) = 30 ms, L(2g,5) = 10 ms, L(7g,40) = 12.5 ms: 15 : 6 : 17.5
        ("gpc_time", {1: 15 / 38.5, 2: 6 / 38.5, 7: 17.5 / 38.5}),
        ("batch", {1: 0.5 / 59.5, 2: 3.0 / 59.5, 7: 56.0 / 59.5}),
    ],
)
def test_paris_gpc_shares_and_targets(weighting, share):
    paris = PARIS("utilization", 0.9, 0.5, weighting)
    plan = paris.plan(_ctx(_knee_profile(), [{1: 0.5, 5: 0.3, 40: 0.2}], [1.0], num_gpus=10))
    mp = paris.last[0]
    assert mp.home == {1: 1, 5: 2, 40: 7}
    expected = {k: share.get(k, 0.0) for k in SIZES}
    assert mp.gpc_share == pytest.approx(expected, abs=1e-12)
    assert mp.targets == pytest.approx({k: 70 * expected[k] / k for k in SIZES}, abs=1e-9)
    got = _gpcs_by_size(lay.sizes for lay in plan.layouts)
    assert sum(abs(got[k] - 70 * expected[k]) for k in SIZES) <= 14, got  # within 2 GPUs
    assert mp.counts == {k: got[k] // k for k in SIZES}


# --------------------------------------------------------------------------- step 4: packing
def _random_targets(seed: int, n: int) -> dict[int, float]:
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.full(5, 0.5)) * (rng.random(5) > 0.3)
    w = w if w.sum() > 0 else np.eye(5)[seed % 5]
    return dict(zip(SIZES, 7 * n * w / w.sum(), strict=True))


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 37])
@pytest.mark.parametrize("seed", range(4))
def test_pack_counts_fills_every_gpu_with_a_maximal_layout(n, seed):
    packed = pack_counts(GPU, n, _random_targets(seed, n))
    assert len(packed) == n
    for sizes in packed:
        assert sizes in MULTISETS
        assert hardware.is_maximal(hardware.layout_from_sizes(GPU, sizes))


@pytest.mark.parametrize("n", [1, 3, 8])
@pytest.mark.parametrize("size", SIZES)
def test_pack_counts_concentrated_target(size, n):
    target = {k: 7.0 * n if k == size else 0.0 for k in SIZES}
    got = _gpcs_by_size(pack_counts(GPU, n, target))
    assert got[size] == MAX_GPCS_OF[size] * n


@pytest.mark.parametrize("n", [3, 8, 50])
@pytest.mark.parametrize("big", SIZES)
def test_pack_counts_gives_every_wanted_size_a_partition(big, n):
    target = {k: 0.1 if k != big else 7.0 * n - 0.4 for k in SIZES}
    got = _gpcs_by_size(pack_counts(GPU, n, target))
    assert all(got[k] >= k for k in SIZES), got
    assert got[big] >= MAX_GPCS_OF[big] * (n - 3)  # three GPUs hold the others, the rest big


def _pack_cost(gpcs: np.ndarray, tgt: np.ndarray) -> np.ndarray:
    """pack_counts' objective: GPC-weighted L1, 1000 per wanted size left out, ties to more GPCs."""
    return (
        np.abs(gpcs - tgt).sum(-1)
        + 1000.0 * ((tgt > 0) & (gpcs == 0)).sum(-1)
        - 1e-3 * gpcs.sum(-1)
    )


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_pack_counts_matches_brute_force_on_small_clusters(n):
    types = hardware.size_multisets(GPU)
    mat = np.array([[t.count(k) * k for k in SIZES] for t in types], dtype=float)
    combos = np.array(list(itertools.combinations_with_replacement(range(len(types)), n)))
    all_gpcs = mat[combos].sum(axis=1)  # every multiset of n GPU types
    for seed in range(30):
        target = _random_targets(1000 * n + seed, n)
        tgt = np.array([target[k] for k in SIZES])
        got = np.array([_gpcs_by_size(pack_counts(GPU, n, target))[k] for k in SIZES], float)
        best = _pack_cost(all_gpcs, tgt).min()
        assert _pack_cost(got, tgt) <= best + 0.5, (seed, target)


# --------------------------------------------------------------------------- every GPU, every plan
@pytest.mark.parametrize("scenario", [*PAPER, "multi_model", "bursty", "diurnal_drift"])
@pytest.mark.parametrize("rule", ["utilization", "sla", "both"])
def test_every_gpu_used_in_scenario_plans(scenario, rule):
    ctx = _scenario_ctx(scenario)
    _check_plan_uses_every_gpu(PARIS(rule).plan(ctx), ctx.num_gpus)


@pytest.mark.parametrize("num_gpus", [1, 2, 3, 5, 13])
@pytest.mark.parametrize("pmf", [{1: 1.0}, {64: 1.0}, {1: 0.6, 9: 0.3, 40: 0.1}])
def test_every_gpu_used_in_synthetic_plans(num_gpus, pmf):
    ctx = _ctx(_knee_profile(), [pmf], [0.2], num_gpus=num_gpus)
    _check_plan_uses_every_gpu(PARIS("utilization").plan(ctx), num_gpus)


# --------------------------------------------------------------------------- several models
@pytest.mark.parametrize(
    ("n", "weights", "expected"),
    [
        (10, [3, 1, 1], [6, 2, 2]),
        (7, [1, 1], [4, 3]),
        (5, [1, 0, 1], [3, 0, 2]),  # a model without demand gets no GPU
        (4, [100, 1, 1], [2, 1, 1]),  # at least one GPU each
        (3, [100, 1, 1], [1, 1, 1]),
        (1000, [0.5, 0.3, 0.2], [500, 300, 200]),
    ],
)
def test_split_gpus(n, weights, expected):
    assert split_gpus(n, weights) == expected


@pytest.mark.parametrize("seed", range(20))
def test_split_gpus_is_proportional(seed):
    rng = np.random.default_rng(seed)
    w = rng.random(int(rng.integers(1, 6))) + 0.05
    n = int(rng.integers(len(w), 200))
    got = np.array(split_gpus(n, w.tolist()))
    exact = n * w / w.sum()
    assert got.sum() == n and (got >= 1).all()
    if (exact >= 1).all():  # the at-least-one rule does not bind: largest remainder
        assert np.abs(got - exact).max() < 1


def test_split_gpus_needs_a_gpu_per_model():
    with pytest.raises(ValueError, match="models need"):
        split_gpus(2, [1, 1, 1])


def _two_models(slow_factor: float, shares: list[float], num_gpus: int) -> PlanContext:
    fast = profiles.linear_profile("fast", GPU, 0.010, 0.001, max_batch=TOP)
    slow = profiles.linear_profile(
        "slow", GPU, 0.010 * slow_factor, 0.001 * slow_factor, max_batch=TOP
    )
    return _ctx(profiles.merge(fast, slow), [{1: 1.0}, {1: 1.0}], [1.0, 1.0], shares, num_gpus)


@pytest.mark.parametrize(
    ("slow_factor", "shares", "num_gpus", "expected"),
    [
        (1.0, [3.0, 1.0], 8, [6, 2]),  # same cost per query: by rate share
        (2.0, [1.0, 1.0], 9, [3, 6]),  # twice the GPC-seconds per query: twice the GPUs
        (3.0, [3.0, 1.0], 10, [5, 5]),
    ],
)
def test_gpus_split_between_models_by_demand(slow_factor, shares, num_gpus, expected):
    ctx = _two_models(slow_factor, shares, num_gpus)
    paris = PARIS()
    plan = paris.plan(ctx)
    _check_plan_uses_every_gpu(plan, num_gpus)
    assert [mp.gpus for mp in paris.last] == expected
    assert [sum(mods[0] == m for mods in plan.models) for m in range(2)] == expected
    for lay in plan.layouts:  # batch 1 is homed on 1g for both models
        assert lay.sizes == (1,) * 7


def test_multi_model_scenario_partitions_host_one_model_each():
    ctx = _scenario_ctx("multi_model")
    paris = PARIS()
    plan = paris.plan(ctx)
    _check_plan_uses_every_gpu(plan, ctx.num_gpus)
    per_model = Counter(mods[0] for mods in plan.models)
    assert [mp.gpus for mp in paris.last] == [per_model[m] for m in range(3)]
    assert sum(per_model.values()) == ctx.num_gpus and min(per_model.values()) >= 1
    for m, mp in enumerate(paris.last):  # each model's counts are its own GPUs' partitions
        sizes = [
            k
            for lay, mods in zip(plan.layouts, plan.models, strict=True)
            if mods[0] == m
            for k in lay.sizes
        ]
        assert mp.counts == {k: sizes.count(k) for k in SIZES}


# --------------------------------------------------------------------------- scale
def test_paris_plans_1000_gpus(record_property):
    ctx = _scenario_ctx("paper_resnet50", num_gpus=1000)
    t0 = time.perf_counter()
    plan = PARIS().plan(ctx)
    record_property("paris_plan_1000_gpus_s", time.perf_counter() - t0)  # benchmarks own targets
    _check_plan_uses_every_gpu(plan, 1000)
    multi = _scenario_ctx("multi_model", num_gpus=1000)
    _check_plan_uses_every_gpu(PARIS().plan(multi), 1000)


# --------------------------------------------------------------------------- PARIS_tuned
def _key(plan: Plan) -> tuple:
    return tuple(lay.sizes for lay in plan.layouts), plan.models


def test_paris_tuned_candidates_are_distinct_and_best_is_chosen():
    ctx = _scenario_ctx("paper_resnet50")

    def score(plan: Plan, n: int) -> tuple[float, float]:  # any deterministic score
        g = _gpcs_by_size(lay.sizes for lay in plan.layouts)
        return (abs(g[7] - 14) / 56, float(g[1]))

    tuned = PARISTuned(trial_queries=123, scorer=score)
    cands = tuned.candidates(ctx)
    assert len(cands) > 1 and len({_key(p) for p, _ in cands}) == len(cands)
    chosen = tuned.plan(ctx)
    assert len(tuned.scores) == len(cands)
    assert score(chosen, 0) == min((v, p95) for _, v, p95 in tuned.scores)
    assert tuned.best is not None and tuned.home_of(0, 1) == tuned.best.home_of(0, 1)


def test_paris_tuned_keeps_the_best_simulated_plan():
    run = engine.build(
        SCENARIOS / "paper_resnet50.yaml", "paris_tuned[trial_queries=1000]+elsa", num_queries=1000
    )
    tuned = run.policy.partitioner
    assert len(tuned.scores) == len(tuned.candidates(run.context)) > 1
    chosen = [g.layout for g in run.sim.gpus], [g.models for g in run.sim.gpus]
    plan = Plan(tuple(chosen[0]), tuple(chosen[1]))
    score = engine._trial_score(run.scenario, run.seed, plan, 1000)
    assert score == min((v, p95) for _, v, p95 in tuned.scores)


def test_paris_tuned_needs_a_scorer():
    with pytest.raises(RuntimeError, match="scorer"):
        PARISTuned().plan(_scenario_ctx("paper_resnet50"))


# --------------------------------------------------------------------------- periodic PARIS
class _ArrivalSource:
    """The part of a Simulator that a re-planning partitioner attaches to."""

    def __init__(self, num_models: int) -> None:
        self.num_models = num_models
        self.observers: list = []

    def observe(self, observer) -> None:
        self.observers.append(observer)

    def arrive(self, counts: list[dict[int, int]]) -> None:
        for m, c in enumerate(counts):
            for b, n in c.items():
                for _ in range(n):
                    for o in self.observers:
                        o.on_arrival(m, b)


def test_periodic_replan_uses_observed_batches_and_clears_them():
    ctx = _ctx(_knee_profile(), [{1: 1.0}], [1.0], num_gpus=4)
    periodic = PeriodicPARIS(10.0, PARIS("utilization", 0.9), prior=0.0)
    first = periodic.plan(ctx)
    assert all(lay.sizes == (1,) * 7 for lay in first.layouts)
    sim = _ArrivalSource(1)
    assert periodic.replan(ctx, sim) is None  # not attached: nothing observed
    periodic.attach(sim)
    sim.arrive([{40: 30, 50: 10}])
    plan = periodic.replan(ctx, sim)
    assert periodic.counts is not None and periodic.counts.counts == [{}]
    assert periodic.pmfs == [{40: 0.75, 50: 0.25}]
    assert plan is not None and all(lay.sizes == (7,) for lay in plan.layouts)
    assert periodic.replan(ctx, sim) is None  # nothing observed since


def test_periodic_replan_keeps_the_distribution_of_an_unseen_model():
    ctx = _two_models(1.0, [1.0, 1.0], 4)
    periodic = PeriodicPARIS(10.0, prior=0.0)
    periodic.plan(ctx)
    sim = _ArrivalSource(2)
    periodic.attach(sim)
    sim.arrive([{}, {8: 2, 16: 2}])
    periodic.replan(ctx, sim)
    assert periodic.pmfs == [{1: 1.0}, {8: 0.5, 16: 0.5}]
    assert periodic.counts is not None and periodic.counts.counts == [{}, {}]


def test_periodic_prior_keeps_the_scenario_distribution_in_view():
    ctx = _ctx(_knee_profile(), [{1: 0.5, 64: 0.5}], [1.0], num_gpus=4)
    periodic = PeriodicPARIS(10.0, prior=0.1)
    periodic.plan(ctx)
    sim = _ArrivalSource(1)
    periodic.attach(sim)
    sim.arrive([{2: 10}])
    periodic.replan(ctx, sim)
    assert periodic.pmfs[0] == pytest.approx({1: 0.05, 2: 0.9, 64: 0.05})
    with pytest.raises(ValueError, match="prior"):
        PeriodicPARIS(10.0, prior=1.0)


def _drift_scenario() -> dict:
    """Small batches for 20 s, then large ones; re-planned every 5 s."""
    small = {"kind": "lognormal", "median": 2, "sigma": 0.3, "max": 128}
    large = {"kind": "lognormal", "median": 48, "sigma": 0.3, "max": 128}
    return {
        "name": "drift_check",
        "seed": 0,
        "cluster": {"gpu": GPU, "num_gpus": 4, "reconfig_s": 1.0},
        "models": [{"name": "resnet50", "slo_ms": 100}],
        "workload": {
            "arrivals": {"kind": "poisson", "rate_qps": 120},
            "batch": small,
            "phases": [{"start_s": 20, "batch": large}],
        },
        "policy": {
            "partitioner": {"kind": "periodic_paris", "epoch_s": 5},
            "dispatcher": {"kind": "elsa"},
        },
        "run": {"num_queries": 6000, "warmup_queries": 100},
    }


def test_periodic_paris_follows_drift():
    run = engine.build(_drift_scenario())
    mean_size = {}
    while (d := run.sim.run_until_decision()) is not None:
        if d.kind == "epoch":
            run.step_epoch(d)
            targets = [g.target[0] if g.target else g.layout for g in run.sim.gpus]
            sizes = [k for lay in targets for k in lay.sizes]
            mean_size[round(d.time_s)] = sum(sizes) / len(sizes)
    run.sim.check_conservation()
    s = run.summary()
    assert s.reconfigurations > 0
    assert s.conserved and s.in_system == 0 and s.arrived == 6000
    assert s.completed + s.rejected == 6000
    assert mean_size[15] < 2 and mean_size[45] > 3  # small partitions, then large ones


def test_periodic_paris_through_simulate_conserves_queries():
    s = mig_gym.simulate(_drift_scenario(), num_queries=3000)
    assert s.reconfigurations > 0 and s.conserved and s.in_system == 0
