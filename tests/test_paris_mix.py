"""Mix-aware PARIS: the split of GPUs between models follows the model mix in force (issue 13).

A two-model scenario whose popularity flips at 20 s: resnet50 takes 90 % of the queries first,
then 10 %. A plan made for a phase gives the popular model most GPUs; periodic PARIS moves GPUs
over once it has seen an epoch of the new mix.
"""

from __future__ import annotations

import pytest

from mig_gym.policies.partition.paris import PARIS
from mig_gym.runs import build as engine
from mig_gym.scenario import load_scenario

FLIP = {
    "name": "flip",
    "seed": 0,
    "cluster": {"gpu": "A100-80GB", "num_gpus": 6, "reconfig_s": 1.0},
    "models": [
        {"name": "resnet50", "slo_ms": 100, "share": 0.9},
        {"name": "mobilenetv2", "slo_ms": 65, "share": 0.1},
    ],
    "workload": {
        "arrivals": {"kind": "poisson", "rate_qps": 600},
        "batch": {"kind": "lognormal", "median": 8, "sigma": 0.6, "max": 64},
        "phases": [{"start_s": 20.0, "mix": {"resnet50": 0.1, "mobilenetv2": 0.9}}],
    },
    "policy": {"partitioner": {"kind": "periodic_paris", "epoch_s": 10}},
    "run": {"num_queries": 30000, "warmup_queries": 0},
}


def _gpus_per_model(layout_models: list[tuple[int, ...]]) -> list[int]:
    out = [0, 0]
    for mods in layout_models:
        out[mods[0]] += 1
    return out


def test_phase_context_carries_the_phase_mix_and_rate() -> None:
    sc = load_scenario(FLIP)
    prof = engine.load_profiles(sc)
    assert engine.plan_context(sc, prof, 0, phase=0).shares == pytest.approx((0.9, 0.1))
    assert engine.plan_context(sc, prof, 0, phase=1).shares == pytest.approx((0.1, 0.9))
    # The whole-run plan sees both mixes, equally weighted.
    assert engine.plan_context(sc, prof, 0).shares == pytest.approx((0.5, 0.5))


def test_static_plans_for_each_phase_follow_its_mix() -> None:
    sc = load_scenario(FLIP)
    prof = engine.load_profiles(sc)
    first = PARIS().plan(engine.plan_context(sc, prof, 0, phase=0))
    second = PARIS().plan(engine.plan_context(sc, prof, 0, phase=1))
    a, b = _gpus_per_model(list(first.models)), _gpus_per_model(list(second.models))
    assert a[0] > a[1] and b[1] > b[0], (a, b)
    assert sum(a) == sum(b) == 6


def test_periodic_paris_moves_gpus_to_the_model_that_rose() -> None:
    run = engine.build(FLIP, None, 0, epoch_s=10.0)
    seen = {}
    while (d := run.sim.run_until_decision()) is not None and d.epoch <= 4:
        run.step_epoch(d)
        targets = [g.target if g.target is not None else (g.layout, g.models) for g in run.sim.gpus]
        seen[d.epoch] = _gpus_per_model([mods for _, mods in targets])
    # Epochs 1 and 2 saw the 90/10 mix, epoch 3 (20-30 s) the 10/90 one.
    assert seen[2][0] > seen[2][1], seen
    assert seen[3][1] > seen[3][0], seen
    assert run.policy.partitioner.mix[1] > 0.8
