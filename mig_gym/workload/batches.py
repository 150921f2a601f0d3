"""Batch-size distributions: the exact pmf a config generates (what PARIS plans with) and the
sampling the query stream does (what the simulator sees).

``lognormal`` is ``round(exp(N(log median, sigma)))`` clamped to ``[min, max]`` (clamping, not
resampling: the tails pile up on ``min``/``max``, as :func:`batch_pmf` states); ``fixed`` is one
size; ``empirical`` draws from a pmf; ``trace_column`` is ``ceil(value / per_item)`` clamped to
``[1, max]`` from the trace row of each arrival.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from mig_gym.scenario.config import (
    Batch,
    EmpiricalBatch,
    FixedBatch,
    LognormalBatch,
    TraceColumnBatch,
)
from mig_gym.workload.phases import WorkloadError
from mig_gym.workload.traces import Trace

__all__ = ["batch_pmf", "check_batch", "BatchSampler", "column_batches", "cumulative"]


def batch_pmf(batch_cfg: Batch, trace: Trace | None = None) -> dict[int, float]:
    """Exact pmf of the batch sizes a config generates (sizes with zero mass left out).

    Lognormal: ``P(k) = P(k - 1/2 <= exp(N(mu, sigma)) < k + 1/2)``, with all mass below ``min``
    on ``min`` and above ``max`` on ``max``. ``trace_column`` needs the ``trace`` (its column's
    empirical distribution).
    """
    check_batch(batch_cfg)
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
        column_batches(batch_cfg, trace.columns[batch_cfg.column]), return_counts=True
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
    return sizes, cumulative(probs)


def check_batch(cfg: Batch) -> None:
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


def column_batches(cfg: TraceColumnBatch, values: np.ndarray) -> np.ndarray:
    return np.clip(np.ceil(values / cfg.per_item), 1, cfg.max).astype(np.int32)


class BatchSampler:
    """Draws a window's batch sizes from its own generator (the table of an empirical pmf is
    built once)."""

    def __init__(self, cfg: Batch, rng: np.random.Generator) -> None:
        self.cfg, self.rng = cfg, rng
        self._table = _sampling_table(cfg) if isinstance(cfg, EmpiricalBatch) else None

    def draw(self, n: int, trace: Trace | None, rows: np.ndarray | None) -> np.ndarray:
        """``n`` sizes (int32); ``trace_column`` reads the ``rows`` of ``trace``."""
        cfg, rng = self.cfg, self.rng
        if isinstance(cfg, FixedBatch):
            return np.full(n, cfg.value, dtype=np.int32)
        if isinstance(cfg, LognormalBatch):
            x = np.rint(cfg.median * np.exp(cfg.sigma * rng.standard_normal(n)))
            return np.clip(x, cfg.min, cfg.max).astype(np.int32)
        if self._table is not None:
            sizes, cum = self._table
            return sizes[np.searchsorted(cum, rng.random(n), side="right")]
        assert isinstance(cfg, TraceColumnBatch) and trace is not None and rows is not None
        return column_batches(cfg, trace.columns[cfg.column][rows])


def cumulative(probs: np.ndarray) -> np.ndarray:
    """Cumulative probabilities for ``searchsorted(cum, u, 'right')`` with ``u`` in [0, 1): ends
    at exactly 1 from the last positive entry on, so zero-probability entries are never chosen."""
    cum = np.cumsum(probs)
    cum[np.flatnonzero(probs)[-1] :] = 1.0
    return cum
