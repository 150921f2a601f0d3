"""Arrival observers: what someone outside the event loop counts of the arrivals.

The simulator keeps no bookkeeping for its users: whoever needs to see the arrivals (a re-planning
partitioner, an environment's observation) owns an observer and registers it with
``Simulator.observe(observer)``. The event loop calls ``on_arrival(model, batch)`` for every
arrival, in arrival order, before the query is dispatched. A simulation of the same arrivals done
another way calls ``on_block(models, batches)`` once per block of arrivals instead, with the same
result: the event loop's compiled core (:mod:`mig_gym.sim.event_core`) does, once per kernel call,
before the decision that reads the counts. A run with observers registered is not static
(:mod:`mig_gym.sim.static`).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

__all__ = ["ArrivalObserver", "BatchCounts"]


class ArrivalObserver(Protocol):
    """Sees every arrival: its model index and batch size."""

    def on_arrival(self, model: int, batch: int) -> None: ...

    def on_block(self, models: np.ndarray, batches: np.ndarray) -> None: ...


class BatchCounts:
    """Arrivals per model and batch size since the last :meth:`take` or :meth:`clear`.

    ``counts[m][b]`` is the number of arrivals of model ``m`` with batch ``b`` (keys in order of
    first arrival).
    """

    __slots__ = ("counts",)

    def __init__(self, num_models: int) -> None:
        if num_models < 1:
            raise ValueError(f"BatchCounts needs num_models >= 1, got {num_models}")
        self.counts: list[dict[int, int]] = [{} for _ in range(num_models)]

    def on_arrival(self, model: int, batch: int) -> None:
        c = self.counts[model]
        c[batch] = c.get(batch, 0) + 1

    def on_block(self, models: np.ndarray, batches: np.ndarray) -> None:
        """As ``on_arrival`` for each (model, batch) pair in order (counted with numpy)."""
        if len(models) == 0:
            return
        width = int(batches.max()) + 1
        key = np.asarray(models, np.int64) * width + np.asarray(batches, np.int64)
        n = np.bincount(key)
        first = np.full(len(n), len(key), np.int64)  # each key's first arrival
        np.minimum.at(first, key, np.arange(len(key)))
        present = np.flatnonzero(n)
        order = present[np.argsort(first[present], kind="stable")]  # in order of first arrival
        for k, c in zip(order.tolist(), n[order].tolist(), strict=True):
            m, b = divmod(k, width)
            counts = self.counts[m]
            counts[b] = counts.get(b, 0) + c

    def seen(self) -> bool:
        """Whether any arrival was counted since the last take/clear."""
        return any(self.counts)

    def take(self) -> list[dict[int, int]]:
        """The counts so far, and start counting afresh."""
        out = self.counts
        self.counts = [{} for _ in out]
        return out

    def clear(self) -> None:
        for c in self.counts:
            c.clear()
