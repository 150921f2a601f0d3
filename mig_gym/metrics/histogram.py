"""The whole-run latency sketch: a fixed log-bucketed histogram.

Buckets are 0.1 % wide from 1 us to 1e6 s, so a reported percentile is within 0.05 % (relative)
of the exact order statistic (``SKETCH_RELATIVE_ERROR``), in constant memory whatever the run
length.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["LatencyHistogram", "SKETCH_RELATIVE_ERROR"]

_LO_S = 1e-6
_RATIO = 1.001
_LOG_RATIO = math.log(_RATIO)
_INV_LOG_RATIO = 1.0 / _LOG_RATIO
_NBINS = int(math.log(1e6 / _LO_S) / _LOG_RATIO) + 2
SKETCH_RELATIVE_ERROR = (
    _RATIO - 1
) / 2  # bound on |reported / exact - 1| for whole-run percentiles


class LatencyHistogram:
    """Fixed log-spaced histogram from 1 us to 1e6 s; values outside are clamped to the end bins.

    Single values are buffered and binned in bulk with numpy, so :meth:`add` and :meth:`add_many`
    put a given value in the same bucket whichever way it arrives.
    """

    _FLUSH = 4096

    def __init__(self) -> None:
        self.counts = np.zeros(_NBINS, dtype=np.int64)
        self._buf: list[float] = []

    @property
    def n(self) -> int:
        return int(self.counts.sum()) + len(self._buf)

    def add(self, x_s: float) -> None:
        self._buf.append(x_s)
        if len(self._buf) >= self._FLUSH:
            self._flush()

    def add_many(self, xs: np.ndarray) -> None:
        """Add every value of ``xs`` (seconds)."""
        if len(xs):
            self.counts += np.bincount(_bucket(np.asarray(xs, dtype=np.float64)), minlength=_NBINS)

    def _flush(self) -> None:
        buf, self._buf = self._buf, []
        self.add_many(np.array(buf))

    def quantile(self, q: float) -> float:
        """The q-quantile (0..1) in seconds, reported at the bucket's geometric midpoint."""
        self._flush()
        n = int(self.counts.sum())
        if n == 0:
            return math.nan
        rank = max(1, math.ceil(q * n))
        i = int(np.searchsorted(np.cumsum(self.counts), rank))
        return _LO_S * _RATIO ** (i + 0.5)


def _bucket(xs: np.ndarray) -> np.ndarray:
    """Bucket index of each value: floor(log_1.001(x / 1 us)), clamped to the end bins."""
    out = np.zeros(len(xs), dtype=np.int64)
    big = xs > _LO_S
    out[big] = (np.log(xs[big] / _LO_S) * _INV_LOG_RATIO).astype(np.int64)
    np.minimum(out, _NBINS - 1, out=out)
    return out
