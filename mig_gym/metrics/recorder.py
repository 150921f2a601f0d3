"""Serving metrics: the bounded-memory ``Recorder`` the simulator feeds; the run's ``Summary`` is
made from it (:meth:`mig_gym.metrics.summary.Summary.from_run`).

Percentiles of the whole run come from a log-bucketed histogram whose buckets are 0.1 % wide, so a
reported percentile is within 0.05 % (relative) of the exact order statistic
(:mod:`mig_gym.metrics.histogram`); means are exact. The time series
(:mod:`mig_gym.metrics.series`) stores a row per window with events and one row per run of empty
windows, so its cost is bounded by the events, not by the simulated span or ``window_s``; a
window's latencies are kept until it closes, then dropped. What each number means is in the
:class:`~mig_gym.metrics.summary.Summary` docstring and docs/metrics.md.
"""

from __future__ import annotations

import math

import numpy as np

from mig_gym.metrics.histogram import SKETCH_RELATIVE_ERROR, LatencyHistogram
from mig_gym.metrics.records import Completions, Rejections, Unfinished
from mig_gym.metrics.series import TimeSeries

__all__ = [
    "Completions",
    "LatencyHistogram",
    "Recorder",
    "Rejections",
    "SKETCH_RELATIVE_ERROR",
    "Unfinished",
]

_FEW = 8  # completions in a window up to which recording them one by one is quicker


