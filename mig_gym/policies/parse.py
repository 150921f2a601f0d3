"""Policy strings: ``partitioner+dispatcher``, either part with parameters in brackets.

E.g. ``paris[knee=utilization,theta=0.8]+elsa[alpha=0.9]``, ``homo7+fifs`` or
``periodic_paris[epoch_s=30,weighting=count]``. ``scenario`` as a part means the scenario's own
choice. Names and what they mean come from :mod:`mig_gym.policies.registry`; bracket parameters
are checked with the scenario loader's types and limits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from mig_gym import hardware
from mig_gym.policies.dispatch.baselines import EarliestFinish
from mig_gym.policies.registry import (
    DISPATCHERS,
    PARTITIONERS,
    PolicyError,
    dispatcher_entry,
    make_dispatcher,
    make_partitioner,
    partitioner_entry,
)
from mig_gym.scenario import config as C
from mig_gym.scenario.checks import partitioner_problems
from mig_gym.scenario.loader import _convert_dataclass, _Problems, scenario_to_dict

__all__ = ["Policy", "parse_policy", "make_policy", "label_of", "with_params"]

SCENARIO = "scenario"  # a part that keeps the scenario's own choice
_ALIASES = {"ef": "earliest_finish", "rr": "round_robin", "homogeneous": SCENARIO}
_NAMES = {n: e for e in PARTITIONERS.values() for n in e.names}
_PART = re.compile(r"^([a-z_0-9]+)(?:\[(.*)\])?$")


@dataclass
class Policy:
    partitioner: Any
    dispatcher: Any
    fallback: Any
    label: str


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


def with_params(cfg: Any, params: dict[str, Any], where: str) -> Any:
    """``cfg`` with ``params`` replaced, checked as the scenario loader checks YAML (a nested
    section's keys may be given flat, as in YAML: ``periodic_paris[knee=both]``)."""
    data = scenario_to_dict(cfg)
    for name in getattr(type(cfg), "FLAT", ()):  # given flat, so that errors name the flat key
        inner = data.pop(name)
        inner.pop("kind", None)
        data.update(inner)
    allowed = sorted(set(data) - {"kind"})
    for k, v in params.items():
        if k not in allowed:
            raise PolicyError(f"{where}: unknown parameter {k!r} (allowed: {allowed})")
        data[k] = v
    probs = _Problems()
    checked = _convert_dataclass(type(cfg), data, "", probs)
    if probs.items:
        raise PolicyError(f"{where}: " + "; ".join(probs.items))
    return checked


def _split(text: str, spec: str) -> tuple[str, dict[str, Any]]:
    m = _PART.match(text.strip().lower())
    if m is None:
        raise PolicyError(f"policy {spec!r}: cannot read {text!r}")
    name = m.group(1)
    return _ALIASES.get(name, name), _params(m.group(2), f"policy {spec!r}")


def _partitioner(name: str, own: Any, spec: str) -> Any:
    if name == SCENARIO:
        return own
    entry = _NAMES.get(name)
    if entry is None:
        known = ", ".join([*_NAMES, SCENARIO])
        raise PolicyError(f"policy {spec!r}: unknown partitioner {name!r} (known: {known})")
    if entry.config is C.HomogeneousConfig:
        return C.HomogeneousConfig(gpcs=int(name[4:]))
    if isinstance(own, entry.config):
        return own
    if entry.config is C.FixedLayoutConfig:
        raise PolicyError(
            f"policy {spec!r}: 'fixed' needs policy.partitioner.kind: fixed "
            "with layouts in the scenario"
        )
    return entry.config()


def _dispatcher(name: str, own: Any, spec: str) -> Any:
    if name == SCENARIO:
        return own
    entry = DISPATCHERS.get(name)
    if entry is None:
        known = ", ".join([*DISPATCHERS, SCENARIO])
        raise PolicyError(f"policy {spec!r}: unknown dispatcher {name!r} (known: {known})")
    if own.kind == name:
        return own
    return entry.config(kind=name)


def parse_policy(spec: str | None, sc: C.Scenario) -> tuple[C.Partitioner, C.Dispatcher]:
    """Turn ``"partitioner+dispatcher"`` into config objects (``None`` = the scenario's policy)."""
    if spec is None:
        return sc.policy.partitioner, sc.policy.dispatcher
    parts = spec.strip().split("+")
    if len(parts) != 2:
        raise PolicyError(f"policy {spec!r}: expected 'partitioner+dispatcher', e.g. 'paris+elsa'")
    (pname, pparams), (dname, dparams) = (_split(p, spec) for p in parts)
    part = with_params(_partitioner(pname, sc.policy.partitioner, spec), pparams, spec)
    disp = with_params(_dispatcher(dname, sc.policy.dispatcher, spec), dparams, spec)
    gpu = hardware.gpu_spec(sc.cluster.gpu)
    if probs := partitioner_problems(part, gpu, sc.cluster.num_gpus):  # as the YAML is checked
        raise PolicyError(
            f"policy {spec!r}: " + "; ".join(f"partitioner.{f}: {m}" for f, m in probs)
        )
    return part, disp


def label_of(part: Any, disp: Any) -> str:
    return f"{partitioner_entry(part).label(part)}+{dispatcher_entry(disp).name}"


def make_policy(
    cfgs: tuple[C.Partitioner, C.Dispatcher],
    sc: C.Scenario,
    dispatch_rng: np.random.Generator,
    partition_rng: np.random.Generator,
) -> Policy:
    """The partitioner and dispatcher objects of a parsed policy; a pull rule's fallback (for
    queries re-dispatched after a capacity change) is earliest finish."""
    part_cfg, disp_cfg = cfgs
    part = make_partitioner(part_cfg, partition_rng)
    disp = make_dispatcher(disp_cfg, part, dispatch_rng)
    fallback = disp if not disp.central_queue else EarliestFinish()
    return Policy(part, disp, fallback, label_of(part_cfg, disp_cfg))
