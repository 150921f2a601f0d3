"""Workload composition: arrivals x batch sizes x model mix, over phases, scaled by load.

A query is ``(id, arrival_s, model, batch)``. :class:`QueryStream` produces them lazily in
:class:`QueryBlock` chunks (bounded memory for any ``num_queries``).

Phases, load and rates: :mod:`.phases`; batch sizes: :mod:`.batches`; scenario keys in README.md
(Scenarios). Rules of the stream:

- **Arrival continuity**: a new arrival process starts only at a phase boundary where the
  arrivals config or the load changes; otherwise the process runs on across the boundary. At a
  restart Poisson and diurnal are exact (memoryless; the diurnal curve is in absolute time), an
  MMPP redraws its state from the stationary distribution, and a trace is replayed from its first
  row offset to the phase start. A non-looped trace that runs out leaves its window empty; if it is
  the last window the stream ends early (``exhausted``).
- **Randomness**: independent streams ``SeedSequence(seed, spawn_key=(purpose, index))`` for
  arrivals (per arrival process), batch sizes and models (per window). Draw sizes depend only on the
  configuration, never on ``chunk``, so the output is identical for every chunk size, and the same
  seed gives the same arrivals whatever the batch sizes or mix.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np

from mig_gym.scenario.config import TraceArrivals, TraceColumnBatch, WorkloadConfig
from mig_gym.workload.batches import BatchSampler, check_batch, cumulative
from mig_gym.workload.phases import (
    Process,
    Traces,
    WorkloadError,
    check_arrivals,
    make_process,
    normalised,
    read_traces,
    trace_scale,
    windows,
)
from mig_gym.workload.traces import Trace

__all__ = ["QueryBlock", "QueryStream", "generate"]

_ARRIVALS, _BATCH, _MODEL = 0, 1, 2  # SeedSequence spawn-key purposes


@dataclass(frozen=True, eq=False)
class QueryBlock:
    """Consecutive queries ``first_id, first_id + 1, ...``."""

    first_id: int
    arrival_s: np.ndarray  # float64, non-decreasing
    model: np.ndarray  # int32 index into model_names
    batch: np.ndarray  # int32 >= 1

    def __len__(self) -> int:
        return int(self.arrival_s.size)


@dataclass(frozen=True, eq=False)
class _Segment:
    """Consecutive windows ``first..last`` sharing one arrival process."""

    first: int
    last: int
    trace: Trace | None


class QueryStream:
    """Lazily generated queries, ``num_queries`` of them (fewer only if a non-looped trace ends).

    Args:
        workload: arrivals, batch sizes, phases and load.
        model_names: the served models; ``model`` in the output indexes this.
        shares: base model mix (weights, normalised), aligned with ``model_names``.
        seed: root seed of all random streams.
        num_queries: how many queries to produce.
        base_dir: directory relative trace paths resolve against.
        chunk: queries per :class:`QueryBlock` (the last may be shorter); never changes values.
        traces: the workload's parsed traces (:func:`~mig_gym.workload.phases.read_traces`);
            read here if not given.

    The stream is consumed once: :meth:`blocks` (or :meth:`next_block`) continues where it stopped.
    Its state is plain data, so a partly consumed stream pickles.
    """

    def __init__(
        self,
        workload: WorkloadConfig,
        model_names: Sequence[str],
        shares: Sequence[float],
        seed: int,
        num_queries: int,
        base_dir: str | Path = ".",
        chunk: int = 65536,
        traces: Traces | None = None,
    ) -> None:
        if len(shares) != len(model_names) or not model_names:
            raise WorkloadError(
                f"need one share per model, got {list(shares)} for {list(model_names)}"
            )
        if num_queries < 0 or chunk < 1:
            raise WorkloadError(f"need num_queries >= 0 and chunk >= 1, got {num_queries}, {chunk}")
        self.model_names = tuple(model_names)
        self.num_queries, self.chunk, self.seed = int(num_queries), int(chunk), seed
        self.generated, self.exhausted = 0, False
        self._windows = windows(workload, normalised(shares, "model shares"), self.model_names)
        self._starts = np.array([w.start_s for w in self._windows])
        self._segments = self._plan_segments(workload, base_dir, traces)
        self._batches = [
            BatchSampler(w.batch, self._rng(_BATCH, i)) for i, w in enumerate(self._windows)
        ]
        self._model_rng = [self._rng(_MODEL, i) for i in range(len(self._windows))]
        self._cum_mix = [cumulative(w.mix) for w in self._windows]
        self._seg: int = 0
        self._proc: Process | None = None
        self._queue: deque[tuple[np.ndarray, np.ndarray, np.ndarray]] = deque()

    def _rng(self, purpose: int, index: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(purpose, index)))

    def _plan_segments(
        self, workload: WorkloadConfig, base_dir: str | Path, traces: Traces | None
    ) -> list[_Segment]:
        """Group consecutive windows that share one arrival process (same arrivals and load)."""
        groups: list[list[int]] = []
        for i, w in enumerate(self._windows):
            check_batch(w.batch)
            check_arrivals(w.arrivals, w.load)
            prev = self._windows[i - 1] if i else None
            if prev is not None and w.arrivals == prev.arrivals and w.load == prev.load:
                groups[-1].append(i)
            else:
                groups.append([i])
        for g in groups:
            arrivals = self._windows[g[0]].arrivals
            batches = [self._windows[i].batch for i in g]
            cols = sorted({b.column for b in batches if isinstance(b, TraceColumnBatch)})
            if cols and arrivals.kind != "trace":
                raise WorkloadError(
                    f"trace_column batch sizes ({cols[0]!r}) need trace arrivals, "
                    f"got {arrivals.kind!r}"
                )
        if traces is None and any(w.arrivals.kind == "trace" for w in self._windows):
            traces = read_traces(workload, base_dir)
        segments = []
        for g in groups:
            arrivals = self._windows[g[0]].arrivals
            trace = traces.get(arrivals) if isinstance(arrivals, TraceArrivals) else None
            if trace is not None:
                trace_scale(arrivals, self._windows[g[0]].load, trace)  # validates
            segments.append(_Segment(g[0], g[-1], trace))
        return segments

    def _process(self, seg: _Segment) -> Process:
        w = self._windows[seg.first]
        end = self._windows[seg.last].end_s
        rng = self._rng(_ARRIVALS, self._seg)
        return make_process(w.arrivals, w.load, rng, w.start_s, end, seg.trace)

    def _split(self, seg: _Segment, times: np.ndarray, rows: np.ndarray | None) -> None:
        """Cut an arrival block at the phase starts and give each piece its batches and models."""
        cuts = np.searchsorted(times, self._starts[seg.first + 1 : seg.last + 1], side="left")
        bounds = [0, *cuts.tolist(), times.size]
        for k, (a, b) in enumerate(pairwise(bounds)):
            if b > a:
                i = seg.first + k
                piece_rows = None if rows is None else rows[a:b]
                batch = self._batches[i].draw(b - a, seg.trace, piece_rows)
                self._queue.append((times[a:b], self._models(i, b - a), batch))

    def _models(self, i: int, n: int) -> np.ndarray:
        cum = self._cum_mix[i]
        if cum[0] == 1.0:  # a single model: no draws needed
            return np.zeros(n, dtype=np.int32)
        u = self._model_rng[i].random(n)
        return np.searchsorted(cum, u, side="right").astype(np.int32)

    def _next_piece(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        while not self._queue:
            if self._seg >= len(self._segments):
                return None
            seg = self._segments[self._seg]
            if self._proc is None:
                self._proc = self._process(seg)
            got = self._proc.next_block()
            if got is None:
                self._seg, self._proc = self._seg + 1, None
            else:
                self._split(seg, *got)
        return self._queue.popleft()

    def next_block(self) -> QueryBlock | None:
        """The next ``chunk`` queries (fewer at the end), or None when done."""
        want = min(self.chunk, self.num_queries - self.generated)
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        have = 0
        while have < want:
            piece = self._next_piece()
            if piece is None:
                self.exhausted = True
                break
            take = min(want - have, piece[0].size)
            parts.append(tuple(a[:take] for a in piece))  # type: ignore[arg-type]
            if take < piece[0].size:
                self._queue.appendleft(tuple(a[take:] for a in piece))  # type: ignore[arg-type]
            have += take
        if have == 0:
            return None
        arrival, model, batch = (np.concatenate(col) for col in zip(*parts, strict=True))
        block = QueryBlock(self.generated, arrival, model.astype(np.int32), batch.astype(np.int32))
        self.generated += have
        return block

    def blocks(self) -> Iterator[QueryBlock]:
        """Remaining queries in blocks of ``chunk``."""
        while (block := self.next_block()) is not None:
            yield block

    def __iter__(self) -> Iterator[tuple[int, float, int, int]]:
        """Remaining queries as ``(id, arrival_s, model_idx, batch)`` (convenient, slower)."""
        for b in self.blocks():
            ids = range(b.first_id, b.first_id + len(b))
            yield from zip(
                ids, b.arrival_s.tolist(), b.model.tolist(), b.batch.tolist(), strict=True
            )


def generate(
    workload: WorkloadConfig,
    model_names: Sequence[str],
    shares: Sequence[float],
    seed: int,
    num_queries: int,
    base_dir: str | Path = ".",
) -> QueryBlock:
    """All queries at once (tests and small runs); same values as :class:`QueryStream`."""
    stream = QueryStream(
        workload, model_names, shares, seed, num_queries, base_dir, max(num_queries, 1)
    )
    blocks = list(stream.blocks())
    if not blocks:
        return QueryBlock(0, np.zeros(0), np.zeros(0, np.int32), np.zeros(0, np.int32))
    return QueryBlock(
        0,
        *(np.concatenate([getattr(b, f) for b in blocks]) for f in ("arrival_s", "model", "batch")),
    )
