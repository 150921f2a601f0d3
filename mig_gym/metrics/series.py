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
- ``utilization``: busy over available GPC-seconds of the window (a service is credited to the
  windows it overlaps when it ends);
- ``latency_*_ms``: exact percentiles and mean of the window's completions (NaN if none).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["TimeSeries"]


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
    is always a whole number of ``window_s`` (computed as ``index * window_s``, not summed)."""

    def __init__(self, sizes: tuple[int, ...], window_s: float) -> None:
        self.sizes = sizes
        self.window_s = window_s
        self.rows: list[dict[str, float]] = []
        self.window = _Window(sizes)
        self.start_s = 0.0
        self._end_index = 1
        self.end_s = window_s

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
        if end > self.start_s:
            self.rows.append(self._row(end))
        self.window = _Window(self.sizes)
        self.start_s = end
        self._end_index += 1
        self.end_s = self._end_index * self.window_s

    def _row(self, end: float) -> dict[str, float]:
        w = self.window
        span = end - self.start_s
        lat = np.asarray(w.lat) if w.lat else None
        n, ended = len(w.lat), len(w.lat) + w.rejected
        late = w.viol - w.rejected
        row: dict[str, float] = {
            "t_s": end,
            "span_s": span,
            "avail_gpc_s": w.avail,
            "arrived": float(w.arrived),
            "completed": float(n),
            "rejected": float(w.rejected),
            "throughput_qps": n / span,
            "goodput_qps": (n - late) / span,
            "sla_violation_rate": w.viol / ended if ended else 0.0,
            "utilization": sum(w.busy_by_size.values()) / w.avail if w.avail > 0 else 0.0,
        }
        for name, q in (("latency_p50_ms", 50), ("latency_p95_ms", 95), ("latency_p99_ms", 99)):
            row[name] = float(np.percentile(lat, q)) * 1e3 if lat is not None else math.nan
        row["latency_mean_ms"] = float(lat.mean()) * 1e3 if lat is not None else math.nan
        for k in self.sizes:
            row[f"busy_gpc_s_{k}g"] = w.busy_by_size[k]
        return row

    def credit_busy(self, size: int, seconds: float, now: float) -> None:
        """Busy time of a ``size``-GPC service of ``seconds`` ending at ``now`` (in the open
        window): the part before the open window goes to the closed rows it overlaps."""
        self.window.events += 1
        w_start, start = self.start_s, now - seconds
        if start >= w_start:
            self.window.busy_by_size[size] += size * seconds
            return
        self.window.busy_by_size[size] += size * (now - w_start)
        key = f"busy_gpc_s_{size}g"
        for row in reversed(self.rows):  # services last ms; rows are at least one window long
            lo = row["t_s"] - row["span_s"]
            overlap = min(row["t_s"], w_start) - max(lo, start)
            if overlap <= 0:
                break
            row[key] += size * overlap
            avail = row["avail_gpc_s"]
            busy = sum(row[f"busy_gpc_s_{k}g"] for k in self.sizes)
            row["utilization"] = busy / avail if avail > 0 else 0.0
            w_start = lo
