"""Reference policies: partitioners (PARIS, homogeneous, fixed, random, periodic PARIS, PARIS_tuned)
and dispatchers (ELSA, FIFS, earliest-finish, JSQ, round-robin, random).

Policy strings read ``partitioner+dispatcher``; either part may carry parameters in brackets, e.g.
``paris[knee=utilization,theta=0.8]+elsa[alpha=0.9]`` or ``homo7+fifs``. ``scenario`` as a part
means the scenario's own choice.
"""

from __future__ import annotations

import dataclasses
import re
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
from mig_gym.scenario.loader import _convert_dataclass, _Problems

__all__ = [
    "Policy",
    "PolicyError",
    "parse_policy",
    "make_policy",
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

PARTITIONERS = (
    "paris",
    "paris_tuned",
    "periodic_paris",
    "homo1",
    "homo2",
    "homo3",
    "homo4",
    "homo7",
    "fixed",
    "random",
    "scenario",
)
DISPATCHERS = ("elsa", "fifs", "earliest_finish", "jsq", "round_robin", "random", "scenario")
_ALIASES = {"ef": "earliest_finish", "rr": "round_robin", "homogeneous": "scenario"}


class PolicyError(ValueError):
    """A policy string that cannot be parsed or does not fit the scenario."""


@dataclass
class Policy:
    partitioner: Any
    dispatcher: Any
    fallback: Any
    label: str


_PART = re.compile(r"^([a-z_0-9]+)(?:\[(.*)\])?$")


def _params(text: str | None, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in filter(None, (text or "").split(",")):
        key, eq, val = item.partition("=")
        if not eq:
            raise PolicyError(f"{where}: parameter {item!r} is not key=value")
        v: Any = val.strip()
        for conv in (int, float):
            try:
                v = conv(v)
                break
            except ValueError:
                pass
        out[key.strip()] = v
    return out


def _with(cfg: Any, params: dict[str, Any], where: str) -> Any:
    names = {f.name for f in dataclasses.fields(cfg)} - {"kind"}
    for k in params:
        if k not in names:
            raise PolicyError(f"{where}: unknown parameter {k!r} (allowed: {sorted(names)})")
    # The scenario loader's types and limits apply to bracket parameters too.
    probs = _Problems()
    checked = _convert_dataclass(type(cfg), {"kind": cfg.kind, **params}, "", probs)
    if probs.items:
        raise PolicyError(f"{where}: " + "; ".join(probs.items))
    return dataclasses.replace(cfg, **{k: getattr(checked, k) for k in params})


def parse_policy(spec: str | None, sc: C.Scenario) -> tuple[C.Partitioner, C.Dispatcher]:
    """Turn ``"partitioner+dispatcher"`` into config objects (``None`` = the scenario's policy)."""
    if spec is None:
        return sc.policy.partitioner, sc.policy.dispatcher
    parts = spec.strip().split("+")
    if len(parts) != 2:
        raise PolicyError(f"policy {spec!r}: expected 'partitioner+dispatcher', e.g. 'paris+elsa'")
    (pname, pparams), (dname, dparams) = (_split(p, spec) for p in parts)
    pname, dname = _ALIASES.get(pname, pname), _ALIASES.get(dname, dname)
    if pname not in PARTITIONERS:
        raise PolicyError(
            f"policy {spec!r}: unknown partitioner {pname!r} (known: {', '.join(PARTITIONERS)})"
        )
    if dname not in DISPATCHERS:
        raise PolicyError(
            f"policy {spec!r}: unknown dispatcher {dname!r} (known: {', '.join(DISPATCHERS)})"
        )
    own_p, own_d = sc.policy.partitioner, sc.policy.dispatcher
    if pname == "scenario":
        part: Any = own_p
    elif pname.startswith("homo"):
        part = C.HomogeneousConfig(gpcs=int(pname[4:]))
    elif pname == "fixed":
        if not isinstance(own_p, C.FixedLayoutConfig):
            raise PolicyError(
                f"policy {spec!r}: 'fixed' needs policy.partitioner.kind: fixed "
                "with layouts in the scenario"
            )
        part = own_p
    else:
        kind_cls = {
            "paris": C.PARISConfig,
            "paris_tuned": C.PARISTunedConfig,
            "periodic_paris": C.PeriodicPARISConfig,
            "random": C.RandomLayoutConfig,
        }
        cls = kind_cls[pname]
        part = own_p if isinstance(own_p, cls) else cls()
    part = _with(part, pparams, spec)
    if dname == "scenario":
        disp: Any = own_d
    elif dname == "elsa":
        disp = own_d if isinstance(own_d, C.ELSAConfig) else C.ELSAConfig()
    else:
        disp = C.SimpleDispatcherConfig(kind=dname)  # type: ignore[arg-type]
    disp = _with(disp, dparams, spec)
    return part, disp


def _split(text: str, spec: str) -> tuple[str, dict[str, Any]]:
    m = _PART.match(text.strip().lower())
    if m is None:
        raise PolicyError(f"policy {spec!r}: cannot read {text!r}")
    return m.group(1), _params(m.group(2), f"policy {spec!r}")


def label_of(part: Any, disp: Any) -> str:
    p = f"homo{part.gpcs}" if isinstance(part, C.HomogeneousConfig) else part.kind
    return f"{p}+{disp.kind}"


def make_partitioner(cfg: C.Partitioner, sc: C.Scenario, rng: np.random.Generator) -> Any:
    if isinstance(cfg, C.PARISConfig):
        return PARIS(cfg.knee, cfg.theta, cfg.beta, cfg.weighting)
    if isinstance(cfg, C.PARISTunedConfig):
        return PARISTuned(cfg.trial_queries)
    if isinstance(cfg, C.PeriodicPARISConfig):
        return PeriodicPARIS(cfg.epoch_s, PARIS(cfg.knee, cfg.theta, cfg.beta))
    if isinstance(cfg, C.HomogeneousConfig):
        return Homogeneous(cfg.gpcs)
    if isinstance(cfg, C.FixedLayoutConfig):
        return FixedLayouts(cfg.layouts)
    return RandomLayouts(rng)


def make_dispatcher(cfg: C.Dispatcher, partitioner: Any, rng: np.random.Generator) -> Any:
    if isinstance(cfg, C.ELSAConfig):
        home = getattr(partitioner, "home_of", None)
        if cfg.scan_from == "home" and home is None:
            raise PolicyError(
                "elsa[scan_from=home] needs a PARIS partitioner (it names home sizes)"
            )
        return ELSA(cfg.alpha, cfg.scan_from, home)
    return {
        "fifs": FIFS,
        "earliest_finish": EarliestFinish,
        "jsq": JoinShortestQueue,
        "round_robin": RoundRobin,
    }.get(cfg.kind, lambda: RandomDispatch(rng))()


def make_policy(
    cfgs: tuple[C.Partitioner, C.Dispatcher],
    sc: C.Scenario,
    dispatch_rng: np.random.Generator,
    partition_rng: np.random.Generator,
) -> Policy:
    part_cfg, disp_cfg = cfgs
    part = make_partitioner(part_cfg, sc, partition_rng)
    disp = make_dispatcher(disp_cfg, part, dispatch_rng)
    fallback = disp if not disp.central_queue else EarliestFinish()
    return Policy(part, disp, fallback, label_of(part_cfg, disp_cfg))
