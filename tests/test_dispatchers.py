"""Dispatchers (mig_gym.policies.dispatch.baselines) on hand-built states, FIFS as a central queue
in the
simulator, and the reference-policy oracle on the paper scenarios.

Hand-built states: now = 8 s; the query's profiled latency is 0.5 s on 1g (batches up to 4 only),
0.25 s on 2g, 0.125 s on 3g and 4g, 0.0625 s on 7g (binary fractions, so ties are exact). A spec
is ``(size, backlog_s[, model, available])``; expected picks are spec indices.
"""

from __future__ import annotations

import functools
import heapq

import numpy as np
import pytest

import mig_gym
from mig_gym.policies.dispatch.baselines import (
    EarliestFinish,
    JoinShortestQueue,
    RandomDispatch,
    RoundRobin,
    estimated_finish,
)
from mig_gym.runs import build as engine
from mig_gym.sim.entities import Query
from tests.conftest import SCENARIOS
from tests.fake_cluster import query, server, table

NOW = 8.0
LAT = {
    1: table(0.5, fits_up_to=4),
    2: table(0.25),
    3: table(0.125),
    4: table(0.125),
    7: table(0.0625),
}


def _uid(dispatcher, specs: list[tuple], batch: int = 2, model: int = 0) -> int | None:
    view, _ = server(NOW, specs, LAT)
    p = dispatcher.choose(query(batch, NOW, model), view)
    return None if p is None else p.uid


# --------------------------------------------------------------------------- earliest finish
@pytest.mark.parametrize(
    ("specs", "batch", "expected"),
    [
        ([(1, 0.0), (2, 0.0)], 2, 1),  # finishes 8.5 vs 8.25
        ([(1, 0.0), (2, 0.5)], 2, 0),  # 8.5 vs 8.75
        ([(2, 0.25), (1, 0.0)], 2, 1),  # tie at 8.5: the smaller partition
        ([(3, 0.0), (4, 0.0)], 2, 0),  # tie at 8.125: the smaller partition
        ([(2, 0.25), (2, 0.125), (2, 0.5)], 2, 1),  # within a class: the earliest free
        ([(1, 0.0), (2, 1.0)], 6, 1),  # batch 6 does not fit 1g
        ([(1, 0.0, 0, False), (7, 1.0)], 2, 1),  # unavailable partitions are skipped
        ([(1, 0.0, 1), (7, 1.0)], 2, 1),  # another model's partition is skipped
        ([(1, 0.0, 1)], 2, None),
        ([(1, -3.0), (2, 0.0)], 2, 1),  # idle since long ago: finish = now + latency
    ],
)
def test_earliest_finish(specs, batch, expected):
    assert _uid(EarliestFinish(), specs, batch) == expected


def test_estimated_finish_is_backlog_plus_latency():
    _, (busy, idle) = server(NOW, [(2, 0.25), (3, -1.0)], LAT)
    assert estimated_finish(busy, 2, NOW) == 8.5
    assert estimated_finish(idle, 2, NOW) == 8.125


# --------------------------------------------------------------------------- JSQ
def _jsq_view(in_system: list[int], sizes: list[int]) -> list[tuple]:
    return [(k, 0.5 * n) for k, n in zip(sizes, in_system, strict=True)]


@pytest.mark.parametrize(
    ("sizes", "in_system", "batch", "expected"),
    [
        ([1, 2, 7], [3, 0, 1], 2, 1),  # fewest queries in system
        ([7, 1], [2, 1], 2, 1),  # fewer queries wins over a faster partition
        ([1, 2], [1, 1], 2, 1),  # tie: earlier estimated finish (2g is faster)
        ([2, 2, 2], [2, 1, 1], 2, 1),  # full tie: the first in GPU order
        ([1, 2], [0, 3], 6, 1),  # the idle 1g cannot hold batch 6
    ],
)
def test_join_shortest_queue(sizes, in_system, batch, expected):
    view, parts = server(NOW, _jsq_view(in_system, sizes), LAT)
    for p, n in zip(parts, in_system, strict=True):  # one running, the rest queued
        if n:
            p.running = Query(100 + p.uid, 0.0, 0, 1)
            p.queue.extend(Query(200 + i, 0.0, 0, 1) for i in range(n - 1))
    assert JoinShortestQueue().choose(query(batch, NOW), view).uid == expected


# --------------------------------------------------------------------------- round robin
def test_round_robin_cycles_per_model():
    view, _ = server(NOW, [(1, 0.0), (2, 5.0), (7, 9.0), (3, 0.0, 1)], LAT)
    rr = RoundRobin()
    picks = []
    for i in range(7):
        picks.append(rr.choose(query(2, NOW, 0), view).uid)
        if i % 2:  # another model's queries do not advance model 0's cycle
            assert rr.choose(query(2, NOW, 1), view).uid == 3
    assert picks == [0, 1, 2, 0, 1, 2, 0]


def test_round_robin_skips_partitions_that_cannot_hold_the_batch():
    view, _ = server(NOW, [(1, 0.0), (2, 0.0), (7, 0.0)], LAT)
    rr = RoundRobin()
    assert [rr.choose(query(6, NOW), view).uid for _ in range(4)] == [1, 2, 1, 2]


# --------------------------------------------------------------------------- random
def _random_picks(seed: int, n: int = 200, batch: int = 2) -> list[int]:
    view, _ = server(NOW, [(1, 0.0), (2, 0.0), (3, 0.0), (7, 0.0), (1, 0.0, 1)], LAT)
    d = RandomDispatch(np.random.default_rng(seed))
    return [d.choose(query(batch, NOW), view).uid for _ in range(n)]


