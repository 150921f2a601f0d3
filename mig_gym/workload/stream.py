"""Workload composition: arrivals x batch sizes x model mix, over phases, scaled by load.

A query is ``(id, arrival_s, model, batch)``. :class:`QueryStream` produces them lazily in
:class:`QueryBlock` chunks (bounded memory for any ``num_queries``).

Rules (the workload layer of docs/architecture.md; scenario keys in README.md, Scenarios):

- **Phases** are sorted by ``start_s`` (stable; of two phases with one start the later wins). The
  base workload applies before the first phase; each phase is the *base* workload with the phase's
  non-None fields overriding it (not the previous phase's). Its window is ``[start_s, next start)``.
- **Load**: a phase's rate multiplier is ``workload.load * phase.load`` (``phase.load`` defaults to
  1), so a global load sweep also scales phased scenarios. Poisson, MMPP and diurnal rates are
  multiplied; a trace is time-scaled to ``rate_qps * load`` if it names ``rate_qps``, else to its
  native rate (``1 / mean gap``) times the load.
- **Arrival continuity**: a new arrival process starts only at a phase boundary where the
  arrivals config or the load changes; otherwise the process runs on across the boundary. At a
  restart Poisson and diurnal are exact (memoryless; the diurnal curve is in absolute time), an
  MMPP redraws its state from the stationary distribution, and a trace is replayed from its first
  row offset to the phase start. A non-looped trace that runs out leaves its window empty; if it is
  the last window the stream ends early (``exhausted``).
- **Batch sizes**: ``lognormal`` is ``round(exp(N(log median, sigma)))`` clamped to ``[min, max]``
  (clamping, not resampling: the tails pile up on ``min``/``max``, as :func:`batch_pmf` states);
  ``trace_column`` is ``ceil(value / per_item)`` clamped to ``[1, max]`` from the trace row of the
  arrival, so its window's arrivals must be a trace.
- **Randomness**: independent streams ``SeedSequence(seed, spawn_key=(purpose, index))`` for
  arrivals (per arrival process), batch sizes and models (per window). Draw sizes depend only on the
  configuration, never on ``chunk``, so the output is identical for every chunk size, and the same
  seed gives the same arrivals whatever the batch sizes or mix.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from pathlib import Path

import numpy as np

from mig_gym.scenario.config import (
    Arrivals,
    Batch,
    DiurnalArrivals,
    EmpiricalBatch,
    FixedBatch,
    LognormalBatch,
    MMPPArrivals,
    PoissonArrivals,
    TraceArrivals,
    TraceColumnBatch,
    WorkloadConfig,
)
from mig_gym.workload.arrivals import (
    DiurnalProcess,
    MMPPProcess,
    PoissonProcess,
    TraceReplay,
    mmpp_mean_rate,
)
from mig_gym.workload.traces import Trace, TraceError, read_trace

_ARRIVALS, _BATCH, _MODEL = 0, 1, 2  # SeedSequence spawn-key purposes


class WorkloadError(ValueError):
    """A workload configuration that cannot be generated (the message names the problem)."""


@dataclass(frozen=True, eq=False)
class QueryBlock:
    """Consecutive queries ``first_id, first_id + 1, ...``."""

    first_id: int
    arrival_s: np.ndarray  # float64, non-decreasing
    model: np.ndarray  # int32 index into model_names
    batch: np.ndarray  # int32 >= 1

    def __len__(self) -> int:
        return int(self.arrival_s.size)


# --------------------------------------------------------------------------- batch sizes
def batch_pmf(batch_cfg: Batch, trace: Trace | None = None) -> dict[int, float]:
    """Exact pmf of the batch sizes a config generates (sizes with zero mass left out).

    Lognormal: ``P(k) = P(k - 1/2 <= exp(N(mu, sigma)) < k + 1/2)``, with all mass below ``min``
    on ``min`` and above ``max`` on ``max``. ``trace_column`` needs the ``trace`` (its column's
    empirical distribution).
    """
    _check_batch(batch_cfg)
    if isinstance(batch_cfg, FixedBatch):
        return {batch_cfg.value: 1.0}
    if isinstance(batch_cfg, LognormalBatch):
        b = batch_cfg
        return dict(_lognormal_pmf(float(b.median), float(b.sigma), int(b.min), int(b.max)))
    if isinstance(batch_cfg, EmpiricalBatch):
        sizes, probs = _empirical(batch_cfg)
        return {int(k): float(p) for k, p in zip(sizes, probs, strict=True) if p > 0}
    if trace is None or batch_cfg.column not in trace.columns:
        raise WorkloadError(f"batch_pmf of trace_column {batch_cfg.column!r} needs that trace")
    sizes, counts = np.unique(
        _column_batches(batch_cfg, trace.columns[batch_cfg.column]), return_counts=True
    )
    return {int(k): c / counts.sum() for k, c in zip(sizes, counts, strict=True)}


@lru_cache(maxsize=64)
def _lognormal_pmf(median: float, sigma: float, lo: int, hi: int) -> tuple[tuple[int, float], ...]:
    if sigma == 0 or lo == hi:
        return ((min(max(int(np.rint(median)), lo), hi), 1.0),)
    mu = math.log(median)

    def z(x: float) -> float:  # standardised log of a rounding boundary
        return (math.log(x) - mu) / sigma if x > 0 else -math.inf

    def sf(x: float) -> float:  # P(exp(N) >= x); erfc keeps the upper tail accurate
        return 0.5 * math.erfc(z(x) / math.sqrt(2))

    def cdf(x: float) -> float:
        return 0.5 * math.erfc(-z(x) / math.sqrt(2))

    out = [(lo, cdf(lo + 0.5))]
    for k in range(lo + 1, hi):
        if z(k - 0.5) > 0:
            upper = sf(k - 0.5)
            if upper == 0.0:
                return tuple(p for p in out if p[1] > 0)  # no mass left, not even on max
            out.append((k, upper - sf(k + 0.5)))
        else:
            out.append((k, cdf(k + 0.5) - cdf(k - 0.5)))
    out.append((hi, sf(hi - 0.5)))
    return tuple(p for p in out if p[1] > 0)


def _empirical(cfg: EmpiricalBatch) -> tuple[np.ndarray, np.ndarray]:
    """Sizes (sorted) and normalised probabilities."""
    items = sorted((int(k), float(w)) for k, w in cfg.pmf.items())
    sizes = np.array([k for k, _ in items], dtype=np.int32)
    weights = np.array([w for _, w in items])
    return sizes, weights / weights.sum()


def _sampling_table(cfg: EmpiricalBatch) -> tuple[np.ndarray, np.ndarray]:
    sizes, probs = _empirical(cfg)
    return sizes, _cumulative(probs)


def _check_batch(cfg: Batch) -> None:
    if isinstance(cfg, LognormalBatch):
        if not (cfg.median > 0 and cfg.sigma >= 0 and 1 <= cfg.min <= cfg.max):
            raise WorkloadError(
                f"lognormal batch needs median > 0, sigma >= 0 and 1 <= min <= max, got {cfg}"
            )
    elif isinstance(cfg, FixedBatch):
        if cfg.value < 1:
            raise WorkloadError(f"fixed batch value must be >= 1, got {cfg.value}")
    elif isinstance(cfg, EmpiricalBatch):
        for k, w in cfg.pmf.items():
            if int(k) != k or int(k) < 1 or not (math.isfinite(w) and w >= 0):
                raise WorkloadError(
                    f"empirical pmf entry {k!r}: {w!r} needs size >= 1, weight >= 0"
                )
        if not cfg.pmf or sum(cfg.pmf.values()) <= 0:
            raise WorkloadError(f"empirical pmf needs a positive total weight, got {cfg.pmf}")
    elif isinstance(cfg, TraceColumnBatch):
        if not (cfg.per_item > 0 and cfg.max >= 1):
            raise WorkloadError(f"trace_column batch needs per_item > 0 and max >= 1, got {cfg}")
    else:
        raise WorkloadError(f"unknown batch config {cfg!r}")


def _column_batches(cfg: TraceColumnBatch, values: np.ndarray) -> np.ndarray:
    return np.clip(np.ceil(values / cfg.per_item), 1, cfg.max).astype(np.int32)


# --------------------------------------------------------------------------- phases
@dataclass(frozen=True, eq=False)
class _Window:
    """One phase's time window and its effective settings."""

    start_s: float
    end_s: float
    arrivals: Arrivals
    batch: Batch
    mix: np.ndarray  # model probabilities
    load: float


