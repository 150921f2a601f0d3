"""Property-based and metamorphic tests of a run's accounting over generated scenarios (issue 11).

Each example is a small scenario (1-4 A100s, one or two models, 50-400 queries, a layout, a
dispatcher, a batch mix and load that range from idle to every query rejected, faults on a coarse
time grid so that failures and recoveries often coincide, noise or none, drained or not) run on
the fast path or on the event loop (``fast``; runs that cannot take the fast path take the event
loop either way). The properties, with the definitions of ``Summary`` and docs/metrics.md:

- every rate in [0, 1] (overall and per model, and each time-series row), NaN exactly where
  documented; arrived = completed + rejected + unfinished, and the measured population per model
  is the generated stream's (counted here from the stream, not from the recorder);
- ``run.window_s`` changes only the time series: the ``Summary`` is the same;
- adding a fault never adds available GPC-seconds (the Summary has no such field: it is derived
  here from ``downtime_s``, and checked against the recorder's integral of capacity);
- renumbering the GPUs of a cluster leaves the ``Summary`` unchanged: a symmetric one (the same
  layout on every GPU, faults closed under the renumbering, hence simultaneous) under every
  dispatcher, and a heterogeneous one (layouts permuted) under the rules whose ties depend only
  on partition classes (not FIFS or round-robin: they prefer lower-numbered GPUs by design);
- the work of a run (time-series windows closed, event-heap entries) is bounded by its events:
  the same number of queries over a span a billion times longer, or with a window a million
  times shorter, costs no more.

Examples are fixed (``derandomize``) so the suite is deterministic.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mig_gym
from mig_gym import workload
from mig_gym.metrics import Summary
from mig_gym.runs.build import Run
from mig_gym.scenario import load_scenario

from .conftest import assert_close
from .test_simulator import layout, make_sim, tables

PROPS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SLO_MS = {"resnet50": 100.0, "mobilenetv2": 65.0, "bert": 900.0}
# layouts of 7 GPCs each (so that every GPU offers the same capacity whatever its layout)
LAYOUTS = ((7,), (4, 3), (4, 2, 1), (3, 2, 2), (2, 2, 2, 1), (4, 1, 1, 1), (1,) * 7)
DISPATCHERS = ("elsa", "fifs", "earliest_finish", "jsq", "round_robin", "random", "fifs_push")
FAST_FORMS = ("elsa", "fifs", "earliest_finish", "fifs_push")  # the rules a static run runs fast
CLASS_RANK_RULES = ("elsa", "earliest_finish", "jsq")  # ties broken within a size class only
BATCHES = (
    {"kind": "lognormal", "median": 2.0, "sigma": 0.9, "max": 128},
    {"kind": "lognormal", "median": 8.0, "sigma": 0.9, "max": 128},
    {"kind": "lognormal", "median": 32.0, "sigma": 0.9, "max": 128},
    {"kind": "fixed", "value": 1},
    {"kind": "fixed", "value": 128},  # on 1g partitions: every query rejected (issue 11 item 3)
    {"kind": "empirical", "pmf": {1: 0.5, 64: 0.3, 128: 0.2}},  # some rejected on small ones
)
GRID = (0.0, 0.1, 0.25, 0.5, 0.8)  # fault times as fractions of the arrival span
REL = 1e-9


# --------------------------------------------------------------------------- generated scenarios
def _partitioner(draw: st.DrawFn, num_gpus: int, symmetric: bool) -> dict[str, Any]:
    kinds = (
        ["homogeneous", "fixed_one"]
        if symmetric
        else ["homogeneous", "fixed_one", "fixed", "paris"]
    )
    kind = draw(st.sampled_from(kinds))
    if kind == "homogeneous":  # (1g twice as often: small partitions reject large batches)
        return {"kind": "homogeneous", "gpcs": draw(st.sampled_from((1, 1, 2, 3, 4, 7)))}
    if kind == "fixed_one":
        return {"kind": "fixed", "layouts": [list(draw(st.sampled_from(LAYOUTS)))]}
    if kind == "fixed":
        lays = draw(st.lists(st.sampled_from(LAYOUTS), min_size=num_gpus, max_size=num_gpus))
        return {"kind": "fixed", "layouts": [list(x) for x in lays]}
    return {"kind": "paris"}


def _faults(draw: st.DrawFn, num_gpus: int, span_s: float, most: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(draw(st.integers(0, most))):
        down = draw(st.sampled_from(GRID)) * span_s
        dur = draw(st.sampled_from((None, 0.1, 0.25, 0.5)))
        out.append({
            "gpu": draw(st.integers(0, num_gpus - 1)),
            "down_at_s": down,
            "up_at_s": None if dur is None else down + dur * span_s,
        })  # fmt: skip
    return out


@st.composite
def scenarios(
    draw: st.DrawFn,
    *,
    symmetric: bool = False,
    one_model: bool = False,
    max_faults: int = 3,
    dispatchers: tuple[str, ...] = DISPATCHERS,
    noise: bool = True,
) -> dict[str, Any]:
    """A small scenario as a dict (see the module docstring); half of them static (no faults,
    no noise, drained, a rule with a fast form), so that they can take the fast path."""
    static = draw(st.booleans())
    if static:
        dispatchers = tuple(x for x in dispatchers if x in FAST_FORMS) or dispatchers
    g = draw(st.integers(1, 4))
    nm = 1 if one_model else draw(st.integers(1, min(2, g)))
    names = draw(st.permutations(sorted(SLO_MS)))[:nm]
    slo_scale = draw(st.sampled_from((0.3, 1.0, 3.0)))
    n = draw(st.integers(50, 400))
    rate = draw(st.sampled_from((30.0, 100.0, 300.0, 1000.0, 3000.0)))
    span = n / rate
    return {
        "name": "generated",
        "seed": draw(st.integers(0, 2**16)),
        "cluster": {"gpu": "A100-80GB", "num_gpus": g},
        "models": [
            {"name": m, "slo_ms": SLO_MS[m] * slo_scale, "share": draw(st.sampled_from((1.0, 2.0)))}
            for m in names
        ],
        "workload": {
            "arrivals": {"kind": "poisson", "rate_qps": rate},
            "batch": draw(st.sampled_from(BATCHES)),
            "service_cv": draw(st.sampled_from((0.0, 0.3))) if noise and not static else 0.0,
        },
        "policy": {
            "partitioner": _partitioner(draw, g, symmetric),
            "dispatcher": {"kind": draw(st.sampled_from(dispatchers))},
        },
        "run": {
            "num_queries": n,
            "warmup_queries": draw(st.integers(0, n // 4)),
            "window_s": draw(st.sampled_from((1e-4, 0.01, 0.1, 1.0, 10.0))),
            "drain": static or draw(st.booleans()),
        },
        "faults": [] if static else _faults(draw, g, span, max_faults),
    }


def _run(d: dict[str, Any], fast: bool) -> tuple[Run, Summary]:
    run = mig_gym.build(load_scenario(d), fast=fast)
    s = run.execute()
    static = not d.get("faults") and d["run"].get("drain", True)
    static = static and not d["workload"].get("service_cv", 0.0)
    if not fast or not static:
        assert run.loop == "events", run.loop_note
    return run, s


def _with(d: dict[str, Any], *changes: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    """A deep copy of ``d`` with ``changes`` applied in turn (each changes the copy in place)."""
    out = copy.deepcopy(d)
    for f in changes:
        f(out)
    return out


def _aggregates(s: Summary) -> dict[str, Any]:
    d = s.to_dict()
    del d["scenario"]
    return d


# --------------------------------------------------------------------------- rates and counts
def _stream_counts(d: dict[str, Any]) -> np.ndarray:
    """Measured queries per model, from the generated stream (not from the run)."""
    sc = load_scenario(d)
    qs = workload.QueryStream(
        sc.workload, sc.model_names, [m.share for m in sc.models], sc.seed, sc.run.num_queries
    )
    models = np.concatenate([b.model for b in qs.blocks()])
    assert len(models) == sc.run.num_queries
    return np.bincount(models[sc.run.warmup_queries :], minlength=len(sc.models))


def _in_unit(x: float, what: str) -> None:
    assert 0.0 <= x <= 1.0, (what, x)


@PROPS
@given(scenarios(), st.booleans())
def test_rates_in_unit_interval_and_every_query_accounted(d, fast):
    _check_rates_and_counts(d, fast)


def _issue_case(partitioner: dict, batch: dict, faults: list[dict]) -> dict[str, Any]:
    return {
        "cluster": {"num_gpus": 2},
        "workload": {"arrivals": {"kind": "poisson", "rate_qps": 300.0}, "batch": batch},
        "policy": {"partitioner": partitioner, "dispatcher": {"kind": "elsa"}},
        "run": {"num_queries": 400, "warmup_queries": 40, "window_s": 0.1},
        "faults": faults,
    }


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "events"])
def test_every_query_rejected_is_a_violation_rate_of_one(fast):
    # Issue 11 item 3: homo1 with batch 128 rejects everything; the rate was 0.98 overall (the
    # warm-up's rejections in the denominator only) and 490.0 per model.
    d = _issue_case({"kind": "homogeneous", "gpcs": 1}, {"kind": "fixed", "value": 128}, [])
    s = _check_rates_and_counts(d, fast)
    assert s.rejected == s.arrived == 400 and s.measured == s.violations == 360
    assert s.sla_violation_rate == 1.0 and s.by_model["resnet50"]["sla_violation_rate"] == 1.0


@pytest.mark.parametrize("dispatcher", ["elsa", "fifs"])
def test_a_dead_cluster_reports_what_it_failed_to_serve(dispatcher):
    # Issue 11 item 4: every GPU fails for good at 0.2 s; the rate was 0 and downtime_s 0.
    dead = [{"gpu": g, "down_at_s": 0.2, "up_at_s": None} for g in (0, 1)]
    d = _issue_case({"kind": "paris"}, BATCHES[1], dead)
    d["policy"]["dispatcher"]["kind"] = dispatcher
    s = _check_rates_and_counts(d, False)
    assert s.unfinished > 0 and s.unfinished_late > 0 and s.completed + s.unfinished == 400
    late = s.by_model["resnet50"]["unfinished_late"]  # (measured; the overall count has all)
    assert s.sla_violation_rate >= late / s.measured > 0.5 and late <= s.unfinished_late
    assert s.downtime_failure_s == pytest.approx(2 * (s.sim_time_s - 0.2))


def _check_rates_and_counts(d: dict[str, Any], fast: bool) -> Summary:
    """Run ``d`` and check the rates and counts of its Summary (see the module docstring)."""
    run, s = _run(d, fast)
    # every rate in [0, 1], overall, per model, per partition size and per time-series row
    _in_unit(s.sla_violation_rate, "sla_violation_rate")
    _in_unit(s.utilization, "utilization")
    for k, u in s.utilization_by_size.items():
        _in_unit(u, f"utilization_by_size[{k}]")
    for name, row in s.by_model.items():
        _in_unit(row["sla_violation_rate"], f"by_model[{name}]")
    for i, row in enumerate(run.recorder.series):
        _in_unit(row["sla_violation_rate"], f"series[{i}].sla_violation_rate")
        _in_unit(row["utilization"], f"series[{i}].utilization")
    # arrived = completed + rejected + unfinished, overall and per model (measured population)
    sc = load_scenario(d)
    n, warm = sc.run.num_queries, sc.run.warmup_queries
    assert s.arrived == n and s.conserved and s.unfinished == s.queued + s.running
    assert s.rejected == sum(s.rejected_by_reason.values())
    assert s.measured == n - warm and 0 <= s.violations <= s.measured
    assert s.unfinished_late <= s.unfinished
    per_model = _stream_counts(d)
    for m, name in enumerate(sc.model_names):
        row = s.by_model[name]
        assert row["measured"] == per_model[m], name
        assert row["completed"] + row["rejected"] + row["unfinished"] == row["measured"], name
        assert row["unfinished_late"] <= row["unfinished"] and row["violations"] <= row["measured"]
        assert math.isnan(row["latency_mean_ms"]) == (row["completed"] == 0), name
    for key in ("measured", "violations"):
        assert sum(r[key] for r in s.by_model.values()) == getattr(s, key), key
    for key in ("completed", "rejected", "unfinished", "unfinished_late"):  # of every query
        part = sum(r[key] for r in s.by_model.values())
        assert part == getattr(s, key) if warm == 0 else part <= getattr(s, key), key
    measured_done = sum(r["completed"] for r in s.by_model.values())
    if s.measured:
        assert s.sla_violation_rate == s.violations / s.measured
    # NaN only where documented: no measured completion, no latency
    for key in ("mean", "p50", "p95", "p99", "max"):
        assert math.isnan(getattr(s, f"latency_{key}_ms")) == (measured_done == 0), key
    if measured_done:
        assert s.latency_p50_ms <= s.latency_p95_ms <= s.latency_p99_ms
        assert s.latency_p99_ms <= s.latency_max_ms * (1 + s.percentile_relative_error)
    if not math.isnan(s.throughput_qps):
        assert 0.0 <= s.goodput_qps <= s.throughput_qps
    assert s.downtime_s == pytest.approx(s.downtime_reconfig_s + s.downtime_failure_s, rel=REL)
    assert s.downtime_reconfig_s == 0.0 and s.reconfigurations == 0  # no re-partitioning here
    return s


# --------------------------------------------------------------------------- window_s
@PROPS
@given(scenarios(), st.booleans(), st.sampled_from((1e-6, 3e-3, 0.7, 1e4)))
def test_window_s_changes_only_the_time_series(d, fast, window_s):
    _, a = _run(d, fast)
    _, b = _run(_with(d, lambda x: x["run"].update(window_s=window_s)), fast)
    assert_close(a.to_dict(), b.to_dict())


# --------------------------------------------------------------------------- capacity
def _downtime_union_s(faults: list[dict[str, Any]], end_s: float) -> float:
    """GPU-seconds in the union of each GPU's fault intervals, clipped to [0, end_s]."""
    total = 0.0
    for g in {f["gpu"] for f in faults}:
        ivs = sorted(
            (f["down_at_s"], math.inf if f["up_at_s"] is None else f["up_at_s"])
            for f in faults
            if f["gpu"] == g
        )
        lo, hi = ivs[0]
        for a, b in ivs[1:]:
            if a > hi:
                total += min(hi, end_s) - min(lo, end_s)
                lo, hi = a, b
            else:
                hi = max(hi, b)
        total += min(hi, end_s) - min(lo, end_s)
    return total


