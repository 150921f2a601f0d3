"""Reference schedules (mig_gym.runs.schedules): epochs per phase, run length, rejected work,
schedules applied at epoch boundaries, and the plan choice over phases."""

from __future__ import annotations

import pytest

from mig_gym.policies.partition.baselines import Homogeneous
from mig_gym.runs import build as engine
from mig_gym.runs import schedules
from mig_gym.scenario import load_scenario
from tests.conftest import SCENARIOS, assert_close


def _scenario(**workload) -> dict:
    return {
        "name": "toy_drift",
        "cluster": {"gpu": "A100-80GB", "num_gpus": 2, "reconfig_s": 1.0},
        "models": [{"name": "resnet50", "slo_ms": 100}],
        "workload": {
            "arrivals": {"kind": "poisson", "rate_qps": 100},
            "batch": {"kind": "lognormal", "median": 4, "sigma": 0.5, "max": 16},
            **workload,
        },
        "run": {"num_queries": 500, "warmup_queries": 0},
        "env": {"epoch_s": 10, "epochs_per_episode": 4},
    }


def _homo(sc, k: int):
    return Homogeneous(k).plan(engine.plan_context(sc, engine.load_profiles(sc), 0))


def test_each_epoch_belongs_to_the_phase_covering_most_of_it() -> None:
    sc = load_scenario(_scenario(phases=[{"start_s": 14.0}, {"start_s": 36.0}]))
    # Epoch 1 (10-20 s) is 60 % phase 1; epoch 3 (30-40 s) is 60 % phase 1 too.
    assert schedules.phase_of_epochs(sc, 5, 10.0) == [0, 1, 1, 1, 2]


def test_run_epochs_runs_exactly_the_epochs_whatever_num_queries_says() -> None:
    # run.num_queries (500) would end the arrivals after about 5 s; the run lasts 4 x 10 s.
    r = schedules.run_epochs(_scenario(), "paris+elsa", seed=3)
    assert r.summary.sim_time_s == pytest.approx(40.0)
    assert r.summary.arrived > 3000 and r.summary.conserved
    assert r.rejected_work == 0.0


def test_rejected_work_counts_batch_items() -> None:
    # A 1g partition cannot hold a batch of 64 (resnet50): homo1 rejects everything, homo7 nothing.
    sc = _scenario(batch={"kind": "fixed", "value": 64})
    low = schedules.run_epochs(sc, "homo1+elsa", seed=0, epochs=2)
    high = schedules.run_epochs(sc, "homo7+elsa", seed=0, epochs=2)
    assert low.rejected_work == 1.0 and low.summary.rejected == low.summary.arrived
    assert low.offered_items == 64 * low.summary.arrived
    assert high.rejected_work == 0.0 and high.summary.rejected == 0


def test_a_schedule_switches_plans_at_epoch_boundaries_only_where_they_change() -> None:
    sc = load_scenario(_scenario())
    a, b = _homo(sc, 7), _homo(sc, 1)
    sched = schedules.Schedule("toy", (a, a, b, b))
    r = schedules.run_epochs(sc, sched, seed=0)
    assert r.summary.reconfigurations == 2  # both GPUs once, at 20 s
    assert r.summary.downtime_s == pytest.approx(2 * 1.0, abs=0.05)
    late = schedules.reactive(sc, 4, 10.0, list(sched.plans))
    assert late.plans == (a, a, a, b)
    with pytest.raises(ValueError, match="plans for 4 epochs"):
        schedules.run_epochs(sc, schedules.Schedule("short", (a,)), seed=0)


def test_choose_plans_switches_only_when_the_phase_changes_the_best_plan() -> None:
    # Same traffic in both phases: one plan throughout. Tiny then huge batches: two plans.
    same = load_scenario(_scenario(phases=[{"start_s": 20.0}]))
    plans = schedules.choose_plans(same, 4, 10.0, trial_queries=1000)
    assert len({id(p) for p in plans}) == 1
    flip = load_scenario(
        _scenario(
            arrivals={"kind": "poisson", "rate_qps": 1500},
            batch={"kind": "fixed", "value": 1},
            phases=[
                {
                    "start_s": 20.0,
                    "arrivals": {"kind": "poisson", "rate_qps": 30},
                    "batch": {"kind": "fixed", "value": 128},
                }
            ],
        )
    )
    plans = schedules.choose_plans(flip, 4, 10.0, trial_queries=1000)
    assert plans[0] is plans[1] and plans[2] is plans[3] and plans[1] is not plans[2]
    assert min(lay.sizes[0] for lay in plans[0].layouts) < min(
        lay.sizes[0] for lay in plans[2].layouts
    )


@pytest.mark.parametrize("name", sorted(p.stem for p in SCENARIOS.glob("drift_*.yaml")))
def test_drift_tasks_run_their_episode(name: str) -> None:
    sc = load_scenario(SCENARIOS / f"{name}.yaml")
    r = schedules.run_epochs(sc, "paris+elsa", seed=0, epochs=2)
    assert r.summary.sim_time_s == pytest.approx(2 * sc.env.epoch_s)


@pytest.mark.parametrize(
    "policy",
    ["paris+elsa", "periodic_paris+elsa", "homo1+elsa", "reactive", "periodic_paris+fifs",
     "homo1+fifs"],
)  # fmt: skip
def test_run_epochs_on_the_epoch_fast_path_equals_the_event_loop(policy: str) -> None:
    sc = load_scenario(SCENARIOS / "drift_tiny_huge.yaml")
    homo1 = policy in ("homo1+elsa", "homo1+fifs")
    if homo1:  # batches up to 64: a 1g rejects the large ones (in bulk)
        sc = load_scenario(_scenario(batch={"kind": "lognormal", "median": 8, "sigma": 1.0,
                                            "max": 64}))  # fmt: skip
    epochs = 4
    if policy == "reactive":  # a schedule that re-partitions
        plans = [_homo(sc, 1), _homo(sc, 1), _homo(sc, 7), _homo(sc, 2)]
        policy = schedules.reactive(sc, epochs, sc.env.epoch_s, plans)  # type: ignore[assignment]
    runs = [schedules.run_epochs(sc, policy, seed=2, epochs=epochs, fast=f) for f in (True, False)]
    fast, events = runs
    assert_close(fast.summary.to_dict(), events.summary.to_dict())
    assert fast.rejected_work == pytest.approx(events.rejected_work, rel=1e-12)
    assert fast.offered_items == events.offered_items
    if homo1:
        assert 0 < events.rejected_work < 1  # the comparison covers rejected work
