"""Scenarios: the configuration dataclasses (:mod:`.config`) and loading with validation
(:mod:`.loader`)."""

from mig_gym.scenario.config import Scenario
from mig_gym.scenario.loader import ScenarioError, load_scenario, replace_in, scenario_to_dict

__all__ = ["Scenario", "ScenarioError", "load_scenario", "replace_in", "scenario_to_dict"]