def _available_gpc_s(d: dict[str, Any], run: Run, s: Summary) -> float:
    """Available GPC-seconds of the run, derived from the Summary: every GPU offers the same GPCs
    (7-GPC layouts or one homogeneous layout), except while it is down (``downtime_s``)."""
    layout = run.policy.partitioner.plan(run.context).layouts[0]
    gpcs, num = sum(p.profile.gpcs for p in layout.placements), d["cluster"]["num_gpus"]
    derived = gpcs * (num * s.sim_time_s - s.downtime_s)
    assert derived == pytest.approx(run.recorder.avail_s, rel=REL, abs=1e-9)
    return derived


@PROPS
@given(scenarios(symmetric=True, max_faults=2), st.data())
def test_adding_a_fault_never_adds_available_gpc_seconds(d, data):
    # Without drain the run ends at the last arrival, which no fault moves: one horizon for both.
    d = _with(d, lambda x: x["run"].update(drain=False))
    span_s = d["run"]["num_queries"] / d["workload"]["arrivals"]["rate_qps"]
    extra = _faults(data.draw, d["cluster"]["num_gpus"], span_s, 1)
    more = _with(
        d, lambda x: x["faults"].extend(extra or [{"gpu": 0, "down_at_s": 0.0, "up_at_s": None}])
    )
    (ra, a), (rb, b) = _run(d, False), _run(more, False)
    assert a.sim_time_s == b.sim_time_s
    for f, s in ((d["faults"], a), (more["faults"], b)):
        assert s.downtime_failure_s == pytest.approx(_downtime_union_s(f, s.sim_time_s), abs=1e-9)
    assert b.downtime_failure_s >= a.downtime_failure_s - 1e-9
    assert _available_gpc_s(more, rb, b) <= _available_gpc_s(d, ra, a) + 1e-9


