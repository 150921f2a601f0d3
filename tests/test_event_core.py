"""The event loop's compiled core (mig_gym.sim.event_core, mig_gym.sim.event_kernel) against the
Python loop, which stays the reference.

Each case runs one simulation twice, ``compiled=False`` and ``compiled=True``, taking the same
decisions, and requires every query's completion time and rejection, the counters and the whole
server state at every decision to be identical, and the summaries equal to rounding (the core
records outcomes in bulk, so sums are added in another order). Hand-made runs use exact binary
times, so free times tie often; they add service noise, GPU failures, recoveries and
reconfigurations (drains, re-dispatch, held queries) at decisions.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import mig_gym
from mig_gym.policies.dispatch.baselines import FIFS, EarliestFinish, FirstFree, JoinShortestQueue
from mig_gym.policies.dispatch.elsa import ELSA
from mig_gym.sim import compiled
from mig_gym.sim.observers import BatchCounts
from mig_gym.sim.simulator import Simulator

from .conftest import SCENARIOS, SHARED_DATA, assert_close
from .test_fastpath import TIE_KW, _bursts
from .test_simulator import layout, make_sim

pytest.importorskip("numba", reason="the compiled core needs numba (pip install 'mig-gym[fast]')")


@pytest.fixture(autouse=True)
def _core_from_the_start(monkeypatch):
    monkeypatch.setattr(Simulator, "CORE_AFTER", 0)  # short runs take the core here too


RULES = {
    "earliest_finish": EarliestFinish,
    "fifs_push": FirstFree,
    "elsa": ELSA,
    "elsa_tight": lambda: ELSA(alpha=0.05),
    "elsa_home": lambda: ELSA(scan_from="home", home_of=lambda m, b: 3 if b > 4 else 1),
}
LAYOUTS = [(4, 2, 1), (3, 3), (7,), (2, 2, 2, 1)]


def _state(sim: Simulator) -> tuple:
    """Everything the event loop's next steps depend on, as plain values."""
    parts = tuple(
        (g.index, g.state, p.uid, p.gpcs, p.available, p.est_free_s, p.queued_s,
         p.running.id if p.running else None, p.run_start_s, p.run_end_s,
         tuple((q.id, q.noise, q.retries) for q in p.queue))
        for g in sim.gpus for p in g.partitions
    )  # fmt: skip
    best = tuple(
        (m, k, ix.best().uid if ix.best() else None)
        for m in range(sim.num_models)
        for k, ix in sim.classes[m]
    )
    return (parts, best, tuple(q.id for q in sim.held), sim.now, sim.active, sim.running,
            sim.events_scheduled, sim.last_arrival_s, sim.queued_count())  # fmt: skip


def _drive(compile_: bool, rule: str, seed: int, **kw) -> tuple[list, dict, dict, object]:
    """A hand-made run; at every epoch a GPU is re-partitioned (the same choices both times)."""
    times, batches = _bursts(seed, 120, 6, 6)
    if kw.get("service_cv"):
        kw["noise_rng"] = np.random.default_rng(seed)  # a fresh one per run
    sim = make_sim(times, batches, dispatcher=RULES[rule](), compiled=compile_, **kw)
    rng = np.random.default_rng(seed)
    states = []
    while sim.run_until_decision() is not None:
        states.append(_state(sim))
        g = int(rng.integers(len(sim.gpus)))
        lay = layout(*LAYOUTS[int(rng.integers(len(LAYOUTS)))])
        sim.reconfigure(g, lay, [0] * len(lay.placements))
    sim.check_conservation()
    states.append(_state(sim))
    return states, sim.rec.done, sim.rec.reasons, sim


def _same(rule: str, seed: int, **kw) -> Simulator:
    py_states, py_done, py_rej, _ = _drive(False, rule, seed, **kw)
    states, done, rej, sim = _drive(True, rule, seed, **kw)
    assert sim._core is not None, sim.core_blocker()
    assert done == py_done  # every completion at exactly the same time
    assert rej == py_rej
    for i, (a, b) in enumerate(zip(py_states, states, strict=True)):
        assert a == b, f"state differs at decision {i}"
    return sim


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("seed", range(3))
def test_ties_query_by_query(rule, seed):
    _same(rule, seed, **TIE_KW)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("seed", range(2))
def test_noise_faults_and_reconfigurations(rule, seed):
    kw = dict(TIE_KW, epoch_s=7.3, reconfig_s=1.5, service_cv=0.4)
    faults = [(0, 11.0, 19.5), (1, 30.0, None), (2, 19.5, 44.0), (0, 40.0, 41.0)]
    sim = _same(rule, seed, faults=faults, **kw)
    assert sim.rec.retried > 0 and sim.rec.reconfigurations > 0


@pytest.mark.parametrize("drain", [False, True])
def test_all_gpus_down_holds_queries_and_rejects_the_unservable(drain):
    # every GPU down for a while (arrivals held), then back; batches above 5 fit only 3g/4g/7g,
    # and a plan of 1g/2g partitions rejects them (memory) at arrival
    kw = dict(TIE_KW, epoch_s=5.0, reconfig_s=2.0, drain=drain)
    faults = [(0, 6.0, 20.0), (1, 6.0, 20.0), (2, 6.0, 21.0)]
    _same("earliest_finish", 4, faults=faults, **kw)
    _same("elsa", 5, faults=faults, **kw)