def _windows(
    workload: WorkloadConfig, mix0: np.ndarray, names: Sequence[str] | None
) -> list[_Window]:
    """The phase windows in time order (``names=None``: ignore phase mixes)."""
    phases = sorted(workload.phases, key=lambda p: p.start_s)
    starts = [0.0] + [float(p.start_s) for p in phases]
    ends = [*starts[1:], math.inf]
    out = [_Window(0.0, ends[0], workload.arrivals, workload.batch, mix0, float(workload.load))]
    for p, start, end in zip(phases, starts[1:], ends[1:], strict=True):
        mix = mix0 if p.mix is None or names is None else _mix(p.mix, names)
        load = workload.load * (1.0 if p.load is None else p.load)
        out.append(
            _Window(
                start, end, p.arrivals or workload.arrivals, p.batch or workload.batch, mix, load
            )
        )
    return [w for w in out if w.end_s > w.start_s]


def _mix(mix: dict[str, float], names: Sequence[str]) -> np.ndarray:
    unknown = set(mix) - set(names)
    if unknown:
        raise WorkloadError(
            f"phase mix names unknown models {sorted(unknown)}; models: {list(names)}"
        )
    return _normalised([mix.get(n, 0.0) for n in names], "phase mix")


def _normalised(weights: Sequence[float], what: str) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.size == 0 or not np.all(np.isfinite(w) & (w >= 0)) or w.sum() <= 0:
        raise WorkloadError(f"{what} needs finite weights >= 0 with a positive sum, got {list(w)}")
    return w / w.sum()


