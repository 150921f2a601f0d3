"""The scenario's semantic checks: what the field types and limits cannot say on their own.

Each check is a pure function of a converted :class:`~mig_gym.scenario.config.Scenario` that
yields ``(field, message)`` pairs, one per problem, by section: cluster, models, profiles,
workload, policy, run, faults. :func:`partitioner_problems` (a partitioner against the GPU) and
:func:`partitioner_sizes` (the sizes it may use) are shared with policy strings
(:mod:`mig_gym.policies.parse`) and the profile check of :mod:`mig_gym.runs.build`, so that a
policy given on the command line is checked exactly as one given in the YAML.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from mig_gym import hardware
from mig_gym.hardware import profiles
from mig_gym.scenario import config as C

__all__ = ["scenario_problems", "partitioner_problems", "partitioner_sizes", "sizes_text"]

Problem = tuple[str, str]  # (dotted field, message)
_MAX_BATCH = C.LognormalBatch.__dataclass_fields__["max"].metadata["max"]  # as other batch maxima


def scenario_problems(sc: C.Scenario) -> list[Problem]:
    """Every semantic problem of ``sc`` (whose fields already have the right types and limits)."""
    try:
        gpu: hardware.GPUSpec | None = hardware.gpu_spec(sc.cluster.gpu)
    except (KeyError, ValueError) as e:
        gpu = None
        out = [("cluster.gpu", f"got {sc.cluster.gpu!r}: {e.args[0]}")]
    else:
        out = []
    out += _models(sc)
    out += _profiles(sc, gpu)
    out += _phases(sc)
    out += _arrivals(sc)
    out += _batches(sc)
    if gpu is not None:
        part = sc.policy.partitioner
        out += [
            (f"policy.partitioner.{sub}", msg)
            for sub, msg in partitioner_problems(part, gpu, sc.cluster.num_gpus)
        ]
    out += _run(sc)
    out += _faults(sc)
    return out


def sizes_text(sizes: tuple[int, ...] | list[int]) -> str:
    """``1g, 2g, 4g``: partition sizes as messages name them."""
    return ", ".join(f"{k}g" for k in sizes)


# --------------------------------------------------------------------------- per section
def _models(sc: C.Scenario) -> Iterator[Problem]:
    names = list(sc.model_names)
    if not names:
        yield "models", "at least one model is required"
    if len(set(names)) != len(names):
        yield "models", f"duplicate model names in {names}"
    if names and sum(m.share for m in sc.models) <= 0:
        yield "models", "the shares must not all be zero"
    live = sum(m.share > 0 for m in sc.models)
    if live > sc.cluster.num_gpus:
        yield (
            "cluster.num_gpus",
            f"got {sc.cluster.num_gpus}, but each of the {live} models "
            "with a share > 0 needs a GPU of its own",
        )


def _profiles(sc: C.Scenario, gpu: hardware.GPUSpec | None) -> Iterator[Problem]:
    names = list(sc.model_names)
    if sc.profiles.path is None:
        if gpu is None:  # already reported as cluster.gpu
            return
        try:
            profiles.builtin_profiles(sc.cluster.gpu, names, family=sc.profiles.family)
        except (KeyError, ValueError) as e:
            yield "models", str(e.args[0])
        return
    p = Path(sc.base_dir) / sc.profiles.path
    if not p.is_file():
        yield "profiles.path", f"file not found: {p}"
    if sc.profiles.format == "parvagpu" and not sc.profiles.model and len(names) != 1:
        yield "profiles.model", "a ParvaGPU file holds one model: name it"


def _phases(sc: C.Scenario) -> Iterator[Problem]:
    phases, names = sc.workload.phases, sc.model_names
    for i, ph in enumerate(phases):
        if i and ph.start_s <= phases[i - 1].start_s:
            yield f"workload.phases[{i}].start_s", f"got {ph.start_s}, phases must be in time order"
        for m in ph.mix or {}:
            if m not in names:
                yield f"workload.phases[{i}].mix.{m}", f"unknown model (models: {list(names)})"


def _sections(wl: C.WorkloadConfig, attr: str) -> list[tuple[str, object]]:
    """``(field, value)`` of the workload's ``attr`` section and of each phase that sets one."""
    own = [(f"workload.phases[{i}].{attr}", getattr(ph, attr)) for i, ph in enumerate(wl.phases)]
    return [(f"workload.{attr}", getattr(wl, attr)), *((w, v) for w, v in own if v is not None)]


