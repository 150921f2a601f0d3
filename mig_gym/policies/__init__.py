"""Reference policies: partitioners (PARIS, homogeneous, fixed, random, periodic PARIS, PARIS_tuned)
and dispatchers (ELSA, FIFS and its push form, earliest-finish, JSQ, round-robin, random).

What each name means is in :mod:`.registry`; policy strings (``partitioner+dispatcher``, e.g.
``paris[knee=utilization,theta=0.8]+elsa[alpha=0.9]`` or ``homo7+fifs``) in :mod:`.parse`.
"""

from __future__ import annotations

from mig_gym.policies.dispatch.baselines import (
    FIFS,
    EarliestFinish,
    FirstFree,
    JoinShortestQueue,
    RandomDispatch,
    RoundRobin,
)
from mig_gym.policies.dispatch.elsa import ELSA
from mig_gym.policies.parse import Policy, label_of, make_policy, parse_policy
from mig_gym.policies.partition.baselines import FixedLayouts, Homogeneous, RandomLayouts
from mig_gym.policies.partition.paris import PARIS
from mig_gym.policies.partition.periodic import PeriodicPARIS
from mig_gym.policies.partition.tuned import PARISTuned
from mig_gym.policies.registry import (
    DISPATCHERS,
    PARTITIONERS,
    PolicyError,
    make_dispatcher,
    make_partitioner,
)

__all__ = [
    "Policy",
    "PolicyError",
    "parse_policy",
    "make_policy",
    "label_of",
    "make_partitioner",
    "make_dispatcher",
    "PARTITIONERS",
    "DISPATCHERS",
    "PARIS",
    "ELSA",
    "FIFS",
    "FirstFree",
    "EarliestFinish",
    "JoinShortestQueue",
    "RoundRobin",
    "RandomDispatch",
    "Homogeneous",
    "FixedLayouts",
    "RandomLayouts",
    "PeriodicPARIS",
    "PARISTuned",
]
