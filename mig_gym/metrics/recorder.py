"""Serving metrics: the bounded-memory ``Recorder`` the simulator feeds, which makes the run's
``Summary`` (:mod:`mig_gym.metrics.summary`).

Percentiles of the whole run come from a log-bucketed histogram whose buckets are 0.1 % wide, so a
reported percentile is within 0.05 % (relative) of the exact order statistic
(:mod:`mig_gym.metrics.histogram`); means are exact. Time
series rows are closed every ``window_s`` of simulated time and their percentiles are exact over the
window (the window's latencies are kept until it closes, then dropped), so memory is bounded by the
window, not by the run length.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from mig_gym.metrics.histogram import SKETCH_RELATIVE_ERROR, LatencyHistogram
from mig_gym.metrics.summary import Summary

__all__ = [
    "Completions",
    "LatencyHistogram",
    "Recorder",
    "Rejections",
    "Summary",
    "SKETCH_RELATIVE_ERROR",
]


class _Window:
    __slots__ = ("lat", "viol", "arrived", "busy", "avail", "busy_by_size")

    def __init__(self, sizes: tuple[int, ...]) -> None:
        self.lat: list[float] = []
        self.viol = 0
        self.arrived = 0
        self.busy = 0.0
        self.avail = 0.0
        self.busy_by_size = dict.fromkeys(sizes, 0.0)


class Completions(NamedTuple):
    """Queries that completed, sorted by ``end_s`` (arrays of equal length; ``slo_s`` per model)."""

    end_s: np.ndarray
    arrival_s: np.ndarray
    qid: np.ndarray
    model: np.ndarray
    size: np.ndarray  # GPCs of the partition that served it
    service_s: np.ndarray
    slo_s: np.ndarray


class Rejections(NamedTuple):
    """Queries rejected at arrival, sorted by ``t_s``; ``reason`` indexes ``reasons``."""

    t_s: np.ndarray
    qid: np.ndarray
    model: np.ndarray
    reason: np.ndarray
    reasons: tuple[str, ...]


class Recorder:
    """Accumulates counters, busy/available GPC time and windowed time series.

    Available GPC-seconds integrate the piecewise-constant capacity (``capacity`` is called when
    partitions come online or go away). Busy GPC-seconds are added once per service when it ends
    or is aborted (``served``), which keeps the per-query cost O(1); a service is credited to the
    time window in which it ends (services last milliseconds, windows seconds).
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
        self.measured = self.violations = 0
        self.lat_sum = 0.0
        self.lat_max = 0.0
        self.first_measured_s: float | None = None
        self.last_done_s = 0.0
        self.good = 0
        self.model_stats = [[0, 0, 0.0] for _ in model_names]  # measured, violations, latency sum
        self.reconfigurations = 0
        self.downtime_s = 0.0
        self.late_all = 0  # completed late, warm-up included
        self.lat_norm_all = 0.0  # sum of latency / SLA, warm-up included
        self.window = _Window(sizes)
        self.window_end = window_s
        self.series: list[dict[str, float]] = []

    # ------------------------------------------------------------------ time integration
    def advance(self, now: float) -> None:
        while now > self.window_end:
            self._integrate(self.window_end)
            self._close_window()
        self._integrate(now)

    def _integrate(self, now: float) -> None:
        dt = now - self.t
        if dt <= 0.0:
            return
        w = self.window
        for k, g in self.size_avail_gpcs.items():
            if g:
                self.size_avail_s[k] += g * dt
        self.avail_s += self.avail_gpcs * dt
        w.avail += self.avail_gpcs * dt
        self.t = now

    def _close_window(self, end_s: float | None = None) -> None:
        """Close the current window at its end (or at ``end_s`` for the last, partial one)."""
        w, sizes = self.window, self.sizes
        end = self.window_end if end_s is None else end_s
        span = self.window_s - (self.window_end - end)
        if span <= 0:
            return
        lat = np.asarray(w.lat) if w.lat else None
        row: dict[str, float] = {
            "t_s": end,
            "span_s": span,
            "avail_gpc_s": w.avail,
            "arrived": float(w.arrived),
            "completed": float(len(w.lat)),
            "throughput_qps": len(w.lat) / span,
            "goodput_qps": (len(w.lat) - w.viol) / span,
            "sla_violation_rate": w.viol / len(w.lat) if w.lat else 0.0,
            "utilization": sum(w.busy_by_size.values()) / w.avail if w.avail > 0 else 0.0,
        }
        for name, q in (("latency_p50_ms", 50), ("latency_p95_ms", 95), ("latency_p99_ms", 99)):
            row[name] = float(np.percentile(lat, q)) * 1e3 if lat is not None else math.nan
        row["latency_mean_ms"] = float(lat.mean()) * 1e3 if lat is not None else math.nan
        for k in sizes:
            row[f"busy_gpc_s_{k}g"] = w.busy_by_size[k]
        self.series.append(row)
        self.window = _Window(sizes)
        self.window_end += self.window_s

    # ------------------------------------------------------------------ capacity changes
    def capacity(self, now: float, size: int, delta_gpcs: int) -> None:
        self.advance(now)
        self.avail_gpcs += delta_gpcs
        self.size_avail_gpcs[size] += delta_gpcs

    def served(self, now: float, size: int, seconds: float) -> None:
        """A partition of ``size`` GPCs was busy for ``seconds`` ending at ``now``. The part of
        the service before the current window is credited to the closed rows it overlaps."""
        if now > self.window_end:
            self.advance(now)
        self.busy_s[size] += size * seconds
        start = now - seconds
        w_start = self.window_end - self.window_s
        if start >= w_start:
            self.window.busy_by_size[size] += size * seconds
            return
        self.window.busy_by_size[size] += size * (now - w_start)
        key = f"busy_gpc_s_{size}g"
        for row in reversed(self.series):  # rare: services last ms, windows seconds
            lo = row["t_s"] - row["span_s"]
            overlap = min(row["t_s"], w_start) - max(lo, start)
            if overlap <= 0:
                break
            row[key] += size * overlap
            row["utilization"] = (
                sum(row[f"busy_gpc_s_{k}g"] for k in self.sizes) / row["avail_gpc_s"]
                if row["avail_gpc_s"] > 0
                else 0.0
            )
            w_start = lo

    # ------------------------------------------------------------------ query outcomes
    def on_arrival(self, now: float | None = None) -> None:
        if now is not None and now > self.window_end:
            self.advance(now)  # count the arrival in the window it falls in, not a stale one
        self.arrived += 1
        self.window.arrived += 1

    def on_complete(self, qid: int, model: int, arrival_s: float, now: float, slo_s: float) -> None:
        if now > self.window_end:
            self.advance(now)
        self.completed += 1
        lat = now - arrival_s
        late = lat > slo_s
        w = self.window
        w.lat.append(lat)
        w.viol += late
        self.late_all += late  # reward bookkeeping counts warm-up queries too
        self.lat_norm_all += lat / slo_s
        if qid < self.warmup:
            return
        if self.first_measured_s is None:
            self.first_measured_s = arrival_s
        self.last_done_s = max(self.last_done_s, now)
        self.measured += 1
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
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        if qid >= self.warmup:
            self.violations += 1
            self.model_stats[model][1] += 1
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
            end = self.window_end
            ja = ia + int(np.searchsorted(arrivals_s[ia:], end, side="right"))
            jc = ic + int(np.searchsorted(done.end_s[ic:], end, side="right"))
            jr = ir + int(np.searchsorted(rejected.t_s[ir:], end, side="right"))
            self.arrived += ja - ia
            self.window.arrived += ja - ia
            end_c, arr_c = self._bulk_completions(done, ic, jc)
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
        w = self.window
        w.lat.extend(lat.tolist())
        w.viol += n_late
        self.completed += j - i
        self.late_all += n_late
        self.lat_norm_all += float((lat / slo).sum())
        # busy time: services that started in this window in bulk, the rare longer ones one by one
        w_start = self.window_end - self.window_s
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
        self.measured += n_m
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
        meas = qid >= self.warmup
        if not meas.any():
            return math.inf
        self.violations += int(meas.sum())
        for m, n in enumerate(np.bincount(model[meas], minlength=len(self.model_stats))):
            self.model_stats[m][1] += int(n)
        return float(r.t_s[i:j][np.argmax(meas)])

    def finish(self, now: float) -> None:
        """End of run: close the last, partial window so short runs still have a series row."""
        self.advance(now)
        if now > self.window_end - self.window_s:
            self._close_window(now)

    # ------------------------------------------------------------------ summary
    def summary(
        self,
        *,
        scenario: str,
        policy: str,
        seed: int,
        now: float,
        queued: int,
        running: int,
        last_arrival_s: float,
        in_service_gpc_s: dict[int, float] | None = None,
    ) -> Summary:
        """The run's Summary; ``in_service_gpc_s`` adds the busy time of services still running."""
        self.advance(now)
        busy = dict(self.busy_s)
        for k, v in (in_service_gpc_s or {}).items():
            busy[k] += v
        n_rej = sum(self.rejected.values())
        ended = self.measured + n_rej
        start = self.first_measured_s if self.first_measured_s is not None else 0.0
        span = max(self.last_done_s, now) - start
        q = self.hist.quantile
        by_model = {
            name: {
                "measured": float(st[0]),
                "sla_violation_rate": st[1] / max(st[0], 1),
                "latency_mean_ms": st[2] / st[0] * 1e3 if st[0] else math.nan,
            }
            for name, st in zip(self.model_names, self.model_stats, strict=True)
        }
        return Summary(
            scenario=scenario,
            policy=policy,
            seed=seed,
            arrived=self.arrived,
            completed=self.completed,
            rejected=n_rej,
            rejected_by_reason=dict(sorted(self.rejected.items())),
            retried=self.retried,
            redispatched=self.redispatched,
            in_system=queued + running,
            queued=queued,
            running=running,
            measured=self.measured,
            latency_mean_ms=self.lat_sum / self.measured * 1e3 if self.measured else math.nan,
            latency_p50_ms=q(0.50) * 1e3,
            latency_p95_ms=q(0.95) * 1e3,
            latency_p99_ms=q(0.99) * 1e3,
            latency_max_ms=self.lat_max * 1e3,
            sla_violation_rate=self.violations / ended if ended else 0.0,
            offered_qps=self.arrived / last_arrival_s if last_arrival_s > 0 else math.nan,
            throughput_qps=self.measured / span if span > 0 else math.nan,
            goodput_qps=self.good / span if span > 0 else math.nan,
            utilization=sum(busy.values()) / self.avail_s if self.avail_s > 0 else 0.0,
            utilization_by_size={
                k: busy[k] / self.size_avail_s[k] for k in self.sizes if self.size_avail_s[k] > 0
            },
            reconfigurations=self.reconfigurations,
            downtime_s=self.downtime_s,
            sim_time_s=now,
            by_model=by_model,
        )
