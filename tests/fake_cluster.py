"""A hand-built server state for dispatcher tests: real ``Partition``, ``ClassIndex`` and
``ClusterView`` over a stand-in for the simulator (no event loop, no workload).

``server(now, [spec, ...])`` places one partition per spec ``(size, backlog_s)`` or
``(size, backlog_s, model, available)``; a partition's ``est_free_s`` is ``now + backlog_s``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import SimpleNamespace

from mig_gym.sim.entities import ClassIndex, ClusterView, Partition, Query

SIZES = (1, 2, 3, 4, 7)
MAX_BATCH = 8


def table(latency_s: float, fits_up_to: int = MAX_BATCH) -> list[float]:
    """A latency table indexed by batch: constant ``latency_s``, ``inf`` above ``fits_up_to``."""
    return [math.inf] + [
        latency_s if b <= fits_up_to else math.inf for b in range(1, MAX_BATCH + 1)
    ]


class Server:
    """The attributes :class:`ClusterView` reads from a simulator."""

    def __init__(self, now: float, parts: Sequence[Partition], slo_s: Sequence[float]) -> None:
        self.now = now
        self.sizes = SIZES
        self.slo_s = tuple(slo_s)
        self.gpus = [SimpleNamespace(partitions=list(parts))]
        self.index: dict[tuple[int, int], ClassIndex] = {}
        for p in parts:  # unavailable members stay in the index: best() must skip them
            self.index.setdefault((p.model, p.gpcs), ClassIndex()).add(p)
        models = 1 + max((m for m, _ in self.index), default=0)
        self.classes = [
            sorted((k, ix) for (mm, k), ix in self.index.items() if mm == m) for m in range(models)
        ]


def server(
    now: float,
    specs: Sequence[tuple],
    latency: Mapping[int, list[float]],
    slo_s: Sequence[float] = (0.1, 0.1),
) -> tuple[ClusterView, list[Partition]]:
    """A view over partitions built from ``specs``; partition ``i`` has uid ``i``."""
    parts = []
    for uid, spec in enumerate(specs):
        size, backlog = spec[0], spec[1]
        model = spec[2] if len(spec) > 2 else 0
        available = spec[3] if len(spec) > 3 else True
        p = Partition(uid, 0, size, 0, model, latency[size])
        p.est_free_s = now + backlog
        p.available = available
        if backlog > 0:  # work ahead of a new query: something is running there
            p.running = Query(-1 - uid, now, model, 1)
        parts.append(p)
    return ClusterView(Server(now, parts, slo_s)), parts


def query(batch: int, arrival_s: float, model: int = 0, qid: int = 0) -> Query:
    return Query(qid, arrival_s, model, batch)