def test_random_dispatch_is_seeded():
    assert _random_picks(7) == _random_picks(7)
    assert _random_picks(7) != _random_picks(8)


@pytest.mark.parametrize(("batch", "allowed"), [(2, {0, 1, 2, 3}), (6, {1, 2, 3})])
def test_random_dispatch_covers_exactly_the_valid_partitions(batch, allowed):
    picks = _random_picks(0, batch=batch)
    assert set(picks) == allowed
    counts = np.bincount(picks, minlength=4)[sorted(allowed)]
    assert counts.min() > 200 / len(allowed) / 2  # roughly uniform


# --------------------------------------------------------------------------- FIFS
def _fifs_scenario(dispatcher: str) -> dict:
    """One GPU of seven 1g partitions, fixed batch 4 (12.2 ms on 1g), 90 % load."""
    return {
        "name": "fifs_check",
        "seed": 3,
        "cluster": {"gpu": "A100-80GB", "num_gpus": 1},
        "models": [{"name": "resnet50", "slo_ms": 50}],
        "workload": {
            "arrivals": {"kind": "poisson", "rate_qps": 0.9 * 7 / 0.012198},
            "batch": {"kind": "fixed", "value": 4},
        },
        "policy": {
            "partitioner": {"kind": "homogeneous", "gpcs": 1},
            "dispatcher": {"kind": dispatcher},
        },
        "run": {"num_queries": 4000, "warmup_queries": 200},
    }


def _completions(
    sc: dict, policy: str, fast: bool = False
) -> tuple[list[tuple[int, float, float]], float]:
    """(query id, arrival, completion) of every query, from the event loop or the fast path."""
    run = engine.build(sc, policy, fast=fast)
    done: list[tuple[int, float, float]] = []
    on_complete, bulk = run.recorder.on_complete, run.recorder.bulk

    def record(qid, model, arrival_s, now, slo_s):
        done.append((qid, arrival_s, now))
        on_complete(qid, model, arrival_s, now, slo_s)

    def record_bulk(arrivals_s, c, rejected):
        done.extend(zip(c.qid.tolist(), c.arrival_s.tolist(), c.end_s.tolist(), strict=True))
        bulk(arrivals_s, c, rejected)

    run.recorder.on_complete = record  # type: ignore[method-assign]
    run.recorder.bulk = record_bulk  # type: ignore[method-assign]
    run.execute()
    assert run.loop == ("fast" if fast else "events")
    service = run.sim.tables[(0, 1)][4]
    return sorted(done), service


def _central_queue_finish(arrivals: list[float], servers: int, service: float) -> list[float]:
    """FIFO with ``servers`` identical servers: each query starts at its arrival or when the
    first server frees up, whichever is later (no server idles while a query waits)."""
    free = [0.0] * servers
    out = []
    for a in arrivals:
        start = max(a, heapq.heappop(free))
        heapq.heappush(free, start + service)
        out.append(start + service)
    return out


@pytest.mark.parametrize("fast", [False, True], ids=["event-loop", "fast-path"])
def test_fifs_is_a_central_queue(fast):
    sc = _fifs_scenario("fifs")
    done, service = _completions(sc, "homo1+fifs", fast)
    assert len(done) == 4000
    expected = _central_queue_finish([a for _, a, _ in done], 7, service)
    assert [t for _, _, t in done] == pytest.approx(expected, abs=1e-9)
    waited = sum(t - a > service + 1e-9 for _, a, t in done)
    assert waited > 100  # the check is not vacuous: many queries had to queue
    s = mig_gym.simulate(sc, policy="homo1+fifs", fast=fast)
    measured = [t - a for (qid, a, _), t in zip(done, expected, strict=True) if qid >= 200]
    assert s.latency_mean_ms == pytest.approx(np.mean(measured) * 1e3, rel=1e-9)


def test_push_dispatch_is_not_a_central_queue():
    """The same check fails for random push dispatch (partitions idle while queries wait)."""
    done, service = _completions(_fifs_scenario("random"), "homo1+random")
    expected = _central_queue_finish([a for _, a, _ in done], 7, service)
    assert [t for _, _, t in done] != pytest.approx(expected, abs=1e-9)


# --------------------------------------------------------------------------- oracle
PAPER = ("paper_resnet50", "paper_mobilenet", "paper_bert")
ORACLE_QUERIES = 20_000
MARGIN = 0.05  # absolute violation-rate margin PARIS+ELSA must beat random and homo7 by


@functools.cache
def _violation_rate(scenario: str, policy: str) -> float:
    s = mig_gym.simulate(
        SCENARIOS / f"{scenario}.yaml", policy=policy, seed=0, num_queries=ORACLE_QUERIES
    )
    assert s.conserved
    return s.sla_violation_rate


@pytest.mark.parametrize("scenario", PAPER)
@pytest.mark.parametrize("baseline", ["random+random", "homo7+fifs"])
def test_paris_elsa_beats_random_and_homo7(scenario, baseline):
    ours, theirs = _violation_rate(scenario, "paris+elsa"), _violation_rate(scenario, baseline)
    assert ours < theirs - MARGIN, f"{scenario}: paris+elsa {ours:.4f} vs {baseline} {theirs:.4f}"


@pytest.mark.parametrize("scenario", PAPER)
@pytest.mark.parametrize("baseline", ["homo1+fifs", "paris+fifs"])
def test_paris_elsa_no_worse_than_fifs(scenario, baseline):
    ours, theirs = _violation_rate(scenario, "paris+elsa"), _violation_rate(scenario, baseline)
    assert ours <= theirs, f"{scenario}: paris+elsa {ours:.4f} vs {baseline} {theirs:.4f}"