# --------------------------------------------------------------------------- arrivals
def _check_arrivals(cfg: Arrivals, load: float) -> None:
    ok = load > 0
    if isinstance(cfg, PoissonArrivals):
        ok = ok and cfg.rate_qps > 0
    elif isinstance(cfg, MMPPArrivals):
        ok = ok and cfg.rate_low_qps >= 0 and cfg.rate_high_qps > 0
        ok = ok and cfg.mean_low_s > 0 and cfg.mean_high_s > 0
    elif isinstance(cfg, DiurnalArrivals):
        ok = ok and cfg.rate_qps > 0 and 0 <= cfg.amplitude <= 1 and cfg.period_s > 0
    elif isinstance(cfg, TraceArrivals):
        ok = ok and cfg.time_unit_s > 0 and (cfg.rate_qps is None or cfg.rate_qps > 0)
    else:
        raise WorkloadError(f"unknown arrivals config {cfg!r}")
    if not ok:
        raise WorkloadError(f"arrivals {cfg} with load {load}: rates, times and load must be > 0")


def _load_trace(cfg: TraceArrivals, base_dir: str | Path, columns: Sequence[str] = ()) -> Trace:
    if not cfg.path:
        raise WorkloadError("trace arrivals need a path")
    path = Path(cfg.path) if Path(cfg.path).is_absolute() else Path(base_dir) / cfg.path
    try:
        return read_trace(path, cfg.column, time_unit_s=cfg.time_unit_s, columns=columns)
    except TraceError as e:
        raise WorkloadError(str(e)) from e


def _trace_scale(cfg: TraceArrivals, load: float, trace: Trace) -> float:
    """Time scale factor giving the trace the mean rate ``(rate_qps or native) * load``."""
    if cfg.loop and trace.duration_s <= 0:
        raise WorkloadError(f"{trace.path}: cannot loop a trace whose timestamps span 0 s")
    if cfg.rate_qps is None:
        return 1.0 / load
    if trace.duration_s <= 0:
        raise WorkloadError(f"{trace.path}: cannot rescale a trace whose timestamps span 0 s")
    return trace.rate_qps / (cfg.rate_qps * load)


def _rate(cfg: Arrivals, load: float, trace: Trace | None) -> float:
    if isinstance(cfg, PoissonArrivals | DiurnalArrivals):
        return cfg.rate_qps * load
    if isinstance(cfg, MMPPArrivals):
        m = cfg
        return mmpp_mean_rate(m.rate_low_qps, m.rate_high_qps, m.mean_low_s, m.mean_high_s) * load
    assert trace is not None
    return trace.rate_qps / _trace_scale(cfg, load, trace)


def mean_rate_qps(
    workload: WorkloadConfig, *, at_s: float = 0.0, base_dir: str | Path = "."
) -> float:
    """Long-run offered rate (queries/s, load included) of the arrivals in effect at ``at_s``.

    Poisson and diurnal: ``rate_qps * load`` (the diurnal curve averages to its mean); MMPP: the
    stationary mixture; trace: ``rate_qps * load``, or the native rate times the load.
    """
    window = [w for w in _windows(workload, np.ones(1), None) if w.start_s <= max(at_s, 0.0)][-1]
    trace = _load_trace(window.arrivals, base_dir) if window.arrivals.kind == "trace" else None
    return _rate(window.arrivals, window.load, trace)


