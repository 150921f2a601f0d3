"""Partitioners that do not depend on profiles: homogeneous, fixed and random layouts.

A partitioner turns a :class:`PlanContext` into a :class:`~mig_gym.sim.entities.Plan` (a legal
layout per
GPU and the model each partition hosts). With several models the GPUs are split between models in
proportion to their demand weights before layouts are chosen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mig_gym import hardware
from mig_gym.hardware import GPUSpec, Layout
from mig_gym.hardware.profiles import ProfileSet
from mig_gym.sim.entities import Plan

__all__ = [
    "PlanContext",
    "Homogeneous",
    "FixedLayouts",
    "RandomLayouts",
    "split_gpus",
    "plan_from_sizes",
    "homogeneous_layout",
]


@dataclass(frozen=True)
class PlanContext:
    """What a partitioner may look at: hardware, profiles, models, SLAs and batch-size pmfs."""

    spec: GPUSpec
    num_gpus: int
    profiles: ProfileSet
    model_names: tuple[str, ...]
    shares: tuple[float, ...]
    slo_s: tuple[float, ...]
    batch_pmfs: tuple[dict[int, float], ...]  # per model
    rate_qps: float  # offered load (all models)
    seed: int = 0


def split_gpus(num_gpus: int, weights: Sequence[float]) -> list[int]:
    """GPUs per model, proportional to ``weights`` by largest remainder, at least one each when
    there are enough GPUs. Raises ValueError if there are fewer GPUs than models with weight."""
    w = np.asarray(weights, dtype=float)
    live = w > 0
    if live.sum() > num_gpus:
        raise ValueError(f"{int(live.sum())} models need at least as many GPUs, got {num_gpus}")
    exact = num_gpus * w / w.sum()
    counts = np.floor(exact).astype(int)
    counts[live & (counts == 0)] = 1
    while counts.sum() > num_gpus:
        i = int(np.argmax(np.where(counts > 1, counts - exact, -np.inf)))
        counts[i] -= 1
    order = np.argsort(-(exact - counts), kind="stable")
    i = 0
    while counts.sum() < num_gpus:
        if live[order[i % len(order)]]:
            counts[order[i % len(order)]] += 1
        i += 1
    return counts.tolist()


def plan_from_sizes(
    spec: GPUSpec,
    sizes_per_gpu: Sequence[Sequence[int]],
    model_per_gpu: Sequence[int],
    notes: str = "",
) -> Plan:
    """A plan from size multisets, every partition of a GPU hosting that GPU's model."""
    layouts: list[Layout] = [hardware.layout_from_sizes(spec.name, s) for s in sizes_per_gpu]
    models = tuple(
        tuple([m] * len(lay.placements)) for lay, m in zip(layouts, model_per_gpu, strict=True)
    )
    return Plan(tuple(layouts), models, notes)


def _models_by_gpu(ctx: PlanContext) -> list[int]:
    counts = split_gpus(ctx.num_gpus, ctx.shares)
    return [m for m, c in enumerate(counts) for _ in range(c)]


class Homogeneous:
    """Every GPU cut into equal partitions of ``gpcs`` GPCs (homo1 ... homo7)."""

    def __init__(self, gpcs: int) -> None:
        self.gpcs = gpcs
        self.name = f"homo{gpcs}"

    def plan(self, ctx: PlanContext) -> Plan:
        n = len(homogeneous_layout(ctx.spec, self.gpcs).placements)
        sizes = [[self.gpcs] * n] * ctx.num_gpus
        return plan_from_sizes(ctx.spec, sizes, _models_by_gpu(ctx), f"{n} x {self.gpcs}g per GPU")


def homogeneous_layout(spec: GPUSpec, gpcs: int) -> Layout:
    """As many ``gpcs``-GPC partitions as fit one GPU (3 x 2g, 1 x 4g: not always maximal)."""
    n = min(spec.profile_for(gpcs).max_count, spec.gpcs // gpcs)
    while n > 1:
        try:
            return hardware.layout_from_sizes(spec.name, [gpcs] * n)
        except ValueError:
            n -= 1
    return hardware.layout_from_sizes(spec.name, [gpcs])


class FixedLayouts:
    """Layouts given as size lists; a single entry is used on every GPU."""

    name = "fixed"

    def __init__(self, layouts: Sequence[Sequence[int]]) -> None:
        self.layouts = [tuple(x) for x in layouts]

    def plan(self, ctx: PlanContext) -> Plan:
        sizes = self.layouts * ctx.num_gpus if len(self.layouts) == 1 else self.layouts
        if len(sizes) != ctx.num_gpus:
            raise ValueError(
                f"fixed partitioner: {len(self.layouts)} layouts for "
                f"{ctx.num_gpus} GPUs (give 1 or one per GPU)"
            )
        return plan_from_sizes(ctx.spec, sizes, _models_by_gpu(ctx), "fixed layouts")


class RandomLayouts:
    """A uniformly random maximal legal layout per GPU (seeded)."""

    name = "random"

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def plan(self, ctx: PlanContext) -> Plan:
        options = hardware.valid_layouts(ctx.spec.name)
        picks = [options[int(i)] for i in self.rng.integers(len(options), size=ctx.num_gpus)]
        mods = _models_by_gpu(ctx)
        return Plan(
            tuple(picks),
            tuple(tuple([m] * len(lay.placements)) for lay, m in zip(picks, mods, strict=True)),
            "random maximal layouts",
        )
