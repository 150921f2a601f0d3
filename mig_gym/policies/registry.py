"""The policy registry: every partitioner and dispatcher name, and the one thing each name means.

Each entry ties a name to its scenario config class (:mod:`mig_gym.scenario.config`, where the
YAML shape lives because the scenario layer cannot import policies), its factory, and for
dispatchers the rule class (whose ``fast_form`` gives the static fast path its loop, see
:mod:`mig_gym.policies.dispatch.elsa`) and its reference form for ``Dispatch-v0``. Policy strings
(:mod:`mig_gym.policies.parse`), ``build``, ``mig_gym.envs.reference_policy`` and training's
reference curves all read these tables; tests/test_fastpath.py checks every rule's fast form
against its event form from them, and tests/test_dispatchers.py checks that the tables and the
scenario's config unions name the same kinds.

One label, one meaning: ``fifs`` is the paper's first-idle-first-serve as a central queue per
model (the simulator's pull mode); its push form, the partition that becomes free soonest, is
``fifs_push`` (the only form ``Dispatch-v0`` can express, since the agent places each query on
arrival). Likewise ``paris`` is the static PARIS plan (the simulator's; in ``Partition-v0``
that is ``static``, the tasks' initial plan being PARIS's) and ``periodic_paris`` PARIS
re-planned every epoch, by the same rule in the simulator and as ``Partition-v0``'s reference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mig_gym.policies.dispatch.baselines import (
    FIFS,
    EarliestFinish,
    FirstFree,
    JoinShortestQueue,
    RandomDispatch,
    RoundRobin,
)
from mig_gym.policies.dispatch.elsa import ELSA
from mig_gym.policies.partition.baselines import FixedLayouts, Homogeneous, RandomLayouts
from mig_gym.policies.partition.paris import PARIS
from mig_gym.policies.partition.periodic import PeriodicPARIS
from mig_gym.policies.partition.tuned import PARISTuned
from mig_gym.scenario import config as C

__all__ = [
    "PolicyError",
    "DispatcherEntry",
    "PartitionerEntry",
    "DISPATCHERS",
    "PARTITIONERS",
    "STATIC",
    "dispatcher_entry",
    "partitioner_entry",
    "make_dispatcher",
    "make_partitioner",
    "reference_names",
    "reference_curves",
]


class PolicyError(ValueError):
    """A policy string that cannot be parsed or does not fit the scenario."""


@dataclass(frozen=True)
class DispatcherEntry:
    """A dispatcher name.

    Attributes:
        name: the name in policy strings, YAML (``kind``) and ``reference_policy``.
        config: its scenario config class (``kind`` field equal to ``name``).
        rule: the dispatcher class; its ``fast_form`` (if any) is the static fast path's loop.
        make: ``(config, partitioner, rng) -> dispatcher`` for a simulation.
        reference: ``(seed, **params) -> dispatcher`` for ``Dispatch-v0``, or None when the rule
            cannot act there (a pull rule).
        curve: drawn as a reference curve in training.
        doc: one line for listings and errors.
    """

    name: str
    config: type
    rule: type
    make: Callable[[Any, Any, np.random.Generator], Any]
    reference: Callable[..., Any] | None
    curve: bool
    doc: str


@dataclass(frozen=True)
class PartitionerEntry:
    """A partitioner config kind.

    Attributes:
        kind: the config's ``kind`` (YAML).
        config: its scenario config class.
        names: its names in policy strings (``homo1`` ... for ``homogeneous``).
        make: ``(config, rng) -> partitioner``.
        reference: ``(**params) -> partitioner`` whose ``bind(env)`` re-plans ``Partition-v0``
            at each epoch, or None.
        curve: drawn as a reference curve in training.
        doc: one line for listings and errors.
    """

    kind: str
    config: type
    names: tuple[str, ...]
    make: Callable[[Any, np.random.Generator], Any]
    reference: Callable[..., Any] | None
    curve: bool
    doc: str

    def label(self, cfg: Any) -> str:
        """The name a run with ``cfg`` is labelled by."""
        return f"homo{cfg.gpcs}" if isinstance(cfg, C.HomogeneousConfig) else cfg.kind


def _elsa(cfg: C.ELSAConfig, partitioner: Any, rng: np.random.Generator) -> ELSA:
    home = getattr(partitioner, "home_of", None)
    if cfg.scan_from == "home" and home is None:
        raise PolicyError("elsa[scan_from=home] needs a PARIS partitioner (it names home sizes)")
    return ELSA(cfg.alpha, cfg.scan_from, home)


def _plain(cls: type) -> Callable[[Any, Any, np.random.Generator], Any]:
    return lambda cfg, partitioner, rng: cls()


def _paris(cfg: C.PARISConfig) -> PARIS:
    return PARIS(cfg.knee, cfg.theta, cfg.beta, cfg.weighting)


def _periodic_reference(**params: Any) -> PeriodicPARIS:
    """Partition-v0's ``periodic_paris``: params ``prior`` and PARIS's (``knee``, ``theta``,
    ``beta``, ``weighting``). The environment's epochs (``env.epoch_s``) time its re-plans, so
    the partitioner's own ``epoch_s`` (the config's default) is not used there."""
    base = C.PeriodicPARISConfig()
    prior = params.pop("prior", base.prior)
    return PeriodicPARIS(base.epoch_s, PARIS(**params), prior)


_D = DispatcherEntry
DISPATCHERS: dict[str, DispatcherEntry] = {
    e.name: e
    for e in (
        _D("elsa", C.ELSAConfig, ELSA, _elsa, lambda seed, **p: ELSA(**p), True,
           "ELSA: the smallest partition size that still meets the SLA (the paper's rule)"),
        _D("fifs", C.SimpleDispatcherConfig, FIFS, _plain(FIFS), None, False,
           "first-idle-first-serve: a central FIFO per model (pull; the paper's baseline)"),
        _D("fifs_push", C.SimpleDispatcherConfig, FirstFree, _plain(FirstFree),
           lambda seed: FirstFree(), True,
           "push form of FIFS: the partition that becomes free soonest"),
        _D("earliest_finish", C.SimpleDispatcherConfig, EarliestFinish, _plain(EarliestFinish),
           lambda seed: EarliestFinish(), False,
           "the partition with the earliest estimated finish"),
        _D("jsq", C.SimpleDispatcherConfig, JoinShortestQueue, _plain(JoinShortestQueue),
           lambda seed: JoinShortestQueue(), False, "join the shortest queue"),
        _D("round_robin", C.SimpleDispatcherConfig, RoundRobin, _plain(RoundRobin),
           lambda seed: RoundRobin(), False, "cycle through the model's partitions"),
        _D("random", C.SimpleDispatcherConfig, RandomDispatch,
           lambda cfg, partitioner, rng: RandomDispatch(rng),
           lambda seed: RandomDispatch(np.random.default_rng(seed)), True,
           "a uniformly random partition that can hold the batch"),
    )
}  # fmt: skip

HOMO_SIZES = (1, 2, 3, 4, 7)  # the A100's partition sizes, as names homo1 ... homo7
_P = PartitionerEntry
PARTITIONERS: dict[str, PartitionerEntry] = {
    e.kind: e
    for e in (
        _P("paris", C.PARISConfig, ("paris",), lambda cfg, rng: _paris(cfg), None, False,
           "PARIS: partition sizes from the batch-size distribution (the paper's rule)"),
        _P("paris_tuned", C.PARISTunedConfig, ("paris_tuned",),
           lambda cfg, rng: PARISTuned(cfg.trial_queries), None, False,
           "PARIS candidates scored by short simulations (ours)"),
        _P("periodic_paris", C.PeriodicPARISConfig, ("periodic_paris",),
           lambda cfg, rng: PeriodicPARIS(cfg.epoch_s, _paris(cfg.paris), cfg.prior),
           _periodic_reference,
           True,
           "PARIS re-planned every epoch_s on the observed batch sizes"),
        _P("homogeneous", C.HomogeneousConfig, tuple(f"homo{k}" for k in HOMO_SIZES),
           lambda cfg, rng: Homogeneous(cfg.gpcs), None, False,
           "every partition of one size (homoK: K GPCs)"),
        _P("fixed", C.FixedLayoutConfig, ("fixed",), lambda cfg, rng: FixedLayouts(cfg.layouts),
           None, False, "the scenario's explicit layouts"),
        _P("random", C.RandomLayoutConfig, ("random",), lambda cfg, rng: RandomLayouts(rng),
           None, False, "a random legal layout per GPU"),
    )
}  # fmt: skip

STATIC = "static"  # Partition-v0's reference that keeps the initial plan (no partitioner acts)


def dispatcher_entry(cfg: Any) -> DispatcherEntry:
    """The entry of a dispatcher config (by its ``kind``)."""
    return DISPATCHERS[cfg.kind]


def partitioner_entry(cfg: Any) -> PartitionerEntry:
    """The entry of a partitioner config (by its ``kind``)."""
    return PARTITIONERS[cfg.kind]


def make_partitioner(cfg: Any, rng: np.random.Generator) -> Any:
    return partitioner_entry(cfg).make(cfg, rng)


def make_dispatcher(cfg: Any, partitioner: Any, rng: np.random.Generator) -> Any:
    return dispatcher_entry(cfg).make(cfg, partitioner, rng)


def reference_names(env_kind: str) -> tuple[str, ...]:
    """The reference rules ``reference_policy`` knows for ``"dispatch"`` or ``"partition"``."""
    if env_kind == "dispatch":
        return tuple(n for n, e in DISPATCHERS.items() if e.reference is not None)
    return (STATIC, *(n for n, e in PARTITIONERS.items() if e.reference is not None))


def reference_curves(env_kind: str) -> tuple[str, ...]:
    """The reference rules training draws as flat curves beside a learned agent."""
    if env_kind == "dispatch":
        return tuple(n for n, e in DISPATCHERS.items() if e.curve)
    return (STATIC, *(n for n, e in PARTITIONERS.items() if e.curve))
