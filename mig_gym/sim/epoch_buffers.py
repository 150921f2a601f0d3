"""The epoch runner's two buffers (:mod:`mig_gym.sim.epochs`): the arrival stream taken up to a
time (:class:`Cursor`) and the queries dispatched but not yet recorded (:class:`Pending`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from mig_gym.metrics import Completions

if TYPE_CHECKING:
    from mig_gym.workload import QueryBlock

__all__ = ["COLS", "Cursor", "Pending"]


class Cursor:
    """The arrival stream, taken up to a time: arrivals before ``stop``, one block at a time."""

    def __init__(self, first: QueryBlock | None, blocks: Iterator[QueryBlock]) -> None:
        self.first = first  # the block the simulator had loaded
        self.blocks = blocks
        self.t = np.empty(0)
        self.m = self.b = np.empty(0, np.int64)
        self.i = 0
        self.exhausted = False

    def take(self, stop: float) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The next arrivals before ``stop`` (at most a block), or None if there are none:
        then either an arrival at or after ``stop`` is waiting or the stream has ended."""
        if self.i == len(self.t):
            blk, self.first = self.first, None
            if blk is None:
                blk = next(self.blocks, None)
                while blk is not None and len(blk.arrival_s) == 0:
                    blk = next(self.blocks, None)
            if blk is None:
                self.exhausted = True
                return None
            self.t, self.i = blk.arrival_s, 0
            self.m, self.b = blk.model.astype(np.int64), blk.batch.astype(np.int64)
        i = self.i
        j = i + int(np.searchsorted(self.t[i:], stop, side="left"))
        if j == i:
            return None
        self.i = j
        return self.t[i:j], self.m[i:j], self.b[i:j]


# pending columns: end, arrival, qid, model, size, service, partition uid, batch
COLS = 8
_FLOAT = (0, 1, 5)


class Pending:
    """Queries dispatched and not yet recorded as completed, in dispatch order."""

    def __init__(self) -> None:
        self.cols = [np.empty(0) if c in _FLOAT else np.empty(0, np.int64) for c in range(COLS)]

    def add(self, cols: list) -> None:
        new = [np.asarray(c, np.float64 if i in _FLOAT else np.int64) for i, c in enumerate(cols)]
        if len(new[0]):
            self.cols = [np.concatenate((a, b)) for a, b in zip(self.cols, new, strict=True)]

    def pop_until(self, t: float, slo: np.ndarray) -> Completions:
        """The completions ending at or before ``t``, sorted by end (ties in dispatch order)."""
        now = self.cols[0] <= t
        take = [c[now] for c in self.cols]
        if len(take[0]):
            self.cols = [c[~now] for c in self.cols]
        order = np.argsort(take[0], kind="stable")
        return Completions(*(take[c][order] for c in range(6)), slo)  # type: ignore[arg-type]
