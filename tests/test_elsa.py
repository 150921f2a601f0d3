"""ELSA (mig_gym.policies.dispatch.elsa): the pure rule and the dispatcher on hand-built partition
states.

Every case: SLA 100 ms, now = 10 s; profiled latency of the query's batch is 40 ms on 1g (which
only holds batches up to 4), 25 ms on 2g, 20 ms on 3g, 15 ms on 4g, 10 ms on 7g. A spec is
``(size, backlog_s[, model, available])``; the expected pick is the spec's index.
"""

from __future__ import annotations

import math

import pytest

import mig_gym
from mig_gym.policies.dispatch.elsa import ELSA, elsa_choice
from tests.fake_cluster import query, server, table

NOW = 10.0
LAT = {
    1: table(0.040, fits_up_to=4),
    2: table(0.025),
    3: table(0.020),
    4: table(0.015),
    7: table(0.010),
}


def _pick(specs: list[tuple], batch: int = 2, waited_s: float = 0.0, **kw: object) -> int | None:
    view, _ = server(NOW, specs, LAT)
    p = ELSA(**kw).choose(query(batch, NOW - waited_s), view)  # type: ignore[arg-type]
    return None if p is None else p.uid


# --------------------------------------------------------------------------- the pure rule
@pytest.mark.parametrize(
    ("candidates", "budget", "expected"),
    [
        ([], 0.1, None),
        ([(1, 0.05), (2, 0.02)], 0.1, 0),  # first class within budget, not the fastest
        ([(1, 0.15), (2, 0.05), (7, 0.01)], 0.1, 1),
        ([(1, 0.1)], 0.1, 0),  # the budget is inclusive
        ([(1, 0.15), (2, 0.12), (7, 0.11)], 0.1, 2),  # none qualifies: global minimum
        ([(1, 0.15), (2, 0.12), (7, 0.12)], 0.1, 1),  # ... ties to the earlier class
        ([(1, 0.2), (2, 0.3)], -math.inf, 0),
    ],
)
def test_elsa_choice(candidates, budget, expected):
    assert elsa_choice(candidates, budget) == expected


# --------------------------------------------------------------------------- dispatch
@pytest.mark.parametrize(
    ("specs", "batch", "waited_s", "expected"),
    [
        # all idle: the smallest size class meets the SLA
        ([(7, 0.0), (2, 0.0), (1, 0.0)], 2, 0.0, 2),
        # within the class, the earliest-free partition (t_done 90, 50, 70 ms: all feasible)
        ([(1, 0.05), (1, 0.01), (1, 0.03)], 2, 0.0, 1),
        # 1g backlogged (t_done 110 ms): spill to the next class that fits the budget
        ([(1, 0.07), (2, 0.0)], 2, 0.0, 1),
        ([(1, 0.07), (2, 0.08), (3, 0.05), (7, 0.0)], 2, 0.0, 2),
        # none qualifies (240, 125, 160 ms): the smallest t_done overall
        ([(1, 0.2), (2, 0.1), (7, 0.15)], 2, 0.0, 1),
        # batch 6 does not fit 1g memory: the idle 1g is skipped
        ([(1, 0.0), (2, 0.0)], 6, 0.0, 1),
        # ... and with only 1g partitions nothing can take it
        ([(1, 0.0)], 6, 0.0, None),
        # an unavailable (reconfiguring) partition and another model's partition are skipped
        ([(1, 0.0, 0, False), (2, 0.0)], 2, 0.0, 1),
        ([(1, 0.0, 1), (2, 0.0)], 2, 0.0, 1),
        ([(1, 0.0, 1)], 2, 0.0, None),
        # time already waited shrinks the budget: 100 - 30 = 70 ms < 1g's 80 ms
        ([(1, 0.04), (2, 0.0)], 2, 0.03, 1),
        ([(1, 0.04), (2, 0.0)], 2, 0.0, 0),
        # a partition idle since long ago has no wait (est_free_s in the past)
        ([(1, -5.0), (2, 0.0)], 2, 0.0, 0),
    ],
)
def test_elsa_picks(specs, batch, waited_s, expected):
    assert _pick(specs, batch, waited_s) == expected


@pytest.mark.parametrize(
    ("specs", "alpha", "expected"),
    [
        # 1g t_done 90 ms, 2g 25 ms
        ([(1, 0.05), (2, 0.0)], 1.0, 0),
        ([(1, 0.05), (2, 0.0)], 2.0, 0),
        ([(1, 0.05), (2, 0.0)], 0.5, 1),  # budget 50 ms
        ([(1, 0.05), (2, 0.0)], 0.2, 1),  # budget 20 ms: none qualifies, global minimum
        # 1g t_done 190 ms, 2g 125 ms
        ([(1, 0.15), (2, 0.1)], 1.0, 1),  # none qualifies
        ([(1, 0.15), (2, 0.1)], 2.0, 0),  # budget 200 ms: the small class qualifies
    ],
)
def test_elsa_alpha_scales_the_budget(specs, alpha, expected):
    assert _pick(specs, alpha=alpha) == expected


@pytest.mark.parametrize(
    ("specs", "home", "expected"),
    [
        ([(1, 0.0), (2, 0.0), (3, 0.0), (7, 0.0)], 3, 2),  # starts at the home size
        ([(1, 0.0), (2, 0.0), (3, 0.1), (7, 0.0)], 3, 3),  # home backlogged: next larger
        ([(1, 0.0), (2, 0.0), (3, 0.0)], 1, 0),
        # nothing at or above home qualifies (220, 210 ms): smallest t_done overall (1g, 40 ms)
        ([(1, 0.0), (3, 0.2), (7, 0.2)], 3, 0),
        # no partition at or above home: scan from the smallest
        ([(1, 0.0), (2, 0.0)], 3, 0),
        ([(1, 0.07), (2, 0.0)], 4, 1),
    ],
)
def test_elsa_scan_from_home(specs, home, expected):
    homes: list[tuple[int, int]] = []

    def home_of(model: int, batch: int) -> int:
        homes.append((model, batch))
        return home

    assert _pick(specs, batch=3, scan_from="home", home_of=home_of) == expected
    assert homes == [(0, 3)]


def test_elsa_scan_from_home_without_homes_is_the_plain_rule():
    specs = [(1, 0.0), (2, 0.0), (3, 0.0)]
    assert _pick(specs, scan_from="home") == _pick(specs) == 0


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": -1.0}, "alpha"),
        ({"scan_from": "largest"}, "scan_from"),
    ],
)
def test_elsa_rejects_bad_parameters(kw, match):
    with pytest.raises(ValueError, match=match):
        ELSA(**kw)


def test_elsa_does_not_change_the_partitions():
    view, parts = server(NOW, [(1, 0.05), (2, 0.0)], LAT)
    before = [(p.est_free_s, len(p.queue), p.running, p.version) for p in parts]
    ELSA().choose(query(2, NOW), view)
    assert [(p.est_free_s, len(p.queue), p.running, p.version) for p in parts] == before


@pytest.mark.parametrize("scan_from", ["smallest", "home"])
def test_elsa_in_the_simulator_with_paris_homes(scan_from):
    s = mig_gym.simulate(
        "scenarios/paper_resnet50.yaml",
        policy=f"paris+elsa[scan_from={scan_from}]",
        seed=1,
        num_queries=3000,
    )
    assert s.conserved and s.completed + s.rejected == s.arrived == 3000
    assert s.sla_violation_rate < 0.05
