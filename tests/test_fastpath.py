"""The fast path (mig_gym.sim.fast) against the event loop it replaces for static runs.

Both simulate the same model; they may differ only by floating-point rounding (the event loop
keeps estimated free times as running sums and adds metrics in another order), so counts must be
identical and every float equal to 1e-9 relative. Also: which runs take which loop, and the
Recorder's bulk recording against its per-event calls on hand-made events.
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mig_gym
from mig_gym.hardware import valid_layouts
from mig_gym.metrics import Completions, Recorder, Rejections, Summary
from mig_gym.metrics import recorder as recorder_module
from mig_gym.policies.dispatch.baselines import FirstFree
from mig_gym.policies.dispatch.elsa import ELSA
from mig_gym.policies.dispatch.fastform import FastRule
from mig_gym.policies.registry import DISPATCHERS
from mig_gym.scenario import config as C
from mig_gym.scenario import replace_in
from mig_gym.sim import fast as fastpath
from mig_gym.sim.entities import Plan

from .conftest import assert_close
from .test_simulator import LogRecorder, make_sim, tables

SIZES = (1, 2, 3, 4, 7)

SCEN = Path(__file__).resolve().parent.parent / "scenarios"
REL = 1e-9


def _both(sc: C.Scenario, policy: str | None, n: int, load: float = 1.0, plan=None, disp=None):
    out = []
    for fast in (True, False):
        run = mig_gym.build(sc, policy, None, n, load, plan=plan, fast=fast)
        if disp is not None:
            run.sim.dispatcher = disp()
        s = run.execute()
        out.append((run, s))
    (rf, sf), (re, se) = out
    assert (rf.loop, re.loop) == ("fast", "events")
    return rf, sf, re, se


def _assert_same(rf, sf, re, se) -> None:
    assert_close(sf.to_dict(), se.to_dict())
    assert len(rf.recorder.series) == len(re.recorder.series)
    for a, b in zip(rf.recorder.series, re.recorder.series, strict=True):
        assert_close(a, b)
    assert rf.sim.now == pytest.approx(re.sim.now, rel=REL)
    assert sf.conserved and sf.in_system == 0


CASES = [
    ("paper_resnet50", "paris+elsa", 1.0),
    ("paper_resnet50", "paris+earliest_finish", 1.1),
    ("paper_resnet50", "homo1+elsa", 1.3),  # overloaded; batches > 45 do not fit a 1g: rejected
    ("paper_resnet50", "homo7+earliest_finish", 0.8),
    ("paper_mobilenet", "random+elsa", 1.0),
    ("paper_bert", "homo1+earliest_finish", 1.0),
    ("multi_model", "paris+elsa", 1.0),
    ("multi_model", "paris+earliest_finish", 1.2),
    ("bursty", "scenario+elsa", 1.0),
    ("diurnal_drift", "paris+elsa", 1.0),
    ("paper_resnet50", "homo7+fifs", 1.0),  # FIFS as plain FCFS
    ("paper_resnet50", "homo1+fifs", 1.3),  # ... with rejections, overloaded
    ("paper_bert", "homo2+fifs", 1.1),
    ("multi_model", "homo7+fifs", 1.0),
    ("paper_bert", "paris+fifs", 1.0),  # mixed sizes, every batch fits every size: FCFS
    ("paper_resnet50", "paris+fifs", 1.0),  # a 1g cannot hold large batches: they overtake
    ("paper_mobilenet", "random+fifs", 1.2),
    ("multi_model", "paris+fifs", 1.1),
    ("bursty", "paris+fifs", 1.0),
]
# every registered rule with a fast form, on a whole run (from the registry: new rules too)
CASES += [
    ("paper_resnet50", f"paris+{n}", 1.1)
    for n, e in DISPATCHERS.items()
    if (e.rule.central_queue or issubclass(e.rule, FastRule))
    and ("paper_resnet50", f"paris+{n}") not in {c[:2] for c in CASES}
]


@pytest.mark.parametrize(("name", "policy", "load"), CASES)
def test_fast_path_matches_event_loop(name, policy, load):
    sc = mig_gym.load_scenario(SCEN / f"{name}.yaml")
    sc = replace_in(sc, "run.window_s", 0.5)  # many windows: services straddle their edges
    rf, sf, re, se = _both(sc, policy, 30_000, load)
    _assert_same(rf, sf, re, se)
    if name == "paper_resnet50" and policy.startswith("homo1"):
        assert sf.rejected_by_reason["batch_exceeds_partition_memory"] > 0


def test_fast_path_matches_with_elsa_home_scan_and_alpha():
    sc = mig_gym.load_scenario(SCEN / "paper_resnet50.yaml")
    sc = replace_in(sc, "policy.dispatcher", C.ELSAConfig(alpha=0.6, scan_from="home"))
    _assert_same(*_both(sc, None, 30_000, 1.2))


def test_fast_path_matches_first_free_dispatch():
    sc = mig_gym.load_scenario(SCEN / "paper_bert.yaml")
    _assert_same(*_both(sc, "paris+earliest_finish", 20_000, 1.1, disp=FirstFree))


def test_fast_path_matches_when_a_model_is_not_hosted():
    # multi_model with every GPU given to model 0: queries of models 1 and 2 are rejected as
    # not hosted, counted per model, and the measured window starts at the first rejection.
    sc = mig_gym.load_scenario(SCEN / "multi_model.yaml")
    lay = next(x for x in valid_layouts(sc.cluster.gpu) if len(x.placements) == 7)
    plan = Plan((lay,) * 8, ((0,) * 7,) * 8)
    rf, sf, re, se = _both(sc, "paris+earliest_finish", 20_000, 0.5, plan=plan)
    _assert_same(rf, sf, re, se)
    assert sf.rejected_by_reason.get("model_not_hosted", 0) > 5000


def test_fast_path_is_deterministic():
    a = mig_gym.simulate(SCEN / "multi_model.yaml", "paris+elsa", seed=3, num_queries=20_000)
    b = mig_gym.simulate(SCEN / "multi_model.yaml", "paris+elsa", seed=3, num_queries=20_000)
    assert repr(a.to_dict()) == repr(b.to_dict())


@pytest.mark.parametrize(
    ("change", "policy", "reason"),
    [
        ({}, "paris+jsq", "no closed-form fast rule"),
        ({"workload.service_cv": 0.2}, "paris+elsa", "service-time noise"),
        ({"run.drain": False}, "paris+elsa", "drain"),
        (
            {"faults": (C.FaultConfig(gpu=0, down_at_s=1.0, up_at_s=2.0),)},
            "paris+elsa",
            "faults or decision epochs",
        ),
        ({}, "periodic_paris+elsa", "faults or decision epochs"),
    ],
)
def test_runs_the_fast_path_cannot_take_use_the_event_loop(change, policy, reason):
    sc = mig_gym.load_scenario(SCEN / "paper_resnet50.yaml")
    for k, v in change.items():
        sc = replace_in(sc, k, v)
    run = mig_gym.build(sc, policy, None, 2_000)
    assert reason in (fastpath.unsupported(run.sim) or "")
    s = run.execute()
    assert run.loop == "events" and s.conserved
    with pytest.raises(ValueError, match="cannot take the fast path"):
        fastpath.run(mig_gym.build(sc, policy, None, 2_000).sim)


def test_fast_false_forces_the_event_loop_and_started_runs_are_refused():
    run = mig_gym.build(SCEN / "paper_resnet50.yaml", "paris+elsa", None, 1_000, fast=False)
    run.execute()
    assert run.loop == "events"
    run = mig_gym.build(SCEN / "paper_resnet50.yaml", "paris+elsa", None, 1_000)
    run.sim.run_until_decision()
    run.sim.run_until_decision()
    assert "already started" in (fastpath.unsupported(run.sim) or "")


# --------------------------------------------------------------------------- Recorder.bulk


@st.composite
def _events(draw):
    """A run on hand: arrivals, each served (start >= arrival) or rejected."""
    n = draw(st.integers(1, 60))
    gaps = draw(st.lists(st.floats(0.0, 0.7), min_size=n, max_size=n))
    arr = np.cumsum(gaps)
    out = []
    for i, t in enumerate(arr):
        if draw(st.integers(0, 9)) == 0:
            out.append((float(t), i, draw(st.integers(0, 1)), None))
        else:
            wait = draw(st.floats(0.0, 2.0))
            serv = draw(st.floats(1e-4, 1.5))
            k = draw(st.sampled_from(SIZES))
            out.append((float(t), i, draw(st.integers(0, 1)), (float(t) + wait, serv, k)))
    return out


@settings(max_examples=150, deadline=None)
@given(
    _events(),
    st.sampled_from([0.3, 1.0, 100.0]),
    st.integers(0, 10),
    st.sampled_from([0, 8, 10**6]),
)
def test_bulk_recording_equals_per_event_calls(events, window_s, warmup, few):
    # few: windows with up to this many completions are recorded one by one (0: all in numpy)
    with mock.patch.object(recorder_module, "_FEW", few):
        _bulk_equals_per_event(events, window_s, warmup)


def _bulk_equals_per_event(events, window_s, warmup) -> None:
    slo = np.array([0.5, 1.2])
    names = ("a", "b")
    # per event, in time order (completions before arrivals on ties, as the event loop)
    one = Recorder(SIZES, window_s, warmup, names)
    one.capacity(0.0, 7, 7)
    timeline = []
    for t, qid, m, svc in events:
        timeline.append((t, 1, "arrive", qid, m, svc))
        if svc is not None:
            start, serv, k = svc
            timeline.append((start + serv, 0, "done", qid, m, (t, serv, k)))
    timeline.sort(key=lambda e: (e[0], e[1]))
    for now, _, what, qid, m, x in timeline:
        if what == "arrive":
            one.on_arrival(now)
            if x is None:
                one.on_reject(qid, m, "r0" if m == 0 else "r1", now)
        else:
            arr_t, serv, k = x
            one.served(now, k, serv)
            one.on_complete(qid, m, arr_t, now, float(slo[m]))
    # in bulk: everything at once
    two = Recorder(SIZES, window_s, warmup, names)
    two.capacity(0.0, 7, 7)
    arr = np.array([e[0] for e in events])
    done = sorted((s[0] + s[1], t, qid, m, s[2], s[1]) for t, qid, m, s in events if s is not None)
    cols = list(zip(*done, strict=True)) if done else [[]] * 6
    comp = Completions(
        np.array(cols[0], float),
        np.array(cols[1], float),
        np.array(cols[2], np.int64),
        np.array(cols[3], np.int64),
        np.array(cols[4], np.int64),
        np.array(cols[5], float),
        slo,
    )
    rej = [(t, qid, m) for t, qid, m, s in events if s is None]
    rcols = list(zip(*rej, strict=True)) if rej else [[]] * 3
    rm = np.array(rcols[2], np.int64)
    two.bulk(arr, comp, Rejections(np.array(rcols[0], float), np.array(rcols[1], np.int64), rm,
                                   rm, ("r0", "r1")))  # fmt: skip
    end = max([e[0] for e in timeline])
    for r in (one, two):
        r.finish(end)
    kw = dict(scenario="s", policy="p", seed=0, now=end, queued=0, running=0, last_arrival_s=1.0)
    assert_close(Summary.from_run(one, **kw).to_dict(), Summary.from_run(two, **kw).to_dict())
    assert len(one.series) == len(two.series)
    for a, b in zip(one.series, two.series, strict=True):
        assert_close(a, b)


# --------------------------------------------------------------------------- ties, query by query
_BulkLog = LogRecorder  # it keeps each query's completion time from bulk recording too


def _bursts(seed: int, groups: int, max_gap: int, max_burst: int) -> tuple[list, list]:
    """Arrival times on a 0.5 s grid in bursts of simultaneous queries, and batches 1..8."""
    rng = np.random.default_rng(seed)
    gaps, sizes = rng.integers(0, max_gap, groups), rng.integers(1, max_burst, groups)
    times = np.repeat(np.cumsum(gaps) * 0.5, sizes).tolist()
    return times, rng.integers(1, 9, len(times)).tolist()


def _done_times(times, batches, *, fast: bool, **kw) -> dict[int, float]:
    """Each query's completion time from the event loop or the fast path (same hand-made run)."""
    sim = make_sim(times, batches, compiled=False, **kw)  # the Python loop: the reference
    sim.rec.__class__ = _BulkLog if fast else LogRecorder
    if fast:
        fastpath.run(sim)
    else:
        sim.run()
    sim.check_conservation()
    return sim.rec.done