# --------------------------------------------------------------------------- renumbering GPUs
# Every rule breaks a tie between idle partitions deterministically (the lowest-numbered GPU), so
# renumbering GPUs can change a run unless the GPUs it exchanges are interchangeable: the same
# faults (hence failing and recovering at the same instants) and, for rules whose ties span
# sizes (FIFS, FIFS-push, round-robin, random), the same layout. E.g. two 7g GPUs under ELSA at
# 150 q/s with a 1-3 s failure of GPU 0, or the same failure of GPU 1: mean latency 16.620 vs
# 16.607 ms. The renumberings below exchange only interchangeable GPUs.
def _renumbered(d: dict[str, Any], perm: list[int], shuffle: random.Random) -> dict[str, Any]:
    """``d`` with GPU ``g`` renamed ``perm[g]``: its layout (if given per GPU) and faults move
    with it; the fault list is also shuffled."""
    out = _with(d)
    lays = out["policy"]["partitioner"].get("layouts")
    if lays is not None and len(lays) > 1:
        moved = [None] * len(lays)
        for g, lay in enumerate(lays):
            moved[perm[g]] = lay
        out["policy"]["partitioner"]["layouts"] = moved
    out["faults"] = [{**f, "gpu": perm[f["gpu"]]} for f in out["faults"]]
    shuffle.shuffle(out["faults"])
    return out


