"""A SimPy model of the queueing system mig_gym simulates under push earliest-finish dispatch.

Same system, written the way a SimPy user would: one arrival process replaying the arrival times,
one server process per MIG partition, a FIFO queue per partition and deterministic service times
from the partition's latency table. The dispatcher reproduces ``mig_gym``'s ``EarliestFinish`` and
the simulator's ``est_free_s`` bookkeeping float-for-float, so both see the same decisions:

- estimated finish on partition ``p`` = ``max(p.est_free_s, now) + p.lat[b]``; the smallest wins,
  ties to the smaller partition, then (as mig_gym's per-class heap orders them) to the smaller
  ``est_free_s``, then the lower uid;
- a partition that can not hold the batch in memory (``lat[b] == inf``) is skipped; a query no
  partition can hold is rejected;
- ``est_free_s`` is set when a query is queued (``max(est_free_s, now) + est``), when one starts
  (``now + est + queued_s``, with ``queued_s`` decremented as mig_gym does) and when the partition
  goes idle (``now``).

Two variants of the same model:

- ``store``: the textbook SimPy form: each partition's queue is a ``simpy.Store`` that its server
  process ``get``s from (a put and a get event per query);
- ``lean``: the fastest SimPy form we found: a plain deque per partition, and a bare ``Event`` only
  to wake an idle server (no put/get events).

Latencies are recorded for query ids ``>= warmup`` (as mig_gym's ``Recorder`` does) and summed in
completion order, so the mean can agree with mig_gym's to the last bit.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import simpy

__all__ = ["PartitionSpec", "SimpyResult", "partitions_of", "run_simpy"]

VARIANTS = ("store", "lean")


@dataclass(frozen=True)
class PartitionSpec:
    """A partition as the SimPy model needs it: identity, size, hosted model, service times."""

    uid: int
    gpcs: int
    model: int
    lat: tuple[float, ...]  # lat[b]: seconds for a batch of b; inf where it does not fit


@dataclass(frozen=True)
class SimpyResult:
    variant: str
    arrived: int
    completed: int
    rejected: int
    measured: int
    latency_mean_ms: float
    latency_p95_ms: float  # exact order statistic (rank ceil(0.95 n)), mig_gym's definition
    latency_max_ms: float
    sim_time_s: float


def partitions_of(sim: object) -> list[PartitionSpec]:
    """The partitions of a built ``mig_gym`` simulator (``build(...).sim``), in GPU order."""
    return [
        PartitionSpec(p.uid, p.gpcs, p.model, tuple(p.lat))
        for g in sim.gpus  # type: ignore[attr-defined]
        for p in g.partitions
        if p.model >= 0
    ]


class _Part:
    __slots__ = ("busy", "est_free_s", "gpcs", "lat", "queue", "queued_s", "running", "uid", "wake")

    def __init__(self, spec: PartitionSpec) -> None:
        self.uid = spec.uid
        self.gpcs = spec.gpcs
        self.lat = spec.lat
        self.queue: deque = deque()  # lean: waiting queries; store: their count only matters
        self.queued_s = 0.0
        self.est_free_s = 0.0
        self.busy = False
        self.running: tuple[int, float, int] | None = None
        self.wake: simpy.Event | simpy.Store | None = None


class _Stats:
    __slots__ = ("completed", "lat", "lat_sum", "warmup")

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.completed = 0
        self.lat_sum = 0.0
        self.lat: list[float] = []


def _choose(parts: Sequence[_Part], b: int, now: float) -> _Part | None:
    """Earliest estimated finish; ``parts`` is sorted by (gpcs, uid), see the module docstring."""
    best = None
    best_t = math.inf
    best_g = 0
    best_e = 0.0
    for p in parts:
        lat = p.lat[b]
        if lat == math.inf:
            continue
        e = p.est_free_s
        t = (e if e > now else now) + lat
        if t < best_t or (t == best_t and p.gpcs == best_g and e < best_e):
            best, best_t, best_g, best_e = p, t, p.gpcs, e
    return best


def _lean_server(env: simpy.Environment, p: _Part, st: _Stats):
    lat = p.lat
    queue = p.queue
    warmup = st.warmup
    lats = st.lat
    timeout = env.timeout
    while True:
        p.wake = env.event()
        yield p.wake
        qid, arr, b = p.running  # type: ignore[misc]
        while True:
            yield timeout(lat[b])
            now = env.now
            st.completed += 1
            if qid >= warmup:
                x = now - arr
                st.lat_sum += x
                lats.append(x)
            if not queue:
                p.busy = False
                p.running = None
                p.est_free_s = now
                break
            qid, arr, b = queue.popleft()
            est = lat[b]
            p.queued_s = p.queued_s - est if queue else 0.0
            p.est_free_s = now + est + p.queued_s


def _store_server(env: simpy.Environment, p: _Part, st: _Stats):
    lat = p.lat
    store: simpy.Store = p.wake  # type: ignore[assignment]
    warmup = st.warmup
    lats = st.lat
    timeout = env.timeout
    while True:
        qid, arr, b = yield store.get()
        yield timeout(lat[b])
        now = env.now
        st.completed += 1
        if qid >= warmup:
            x = now - arr
            st.lat_sum += x
            lats.append(x)
        if store.items:  # the next query starts now (the get below returns at once)
            est = lat[store.items[0][2]]
            p.queue.popleft()
            p.queued_s = p.queued_s - est if p.queue else 0.0
            p.est_free_s = now + est + p.queued_s
        else:
            p.busy = False
            p.est_free_s = now


def _source(
    env: simpy.Environment,
    arrivals: Sequence[float],
    models: Sequence[int],
    batches: Sequence[int],
    by_model: list[list[_Part]],
    counts: list[int],
    store: bool,
):
    timeout = env.timeout
    for qid, (t, m, b) in enumerate(zip(arrivals, models, batches, strict=True)):
        yield timeout(t - env.now)
        now = env.now
        p = _choose(by_model[m], b, now)
        if p is None:
            counts[0] += 1
            continue
        q = (qid, t, b)
        est = p.lat[b]
        if not p.busy:
            p.busy = True
            p.est_free_s = now + est + 0.0  # mig_gym's _start: now + est + queued_s (= 0)
            if store:
                p.wake.put(q)  # type: ignore[union-attr]
            else:
                p.running = q
                p.wake.succeed()  # type: ignore[union-attr]
        else:
            p.queue.append(q)
            p.queued_s += est
            e = p.est_free_s
            p.est_free_s = (e if e > now else now) + est
            if store:
                p.wake.put(q)  # type: ignore[union-attr]


def run_simpy(
    arrival_s: np.ndarray,
    model: np.ndarray,
    batch: np.ndarray,
    partitions: Sequence[PartitionSpec],
    warmup: int,
    variant: str = "lean",
) -> SimpyResult:
    """Simulate queries ``(arrival_s[i], model[i], batch[i])`` (query id ``i``) to completion."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    env = simpy.Environment()
    st = _Stats(warmup)
    n_models = max([int(s.model) for s in partitions], default=-1) + 1
    n_models = max(n_models, int(model.max()) + 1 if model.size else 0)
    by_model: list[list[_Part]] = [[] for _ in range(n_models)]
    store = variant == "store"
    for spec in sorted(partitions, key=lambda s: (s.gpcs, s.uid)):
        p = _Part(spec)
        by_model[spec.model].append(p)
        if store:
            p.wake = simpy.Store(env)
            env.process(_store_server(env, p, st))
        else:
            env.process(_lean_server(env, p, st))
    counts = [0]
    env.process(
        _source(env, arrival_s.tolist(), model.tolist(), batch.tolist(), by_model, counts, store)
    )
    env.run()
    lats = st.lat
    n = len(lats)
    p95 = float(np.quantile(np.asarray(lats), 0.95, method="inverted_cdf")) if n else math.nan
    return SimpyResult(
        variant=variant,
        arrived=int(arrival_s.size),
        completed=st.completed,
        rejected=counts[0],
        measured=n,
        latency_mean_ms=st.lat_sum / n * 1e3 if n else math.nan,
        latency_p95_ms=p95 * 1e3,
        latency_max_ms=max(lats) * 1e3 if n else math.nan,
        sim_time_s=float(env.now),
    )
