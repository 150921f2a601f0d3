"""What the simulator's event heap holds, and what it hands to outside policies.

Heap entries are ``(time_s, seq, event, None)``, and a service's completion is
``(end_s, seq, partition, query)`` (no event object: the hot path allocates none); ``seq`` is a
per-simulator counter, so events at the same time are handled in the order they were scheduled,
and a completion whose partition no longer runs that query (a failure aborted it) is stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from mig_gym.sim.entities import ClusterView, Partition, Query

__all__ = [
    "Decision",
    "EpochTick",
    "GPUFail",
    "GPURecover",
    "PushDispatcher",
    "ReconfigDone",
]


class PushDispatcher(Protocol):
    """Picks a partition for a query; ``None`` means no available partition can take it."""

    def choose(self, query: Query, view: ClusterView) -> Partition | None: ...


@dataclass(frozen=True, slots=True)
class ReconfigDone:
    gpu: int
    gen: int


@dataclass(frozen=True, slots=True)
class GPUFail:
    gpu: int


@dataclass(frozen=True, slots=True)
class GPURecover:
    gpu: int


@dataclass(frozen=True, slots=True)
class EpochTick:
    index: int


@dataclass(frozen=True)
class Decision:
    """A point where an outside policy acts: dispatch ``query``, or re-plan at epoch ``epoch``."""

    kind: Literal["dispatch", "epoch"]
    time_s: float
    query: Query | None = None
    epoch: int = 0