def test_the_kernel_runs_the_stretches(monkeypatch):
    kernel = compiled.load("mig_gym.sim.event_kernel")
    calls = []
    inner = kernel.stretch

    def spy(*a):
        calls.append(a[8].shape[0])
        return inner(*a)

    monkeypatch.setattr(kernel, "stretch", spy)
    times, batches = _bursts(0, 200, 6, 6)
    sim = make_sim(times, batches, dispatcher=EarliestFinish(), **TIE_KW)
    sim.run()
    assert calls and sim.rec.completed == len(times)


class _OneByOne:
    def on_arrival(self, model: int, batch: int) -> None:
        pass


def test_observers_see_the_same_arrivals_at_every_decision():
    # BatchCounts (PeriodicPARIS's and Partition-v0's observer) read at each decision: the same
    # counts, keys in the same order (first arrival), whether fed one by one or per block
    seen = []
    for compile_ in (False, True):
        times, batches = _bursts(3, 150, 6, 6)
        sim = make_sim(times, batches, dispatcher=ELSA(), compiled=compile_, epoch_s=4.1, **TIE_KW)
        counts = BatchCounts(1)
        sim.observe(counts)
        out = []
        while sim.run_until_decision() is not None:
            out.append([list(c.items()) for c in counts.take()])
        seen.append(out)
        assert (sim._core is not None) == compile_
    assert seen[0] == seen[1] and len(seen[0]) > 5


@pytest.mark.parametrize("after", [1, 37, 10_000])
def test_the_core_takes_over_after_core_after_arrivals(after):
    # the Python loop serves the first ``after`` arrivals (a short run never loads numba), then
    # the core: the same completions either way
    times, batches = _bursts(1, 120, 6, 6)
    runs = []
    for compile_ in (False, True):
        sim = make_sim(times, batches, compiled=compile_, core_after=after, **TIE_KW)
        sim.run()
        runs.append(sim)
    assert runs[1].rec.done == runs[0].rec.done
    short = after > len(times)
    assert (runs[1]._core is None) == short and runs[1]._core_checked != short


def _blocked(**kw) -> str | None:
    sim = make_sim([0.0, 1.0], [1, 1], **kw)
    sim._core_setup()
    return sim.core_blocker()


def test_runs_the_core_cannot_take_say_why(monkeypatch):
    assert _blocked(dispatcher=EarliestFinish()) is None
    assert _blocked(dispatcher=EarliestFinish(), compiled=False) == "compiled=False"
    assert "compiled event form" in _blocked(dispatcher=JoinShortestQueue())
    assert "pull" in _blocked(dispatcher=FIFS(), central=True)
    sim = make_sim([0.0, 1.0], [1, 1], dispatcher=EarliestFinish())
    sim.observe(BatchCounts(1))  # fed per block
    assert sim.core_blocker() is None
    sim.observe(_OneByOne())
    assert "on_block" in sim.core_blocker()
    monkeypatch.setattr(compiled, "AVAILABLE", False)
    assert "numba" in _blocked(dispatcher=EarliestFinish())


def _scenario_runs() -> list[Path]:
    return sorted(SCENARIOS.glob("*.yaml"))


@pytest.mark.parametrize("path", _scenario_runs(), ids=lambda p: p.stem)
def test_every_shipped_scenario_on_both_loops(path):
    if "shared/data" in path.read_text() and not SHARED_DATA.is_dir():
        pytest.skip(f"{path.name} replays a trace from {SHARED_DATA}, absent here")
    sc = mig_gym.load_scenario(path)
    n = min(sc.run.num_queries, 4_000)
    out = []
    for compile_ in (False, True):
        run = mig_gym.build(sc, None, None, n, fast=False)
        run.sim.compiled = compile_
        out.append((run.execute().to_dict(), run.sim))
    (a, _), (b, sim) = out
    assert_close(a, b)
    assert (a["arrived"], a["completed"], a["rejected"]) == (b["arrived"], b["completed"],
                                                           b["rejected"])  # fmt: skip
    if sim.core_blocker() is None:
        assert sim._core is not None


def _partition_episode(path: Path, core: bool) -> tuple:
    sc = mig_gym.load_scenario(path)
    sc = dataclasses.replace(sc, env=dataclasses.replace(sc.env, epochs_per_episode=4))
    env = gym.make("mig_gym/Partition-v0", scenario=sc, fast=False, compiled=core)
    obs, _ = env.reset(seed=3)
    rng = np.random.default_rng(0)
    out, rewards = [obs], []
    done = False
    while not done:
        mask = env.unwrapped.action_masks().reshape(env.unwrapped.num_gpus, -1)
        a = [int(rng.choice(np.flatnonzero(row))) for row in mask]
        obs, r, term, trunc, info = env.step(np.array(a))
        out.append(obs)
        rewards.append(r)
        done = term or trunc
    used = env.unwrapped.run.sim._core is not None
    env.close()
    return out, rewards, info["summary"], used


@pytest.mark.parametrize("name", ["faults.yaml", "drift_mix_flip.yaml"])
def test_partition_env_event_loop_on_both(name):
    # Partition-v0 on the event loop (fast=False): the same observations with the core, the
    # rewards and the summary to rounding
    py = _partition_episode(SCENARIOS / name, False)
    co = _partition_episode(SCENARIOS / name, True)
    assert co[3] and not py[3]
    assert len(py[0]) == len(co[0])
    assert all(np.array_equal(a, b) for a, b in zip(py[0], co[0], strict=True))
    assert co[1] == pytest.approx(py[1], rel=1e-9, abs=1e-12)
    assert_close(py[2], co[2])
