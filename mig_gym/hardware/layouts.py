"""Legal ways to partition one GPU: placed instances, layouts and their enumeration.

A :class:`Layout` is a set of placed instances on one GPU; it is legal when the memory ranges do not
overlap, every start is allowed, no profile exceeds its per-GPU count and the GPCs fit, and maximal
when no further instance can be added. Layouts are enumerated from these rules, never hand-listed.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from mig_gym.hardware.catalogue import GPUSpec, InstanceProfile, gpu_spec


@dataclass(frozen=True)
class Placement:
    """An instance of ``profile`` whose memory slices start at ``start``."""

    profile: InstanceProfile
    start: int

    @property
    def gpcs(self) -> int:
        """Compute slices of this instance."""
        return self.profile.gpcs

    @property
    def mem_gb(self) -> float:
        """Usable memory of this instance (GiB)."""
        return self.profile.mem_gb

    @property
    def mem_range(self) -> range:
        """The memory slices this instance occupies."""
        return range(self.start, self.start + self.profile.mem_slices)


@dataclass(frozen=True)
class Layout:
    """Placed instances on one GPU, kept sorted by start so that equal sets compare equal."""

    gpu: str
    placements: tuple[Placement, ...]

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.placements, key=lambda p: (p.start, p.profile.profile_id)))
        object.__setattr__(self, "placements", ordered)

    @property
    def sizes(self) -> tuple[int, ...]:
        """Partition sizes in GPCs, largest first, e.g. ``(4, 2, 1)``."""
        return tuple(sorted((p.gpcs for p in self.placements), reverse=True))

    @property
    def gpcs_used(self) -> int:
        """GPCs taken by all instances (6 for 3g+3g: a 7th GPC may be left idle)."""
        return sum(p.gpcs for p in self.placements)

    def nvidia_smi_commands(self, gpu_index: int = 0) -> list[str]:
        """Commands that create this layout's GPU instances and their default compute instances.

        Profiles are given by id, as names differ between GPU models: 3g+2g+1g+1g on an A100-80GB
        is ``nvidia-smi mig -i 0 -cgi 9,14,19,19 -C`` (3g.40gb,2g.20gb,1g.10gb,1g.10gb). They are
        listed largest first, so that small instances are not placed where a large one must go.
        The driver still chooses the placements itself (this layout's starts are not passed on),
        so check the result with ``nvidia-smi mig -lgi``. The GPU must be in MIG mode
        (``nvidia-smi -i 0 -mig 1``) with its old instances destroyed (``-dci``, then ``-dgi``).
        """
        if not self.placements:
            return []
        order = sorted(self.placements, key=lambda p: (-p.gpcs, -p.profile.mem_slices, p.start))
        ids = ",".join(str(p.profile.profile_id) for p in order)
        return [f"nvidia-smi mig -i {gpu_index} -cgi {ids} -C"]

    def __str__(self) -> str:
        order = sorted(self.placements, key=lambda p: (-p.gpcs, -p.profile.mem_slices, p.start))
        # Main profiles read as "4g"; extra ones keep their full name so 1g.20gb is not read as 1g.
        return "+".join(f"{p.gpcs}g" if p.profile.in_layouts else p.profile.name for p in order)


# --------------------------------------------------------------------------- placement rules
def _profiles(spec: GPUSpec, include_extra: bool) -> tuple[InstanceProfile, ...]:
    return tuple(p for p in spec.profiles if p.in_layouts or include_extra)


def _first_violation(spec: GPUSpec, placements: Sequence[Placement]) -> str | None:
    """The first rule ``placements`` break on ``spec``, as a message, or None if they are legal."""
    for p in placements:
        if p.profile not in spec.profiles:
            return f"{p.profile.name} (id {p.profile.profile_id}) is not an {spec.name} profile"
        if p.start not in p.profile.starts:
            return f"{p.profile.name} cannot start at memory slice {p.start} ({p.profile.starts})"
    taken: dict[int, Placement] = {}
    for p in placements:
        for s in p.mem_range:
            if s in taken:
                other = taken[s]
                return (
                    f"{p.profile.name}@{p.start} overlaps {other.profile.name}@{other.start} "
                    f"on memory slice {s}"
                )
            taken[s] = p
    for profile, n in Counter(p.profile for p in placements).items():
        if n > profile.max_count:
            return f"{n} x {profile.name} exceeds its limit of {profile.max_count} per GPU"
    used = sum(p.gpcs for p in placements)
    if used > spec.gpcs:
        return f"the instances use {used} GPCs but a {spec.name} has {spec.gpcs}"
    return None


def check_layout(layout: Layout) -> None:
    """Check every placement rule and explain the first one ``layout`` breaks.

    Raises:
        ValueError: naming the broken rule (profile, start, overlap, count or GPC total); an
            unknown GPU raises :class:`UnknownGPUError`.
    """
    problem = _first_violation(gpu_spec(layout.gpu), layout.placements)
    if problem is not None:
        raise ValueError(f"illegal {layout.gpu} layout {layout}: {problem}")


def is_legal(layout: Layout) -> bool:
    """Whether ``layout`` obeys every placement rule of its GPU."""
    return _first_violation(gpu_spec(layout.gpu), layout.placements) is None


def _is_maximal(
    spec: GPUSpec, placements: tuple[Placement, ...], profiles: tuple[InstanceProfile, ...]
) -> bool:
    """Whether no instance of ``profiles`` can join the legal ``placements``."""
    return all(
        _first_violation(spec, (*placements, Placement(p, s))) is not None
        for p in profiles
        for s in p.starts
    )


def is_maximal(layout: Layout, include_extra: bool = False) -> bool:
    """Whether ``layout`` is legal and no further instance can be added to it.

    Args:
        layout: the layout to test.
        include_extra: also try the profiles flagged ``in_layouts: false``, not only the main ones.
    """
    spec = gpu_spec(layout.gpu)
    return is_legal(layout) and _is_maximal(spec, layout.placements, _profiles(spec, include_extra))


# --------------------------------------------------------------------------- enumeration
def _legal_sets(
    spec: GPUSpec, profiles: tuple[InstanceProfile, ...], placed: tuple[Placement, ...], slot: int
) -> Iterator[tuple[Placement, ...]]:
    """Every legal placement set extending ``placed`` (which has decided the slices below ``slot``).

    Each memory slice from ``slot`` on is either the start of one new instance or left empty, so
    every legal set comes out exactly once, lowest starts first.
    """
    if slot >= spec.mem_slices:
        yield placed
        return
    for profile in profiles:
        grown = (*placed, Placement(profile, slot))
        if slot in profile.starts and _first_violation(spec, grown) is None:
            yield from _legal_sets(spec, profiles, grown, slot + profile.mem_slices)
    yield from _legal_sets(spec, profiles, placed, slot + 1)  # leave this slice empty


@functools.cache
def _legal_layouts(gpu: str, include_extra: bool) -> tuple[Layout, ...]:
    spec = gpu_spec(gpu)
    return tuple(Layout(gpu, s) for s in _legal_sets(spec, _profiles(spec, include_extra), (), 0))


@functools.cache
def _maximal_layouts(gpu: str, include_extra: bool) -> tuple[Layout, ...]:
    spec, profiles = gpu_spec(gpu), _profiles(gpu_spec(gpu), include_extra)
    found = [
        x for x in _legal_layouts(gpu, include_extra) if _is_maximal(spec, x.placements, profiles)
    ]
    # Sizes descending lexicographically, then starts (and profile ids); the sort is stable.
    found.sort(key=lambda x: [(p.start, p.profile.profile_id) for p in x.placements])
    return tuple(sorted(found, key=lambda x: x.sizes, reverse=True))


def valid_layouts(gpu: str, include_extra: bool = False) -> list[Layout]:
    """The maximal legal layouts of ``gpu`` (19 on A100/H100, 5 on A30), in a fixed order.

    Args:
        gpu: a catalogue name, e.g. ``"A100-80GB"``.
        include_extra: also place the profiles flagged ``in_layouts: false`` (1g.20gb, ``+me``).
    """
    return list(_maximal_layouts(gpu_spec(gpu).name, include_extra))


def size_multisets(gpu: str) -> list[tuple[int, ...]]:
    """Distinct size tuples (largest first) of the maximal main-profile layouts, in layout order."""
    return list(dict.fromkeys(layout.sizes for layout in valid_layouts(gpu)))


@functools.lru_cache(maxsize=4096)
def _layout_from_sizes(gpu: str, sizes: tuple[int, ...]) -> Layout:
    spec = gpu_spec(gpu)
    for k in sizes:
        spec.profile_for(k)  # a size without a profile gets the error that lists the valid ones
    # Prefer a maximal placement: it leaves no slice unusable that a different placement would use.
    for layout in (*_maximal_layouts(gpu, False), *_legal_layouts(gpu, False)):
        if layout.sizes == sizes:
            return layout
    raise ValueError(f"sizes {sizes} cannot be placed together on one {gpu}")


def layout_from_sizes(gpu: str, sizes: Sequence[int]) -> Layout:
    """A legal layout of main-profile partitions with these sizes (not necessarily maximal).

    A maximal layout with these sizes if there is one, else the legal one with the lowest starts.

    Raises:
        ValueError: if a size has no profile on ``gpu`` or the sizes cannot share one GPU.
    """
    return _layout_from_sizes(gpu_spec(gpu).name, tuple(sorted(map(int, sizes), reverse=True)))