def _arrivals(sc: C.Scenario) -> Iterator[Problem]:
    for where, arr in _sections(sc.workload, "arrivals"):
        if isinstance(arr, C.TraceArrivals):
            if not arr.path:
                yield f"{where}.path", "a trace needs a file path"
            elif not (Path(sc.base_dir) / arr.path).is_file():
                yield f"{where}.path", f"file not found: {Path(sc.base_dir) / arr.path}"


def _batches(sc: C.Scenario) -> Iterator[Problem]:
    wl = sc.workload
    for where, b in _sections(wl, "batch"):
        if isinstance(b, C.LognormalBatch) and b.min > b.max:
            yield where, f"min {b.min} > max {b.max}"
        if isinstance(b, C.EmpiricalBatch):
            if (
                not b.pmf
                or any(not 1 <= k <= _MAX_BATCH for k in b.pmf)
                or any(v < 0 for v in b.pmf.values())
            ):
                yield f"{where}.pmf", f"got {b.pmf!r}: batch sizes 1..{_MAX_BATCH}, weights >= 0"
            elif sum(b.pmf.values()) <= 0:
                yield f"{where}.pmf", "weights sum to zero"
        if isinstance(b, C.TraceColumnBatch) and not isinstance(wl.arrivals, C.TraceArrivals):
            yield f"{where}.kind", "trace_column needs trace arrivals"


def _run(sc: C.Scenario) -> Iterator[Problem]:
    if sc.run.warmup_queries >= sc.run.num_queries:
        yield "run.warmup_queries", f"got {sc.run.warmup_queries}, must be < run.num_queries"


def _faults(sc: C.Scenario) -> Iterator[Problem]:
    for i, f in enumerate(sc.faults):
        if f.gpu >= sc.cluster.num_gpus:
            yield f"faults[{i}].gpu", f"got {f.gpu}, cluster has {sc.cluster.num_gpus} GPUs"
        if f.up_at_s is not None and f.up_at_s <= f.down_at_s:
            yield f"faults[{i}].up_at_s", f"got {f.up_at_s}, must be > down_at_s"


# --------------------------------------------------------------------------- partitioners
def partitioner_problems(
    part: C.Partitioner, gpu: hardware.GPUSpec, num_gpus: int
) -> list[Problem]:
    """What is wrong with partitioner ``part`` on ``num_gpus`` x ``gpu``, as ``(field, message)``
    pairs with the field relative to the partitioner (``gpcs``, ``layouts[0]``)."""
    out: list[Problem] = []
    if isinstance(part, C.HomogeneousConfig) and part.gpcs not in gpu.sizes:
        out.append(
            (
                "gpcs",
                f"got {part.gpcs}, but the {gpu.name} (cluster.gpu) has no {part.gpcs}g "
                f"partition; its sizes are {sizes_text(gpu.sizes)}",
            )
        )
    if isinstance(part, C.FixedLayoutConfig):
        if len(part.layouts) not in (1, num_gpus):
            out.append(
                (
                    "layouts",
                    f"got {len(part.layouts)} layouts: give 1 (used on every GPU) or num_gpus"
                    f" = {num_gpus}",
                )
            )
        for i, sizes in enumerate(part.layouts):
            if not sizes:
                out.append(
                    (f"layouts[{i}]", "an empty layout: list the GPU's partition sizes, e.g. [7]")
                )
                continue
            try:
                hardware.layout_from_sizes(gpu.name, sizes)
            except ValueError as e:
                out.append((f"layouts[{i}]", str(e)))
    return out


def partitioner_sizes(part: C.Partitioner, gpu: hardware.GPUSpec) -> tuple[int, ...]:
    """The partition sizes ``part`` may use on ``gpu``: a homogeneous server its size, fixed
    layouts theirs, and every adaptive partitioner (PARIS and its variants, random layouts) all
    of the GPU's sizes, since its plan may choose any of them."""
    if isinstance(part, C.HomogeneousConfig):
        return (part.gpcs,)
    if isinstance(part, C.FixedLayoutConfig):
        return tuple(sorted({k for sizes in part.layouts for k in sizes}))
    return gpu.sizes