TIE_KW = dict(
    gpus=((4, 2, 1), (3, 3), (7,)),
    lat=tables({1: 4.0, 2: 2.5, 3: 1.5, 4: 1.25, 7: 1.0}, max_batch=8, fits={1: 3, 2: 5}),
    chunk=7,
)
SLO_S = (100.0,)  # make_sim's SLA


def _same_query_by_query(make, seed: int) -> None:
    """Bursts of simultaneous arrivals on mixed partition sizes, with times and latencies exact in
    binary floating point: free times tie often, and every query must end at exactly the time
    the event loop gives it (longest-idle first for FIFS, smaller size first for the push
    rules). ``make()`` gives a fresh dispatcher."""
    times, batches = _bursts(seed, 60, 6, 5)
    central = make().central_queue
    kw = dict(TIE_KW, central=central)
    events = _done_times(times, batches, fast=False, dispatcher=make(), **kw)
    assert len(events) == len(times)
    assert _done_times(times, batches, fast=True, dispatcher=make(), **kw) == events


def _default_rule(name: str):
    entry = DISPATCHERS[name]
    return entry.make(entry.config(kind=name), None, np.random.default_rng(0))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("name", sorted(DISPATCHERS))
def test_every_registered_rule_with_a_fast_form_matches_its_event_form(name, seed):
    # Driven from the registry: a new dispatcher is checked here without being listed. A rule
    # with a fast form (or the pull queue) must give every query exactly the event loop's
    # completion time; a rule without one must send the run to the event loop.
    d = _default_rule(name)
    form = getattr(d, "fast_form", None)
    if d.central_queue or (form is not None and form(SLO_S) is not None):
        _same_query_by_query(lambda: _default_rule(name), seed)
    else:
        sim = make_sim([0.0], [1], dispatcher=d, **TIE_KW)
        assert "no closed-form fast rule" in (fastpath.unsupported(sim) or "")