class Recorder:
    """Accumulates counters, busy/available GPC time and windowed time series.

    Available GPC-seconds integrate the piecewise-constant capacity (``capacity`` is called when
    partitions come online or go away). Busy GPC-seconds are added once per service when it ends
    or is aborted (``served``), which keeps the per-query cost O(1); it is credited to the time
    windows it overlaps.
    """

    def __init__(
        self,
        sizes: tuple[int, ...],
        window_s: float,
        warmup_queries: int,
        model_names: tuple[str, ...],
    ) -> None:
        self.sizes = sizes
        self.window_s = window_s
        self.warmup = warmup_queries
        self.model_names = model_names
        self.hist = LatencyHistogram()
        self.t = 0.0
        self.avail_gpcs = 0
        self.busy_s = dict.fromkeys(sizes, 0.0)  # GPC-seconds
        self.avail_s = 0.0
        self.size_avail_gpcs = dict.fromkeys(sizes, 0)
        self.size_avail_s = dict.fromkeys(sizes, 0.0)
        self.arrived = self.completed = self.retried = self.redispatched = 0
        self.rejected: dict[str, int] = {}
        # the measured population (query id >= warm-up): completed, violations so far
        # (completed late + rejected), rejected
        self.measured_completed = self.violations = self.measured_rejected = 0
        self.lat_sum = 0.0
        self.lat_max = 0.0
        self.first_measured_s: float | None = None
        self.last_done_s = 0.0
        self.good = 0
        # per model, measured: completed, completed late, latency sum, rejected
        self.model_stats = [[0, 0, 0.0, 0] for _ in model_names]
        self.reconfigurations = 0
        self.downtime_reconfig_s = 0.0  # GPU-seconds
        self.downtime_failure_s = 0.0
        self.ts = TimeSeries(sizes, window_s)

    @property
    def series(self) -> list[dict[str, float]]:
        """The closed time-series rows (see :mod:`mig_gym.metrics.series`)."""
        return self.ts.rows

    @property
    def windows_closed(self) -> int:
        """Time-series windows closed so far, a run of empty windows counting once: the
        recorder's work in simulated time, bounded by the events (not by the span or
        ``window_s``)."""
        return self.ts.closed

    @property
    def downtime_s(self) -> float:
        """Closed outages so far, GPU-seconds (reconfiguration + failure)."""
        return self.downtime_reconfig_s + self.downtime_failure_s

    # ------------------------------------------------------------------ time integration
    def advance(self, now: float) -> None:
        """Integrate capacity up to ``now``, closing the windows that end before it: at most two
        rows (the open window, then one for the run of empty windows up to ``now``)."""
        ts = self.ts
        while now > ts.end_s:
            ts.skip_empty(now)
            self._integrate(ts.end_s)
            ts.close()
        self._integrate(now)

    def _integrate(self, now: float) -> None:
        dt = now - self.t
        if dt <= 0.0:
            return
        for k, g in self.size_avail_gpcs.items():
            if g:
                self.size_avail_s[k] += g * dt
        self.avail_s += self.avail_gpcs * dt
        self.ts.window.avail += self.avail_gpcs * dt
        self.t = now

    # ------------------------------------------------------------------ capacity changes
    def capacity(self, now: float, size: int, delta_gpcs: int) -> None:
        self.advance(now)
        self.avail_gpcs += delta_gpcs
        self.size_avail_gpcs[size] += delta_gpcs

    def served(self, now: float, size: int, seconds: float) -> None:
        """A partition of ``size`` GPCs was busy for ``seconds`` ending at ``now``. The part of
        the service before the current window is credited to the closed rows it overlaps."""
        if now > self.ts.end_s:
            self.advance(now)
        self.busy_s[size] += size * seconds
        self.ts.credit_busy(size, seconds, now)

    # ------------------------------------------------------------------ query outcomes
    def on_arrival(self, now: float | None = None) -> None:
        if now is not None and now > self.ts.end_s:
            self.advance(now)  # count the arrival in the window it falls in, not a stale one
        self.arrived += 1
        w = self.ts.window
        w.arrived += 1
        w.events += 1

    def on_complete(self, qid: int, model: int, arrival_s: float, now: float, slo_s: float) -> None:
        if now > self.ts.end_s:
            self.advance(now)
        self.completed += 1
        lat = now - arrival_s
        late = lat > slo_s
        w = self.ts.window
        w.lat.append(lat)
        w.viol += late
        w.events += 1
        if qid < self.warmup:
            return
        if self.first_measured_s is None:
            self.first_measured_s = arrival_s
        self.last_done_s = max(self.last_done_s, now)
        self.measured_completed += 1
        self.violations += late
        self.good += not late
        self.lat_sum += lat
        self.lat_max = max(self.lat_max, lat)
        self.hist.add(lat)
        st = self.model_stats[model]
        st[0] += 1
        st[1] += late
        st[2] += lat

    def on_reject(self, qid: int, model: int, reason: str, now: float) -> None:
        if now > self.ts.end_s:
            self.advance(now)
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        w = self.ts.window
        w.rejected += 1
        w.viol += 1
        w.events += 1
        if qid >= self.warmup:
            self.violations += 1
            self.measured_rejected += 1
            self.model_stats[model][3] += 1
            if self.first_measured_s is None:
                self.first_measured_s = now

    # ------------------------------------------------------------------ bulk recording
    def bulk(self, arrivals_s: np.ndarray, done: Completions, rejected: Rejections) -> None:
        """Record many events at once, as the per-event calls would in time order: arrivals at
        ``arrivals_s`` (sorted; rejected queries included), completions sorted by end time and
        rejections at their arrival. No event may precede one already recorded."""
        na, nc, nr = len(arrivals_s), len(done.end_s), len(rejected.t_s)
        ia = ic = ir = 0
        while True:
            end = self.ts.end_s
            ja = ia + int(np.searchsorted(arrivals_s[ia:], end, side="right"))
            jc = ic + int(np.searchsorted(done.end_s[ic:], end, side="right"))
            jr = ir + int(np.searchsorted(rejected.t_s[ir:], end, side="right"))
            self.arrived += ja - ia
            self.ts.window.arrived += ja - ia
            self.ts.window.events += ja - ia
            few = jc - ic <= _FEW
            end_c, arr_c = (self._few_completions if few else self._bulk_completions)(done, ic, jc)
            t_r = self._bulk_rejections(rejected, ir, jr)
            if self.first_measured_s is None and min(end_c, t_r) < math.inf:
                # a completion and a rejection at the same time: the completion came first
                self.first_measured_s = t_r if t_r < end_c else arr_c
            ia, ic, ir = ja, jc, jr
            if ia == na and ic == nc and ir == nr:
                return
            nxt = min(
                arrivals_s[ia] if ia < na else math.inf,
                done.end_s[ic] if ic < nc else math.inf,
                rejected.t_s[ir] if ir < nr else math.inf,
            )
            self.advance(float(nxt))

    def _few_completions(self, c: Completions, i: int, j: int) -> tuple[float, float]:
        """:meth:`_bulk_completions` one by one, for a window with a few completions (numpy's
        per-call cost would dominate: a long, sparse run has thousands of such windows)."""
        first_end, first_arr = math.inf, math.nan
        w, w_start, slo = self.ts.window, self.ts.start_s, c.slo_s.tolist()
        cols = (c.end_s, c.arrival_s, c.qid, c.model, c.size, c.service_s)
        for end, arr, qid, m, k, service in zip(*(x[i:j].tolist() for x in cols), strict=True):
            lat = end - arr
            late = lat > slo[m]
            w.lat.append(lat)
            w.viol += late
            w.events += 1
            self.completed += 1
            if end - service >= w_start:
                self.busy_s[k] += k * service
                w.busy_by_size[k] += k * service
            else:
                self.served(end, k, service)
            if qid < self.warmup:
                continue
            if first_end == math.inf:
                first_end, first_arr = end, arr
            self.last_done_s = max(self.last_done_s, end)
            self.measured_completed += 1
            self.violations += late
            self.good += not late
            self.lat_sum += lat
            self.lat_max = max(self.lat_max, lat)
            self.hist.add(lat)
            st = self.model_stats[m]
            st[0] += 1
            st[1] += late
            st[2] += lat
        return first_end, first_arr

    def _bulk_completions(self, c: Completions, i: int, j: int) -> tuple[float, float]:
        """Completions ``i:j`` of ``c``, all in the current window. Returns the end and arrival
        times of the first measured one (inf, nan if none)."""
        if i == j:
            return math.inf, math.nan
        end, arr, qid = c.end_s[i:j], c.arrival_s[i:j], c.qid[i:j]
        model, size, service = c.model[i:j], c.size[i:j], c.service_s[i:j]
        lat = end - arr
        slo = c.slo_s[model]
        late = lat > slo
        n_late = int(late.sum())
        w = self.ts.window
        w.lat.extend(lat.tolist())
        w.viol += n_late
        w.events += j - i
        self.completed += j - i
        # busy time: services that started in this window in bulk, the rare longer ones one by one
        w_start = self.ts.start_s
        inside = end - service >= w_start
        gpc_s = np.bincount(size[inside], weights=size[inside] * service[inside])
        for k in np.flatnonzero(gpc_s):
            self.busy_s[int(k)] += float(gpc_s[k])
            w.busy_by_size[int(k)] += float(gpc_s[k])
        for t, k, s in zip(end[~inside], size[~inside], service[~inside], strict=True):
            self.served(float(t), int(k), float(s))
        meas = qid >= self.warmup
        if not meas.any():
            return math.inf, math.nan
        first = int(np.argmax(meas))
        lat_m, late_m, model_m = lat[meas], late[meas], model[meas]
        n_m, n_late_m = len(lat_m), int(late_m.sum())
        self.last_done_s = max(self.last_done_s, float(end[meas].max()))
        self.measured_completed += n_m
        self.violations += n_late_m
        self.good += n_m - n_late_m
        self.lat_sum += float(lat_m.sum())
        self.lat_max = max(self.lat_max, float(lat_m.max()))
        self.hist.add_many(lat_m)
        nm = len(self.model_stats)
        count = np.bincount(model_m, minlength=nm)
        viol = np.bincount(model_m, weights=late_m, minlength=nm)
        lsum = np.bincount(model_m, weights=lat_m, minlength=nm)
        for m in np.flatnonzero(count):
            st = self.model_stats[m]
            st[0] += int(count[m])
            st[1] += int(viol[m])
            st[2] += float(lsum[m])
        return float(end[first]), float(arr[first])

    def _bulk_rejections(self, r: Rejections, i: int, j: int) -> float:
        """Rejections ``i:j`` of ``r``; returns the time of the first measured one (inf if none)."""
        if i == j:
            return math.inf
        code, qid, model = r.reason[i:j], r.qid[i:j], r.model[i:j]
        for c in np.flatnonzero(np.bincount(code)):
            name = r.reasons[c]
            self.rejected[name] = self.rejected.get(name, 0) + int((code == c).sum())
        w = self.ts.window
        w.rejected += j - i
        w.viol += j - i
        w.events += j - i
        meas = qid >= self.warmup
        if not meas.any():
            return math.inf
        self.violations += int(meas.sum())
        self.measured_rejected += int(meas.sum())
        for m, n in enumerate(np.bincount(model[meas], minlength=len(self.model_stats))):
            self.model_stats[m][3] += int(n)
        return float(r.t_s[i:j][np.argmax(meas)])

    def finish(self, now: float) -> None:
        """End of run: close the last, partial window so short runs still have a series row."""
        self.advance(now)
        if now > self.ts.start_s:
            self.ts.close(now)
