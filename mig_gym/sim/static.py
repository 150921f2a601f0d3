"""The static-run contract between the simulator and whoever simulates a static run another way.

A fresh :class:`~mig_gym.sim.simulator.Simulator` describes itself with
``Simulator.static_run()``: a read-only :class:`StaticRunInfo` saying whether the run is static
(and why not) and holding what a closed-form simulation needs (the partitions of each (model,
size) class, the largest servable batch per model, the SLAs, the dispatcher). The caller then
takes the arrivals (``Simulator.take_arrivals()``), records into ``Simulator.rec`` and hands the
final state back with ``Simulator.finish_static(...)``. The fast path (:mod:`mig_gym.sim.fast`)
is that caller; nothing outside the simulator reads its private fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mig_gym.sim.entities import GPU

if TYPE_CHECKING:
    from mig_gym.sim.simulator import Simulator

__all__ = ["StaticRunInfo", "describe"]


@dataclass(frozen=True)
class StaticRunInfo:
    """A fresh simulator as a static run sees it.

    Attributes:
        not_static: why the run is not static (service noise, scheduled faults or epochs, no
            drain, arrival observers, already started, a GPU not up), or None if it is.
        central: pull dispatch (FIFS's central queue).
        dispatcher: the attached push dispatcher (None: pull, or an outside policy dispatches).
        slo_s: the SLA of each model, seconds.
        classes: per model, smallest size first: ``(size, latency table, uids)``, the uids of the
            class's available partitions in the order they were installed (the order in which
            the event loop's idle partitions are taken).
        servable: the largest batch of each model that some partition can serve (larger ones are
            rejected on arrival).
        hosted: the models that some partition serves (the others' queries are rejected as not
            hosted, the rest that do not fit as too large for memory).
    """

    not_static: str | None
    central: bool
    dispatcher: object | None
    slo_s: tuple[float, ...]
    classes: tuple[tuple[tuple[int, tuple[float, ...], tuple[int, ...]], ...], ...]
    servable: tuple[int, ...]
    hosted: frozenset[int]


def describe(
    sim: Simulator, *, noise: bool, scheduled: bool, started: bool, servable: Sequence[int],
    hosted: set[int],
) -> StaticRunInfo:  # fmt: skip
    """``sim``'s :class:`StaticRunInfo`; the simulator passes what only it knows."""
    why = None
    if noise:
        why = "service-time noise (workload.service_cv > 0)"
    elif scheduled:
        why = "faults or decision epochs are scheduled"
    elif not sim.drain:
        why = "run.drain is false"
    elif sim.observers:
        why = "arrival observers are registered (batch counts of a re-planning partitioner)"
    elif started:
        why = "the run has already started"
    elif any(g.state != GPU.UP for g in sim.gpus):
        why = "a GPU is not up"
    uids: dict[tuple[int, int], list[int]] = {}
    for g in sim.gpus:
        for p in g.partitions:
            if p.available:
                uids.setdefault((p.model, p.gpcs), []).append(p.uid)
    classes = tuple(
        tuple((k, tuple(sim.tables[(m, k)]), tuple(uids.get((m, k), ()))) for k, _ in per_model)
        for m, per_model in enumerate(sim.classes)
    )
    return StaticRunInfo(
        not_static=why,
        central=sim.central,
        dispatcher=sim.dispatcher,
        slo_s=tuple(sim.slo_s),
        classes=classes,
        servable=tuple(servable),
        hosted=frozenset(hosted),
    )