def _home(model: int, batch: int) -> int:
    return {1: 1, 2: 1, 3: 2, 4: 2, 5: 3, 6: 4}.get(batch, 7)


# Values to try for every constructor parameter of every registered rule with a fast form. A new
# parameter fails test_every_parameter_... until it is given values here and, if the fast form
# reads it, declared in the rule's FAST_PARAMS.
PARAM_SAMPLES: dict[str, dict[str, list[dict]]] = {
    "elsa": {
        "alpha": [{"alpha": 0.01}, {"alpha": 0.04}, {"alpha": 0.1}],
        "scan_from": [{"scan_from": "home", "home_of": _home, "alpha": 0.04}],
        "home_of": [{"scan_from": "home", "home_of": lambda m, b: 3 if b > 2 else 1, "alpha": 0.1}],
    },
}
FAST_RULES = sorted(n for n, e in DISPATCHERS.items() if issubclass(e.rule, FastRule))


@pytest.mark.parametrize("name", FAST_RULES)
def test_every_parameter_of_a_fast_rule_is_honoured_or_takes_the_event_loop(name):
    rule = DISPATCHERS[name].rule
    sig = inspect.signature(rule.__init__).parameters.values()
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    params = [p.name for p in sig if p.name != "self" and p.kind not in variadic]
    samples = PARAM_SAMPLES.get(name, {})
    missing = [p for p in params if p not in samples]
    assert not missing, (
        f"{name}: constructor parameter(s) {missing} have no values in PARAM_SAMPLES; add them, "
        f"and declare them in {rule.__name__}.FAST_PARAMS if the fast form reads them"
    )
    assert set(rule.FAST_PARAMS) <= set(params), rule.FAST_PARAMS
    for p in params:
        for kw in samples[p]:
            assert getattr(rule(**kw), p) == kw.get(p), f"{name}: store {p} as self.{p}"
            if p in rule.FAST_PARAMS:
                for seed in range(3):
                    _same_query_by_query(functools.partial(rule, **kw), seed)
            else:  # the fast form does not read it: such a run takes the event loop
                sim = make_sim([0.0], [1], dispatcher=rule(**kw), **TIE_KW)
                assert f"{p}=" in (fastpath.unsupported(sim) or ""), (name, p)