# --------------------------------------------------------------------------- the stream
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
        self._windows = _windows(workload, _normalised(shares, "model shares"), self.model_names)
        self._starts = np.array([w.start_s for w in self._windows])
        self._segments = self._plan_segments(base_dir)
        self._batch_rng = [self._rng(_BATCH, i) for i in range(len(self._windows))]
        self._model_rng = [self._rng(_MODEL, i) for i in range(len(self._windows))]
        self._cum_mix = [_cumulative(w.mix) for w in self._windows]
        self._tables = [
            _sampling_table(w.batch) if isinstance(w.batch, EmpiricalBatch) else None
            for w in self._windows
        ]
        self._seg, self._proc = 0, None
        self._queue: deque[tuple[np.ndarray, np.ndarray, np.ndarray]] = deque()

    def _rng(self, purpose: int, index: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(purpose, index)))

    def _plan_segments(self, base_dir: str | Path) -> list[_Segment]:
        groups: list[list[int]] = []
        for i, w in enumerate(self._windows):
            _check_batch(w.batch)
            _check_arrivals(w.arrivals, w.load)
            prev = self._windows[i - 1] if i else None
            if prev is not None and w.arrivals == prev.arrivals and w.load == prev.load:
                groups[-1].append(i)
            else:
                groups.append([i])
        segments = []
        for g in groups:
            arrivals = self._windows[g[0]].arrivals
            cols = sorted(
                {
                    self._windows[i].batch.column
                    for i in g
                    if self._windows[i].batch.kind == "trace_column"
                }
            )
            if cols and arrivals.kind != "trace":
                raise WorkloadError(
                    f"trace_column batch sizes ({cols[0]!r}) need trace arrivals, "
                    f"got {arrivals.kind!r}"
                )
            trace = _load_trace(arrivals, base_dir, cols) if arrivals.kind == "trace" else None
            if trace is not None:
                _trace_scale(arrivals, self._windows[g[0]].load, trace)  # validates
            segments.append(_Segment(g[0], g[-1], trace))
        return segments

    def _process(
        self, seg: _Segment
    ) -> PoissonProcess | MMPPProcess | DiurnalProcess | TraceReplay:
        w = self._windows[seg.first]
        cfg, load, start, end = w.arrivals, w.load, w.start_s, self._windows[seg.last].end_s
        rng = self._rng(_ARRIVALS, self._seg)
        if isinstance(cfg, PoissonArrivals):
            return PoissonProcess(cfg.rate_qps * load, rng, start, end)
        if isinstance(cfg, MMPPArrivals):
            return MMPPProcess(
                cfg.rate_low_qps * load,
                cfg.rate_high_qps * load,
                cfg.mean_low_s,
                cfg.mean_high_s,
                rng,
                start,
                end,
            )
        if isinstance(cfg, DiurnalArrivals):
            return DiurnalProcess(
                cfg.rate_qps * load, cfg.amplitude, cfg.period_s, cfg.peak_at_s, rng, start, end
            )
        assert seg.trace is not None
        scale = _trace_scale(cfg, load, seg.trace)
        return TraceReplay(seg.trace.times_s, scale, cfg.loop, start, end)

    def _split(self, seg: _Segment, times: np.ndarray, rows: np.ndarray | None) -> None:
        """Cut an arrival block at the phase starts and give each piece its batches and models."""
        cuts = np.searchsorted(times, self._starts[seg.first + 1 : seg.last + 1], side="left")
        bounds = [0, *cuts.tolist(), times.size]
        for k, (a, b) in enumerate(pairwise(bounds)):
            if b > a:
                i = seg.first + k
                piece_rows = None if rows is None else rows[a:b]
                batch = self._batches(i, b - a, seg.trace, piece_rows)
                self._queue.append((times[a:b], self._models(i, b - a), batch))

    def _batches(self, i: int, n: int, trace: Trace | None, rows: np.ndarray | None) -> np.ndarray:
        cfg, rng = self._windows[i].batch, self._batch_rng[i]
        if isinstance(cfg, FixedBatch):
            return np.full(n, cfg.value, dtype=np.int32)
        if isinstance(cfg, LognormalBatch):
            x = np.rint(cfg.median * np.exp(cfg.sigma * rng.standard_normal(n)))
            return np.clip(x, cfg.min, cfg.max).astype(np.int32)
        if isinstance(cfg, EmpiricalBatch):
            sizes, cum = self._tables[i]
            return sizes[np.searchsorted(cum, rng.random(n), side="right")]
        assert trace is not None and rows is not None
        return _column_batches(cfg, trace.columns[cfg.column][rows])

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


def _cumulative(probs: np.ndarray) -> np.ndarray:
    """Cumulative probabilities for ``searchsorted(cum, u, 'right')`` with ``u`` in [0, 1): ends
    at exactly 1 from the last positive entry on, so zero-probability entries are never chosen."""
    cum = np.cumsum(probs)
    cum[np.flatnonzero(probs)[-1] :] = 1.0
    return cum


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
