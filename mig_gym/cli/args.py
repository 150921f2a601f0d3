"""What every sub-command shares: the user-error types, option value parsers, common options."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

from mig_gym import hardware
from mig_gym.hardware.profiles import ProfileRangeError
from mig_gym.policies import PolicyError
from mig_gym.runs.backends import BackendError
from mig_gym.scenario import ScenarioError
from mig_gym.workload import WorkloadError
from mig_gym.workload.traces import TraceError

__all__ = ["USER_ERRORS", "UsageError", "COUNT", "NONNEG", "LOAD", "scenario_options", "split"]


class UsageError(Exception):
    """A command-line mistake reported without a traceback."""


# OSError: missing or unreadable files, a --logdir that is a file, an unreachable Ray cluster.
USER_ERRORS = (
    ScenarioError,
    PolicyError,
    ProfileRangeError,
    WorkloadError,
    TraceError,
    OSError,
    hardware.UnknownGPUError,
    BackendError,
    UsageError,
)


def number(kind: type, lo: float, lo_open: bool = False) -> Callable[[str], Any]:
    """An argparse ``type``: an int or finite float >= ``lo`` (> ``lo`` when ``lo_open``)."""

    def parse(text: str) -> int | float:
        try:
            x = kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not math.isfinite(x) or x < lo or (lo_open and x == lo):
            raise argparse.ArgumentTypeError(
                f"must be {'>' if lo_open else '>='} {lo:g}, got {text!r}"
            )
        return x

    parse.__name__ = kind.__name__  # argparse names the type in some messages
    return parse


COUNT = number(int, 1)  # --num-queries, --seeds, --jobs, ...
NONNEG = number(int, 0)
LOAD = number(float, 0.0, lo_open=True)


def scenario_options(sp: argparse.ArgumentParser, policy: bool = True) -> None:
    """The scenario file, ``--seed`` and (with ``policy``) ``--policy``."""
    sp.add_argument("scenario", help="scenario YAML file")
    sp.add_argument("--seed", type=NONNEG, default=None, help="override the scenario's seed")
    if policy:
        sp.add_argument(
            "--policy",
            default=None,
            help="partitioner+dispatcher, e.g. paris+elsa (default: scenario's)",
        )


def split(text: str) -> list[str]:
    """A comma list of policies (at least one)."""
    items = [p.strip() for p in text.split(",") if p.strip()]
    if not items:
        raise UsageError("--policies: give at least one policy, e.g. paris+elsa,homo7+fifs")
    return items
