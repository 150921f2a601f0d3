"""Scenario loading: shipped files, defaults, strict validation with clear messages."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

import mig_gym
from mig_gym.scenario import (
    ScenarioError,
    load_scenario,
    scenario_file,
    scenario_names,
    scenario_to_dict,
)
from mig_gym.scenario import config as C

from .conftest import SCENARIOS, SHARED_DATA

SHIPPED = sorted(SCENARIOS.glob("*.yaml"))
NEEDS_SHARED = {"azure_trace.yaml"}


def test_all_required_scenarios_are_shipped():
    names = {p.name for p in SHIPPED}
    for required in (
        "paper_resnet50.yaml",
        "paper_mobilenet.yaml",
        "paper_bert.yaml",
        "bursty.yaml",
        "diurnal_drift.yaml",
        "multi_model.yaml",
        "azure_trace.yaml",
    ):
        assert required in names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_scenario_loads_and_runs(path: Path):
    if path.name in NEEDS_SHARED and not SHARED_DATA.is_dir():
        pytest.skip(f"{path.name} replays a trace from {SHARED_DATA}, absent here")
    sc = load_scenario(path)
    assert sc.name == path.stem
    s = mig_gym.simulate(sc, num_queries=3000)
    assert s.arrived == 3000
    assert s.conserved and s.in_system == 0
    assert s.completed + s.rejected == 3000
    assert s.latency_p95_ms > 0


def test_default_scenario_is_paper_resnet50():
    default = load_scenario(None)
    shipped = load_scenario(SCENARIOS / "paper_resnet50.yaml")
    assert dataclasses.replace(shipped, base_dir=".") == default
    assert C.Scenario() == default


def test_dict_round_trip():
    sc = load_scenario(SCENARIOS / "diurnal_drift.yaml")
    again = load_scenario(scenario_to_dict(sc))
    assert again == sc


@pytest.mark.parametrize(
    ("patch", "expect"),
    [
        ({"cluster": {"num_gpuz": 3}}, "cluster.num_gpuz: unknown key"),
        ({"cluster": {"num_gpus": "eight"}}, "cluster.num_gpus: got 'eight', expected an integer"),
        ({"cluster": {"num_gpus": 0}}, "cluster.num_gpus: got 0, must be >= 1"),
        ({"cluster": {"gpu": "V100"}}, "cluster.gpu: got 'V100'"),
        ({"models": [{"name": "resnet50", "slo_ms": -5}]}, "models[0].slo_ms: got -5, must be > 0"),
        ({"models": [{"name": "gpt9", "slo_ms": 5}]}, "gpt9"),
        ({"workload": {"arrivals": {"kind": "poison"}}}, "workload.arrivals.kind: got 'poison'"),
        (
            {"workload": {"arrivals": {"kind": "poisson", "rate_qps": float("nan")}}},
            "expected a finite number",
        ),
        ({"workload": {"batch": {"kind": "lognormal", "min": 9, "max": 4}}}, "min 9 > max 4"),
        (
            {"workload": {"arrivals": {"kind": "trace", "path": "nope.csv"}}},
            "workload.arrivals.path: file not found",
        ),
        (
            {"policy": {"partitioner": {"kind": "homogeneous", "gpcs": 5}}},
            "policy.partitioner.gpcs: got 5",
        ),
        (
            {"policy": {"partitioner": {"kind": "fixed", "layouts": [[4, 4]]}}},
            "policy.partitioner.layouts[0]",
        ),
        ({"run": {"num_queries": 10, "warmup_queries": 10}}, "run.warmup_queries: got 10"),
        ({"faults": [{"gpu": 8, "down_at_s": 1}]}, "faults[0].gpu: got 8"),
        ({"faults": [{"gpu": 1, "down_at_s": 5, "up_at_s": 2}]}, "faults[0].up_at_s: got 2"),
        (
            {"policy": {"dispatcher": {"kind": "elsa", "alpha": 0}}},
            "policy.dispatcher.alpha: got 0, must be > 0",
        ),
        ({"workload": {"phases": [{"start_s": 10}, {"start_s": 5}]}}, "phases must be in time"),
        ({"env": {"reward_weights": {"latency": "high"}}}, "env.reward_weights.latency"),
    ],
)
def test_malformed_scenarios_name_field_and_value(patch: dict, expect: str):
    with pytest.raises(ScenarioError) as err:
        load_scenario(patch)
    assert expect in str(err.value)


def test_every_problem_is_reported_with_the_file(tmp_path: Path):
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump({"cluster": {"num_gpus": -1, "colour": "red"}, "seed": "x"}))
    with pytest.raises(ScenarioError) as err:
        load_scenario(f)
    msg = str(err.value)
    assert str(f) in msg
    assert len(err.value.problems) == 3
    for part in ("cluster.num_gpus", "cluster.colour", "seed"):
        assert part in msg


def test_not_yaml_and_not_mapping(tmp_path: Path):
    f = tmp_path / "x.yaml"
    f.write_text("cluster: [unclosed")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(f)
    f.write_text("- 1\n- 2\n")
    with pytest.raises(ScenarioError, match="expected a mapping"):
        load_scenario(f)


def test_shipped_scenarios_are_found_by_name_in_the_checkout():
    """``scenario_file`` (what the tasks use) reads this tree's ``scenarios/``; from a wheel it
    reads the wheel's copy (tests/test_wheel.py)."""
    assert scenario_names() == tuple(p.name for p in SHIPPED)
    assert scenario_file("bursty.yaml") == SCENARIOS / "bursty.yaml"
    with pytest.raises(FileNotFoundError, match=r"'nope\.yaml'.*shipped: azure_trace\.yaml, "):
        scenario_file("nope.yaml")


def test_missing_scenario_file(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=r"nope\.yaml"):
        load_scenario(tmp_path / "nope.yaml")


def test_trace_path_resolves_relative_to_scenario_file(tmp_path: Path):
    (tmp_path / "t.csv").write_text("ts\n0.0\n0.5\n1.0\n")
    f = tmp_path / "s.yaml"
    f.write_text(
        yaml.safe_dump(
            {
                "workload": {
                    "arrivals": {"kind": "trace", "path": "t.csv", "column": "ts", "loop": True}
                }
            }
        )
    )
    s = mig_gym.simulate(f, num_queries=50)
    assert s.arrived == 50
