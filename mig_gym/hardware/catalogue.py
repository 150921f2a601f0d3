"""The GPU catalogue: MIG instance profiles of each GPU, read from package data.

A GPU has ``gpcs`` compute slices and ``mem_slices`` memory slices. A GPU-instance profile takes
some of each and may start only at listed memory-slice offsets (`nvidia-smi mig -lgipp`). The
catalogue is package data (``mig_gym/hardware/data/gpus.yaml``), not code.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import TypeVar

import yaml

_T = TypeVar("_T")


@dataclass(frozen=True)
class InstanceProfile:
    """A GPU-instance profile such as ``3g.40gb`` (one row of `nvidia-smi mig -lgip`)."""

    name: str
    profile_id: int
    gpcs: int
    mem_slices: int
    mem_gb: float
    max_count: int
    starts: tuple[int, ...]
    sms: int
    in_layouts: bool = True


@dataclass(frozen=True)
class GPUSpec:
    """One GPU model: its MIG geometry and profiles."""

    name: str
    gpcs: int
    mem_slices: int
    mem_gb: float
    sms: int
    reconfig_s: float
    profiles: tuple[InstanceProfile, ...]

    @property
    def sizes(self) -> tuple[int, ...]:
        """Partition sizes (GPCs) of the main profiles, ascending, e.g. ``(1, 2, 3, 4, 7)``."""
        return tuple(sorted(p.gpcs for p in self.profiles if p.in_layouts))

    def profile_for(self, gpcs: int) -> InstanceProfile:
        """The main (``in_layouts``) profile with ``gpcs`` GPCs.

        Raises:
            ValueError: if no main profile has that size; the message lists the valid sizes.
        """
        for p in self.profiles:
            if p.in_layouts and p.gpcs == gpcs:
                return p
        raise ValueError(f"{self.name} has no {gpcs}g partition; valid sizes are {self.sizes}")


class UnknownGPUError(KeyError, ValueError):
    """A GPU name not in the catalogue (both a KeyError and a ValueError, for either caller)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


# --------------------------------------------------------------------------- catalogue loading
def _key(name: str) -> str:
    """Normalise a GPU name so that "A100-80GB", "a100_80gb" and "A100 80GB" match."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _build(cls: type[_T], raw: Mapping, where: str, **overrides: object) -> _T:
    """Build ``cls`` from ``raw``, rejecting unknown or missing keys with a message naming them."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; expected {sorted(names)}")
    try:
        return cls(**{**raw, **overrides})
    except TypeError as exc:  # missing required fields
        raise ValueError(f"{where}: {exc}") from None


def _check_spec(spec: GPUSpec, where: str) -> None:
    """Catch catalogue mistakes that would silently break the layout rules."""
    for p in spec.profiles:
        off_gpu = any(s < 0 or s + p.mem_slices > spec.mem_slices for s in p.starts)
        if off_gpu or p.gpcs > spec.gpcs:
            raise ValueError(f"{where}: profile {p.name} does not fit a {spec.name}")
    main = [p.gpcs for p in spec.profiles if p.in_layouts]
    if len(main) != len(set(main)):
        raise ValueError(f"{where}: two main profiles share a size in {sorted(main)}")
    if len({p.profile_id for p in spec.profiles}) != len(spec.profiles):
        raise ValueError(f"{where}: duplicate profile ids")


def load_catalogue(path: str | Path | None = None) -> dict[str, GPUSpec]:
    """Read a GPU catalogue YAML (``None`` means the built-in ``mig_gym/hardware/data/gpus.yaml``).

    Raises:
        ValueError: naming the file and entry for unknown or missing keys and impossible profiles.
    """
    if path is None:
        source = "mig_gym/hardware/data/gpus.yaml"
        text = (
            resources.files("mig_gym.hardware.data")
            .joinpath("gpus.yaml")
            .read_text(encoding="utf-8")
        )
    else:
        source, text = str(path), Path(path).read_text(encoding="utf-8")
    data = yaml.safe_load(text) or {}
    if set(data) != {"gpus"}:
        raise ValueError(f"{source}: expected a single top-level key 'gpus', got {sorted(data)}")
    specs: dict[str, GPUSpec] = {}
    for name, raw in data["gpus"].items():
        where = f"{source}: gpus.{name}"
        profiles = tuple(
            _build(InstanceProfile, p, f"{where}.profiles[{i}]", starts=tuple(p.get("starts", ())))
            for i, p in enumerate(raw.get("profiles", ()))
        )
        spec = _build(GPUSpec, raw, where, name=name, profiles=profiles)
        _check_spec(spec, where)
        specs[name] = spec
    return specs


@functools.lru_cache(maxsize=1)
def _catalogue() -> dict[str, GPUSpec]:
    return {_key(name): spec for name, spec in load_catalogue().items()}


def gpu_names() -> tuple[str, ...]:
    """Names of the GPUs in the built-in catalogue, in file order."""
    return tuple(spec.name for spec in _catalogue().values())


def gpu_spec(name: str) -> GPUSpec:
    """The catalogue entry for ``name`` (case, ``-``, ``_`` and spaces are ignored).

    Raises:
        UnknownGPUError: (a KeyError and a ValueError) listing the known names.
    """
    try:
        return _catalogue()[_key(name)]
    except KeyError:
        known = ", ".join(gpu_names())
        raise UnknownGPUError(f"unknown GPU {name!r}; known GPUs: {known}") from None
