"""Scenarios: the configuration dataclasses (:mod:`.config`), loading with validation
(:mod:`.loader`) and the shipped scenario files (:mod:`.files`)."""

from mig_gym.scenario.config import Scenario
from mig_gym.scenario.files import scenario_file, scenario_names
from mig_gym.scenario.loader import ScenarioError, load_scenario, replace_in, scenario_to_dict

__all__ = [
    "Scenario",
    "ScenarioError",
    "load_scenario",
    "replace_in",
    "scenario_file",
    "scenario_names",
    "scenario_to_dict",
]
