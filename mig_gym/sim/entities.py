"""Simulator entities: queries, partitions, GPUs, and the per-class index policies query.

These are mutable records owned by :class:`mig_gym.sim.simulator.Simulator`. Policies receive them
through :class:`ClusterView` and must treat them as read-only.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from mig_gym.hardware import Layout

__all__ = ["Query", "Partition", "GPU", "Plan", "ClassIndex", "ClusterView", "match_assignment"]


class Query:
    """One inference request: ``batch`` items of model index ``model``, arrived at ``arrival_s``.

    ``noise`` multiplies its profiled service time (service-time noise, drawn at arrival; 1.0
    without noise)."""

    __slots__ = ("id", "arrival_s", "model", "batch", "retries", "noise")

    def __init__(
        self, qid: int, arrival_s: float, model: int, batch: int, noise: float = 1.0
    ) -> None:
        self.id = qid
        self.arrival_s = arrival_s
        self.model = model
        self.batch = batch
        self.retries = 0
        self.noise = noise

    def __repr__(self) -> str:
        return f"Query(id={self.id}, t={self.arrival_s:.6f}, model={self.model}, b={self.batch})"


class Partition:
    """A MIG instance hosting one model, serving one query at a time from a FIFO queue.

    ``est_free_s`` is the profiled estimate of when all work already assigned (running plus queued)
    is done; dispatchers compute ``max(est_free_s, now) + latency`` as a query's estimated finish.
    ``lat[b]`` is the profiled service time of a batch of ``b`` (``inf`` if it does not fit memory).
    """

    __slots__ = (
        "uid",
        "gpu",
        "gpcs",
        "start",
        "model",
        "lat",
        "queue",
        "queued_s",
        "running",
        "run_start_s",
        "run_end_s",
        "est_free_s",
        "available",
        "version",
        "index",
    )

    def __init__(
        self, uid: int, gpu: int, gpcs: int, start: int, model: int, lat: Sequence[float]
    ) -> None:
        self.uid = uid
        self.gpu = gpu
        self.gpcs = gpcs
        self.start = start
        self.model = model
        self.lat = lat
        self.queue: deque[Query] = deque()
        self.queued_s = 0.0  # profiled work waiting in the queue
        self.running: Query | None = None
        self.run_start_s = 0.0
        self.run_end_s = 0.0
        self.est_free_s = 0.0
        self.available = False
        self.version = 0
        self.index: ClassIndex | None = None  # its (model, size) class, set by the simulator

    def fits(self, batch: int) -> bool:
        return batch < len(self.lat) and self.lat[batch] < math.inf

    def backlog_s(self, now: float) -> float:
        """Estimated seconds of assigned work left (running remainder plus queued)."""
        return max(self.est_free_s - now, 0.0)

    def __repr__(self) -> str:
        return (
            f"Partition(uid={self.uid}, gpu={self.gpu}, {self.gpcs}g@{self.start}, "
            f"model={self.model}, queue={len(self.queue)}, busy={self.running is not None})"
        )


class GPU:
    """One physical GPU: its layout, partitions and reconfiguration/failure state."""

    __slots__ = ("index", "layout", "models", "partitions", "state", "target", "down_since")

    UP, DRAINING, RECONFIGURING, DOWN = "up", "draining", "reconfiguring", "down"

    def __init__(self, index: int) -> None:
        self.index = index
        self.layout: Layout | None = None
        self.models: tuple[int, ...] = ()
        self.partitions: list[Partition] = []
        self.state = GPU.DOWN
        self.target: tuple[Layout, tuple[int, ...]] | None = None  # pending reconfiguration
        self.down_since = 0.0


@dataclass(frozen=True)
class Plan:
    """A partitioner's decision: a layout per GPU and the model hosted by each placement."""

    layouts: tuple[Layout, ...]
    models: tuple[tuple[int, ...], ...]  # per GPU, per placement (same order as layout.placements)
    notes: str = ""

    def __post_init__(self) -> None:
        if len(self.layouts) != len(self.models):
            raise ValueError("Plan needs one model tuple per layout")
        for lay, mods in zip(self.layouts, self.models, strict=True):
            if len(lay.placements) != len(mods):
                raise ValueError(
                    f"layout {lay} has {len(lay.placements)} placements, got {len(mods)} models"
                )


def match_assignment(current: list, wanted: list) -> list:
    """Assign the ``wanted`` items to slots so that slots whose ``current`` item is wanted keep
    it; the rest take the remaining wanted items in order. Returns the new item per slot."""
    left = list(wanted)
    out: list = [None] * len(current)
    for i, cur in enumerate(current):
        if cur in left:
            left.remove(cur)
            out[i] = cur
    for i in range(len(current)):
        if out[i] is None:
            out[i] = left.pop(0)
    return out