def _group_faults(draw: st.DrawFn, groups: list[int], span_s: float) -> list[dict[str, Any]]:
    """Outages shared by every GPU of a group (``groups[g]``: GPU g's group; group 0 none)."""
    out = []
    for grp in sorted(set(groups) - {0}):
        for f in _faults(draw, 1, span_s, 2):
            out += [{**f, "gpu": g} for g, x in enumerate(groups) if x == grp]
    return out


def _within_groups(draw: st.DrawFn, groups: list[int]) -> list[int]:
    """A renumbering that moves each GPU to a position of its own group."""
    perm = list(range(len(groups)))
    for grp in set(groups):
        members = [g for g, x in enumerate(groups) if x == grp]
        for g, to in zip(members, draw(st.permutations(members)), strict=True):
            perm[g] = to
    return perm


@PROPS
@given(
    scenarios(one_model=True, max_faults=0, dispatchers=CLASS_RANK_RULES),
    st.booleans(),
    st.data(),
)
def test_renumbering_gpus_of_other_layouts_under_class_rules(d, fast, data):
    # Layouts per GPU, renumbered with them: ELSA, earliest-finish and JSQ break ties only within
    # a size class, so exchanging GPUs with the same faults changes nothing but which GPU holds
    # what; their shared failures and recoveries are simultaneous, handled in another GPU order.
    g, span_s = d["cluster"]["num_gpus"], d["run"]["num_queries"] / 300.0
    lays = [list(data.draw(st.sampled_from(LAYOUTS))) for _ in range(g)]
    groups = data.draw(st.lists(st.sampled_from((0, 1, 2)), min_size=g, max_size=g))
    d = _with(d, lambda x: x["policy"].update(partitioner={"kind": "fixed", "layouts": lays}))
    d["faults"] = _group_faults(data.draw, groups, span_s)
    other = _renumbered(d, _within_groups(data.draw, groups), random.Random(0))
    assert_close(_aggregates(_run(d, fast)[1]), _aggregates(_run(other, fast)[1]))


