"""The epoch fast path (mig_gym.sim.epochs) against the event loop, at the Simulator level.

The same run is driven from decision to decision by ``Simulator.run_until_decision`` and by an
``EpochRunner`` (with its Python loops and, where numba is installed, with the compiled ones of
:mod:`mig_gym.sim.compiled`), applying the same reconfigurations at each epoch decision
(random layouts and models, so GPUs drain, go down, come back, hold and re-dispatch queries).
At every decision the simulator's whole state must be the event loop's: each GPU's state and
layout, each partition's running query and queue, the held queries, the counters; at the end
the Summary and every time-series row. Integers and ids exact, floats to 1e-9.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from mig_gym.hardware import valid_layouts
from mig_gym.runs.build import build
from mig_gym.scenario import config as C
from mig_gym.scenario import load_scenario, replace_in
from mig_gym.sim.compiled import AVAILABLE
from mig_gym.sim.epochs import EpochRunner, unsupported
from mig_gym.sim.epochs_pull import epoch_runner
from mig_gym.sim.simulator import Simulator

SCEN = Path(__file__).resolve().parent.parent / "scenarios"
REL = 1e-9


def _close(a: object, b: object, path: str = "") -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple) and len(a) == len(b), (path, a, b)
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        if math.isnan(a) or math.isnan(b):  # type: ignore[arg-type]
            assert math.isnan(a) and math.isnan(b), (path, a, b)  # type: ignore[arg-type]
        else:
            assert math.isclose(a, b, rel_tol=REL, abs_tol=1e-12), (path, a, b)  # type: ignore[arg-type]
    else:
        assert a == b, (path, a, b)


def _scenario(name: str, **edits: object) -> C.Scenario:
    sc = load_scenario(SCEN / f"{name}.yaml")
    sc = replace_in(sc, "run.drain", False)
    sc = replace_in(sc, "run.warmup_queries", 0)
    sc = replace_in(sc, "run.num_queries", 10**9)
    for k, v in edits.items():
        sc = replace_in(sc, k, v)
    return sc


def _state(sim: Simulator) -> dict:
    gpus = []
    for g in sim.gpus:
        parts = [
            (p.uid, p.gpcs, p.model, p.available, p.running.id if p.running else None,
             [q.id for q in p.queue], p.est_free_s, p.run_end_s if p.running else 0.0)
            for p in g.partitions
        ]  # fmt: skip
        gpus.append((g.state, str(g.layout), g.models, str(g.target), g.down_since, parts))
    r = sim.rec
    counters = {
        "arrived": r.arrived, "completed": r.completed, "rejected": dict(r.rejected),
        "redispatched": r.redispatched, "reconfigurations": r.reconfigurations,
        "downtime": r.downtime_reconfig_s, "busy": dict(r.busy_s), "avail": dict(r.size_avail_s),
        "violations": r.violations, "lat_sum": r.lat_sum,
    }  # fmt: skip
    held = [q.id for q in sim.held]
    # pull mode: each model's central queue and idle partitions (longest idle first)
    central = [[q.id for q in dq] for dq in sim.central_q]
    idle = [list(d) for d in sim.idle]
    return {"now": sim.now, "gpus": gpus, "held": held, "counters": counters,
            "running": sim.running, "active": sim.active, "queued": sim.queued_count(),
            "central": central, "idle": idle}  # fmt: skip


def _drive(sc: C.Scenario, policy: str | None, *, fast: bool, epochs: int, change: float,
           seed: int = 1, epoch_s: float = 5.0,
           compiled: bool = False) -> tuple[list, dict, list]:  # fmt: skip
    run = build(sc, policy, seed, epoch_s=epoch_s)
    sim = run.sim
    stepper = epoch_runner(sim, compiled=compiled) if fast else sim
    if fast:  # (the pull runner has only its compiled form)
        assert stepper.compiled == ((compiled or sim.central) and AVAILABLE)
    layouts = list(valid_layouts(sc.cluster.gpu))
    rng = np.random.default_rng(seed)
    states = []
    for _ in range(epochs):
        if stepper.run_until_decision() is None:
            break
        run.recorder.finish(sim.now)
        sim.check_conservation()
        states.append(_state(sim))
        for g in range(len(sim.gpus)):
            if rng.random() < change:
                lay = layouts[int(rng.integers(len(layouts)))]
                models = rng.integers(0, sim.num_models, len(lay.placements)).tolist()
                sim.reconfigure(g, lay, models)
    return states, run.summary().to_dict(), run.recorder.series


def _same(sc: C.Scenario, policy: str | None = None, **kw: object) -> list:
    """The Python epoch loop and (with numba) the compiled one against the event loop."""
    events = _drive(sc, policy, fast=False, **kw)  # type: ignore[arg-type]
    pull = policy is not None and policy.endswith("+fifs")
    if pull and not AVAILABLE:
        pytest.skip("pull dispatch takes the epoch fast path only with numba (the fast extra)")
    for compiled in (True,) if pull else (False, True) if AVAILABLE else (False,):
        fast = _drive(sc, policy, fast=True, compiled=compiled, **kw)  # type: ignore[arg-type]
        assert len(fast[0]) == len(events[0]) > 0
        _close(fast, events)
    return events[0]


CASES = [
    ("diurnal_drift", None, {}),
    ("diurnal_drift", "paris+earliest_finish", {}),
    ("diurnal_drift", "paris+fifs_push", {}),
    ("diurnal_drift", "paris+fifs", {}),
    ("drift_mix_flip", "paris+fifs", {}),  # overloaded: long central queues
    ("drift_tiny_huge", "paris+fifs", {}),  # huge batches wait while tiny ones overtake them
    ("multi_model", "paris+fifs", {}),
    ("drift_mix_flip", None, {}),
    ("drift_tiny_huge", None, {}),
    ("drift_load_ramp", None, {}),
    ("multi_model", "paris+elsa", {}),
]


@pytest.mark.parametrize(("name", "policy", "edits"), CASES)
def test_epochs_on_the_fast_path_equal_the_event_loop(name, policy, edits):
    states = _same(_scenario(name, **edits), policy, epochs=12, change=0.4)
    last = states[-1]["counters"]
    assert last["reconfigurations"] > 0 and last["downtime"] > 0  # GPUs went down and came back


def test_every_gpu_reconfigured_at_once_holds_and_redispatches():
    # every GPU down together: arrivals are held until the first comes back
    states = _same(_scenario("diurnal_drift", **{"workload.load": 4.0}), epochs=6, change=1.0)
    assert any(s["counters"]["redispatched"] for s in states)


def test_pull_every_gpu_reconfigured_at_once_queues_centrally_and_fresh_partitions_pull():
    # FIFS: queries wait centrally while the GPUs are down (12 s, longer than an epoch); GPUs
    # that went down at one instant come back at one instant and their fresh partitions pull in
    # GPU order, ending together (ties in start order)
    sc = _scenario("diurnal_drift", **{"workload.load": 4.0, "cluster.reconfig_s": 12.0})
    states = _same(sc, "paris+fifs", epochs=6, change=1.0)
    assert max(sum(map(len, s["central"])) for s in states) > 100


def test_pull_settle_by_the_simulator_on_the_written_back_state_gives_the_same_run(monkeypatch):
    # the pull runner settles fresh partitions on its kernel; where anything else waited for the
    # settle it would write its state back and let the simulator settle: both must agree
    from mig_gym.sim.simulator import Simulator

    monkeypatch.setattr(Simulator, "epoch_take_fresh", lambda self: None)
    _same(_scenario("drift_mix_flip", **{"cluster.reconfig_s": 2.0}), "paris+fifs", epochs=8,
          change=0.5)  # fmt: skip


@pytest.mark.parametrize("policy", [None, "paris+fifs"])
@pytest.mark.parametrize("reconfig_s", [0.0, 12.0])
def test_zero_downtime_and_downtime_longer_than_an_epoch(reconfig_s, policy):
    # 0 s: the GPU comes back at the decision itself; 12 s > 5 s epochs: GPUs still down (or
    # draining) at the next decision are reconfigured again there
    sc = _scenario("drift_mix_flip", **{"cluster.reconfig_s": reconfig_s})
    states = _same(sc, policy, epochs=10, change=0.5)
    if reconfig_s:
        assert any(g[0] != "up" for s in states for g in s["gpus"])


def test_elsa_parameters_the_fast_form_honours():
    sc = _scenario("diurnal_drift")
    sc = replace_in(sc, "policy.dispatcher", C.ELSAConfig(alpha=0.6, scan_from="home"))
    _same(sc, epochs=6, change=0.4)


def test_a_stream_that_ends_stops_both_loops_at_the_last_arrival():
    sc = replace_in(_scenario("drift_mix_flip"), "run.num_queries", 9000)
    states = _same(sc, epochs=100, change=0.3)
    assert len(states) < 100  # the stream ended first


@pytest.mark.parametrize(
    ("edits", "policy", "reason"),
    [
        ({"workload.service_cv": 0.3}, None, "service-time noise"),
        ({"faults": (C.FaultConfig(gpu=0, down_at_s=1.0, up_at_s=2.0),)}, None, "faults"),
        ({}, "paris+jsq", "no closed-form fast rule"),
        ({"run.drain": True}, None, "run.drain"),
    ],
)
def test_runs_the_epoch_path_cannot_take_say_why(edits, policy, reason):
    sc = _scenario("drift_mix_flip", **edits)
    sim = build(sc, policy, 0, epoch_s=5.0).sim
    why = unsupported(sim)
    assert why is not None and reason in why
    with pytest.raises(ValueError, match=reason):
        EpochRunner(sim)


def test_pull_dispatch_without_numba_is_refused_and_says_why(monkeypatch):
    from mig_gym.sim import compiled

    monkeypatch.setattr(compiled, "AVAILABLE", False)
    sim = build(_scenario("drift_mix_flip"), "paris+fifs", 0, epoch_s=5.0).sim
    assert "only with numba" in unsupported(sim)
    with pytest.raises(ValueError, match="only with numba"):
        epoch_runner(sim)


@pytest.mark.skipif(not AVAILABLE, reason="pull dispatch takes the epoch path only with numba")
def test_epoch_runner_builds_the_pull_runner_and_the_push_runner_refuses_pull_runs():
    from mig_gym.sim.epochs_pull import PullEpochRunner

    sim = build(_scenario("drift_mix_flip"), "paris+fifs", 0, epoch_s=5.0).sim
    with pytest.raises(ValueError, match="needs the pull runner"):
        EpochRunner(sim)
    assert type(epoch_runner(sim)) is PullEpochRunner
    push = build(_scenario("drift_mix_flip"), None, 0, epoch_s=5.0).sim
    assert type(epoch_runner(push)) is EpochRunner


def test_a_started_run_and_a_run_without_epochs_are_refused():
    sc = _scenario("drift_mix_flip")
    assert "no decision epochs" in unsupported(build(sc, None, 0).sim)
    sim = build(sc, None, 0, epoch_s=5.0).sim
    assert unsupported(sim) is None
    sim.run_until_decision()
    assert "already started" in unsupported(sim)