class ClassIndex:
    """Partitions of one (model, size) class, for "the available partition that is free soonest".

    Idle partitions (nothing running or queued) sit in an insertion-ordered dict, longest idle
    first; busy ones in a lazy-deletion heap keyed by ``est_free_s``. ``best()`` returns the
    longest-idle partition if there is one (its ``est_free_s``, the time it went idle, is the
    smallest; among those idle since the same instant the lowest uid), else the busy partition
    with the smallest ``est_free_s``: O(1) while partitions are idle, O(log P) amortised
    otherwise. Stale heap entries (older ``version``, unavailable or now idle partitions) are
    dropped when they reach the top, and the heap is rebuilt when stale entries outnumber live
    ones. The answer is kept until the class next changes (every change of a member's state goes
    through ``push``/``busy``/``went_idle``/``add``/``remove``).
    """

    __slots__ = ("heap", "members", "idle", "limit", "top", "valid", "watch")

    def __init__(self) -> None:
        # a list that every partition whose state changes is appended to (None: nobody watches;
        # Dispatch-v0's observation copies only the partitions that changed)
        self.watch: list[Partition] | None = None
        self.heap: list[tuple[float, int, int, Partition]] = []
        self.members: dict[int, Partition] = {}
        self.idle: dict[int, Partition] = {}
        self.limit = 16  # heap length above which it is rebuilt without its stale entries
        self.top: Partition | None = None  # best()'s answer while ``valid`` (no change since)
        self.valid = False

    def push(self, p: Partition) -> None:
        """Record a change of ``p``'s ``est_free_s`` or of its idle/busy state."""
        if p.running is None and not p.queue:
            self.went_idle(p)
        else:
            self.busy(p)

    def went_idle(self, p: Partition) -> None:
        """``p`` has nothing running or queued (``push`` of an idle partition)."""
        self.valid = False
        p.version += 1
        self.idle.pop(p.uid, None)  # re-inserted at the end: idle since now
        self.idle[p.uid] = p
        if self.watch is not None:
            self.watch.append(p)

    def busy(self, p: Partition) -> None:
        """``p`` has work; its ``est_free_s`` changed (``push`` of a busy partition)."""
        self.valid = False
        p.version += 1
        self.idle.pop(p.uid, None)
        if self.watch is not None:
            self.watch.append(p)
        heap = self.heap
        heapq.heappush(heap, (p.est_free_s, p.uid, p.version, p))
        if len(heap) > self.limit:
            self.heap = [
                (q.est_free_s, q.uid, q.version, q)
                for q in self.members.values()
                if q.available and q.uid not in self.idle
            ]
            heapq.heapify(self.heap)

    def add(self, p: Partition) -> None:
        self.members[p.uid] = p
        self.limit = 4 * len(self.members) + 16
        self.push(p)

    def remove(self, p: Partition) -> None:
        self.members.pop(p.uid, None)
        self.limit = 4 * len(self.members) + 16
        self.idle.pop(p.uid, None)
        p.version += 1
        self.valid = False

    def rebuild(self) -> None:
        """Rebuild the idle order and the heap from the members' current state (after their
        fields were set directly: the compiled core's write-back, :mod:`.event_core`)."""
        for p in self.members.values():
            p.version += 1
        busy = [p for p in self.members.values() if p.running is not None or p.queue]
        idle = [p for p in self.members.values() if p.running is None and not p.queue]
        idle.sort(key=lambda p: (p.est_free_s, p.uid))  # idle since: the order went_idle keeps
        self.idle = {p.uid: p for p in idle}
        self.heap = [(p.est_free_s, p.uid, p.version, p) for p in busy]
        heapq.heapify(self.heap)
        self.valid = False

    def best(self) -> Partition | None:
        if self.valid:
            return self.top
        top = None
        for p in self.idle.values():  # longest idle first; idle since one instant: lowest uid
            if not p.available:
                continue
            if top is None:
                top = p
            elif p.est_free_s != top.est_free_s:
                break
            elif p.uid < top.uid:
                top = p
        if top is None:
            heap = self.heap
            while heap:
                _, _, ver, p = heap[0]
                if ver == p.version and p.available:
                    top = p
                    break
                heapq.heappop(heap)
        self.top, self.valid = top, True
        return top


class ClusterView:
    """Read-only view of the simulated server handed to policies.

    Attributes:
        now: current simulated time in seconds.
        gpus: the GPUs (``GPU.partitions`` lists their partitions).
        sizes: partition sizes (GPCs) of the hardware, ascending.
        slo_s: latency target per model index.
    """

    def __init__(self, sim: object) -> None:
        self._sim = sim

    @property
    def now(self) -> float:
        return self._sim.now  # type: ignore[attr-defined]

    @property
    def gpus(self) -> Sequence[GPU]:
        return self._sim.gpus  # type: ignore[attr-defined]

    @property
    def sizes(self) -> tuple[int, ...]:
        return self._sim.sizes  # type: ignore[attr-defined]

    @property
    def slo_s(self) -> Sequence[float]:
        return self._sim.slo_s  # type: ignore[attr-defined]

    def partitions(self, model: int | None = None) -> list[Partition]:
        """Available partitions (hosting ``model`` if given), in GPU order."""
        return [
            p
            for g in self._sim.gpus
            for p in g.partitions  # type: ignore[attr-defined]
            if p.available and (model is None or p.model == model)
        ]

    def classes(self, model: int) -> list[tuple[int, ClassIndex]]:
        """``(size, index)`` of every size class hosting ``model``, smallest first."""
        return self._sim.classes[model]  # type: ignore[attr-defined]

    def best_in_class(self, model: int, gpcs: int) -> Partition | None:
        """The available partition of this model and size with the earliest ``est_free_s``."""
        idx = self._sim.index.get((model, gpcs))  # type: ignore[attr-defined]
        return idx.best() if idx is not None else None
