"""The per-window time series of a run, with work bounded by events rather than by time.

Rows are closed every ``window_s`` of simulated time, but only windows in which something happened
(an arrival, a completion, a rejection or the end of a service) get a row of their own; each run
of windows without any event becomes one row spanning all of them. So a run costs O(events)
whatever its simulated span or ``window_s``, and the rows still tile the timeline: row ``i``
covers ``(t_s - span_s, t_s]``, and summing ``avail_gpc_s`` over rows gives the run's total.

A row's counts and rates are over every query of the window, warm-up included (a time series is
about time, not about the measured population of :class:`~mig_gym.metrics.summary.Summary`):

- ``arrived``, ``completed``, ``rejected``: queries that arrived, completed or were rejected in
  the window;
- ``sla_violation_rate``: (completed late + rejected) / (completed + rejected) in the window, 0
  when the window has neither;
- ``throughput_qps`` / ``goodput_qps``: completed / on time per second of ``span_s``;
- ``utilization``: ``busy_gpc_s`` over ``avail_gpc_s`` of the window (a service is credited to
  the windows it overlaps when it ends), with the busy GPC-seconds per size in
  ``busy_gpc_s_<k>g``;
- ``latency_*_ms``: exact percentiles and mean of the window's completions (NaN if none).
"""

from __future__ import annotations

import bisect
import math

import numpy as np

__all__ = ["TimeSeries", "utilization_of"]

_CLEAN = 2**62  # no row has credits to apply
_ROUNDING = 1e-9  # relative: how far apart separately summed busy and available time can drift
_NUMPY_SORT = 512  # window size from which numpy sorts faster than ``sorted``
_PCT_KEYS = ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "latency_mean_ms")


def utilization_of(busy_gpc_s: float, avail_gpc_s: float) -> float:
    """``busy / avail`` (0 without capacity). Busy time is added per service and available time
    per capacity interval, so a fully busy span can come out a few ulps above 1: such a ratio
    is reported as 1 (a larger excess is left as it is, for the tests to catch)."""
    if avail_gpc_s <= 0:
        return 0.0
    u = busy_gpc_s / avail_gpc_s
    return 1.0 if 1.0 < u <= 1.0 + _ROUNDING else u


def _percentiles(lat: list[float]) -> tuple[float, float, float, float]:
    """p50, p95, p99 (numpy's default linear interpolation between order statistics) and mean
    of ``lat``, in ms; NaN for an empty window. The interpolation in plain Python (windows are
    mostly small, where ``np.percentile``'s overhead dominates); large windows sorted by numpy
    (the same order statistics, so the same results)."""
    n = len(lat)
    if n == 0:
        return (math.nan,) * 4
    xs = sorted(lat) if n < _NUMPY_SORT else np.sort(np.asarray(lat, np.float64))
    out = []
    for q in (0.50, 0.95, 0.99):
        h = (n - 1) * q
        i = int(h)
        j = min(i + 1, n - 1)
        lo, hi = float(xs[i]), float(xs[j])
        out.append((lo + (h - i) * (hi - lo)) * 1e3)
    return out[0], out[1], out[2], math.fsum(lat) / n * 1e3  # (fsum: exact in any order)


class _Window:
    __slots__ = ("lat", "viol", "arrived", "rejected", "avail", "busy_by_size", "events")

    def __init__(self, sizes: tuple[int, ...]) -> None:
        self.lat: list[float] = []
        self.viol = 0  # late completions and rejections
        self.arrived = 0
        self.rejected = 0
        self.avail = 0.0
        self.busy_by_size = dict.fromkeys(sizes, 0.0)
        self.events = 0