class _ELSAWithAnExtra(ELSA):
    """ELSA with a parameter that its fast form does not read (not in FAST_PARAMS)."""

    def __init__(self, alpha: float = 1.0, extra: int = 0) -> None:
        super().__init__(alpha)
        self.extra = extra


def test_a_parameter_the_fast_form_does_not_read_sends_the_run_to_the_event_loop():
    assert _ELSAWithAnExtra(0.5).fast_form(SLO_S) is not None  # at its default: still fast
    d = _ELSAWithAnExtra(0.5, extra=3)
    assert d.fast_form(SLO_S) is None
    sim = make_sim([0.0, 1.0], [1, 2], dispatcher=d, **TIE_KW)
    assert "extra=3" in (fastpath.unsupported(sim) or "")
    with pytest.raises(ValueError, match="cannot take the fast path"):
        fastpath.run(sim)


LAYOUTS = [((4, 2, 1), (3, 3), (7,)), ((1,) * 7, (2, 2, 3), (4, 3)), ((3, 2, 1, 1), (4, 2, 1))]
DISTINCT = {1: 4.0, 2: 2.5, 3: 1.5, 4: 1.25, 7: 1.0}


@pytest.mark.parametrize("seed", range(60))
def test_fifs_fast_path_matches_the_event_loop_query_by_query(seed):
    # FIFS where small partitions cannot hold large batches (an idle partition skips the queued
    # queries it cannot hold), on three layouts, with exact-arithmetic bursts; every third case
    # has equal latencies across sizes, so free times tie across sizes again and again.
    times, batches = _bursts(seed, 80, 4, 6)
    per = DISTINCT if seed % 3 else dict.fromkeys(SIZES, 1.0)
    fits = [{1: 3, 2: 5}, {1: 8}, {1: 2, 2: 4, 3: 6}][seed % 3]
    kw = dict(gpus=LAYOUTS[seed % 3], lat=tables(per, max_batch=8, fits=fits), central=True)
    events = _done_times(times, batches, fast=False, chunk=13, **kw)
    assert _done_times(times, batches, fast=True, chunk=13, **kw) == events


