"""The policy registry (mig_gym.policies.registry): one table of names that policy strings, the
scenario's config unions, reference_policy and training's reference curves agree with, and one
meaning per label (``fifs`` the central queue, ``fifs_push`` its push form)."""

from __future__ import annotations

import typing

import gymnasium as gym
import pytest

import mig_gym
from mig_gym.envs import reference_policy
from mig_gym.learn import training
from mig_gym.policies import PolicyError, make_policy, parse_policy
from mig_gym.policies.partition.periodic import PeriodicPARIS
from mig_gym.policies.registry import DISPATCHERS, PARTITIONERS, reference_curves
from mig_gym.runs.build import rng_for
from mig_gym.scenario import ScenarioError, scenario_to_dict
from mig_gym.scenario import config as C
from tests.conftest import SCENARIOS

RESNET = SCENARIOS / "paper_resnet50.yaml"


def test_the_registry_and_the_scenario_unions_name_the_same_kinds():
    # The YAML shape lives in scenario/config.py (the core cannot import policies): a kind added
    # on one side only fails here.
    disp = {k for cls in typing.get_args(C.Dispatcher) for k in typing.get_args(
        typing.get_type_hints(cls)["kind"])}  # fmt: skip
    part = {k for cls in typing.get_args(C.Partitioner) for k in typing.get_args(
        typing.get_type_hints(cls)["kind"])}  # fmt: skip
    assert disp == set(DISPATCHERS)
    assert part == set(PARTITIONERS)
    for name, e in DISPATCHERS.items():
        assert e.rule.name == name, name  # the rule object's own label is the registry's
        assert e.config in typing.get_args(C.Dispatcher)
    for e in PARTITIONERS.values():
        assert e.config in typing.get_args(C.Partitioner)


@pytest.mark.parametrize("name", sorted(DISPATCHERS))
def test_every_dispatcher_name_runs_and_is_labelled_by_its_name(name):
    s = mig_gym.simulate(RESNET, f"paris+{name}", num_queries=1_500)
    assert s.policy == f"paris+{name}" and s.conserved


def test_fifs_is_the_central_queue_and_fifs_push_its_push_form():
    sc = mig_gym.load_scenario(RESNET)
    rngs = (rng_for(0, 1), rng_for(0, 2))
    pull = make_policy(parse_policy("paris+fifs", sc), sc, *rngs).dispatcher
    push = make_policy(parse_policy("paris+fifs_push", sc), sc, *rngs).dispatcher
    assert pull.central_queue and not push.central_queue
    assert mig_gym.build(RESNET, "paris+fifs", num_queries=100).sim.central
    assert not mig_gym.build(RESNET, "paris+fifs_push", num_queries=100).sim.central


def test_reference_policy_and_training_read_the_registry():
    env = gym.make("mig_gym/Dispatch-v0", scenario=RESNET)
    env.reset(seed=0)
    assert reference_policy(env, "fifs_push").decide(env.unwrapped) >= 0
    with pytest.raises(ValueError, match="fifs_push"):  # the pull queue has no Dispatch-v0 form
        reference_policy(env, "fifs")
    env.close()
    assert training.REFERENCES["dispatch"] == reference_curves("dispatch")
    assert "fifs_push" in training.REFERENCES["dispatch"]
    assert "fifs" not in training.REFERENCES["dispatch"]


def test_periodic_paris_takes_every_paris_parameter():
    sc = mig_gym.load_scenario(RESNET)
    part, _ = parse_policy("periodic_paris[weighting=count,knee=both,epoch_s=30]+elsa", sc)
    assert part.paris == C.PARISConfig(knee="both", weighting="count") and part.epoch_s == 30
    made = make_policy((part, C.ELSAConfig()), sc, *(rng_for(0, i)
                                                      for i in (1, 2))).partitioner  # fmt: skip
    assert isinstance(made, PeriodicPARIS)
    assert (made.paris.weighting, made.paris.knee) == ("count", "both")
    with pytest.raises(PolicyError, match=r"unknown parameter 'foo'.*weighting"):
        parse_policy("periodic_paris[foo=1]+elsa", sc)
    with pytest.raises(PolicyError, match="theta: got 2"):
        parse_policy("periodic_paris[theta=2]+elsa", sc)


def test_periodic_paris_yaml_flat_or_nested_and_unknown_keys_refused():
    def load(part: dict) -> C.Scenario:
        return mig_gym.load_scenario(RESNET, policy={"partitioner": part})

    flat = load({"kind": "periodic_paris", "epoch_s": 30, "knee": "both", "weighting": "count"})
    nested = load({"kind": "periodic_paris", "epoch_s": 30,
                   "paris": {"knee": "both", "weighting": "count"}})  # fmt: skip
    assert flat.policy == nested.policy
    assert flat.policy.partitioner.paris.weighting == "count"
    assert mig_gym.load_scenario(scenario_to_dict(flat)).policy == flat.policy  # round trip
    bad = [
        ({"kind": "periodic_paris", "wieghting": "count"}, "policy.partitioner.wieghting: unknown"),
        ({"kind": "periodic_paris", "knee": "sla", "paris": {"beta": 0.3}}, "not both"),
        ({"kind": "periodic_paris", "paris": {"knee": "x"}}, "policy.partitioner.paris.knee"),
        ({"kind": "periodic_paris", "theta": 0}, "policy.partitioner.theta: got 0, must be > 0"),
    ]
    for part, msg in bad:
        with pytest.raises(ScenarioError, match=msg.replace(".", r"\.")):
            load(part)
