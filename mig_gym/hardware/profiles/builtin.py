"""The built-in fitted profiles (package data), synthetic linear profiles, and merging sets."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import yaml

from mig_gym import hardware
from mig_gym.hardware.profiles import families
from mig_gym.hardware.profiles.curves import (
    KneeCurve,
    LatencyProfile,
    MemoryModel,
    ProfileSet,
)

__all__ = [
    "BUILTIN_FILES",
    "FAMILY_FILES",
    "builtin_profiles",
    "linear_profile",
    "load_fitted_yaml",
    "merge",
]

# Fitted data per family, all on A100-80GB; other GPUs are derived (families.derive).
BUILTIN_FILES = {"A100-80GB": "profiles_a100_80gb.yaml"}
FAMILY_FILES = {
    "parvagpu_eager": "profiles_a100_80gb.yaml",
    "tensorrt": "profiles_a100_80gb_tensorrt.yaml",
}


def load_fitted_yaml(path: str | Path, extrapolate: bool = False) -> ProfileSet:
    """Load a fitted-profile YAML (the format of ``hardware/data/profiles_a100_80gb.yaml``)."""
    return _fitted_from_text(Path(path).read_text(encoding="utf-8"), str(path), extrapolate)


def _fitted_from_text(text: str, source: str, extrapolate: bool) -> ProfileSet:
    doc = yaml.safe_load(text)
    try:
        gpu, (lo, hi) = doc["gpu"], doc["batch_range"]
        family = doc.get("family", "")
        profiles = {}
        for model, spec in doc["models"].items():
            curves = {
                int(g): KneeCurve(
                    c["floor_ms"] / 1e3,
                    c.get("base_ms", 0.0) / 1e3,
                    c["per_item_ms"] / 1e3,
                    c["p"],
                    c.get("q", 1.0),
                )
                for g, c in spec["latency"].items()
            }
            mem = spec["memory_gb"]
            memory = MemoryModel(mem["base"], mem["per_item"], source=mem.get("source", "fit"))
            ranges = dict.fromkeys(curves, (lo, hi))
            measured = {
                int(g): (int(c.get("ran", hi)), c.get("oom")) for g, c in spec["latency"].items()
            }
            profiles[model] = LatencyProfile(
                model, gpu, curves, ranges, extrapolate, memory, measured, family=family
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{source}: malformed fitted-profile file ({exc!r})") from None
    return ProfileSet(gpu, profiles)


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


@functools.cache
def _builtin(family: str, extrapolate: bool) -> ProfileSet:
    name = FAMILY_FILES[family]
    text = resources.files("mig_gym.hardware.data").joinpath(name).read_text(encoding="utf-8")
    return _fitted_from_text(text, f"mig_gym/hardware/data/{name}", extrapolate)


@functools.cache
def _family_set(
    gpu: str, family: str, extrapolate: bool, floor_scale: float, gpc_exponent: float
) -> ProfileSet:
    full = _builtin("parvagpu_eager" if family == "parametric" else family, extrapolate)
    if family == "parametric":
        full = families.parametric(full, floor_scale, gpc_exponent)
    return full if gpu == families.SOURCE_GPU else families.derive(full, gpu)


def builtin_profiles(
    gpu: str = "A100-80GB",
    models: Sequence[str] | None = None,
    extrapolate: bool = False,
    family: str = "parvagpu_eager",
    floor_scale: float = 1.0,
    gpc_exponent: float = 1.0,
) -> ProfileSet:
    """The built-in profiles of ``family`` (batch 1..256), optionally only ``models``.

    Every catalogued GPU has them: A100-80GB's are fitted, the others *derived*
    (:mod:`~mig_gym.hardware.profiles.families`). ``floor_scale`` and ``gpc_exponent`` are the
    ``parametric`` family's knobs (ignored by the others).

    Raises:
        ValueError: unknown GPU or family, or a model the family does not have (naming those
            there are).
    """
    if family not in families.FAMILIES:
        raise ValueError(f"unknown profile family {family!r}; use one of {families.FAMILIES}")
    try:
        name = hardware.gpu_spec(gpu).name
    except hardware.UnknownGPUError as e:
        raise ValueError(f"no built-in profiles for GPU {gpu!r}: {e}") from None
    if family != "parametric":
        floor_scale, gpc_exponent = 1.0, 1.0
    full = _family_set(name, family, extrapolate, float(floor_scale), float(gpc_exponent))
    unknown = [m for m in models or () if m not in full]
    if unknown:
        raise ValueError(
            f"no built-in {family} profile for {unknown} on {name}; "
            f"models: {', '.join(full.models)}"
        )
    keep = full.models if models is None else tuple(models)
    return ProfileSet(name, {m: full[m] for m in keep})


def linear_profile(
    model: str,
    gpu: str,
    base_s: dict[int, float] | float,
    per_item_s: dict[int, float] | float,
    max_batch: int = 1024,
    mem_gb: float = 0.0,
    sizes: Sequence[int] | None = None,
) -> ProfileSet:
    """An exact ``L = base_s + per_item_s*b`` profile (for tests and queueing theory).

    Scalars apply to every size in ``sizes`` (default: the GPU's sizes in :mod:`mig_gym.hardware`);
    dicts give per-size values and define the sizes.
    """
    keys = [set(x) for x in (base_s, per_item_s) if isinstance(x, dict)]
    if sizes is None:
        sizes = sorted(keys[0]) if keys else hardware.gpu_spec(gpu).sizes
    base = base_s if isinstance(base_s, dict) else dict.fromkeys(sizes, base_s)
    per = per_item_s if isinstance(per_item_s, dict) else dict.fromkeys(sizes, per_item_s)
    if set(base) != set(per) or any(
        base[g] < 0 or per[g] < 0 or base[g] + per[g] <= 0 for g in base
    ):
        raise ValueError(
            f"linear_profile {model}: need matching sizes and base, per_item >= 0 "
            f"with positive latency; got {base_s!r}, {per_item_s!r}"
        )
    curves = {int(g): KneeCurve(0.0, float(base[g]), float(per[g])) for g in sorted(base)}
    ranges = dict.fromkeys(curves, (1, max_batch))
    profile = LatencyProfile(model, gpu, curves, ranges, memory=MemoryModel(float(mem_gb)))
    return ProfileSet(gpu, {model: profile})


def merge(*sets: ProfileSet) -> ProfileSet:
    """Combine profile sets of one GPU type; a model in two sets is an error."""
    if not sets:
        raise ValueError("merge needs at least one ProfileSet")
    gpus = {s.gpu for s in sets}
    if len(gpus) > 1:
        raise ValueError(f"cannot merge profiles of different GPUs {sorted(gpus)}")
    out: dict[str, LatencyProfile] = {}
    for s in sets:
        for m in s.models:
            if m in out:
                raise ValueError(f"model {m!r} is in more than one ProfileSet")
            out[m] = s[m]
    return ProfileSet(sets[0].gpu, out)