def test_fifs_ties_deeper_than_tracked_are_detected_not_guessed(monkeypatch):
    # With the start order cut to one level, such ties cannot be ordered: the fast path must
    # raise, never return other completion times than the event loop.
    monkeypatch.setattr(fastpath, "_KEEP", 3)
    outcomes = []
    for seed in range(30):
        times, batches = _bursts(seed, 80, 4, 6)
        per = dict.fromkeys(SIZES, 1.0) if seed % 2 else DISTINCT
        kw = dict(gpus=LAYOUTS[0], lat=tables(per, max_batch=8, fits={1: 3, 2: 5}), central=True)
        events = _done_times(times, batches, fast=False, chunk=13, **kw)
        try:
            same = _done_times(times, batches, fast=True, chunk=13, **kw) == events
            outcomes.append("same" if same else "wrong")
        except fastpath.UnresolvedTie:
            outcomes.append("tie")
    assert "wrong" not in outcomes
    assert outcomes.count("tie") >= 5 and outcomes.count("same") >= 5, outcomes


def test_engine_reruns_on_the_event_loop_after_an_unresolved_tie(monkeypatch):
    def tie(sim):
        raise fastpath.UnresolvedTie("query 7: partitions of two sizes tie at 1.5 s")

    run = mig_gym.build(SCEN / "paper_resnet50.yaml", "paris+fifs", None, 3_000)
    monkeypatch.setattr(fastpath, "run", tie)
    s = run.execute()
    assert run.loop == "events" and "tie it cannot order" in run.loop_note
    ref = mig_gym.simulate(
        SCEN / "paper_resnet50.yaml", "paris+fifs", num_queries=3_000, fast=False
    )
    assert s.to_dict() == ref.to_dict()


# --------------------------------------------------------------------------- static-run contract
def _private_reads_of_a_simulator(path: Path) -> list[str]:
    """``sim._x`` / ``self.sim._x`` / ``run.sim._x`` in a module's source (not dunders)."""
    import ast

    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
            continue
        owner = node.value
        name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
        if name == "sim" and not node.attr.startswith("__"):
            out.append(f"{path.name}:{node.lineno} sim.{node.attr}")
    return out


def test_no_module_reads_the_simulators_private_fields():
    # The fast path and the builder talk to the simulator through static_run(), take_arrivals(),
    # finish_static() and its public attributes only.
    pkg = Path(mig_gym.__file__).parent
    hits = [h for f in sorted(pkg.rglob("*.py")) for h in _private_reads_of_a_simulator(f)]
    assert not hits, hits
    probe = Path(__file__).with_name("_probe_private.py")
    try:  # the check is not vacuous
        probe.write_text("def f(sim):\n    return sim._heap\n", encoding="utf-8")
        assert _private_reads_of_a_simulator(probe) == ["_probe_private.py:2 sim._heap"]
    finally:
        probe.unlink()


def test_static_run_info_describes_a_fresh_simulator_and_finish_static_hands_back():
    run = mig_gym.build(SCEN / "paper_resnet50.yaml", "paris+elsa", None, 2_000)
    info = run.sim.static_run()
    assert info.not_static is None and not info.central and info.dispatcher is run.sim.dispatcher
    uids = [u for per_model in info.classes for _, _, us in per_model for u in us]
    parts = [p for g in run.sim.gpus for p in g.partitions if p.available]
    assert sorted(uids) == sorted(p.uid for p in parts)  # every partition in its class, once
    sizes = [k for k, _, _ in info.classes[0]]
    assert sizes == sorted(sizes) and info.servable[0] > 0 and info.hosted == {0}
    with pytest.raises(RuntimeError, match="arrivals taken"):
        run.sim.finish_static(1.0, 1.0, 0)  # arrivals not yet taken
    run.execute()
    assert run.loop == "fast" and run.sim.now > run.sim.last_arrival_s > 0
    assert run.sim.static_run().not_static == "the run has already started"
