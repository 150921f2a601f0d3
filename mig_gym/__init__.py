"""mig_gym: a Gymnasium simulator of MIG-partitioned multi-GPU inference servers, with PARIS and
ELSA (Kim, Choi and Rhu, DAC 2022) as reference policies."""

from mig_gym import envs  # registers mig_gym/Dispatch-v0 and mig_gym/Partition-v0
from mig_gym.metrics import Summary
from mig_gym.runs.build import build, simulate
from mig_gym.scenario import ScenarioError, load_scenario, scenario_file
from mig_gym.scenario.config import Scenario

__all__ = [
    "envs",
    "Scenario",
    "ScenarioError",
    "Summary",
    "build",
    "load_scenario",
    "scenario_file",
    "simulate",
]
__version__ = "0.1.0"
