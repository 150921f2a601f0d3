"""A scenario's service times: its profile set, checked against the partition sizes the plan may
use, and the latency tables the simulator reads (``tables[(model, gpcs)][batch]``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mig_gym import hardware
from mig_gym.hardware import profiles
from mig_gym.policies.registry import partitioner_entry
from mig_gym.scenario import ScenarioError, checks
from mig_gym.scenario import config as C

__all__ = ["load_profiles", "latency_tables", "max_batch"]


def load_profiles(
    sc: C.Scenario, partitioners: Sequence[C.Partitioner] | None = None
) -> profiles.ProfileSet:
    """The scenario's profile set (built-in, or loaded from its file), checked against the
    partition sizes ``partitioners`` (default: the scenario's own) may use.

    Raises:
        FileNotFoundError: the profile file does not exist.
        ScenarioError: the file is malformed (naming its line and column), lacks a model of the
            scenario, was measured on another GPU than ``cluster.gpu``, or has no rows for a
            partition size a partitioner may use (one problem per model).
    """
    prof = _read_profiles(sc)
    parts = [sc.policy.partitioner] if partitioners is None else list(partitioners)
    if problems := _size_problems(sc, prof, parts):
        raise ScenarioError(f"scenario {sc.name!r}", problems)
    return prof.with_admission(sc.profiles.admission)


def _size_problems(
    sc: C.Scenario, prof: profiles.ProfileSet, parts: Sequence[C.Partitioner]
) -> list[str]:
    """One problem per model whose profile lacks a size one of ``parts`` may use.

    What a partitioner may use is :func:`~mig_gym.scenario.checks.partitioner_sizes`: its size
    for a homogeneous server, the sizes of fixed layouts, and every size of the GPU for PARIS and
    the other adaptive partitioners (they are not restricted to the sizes a profile happens to
    have: that would change their plans silently; docs/profiles.md).
    """
    gpu = hardware.gpu_spec(sc.cluster.gpu)
    path = sc.profiles.path
    where = f"profiles.path: {Path(sc.base_dir) / path}" if path is not None else "profiles"
    needs = [(p, checks.partitioner_sizes(p, gpu)) for p in parts]
    out = []
    for name in sc.model_names:
        have = prof[name].sizes
        short = [(p, [k for k in ks if k not in have]) for p, ks in needs]
        short = [(p, ks) for p, ks in short if ks]
        if not short:
            continue
        missing = sorted({k for _, ks in short for k in ks})
        labels = ", ".join(dict.fromkeys(partitioner_entry(p).label(p) for p, _ in short))
        adaptive = any(not isinstance(p, _BY_SIZE) for p, _ in short)
        why = (
            f" may choose (PARIS and the other adaptive partitioners plan over every size of the "
            f"{gpu.name})"
            if adaptive
            else " uses"
        )
        out.append(
            f"{where}: model {name!r} has no rows for {checks.sizes_text(missing)} (it has "
            f"{checks.sizes_text(have)}), which partitioner {labels}{why}: add rows for "
            f"{checks.sizes_text(missing)}, or use a homogeneous or fixed partitioner over "
            f"{checks.sizes_text(have)}"
        )
    return out


_BY_SIZE = (C.HomogeneousConfig, C.FixedLayoutConfig)  # partitioners that name their sizes


def _read_profiles(sc: C.Scenario) -> profiles.ProfileSet:
    """The scenario's profiles as read (before admission), with the file's GPU and models
    checked."""
    pc = sc.profiles
    if pc.path is None:
        prof = profiles.builtin_profiles(
            sc.cluster.gpu,
            sc.model_names,
            extrapolate=pc.extrapolate,
            family=pc.family,
            floor_scale=pc.floor_scale,
            gpc_exponent=pc.gpc_exponent,
        )
        return prof
    path = Path(sc.base_dir) / pc.path
    try:
        if pc.format == "parvagpu":
            prof = profiles.load_parvagpu_csv(
                path,
                pc.model or sc.model_names[0],
                sc.cluster.gpu,
                interpolation=pc.interpolation,
                extrapolate=pc.extrapolate,
            )
        else:
            prof = profiles.load_mig_gym_csv(
                path, interpolation=pc.interpolation, extrapolate=pc.extrapolate
            )
    except (ValueError, KeyError) as e:  # malformed file (UnicodeDecodeError is a ValueError)
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        raise ScenarioError(f"scenario {sc.name!r}", [f"profiles.path: {msg}"]) from None
    problems = []
    try:
        same_gpu = hardware.gpu_spec(prof.gpu).name == hardware.gpu_spec(sc.cluster.gpu).name
    except hardware.UnknownGPUError:
        same_gpu = False
    if not same_gpu:
        problems.append(
            f"profiles.path: {path} was measured on {prof.gpu}, but cluster.gpu is {sc.cluster.gpu}"
        )
    if missing := [m for m in sc.model_names if m not in prof]:
        problems.append(
            f"profiles.path: {path} has no profile for model(s) {missing} "
            f"(it has {list(prof.models)})"
        )
    if problems:
        raise ScenarioError(f"scenario {sc.name!r}", problems)
    return prof


def _batch_configs(sc: C.Scenario) -> list[C.Batch]:
    return [sc.workload.batch] + [ph.batch for ph in sc.workload.phases if ph.batch is not None]


def max_batch(sc: C.Scenario) -> int:
    """Largest batch the workload can produce."""
    top = 1
    for b in _batch_configs(sc):
        if isinstance(b, C.LognormalBatch | C.TraceColumnBatch):
            top = max(top, b.max)
        elif isinstance(b, C.FixedBatch):
            top = max(top, b.value)
        else:
            top = max(top, max(b.pmf))
    return top


def latency_tables(
    sc: C.Scenario, prof: profiles.ProfileSet, spec: hardware.GPUSpec
) -> dict[tuple[int, int], list[float]]:
    """``tables[(model, gpcs)][b]``: service time of batch b; ``inf`` where the partition does
    not serve it (above the batch its profile's admission rule admits, see
    :meth:`~mig_gym.hardware.profiles.LatencyProfile.admitted_max`)."""
    top = max_batch(sc)
    out: dict[tuple[int, int], list[float]] = {}
    for m, name in enumerate(sc.model_names):
        lp = prof[name]
        for k in spec.sizes:
            if k not in lp.sizes:  # a size the plan does not use (load_profiles checked)
                out[(m, k)] = [math.inf] * (top + 1)
                continue
            cut = lp.admitted_max(k, spec.profile_for(k).mem_gb, top)
            try:
                if top > lp.max_batch and not lp.extrapolate:
                    lp.latency_curve(k, top)  # raises: no size was profiled up to ``top``
                curve = np.full(top + 1, math.inf)
                if cut >= 1:
                    curve[1 : cut + 1] = lp.latency_curve(k, cut)[1:]
            except profiles.ProfileRangeError as e:
                raise profiles.ProfileRangeError(
                    f"{e}; the workload can produce batches up to {top}: lower workload.batch.max "
                    "or set profiles.extrapolate: true"
                ) from None
            curve[0] = math.inf
            out[(m, k)] = curve.tolist()
    return out