def _closed_under(faults: list[dict[str, Any]], perm: list[int]) -> list[dict[str, Any]]:
    """``faults`` with every image under the powers of ``perm`` added: a fault set that the
    renumbering maps onto itself (so the GPUs of a cycle fail and recover at the same instants)."""
    out = []
    for f in faults:
        g = f["gpu"]
        while True:
            out.append({**f, "gpu": g})
            g = perm[g]
            if g == f["gpu"]:
                break
    return out


@PROPS
@given(scenarios(symmetric=True, one_model=True), st.booleans(), st.data())
def test_renumbering_a_symmetric_cluster_under_any_rule(d, fast, data):
    # The same layout on every GPU and faults closed under the renumbering: the renumbered
    # cluster is the same one, its simultaneous faults listed in another order (issue 11 item 5:
    # "GPU 7 first"). Under every rule, push and pull.
    perm = data.draw(st.permutations(range(d["cluster"]["num_gpus"])))
    d = _with(d, lambda x: x.update(faults=_closed_under(x["faults"], perm)))
    other = _renumbered(d, perm, random.Random(data.draw(st.integers(0, 99))))
    assert_close(_aggregates(_run(d, fast)[1]), _aggregates(_run(other, fast)[1]))


@PROPS
@given(
    st.lists(st.sampled_from(LAYOUTS), min_size=2, max_size=4),
    st.data(),
    st.booleans(),
)
def test_simultaneous_reconfigurations_in_any_order(layouts, data, central):
    # Every GPU is idle at the epoch (t = 100), so all drain at once and come back together at
    # 110 with new layouts; queries arriving meanwhile wait. Requesting the reconfigurations in
    # any order gives the same run, under push (earliest finish) and pull (FIFS).
    g = len(layouts)
    targets = [data.draw(st.sampled_from(LAYOUTS)) for _ in range(g)]
    order = data.draw(st.permutations(range(g)))
    early = sorted(data.draw(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=4)))
    late = sorted(data.draw(st.lists(st.floats(100.5, 109.5), min_size=1, max_size=12)))
    times = early + late
    batches = data.draw(st.lists(st.integers(1, 3), min_size=len(times), max_size=len(times)))
    per_item = {7: 1.0, 4: 1.2, 3: 1.4, 2: 3.0, 1: 4.0}
    runs = []
    for calls in (range(g), order):
        sim = make_sim(times, batches, gpus=tuple(layouts), lat=tables(per_item_s=per_item),
                       epoch_s=100.0, reconfig_s=10.0, central=central)  # fmt: skip
        while (dec := sim.run_until_decision()) is not None:
            if dec.epoch == 1:
                for i in calls:
                    sim.reconfigure(i, layout(*targets[i]), (0,) * len(targets[i]))
        sim.check_conservation()
        runs.append(sim.rec.done)
    assert runs[0] == runs[1]