class TimeSeries:
    """The open window and the closed rows. The open window spans ``(start_s, end_s]``; its end
    is always a whole number of ``window_s`` (computed as ``index * window_s``, not summed).

    A service that ends in the open window but started earlier covers a suffix of the closed
    rows: the first one partly, the rest whole. The partial row is credited at once; the whole
    ones through a difference array over row indices, applied when ``rows`` is read, so a
    service costs O(log rows) however many rows it spans."""

    def __init__(self, sizes: tuple[int, ...], window_s: float) -> None:
        self.sizes = sizes
        self.window_s = window_s
        self._rows: list[dict[str, float]] = []
        self._starts: list[float] = []  # each row's start, for bisection
        # _diff[k][i]: GPCs of size k busy over the whole of rows i.. (until cancelled)
        self._diff = {k: [0.0] for k in sizes}
        self._dirty_from = _CLEAN  # the first row with whole-row credits still to apply
        self.window = _Window(sizes)
        self.start_s = 0.0
        self._end_index = 1
        self.end_s = window_s
        self.closed = 0  # windows closed (each stretched run of empty ones counts once): the work

    @property
    def rows(self) -> list[dict[str, float]]:
        """The closed rows, with every busy-time credit applied."""
        self._flush()
        return self._rows

    def _flush(self) -> None:
        rows, n = self._rows, len(self._rows)
        if self._dirty_from >= n:
            return
        rate = dict.fromkeys(self.sizes, 0.0)
        for i in range(self._dirty_from, n):
            for k, d in self._diff.items():
                if d[i]:
                    rate[k] += d[i]
                    d[i] = 0.0
            row = rows[i]
            for k, g in rate.items():
                if g:
                    gpc_s = g * row["span_s"]
                    row[f"busy_gpc_s_{k}g"] += gpc_s
                    row["busy_gpc_s"] += gpc_s
            row["utilization"] = utilization_of(row["busy_gpc_s"], row["avail_gpc_s"])
        for d in self._diff.values():
            d[n] = 0.0
        self._dirty_from = _CLEAN

    def skip_empty(self, now: float) -> None:
        """If the open window has no event, stretch it to the last boundary before ``now``
        (``now`` > ``end_s``), so that a run of empty windows becomes one row."""
        if self.window.events:
            return
        w = self.window_s
        i = max(self._end_index, math.ceil(now / w) - 1)
        while i > self._end_index and i * w >= now:  # float guard: i * w < now
            i -= 1
        while (i + 1) * w < now:
            i += 1
        self._end_index, self.end_s = i, i * w

    def close(self, end_s: float | None = None) -> None:
        """Close the open window at its end (or at ``end_s``, for the last, partial one) and
        open the next one, which starts where this one ends."""
        end = self.end_s if end_s is None else end_s
        self.closed += 1
        if end > self.start_s:
            n = len(self._rows)
            last = self._rows[-1] if n else None
            # (a row with whole-row credits still to apply is busy, so never empty)
            clean = self._dirty_from >= n
            if not self.window.events and last is not None and clean and self._is_empty(last):
                last["span_s"] += end - last["t_s"]  # one row for the whole run of empty windows
                last["t_s"] = end
                last["avail_gpc_s"] += self.window.avail
            else:
                self._rows.append(self._row(end))
                self._starts.append(self.start_s)
                for d in self._diff.values():
                    d.append(0.0)
        self.window = _Window(self.sizes)
        self.start_s = end
        self._end_index += 1
        self.end_s = self._end_index * self.window_s

    @staticmethod
    def _is_empty(row: dict[str, float]) -> bool:
        return not (row["arrived"] or row["completed"] or row["rejected"] or row["busy_gpc_s"])

    def _row(self, end: float) -> dict[str, float]:
        w = self.window
        span = end - self.start_s
        n, ended = len(w.lat), len(w.lat) + w.rejected
        late = w.viol - w.rejected
        busy = sum(w.busy_by_size.values())
        row: dict[str, float] = {
            "t_s": end,
            "span_s": span,
            "avail_gpc_s": w.avail,
            "busy_gpc_s": busy,
            "arrived": float(w.arrived),
            "completed": float(n),
            "rejected": float(w.rejected),
            "throughput_qps": n / span,
            "goodput_qps": (n - late) / span,
            "sla_violation_rate": w.viol / ended if ended else 0.0,
            "utilization": utilization_of(busy, w.avail),
        }
        row.update(zip(_PCT_KEYS, _percentiles(w.lat), strict=True))
        for k in self.sizes:
            row[f"busy_gpc_s_{k}g"] = w.busy_by_size[k]
        return row

    def credit_busy(self, size: int, seconds: float, now: float) -> None:
        """Busy time of a ``size``-GPC service of ``seconds`` ending at ``now`` (in the open
        window): the part before the open window goes to the closed rows it overlaps."""
        self.window.events += 1
        w_start, start = self.start_s, now - seconds
        if start >= w_start or not self._rows:
            self.window.busy_by_size[size] += size * seconds
            return
        self.window.busy_by_size[size] += size * (now - w_start)
        rows = self._rows
        i = max(bisect.bisect_right(self._starts, start) - 1, 0)  # the row where it started
        row = rows[i]
        gpc_s = size * (row["t_s"] - max(start, self._starts[i]))
        self._credit_row(row, size, gpc_s)  # (credits add up: their order does not matter)
        if i + 1 < len(rows):  # rows i+1.. are covered whole
            d = self._diff[size]
            d[i + 1] += size
            d[len(rows)] -= size
            self._dirty_from = min(self._dirty_from, i + 1)

    @staticmethod
    def _credit_row(row: dict[str, float], size: int, gpc_s: float) -> None:
        row[f"busy_gpc_s_{size}g"] += gpc_s
        busy = row["busy_gpc_s"] = row["busy_gpc_s"] + gpc_s
        row["utilization"] = utilization_of(busy, row["avail_gpc_s"])