# --------------------------------------------------------------------------- work
def _event_bound(s: Summary, d: dict[str, Any]) -> tuple[int, int]:
    """Upper bounds on windows closed and heap entries from the run's events alone. A window
    closes once, and so does each run of empty windows after a window with an event (an arrival,
    completion, rejection or aborted service) or a capacity change (a failure or recovery). A
    heap entry is a service started (completed, aborted by a failure or still running), a
    failure or a recovery."""
    events = s.arrived + s.completed + s.rejected + s.retried + 2 * len(d["faults"])
    starts = s.completed + s.retried + s.running
    return 2 * events + 2, starts + 2 * len(d["faults"])


@PROPS
@given(scenarios(max_faults=2), st.booleans(), st.sampled_from((1e-3, 1e-6, 1e-9)))
def test_work_is_bounded_by_events_not_by_span(d, fast, slower):
    # The same queries at a rate ``slower`` times lower: a span up to 1e9 times longer (fault
    # times scale with it), and a window a million times shorter than the span's share.
    def stretch(x: dict[str, Any]) -> None:
        x["workload"]["arrivals"]["rate_qps"] *= slower
        for f in x["faults"]:
            f["down_at_s"] /= slower
            f["up_at_s"] = None if f["up_at_s"] is None else f["up_at_s"] / slower

    for case in (_with(d, stretch), _with(d, lambda x: x["run"].update(window_s=1e-6))):
        run, s = _run(case, fast)
        windows, heap = run.recorder.windows_closed, run.sim.events_scheduled
        max_windows, max_heap = _event_bound(s, case)
        assert len(run.recorder.series) <= windows <= max_windows, (windows, max_windows)
        assert heap <= (0 if run.loop == "fast" else max_heap), (heap, max_heap)


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "events"])
@pytest.mark.parametrize(
    ("rate_qps", "n", "window_s"),
    [(1e-6, 50, 10.0), (1200.0, 2000, 1e-6)],
    ids=["50q-at-1e-6qps", "window-1e-6s"],
)
def test_the_issue_runs_cost_what_their_events_cost(rate_qps, n, window_s, fast):
    # Issue 11 item 2: 50 queries at 1e-6 q/s (51 s, 5.2 GB) and window_s 1e-6 with 2,000
    # queries (> 120 s) before windows were bounded by events.
    d = {
        "run": {"num_queries": n, "warmup_queries": 0, "window_s": window_s},
        "workload": {"arrivals": {"kind": "poisson", "rate_qps": rate_qps}},
    }
    run = mig_gym.build(load_scenario(d), fast=fast)
    s = run.execute()
    assert run.loop == ("fast" if fast else "events") and s.completed == n
    max_windows, max_heap = _event_bound(s, {"faults": []})
    assert run.recorder.windows_closed <= max_windows
    assert len(run.recorder.series) <= run.recorder.windows_closed
    assert run.sim.events_scheduled <= (0 if fast else max_heap)
    assert sum(r["avail_gpc_s"] for r in run.recorder.series) == pytest.approx(
        run.recorder.avail_s, rel=REL
    )
