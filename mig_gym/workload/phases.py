"""The workload's time windows (the base workload, then each phase by start), their arrival
processes and mean rates, and the traces they replay, each file parsed once.

- **Phases** are sorted by ``start_s`` (stable; of two phases with one start the later wins). The
  base workload applies before the first phase; each phase is the *base* workload with the phase's
  non-None fields overriding it (not the previous phase's). Its window is ``[start_s, next start)``.
- **Load**: a phase's rate multiplier is ``workload.load * phase.load`` (``phase.load`` defaults to
  1), so a global load sweep also scales phased scenarios. Poisson, MMPP and diurnal rates are
  multiplied; a trace is time-scaled to ``rate_qps * load`` if it names ``rate_qps``, else to its
  native rate (``1 / mean gap``) times the load.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mig_gym.scenario.config import (
    Arrivals,
    Batch,
    DiurnalArrivals,
    MMPPArrivals,
    PoissonArrivals,
    TraceArrivals,
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

__all__ = [
    "WorkloadError",
    "Window",
    "windows",
    "normalised",
    "check_arrivals",
    "Traces",
    "read_traces",
    "trace_scale",
    "mean_rate_qps",
    "make_process",
]

Process = PoissonProcess | MMPPProcess | DiurnalProcess | TraceReplay


class WorkloadError(ValueError):
    """A workload configuration that cannot be generated (the message names the problem)."""


@dataclass(frozen=True, eq=False)
class Window:
    """One phase's time window and its effective settings."""

    start_s: float
    end_s: float
    arrivals: Arrivals
    batch: Batch
    mix: np.ndarray  # model probabilities
    load: float


def windows(
    workload: WorkloadConfig, mix0: np.ndarray, names: Sequence[str] | None
) -> list[Window]:
    """The phase windows in time order (``names=None``: ignore phase mixes)."""
    phases = sorted(workload.phases, key=lambda p: p.start_s)
    starts = [0.0] + [float(p.start_s) for p in phases]
    ends = [*starts[1:], math.inf]
    out = [Window(0.0, ends[0], workload.arrivals, workload.batch, mix0, float(workload.load))]
    for p, start, end in zip(phases, starts[1:], ends[1:], strict=True):
        mix = mix0 if p.mix is None or names is None else _mix(p.mix, names)
        load = workload.load * (1.0 if p.load is None else p.load)
        out.append(
            Window(
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
    return normalised([mix.get(n, 0.0) for n in names], "phase mix")


def normalised(weights: Sequence[float], what: str) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.size == 0 or not np.all(np.isfinite(w) & (w >= 0)) or w.sum() <= 0:
        raise WorkloadError(f"{what} needs finite weights >= 0 with a positive sum, got {list(w)}")
    return w / w.sum()


def check_arrivals(cfg: Arrivals, load: float) -> None:
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


def trace_scale(cfg: TraceArrivals, load: float, trace: Trace) -> float:
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
    return trace.rate_qps / trace_scale(cfg, load, trace)


# --------------------------------------------------------------------------- traces
def _trace_key(cfg: TraceArrivals) -> tuple[str, str, float]:
    """What parsing a trace depends on (not its rate or looping)."""
    return (cfg.path, cfg.column, cfg.time_unit_s)


class Traces:
    """The traces a workload replays, each file parsed once with every column its batch sizes
    need (:func:`read_traces`); a build hands the same object to the plan and to the stream."""

    def __init__(self, by_key: dict[tuple[str, str, float], Trace]) -> None:
        self._by_key = by_key

    def get(self, cfg: Arrivals) -> Trace | None:
        """The trace of trace arrivals ``cfg`` (None for other arrivals)."""
        return self._by_key[_trace_key(cfg)] if isinstance(cfg, TraceArrivals) else None


def read_traces(workload: WorkloadConfig, base_dir: str | Path = ".") -> Traces:
    """Parse every trace the workload's windows replay, once each. A trace is read with the
    columns of the ``trace_column`` batch sizes of the windows that replay it; the base
    arrivals' trace with every ``trace_column`` column of the workload (the static plan reads
    every window's batch sizes from it).

    Raises:
        WorkloadError: a trace without a path, or a file that cannot be used (``TraceError``).
        FileNotFoundError: a trace file that does not exist.
    """
    wins = windows(workload, np.ones(1), None)
    every = {w.batch.column for w in wins if w.batch.kind == "trace_column"}
    columns: dict[tuple[str, str, float], set[str]] = {}
    configs: dict[tuple[str, str, float], TraceArrivals] = {}
    for w in wins:
        if isinstance(w.arrivals, TraceArrivals):
            check_arrivals(w.arrivals, w.load)
            key = _trace_key(w.arrivals)
            configs[key] = w.arrivals
            cols = columns.setdefault(key, set())
            cols |= {w.batch.column} if w.batch.kind == "trace_column" else set()
    if isinstance(workload.arrivals, TraceArrivals):
        columns[_trace_key(workload.arrivals)] |= every
    return Traces({k: _load_trace(configs[k], base_dir, sorted(columns[k])) for k in configs})


def _load_trace(cfg: TraceArrivals, base_dir: str | Path, columns: Sequence[str] = ()) -> Trace:
    if not cfg.path:
        raise WorkloadError("trace arrivals need a path")
    path = Path(cfg.path) if Path(cfg.path).is_absolute() else Path(base_dir) / cfg.path
    try:
        return read_trace(path, cfg.column, time_unit_s=cfg.time_unit_s, columns=columns)
    except TraceError as e:
        raise WorkloadError(str(e)) from e


# --------------------------------------------------------------------------- rates, processes
def mean_rate_qps(
    workload: WorkloadConfig,
    *,
    at_s: float = 0.0,
    base_dir: str | Path = ".",
    traces: Traces | None = None,
) -> float:
    """Long-run offered rate (queries/s, load included) of the arrivals in effect at ``at_s``.

    Poisson and diurnal: ``rate_qps * load`` (the diurnal curve averages to its mean); MMPP: the
    stationary mixture; trace: ``rate_qps * load``, or the native rate times the load.
    ``traces``: the workload's parsed traces (read here if not given).
    """
    window = [w for w in windows(workload, np.ones(1), None) if w.start_s <= max(at_s, 0.0)][-1]
    trace = None
    if isinstance(window.arrivals, TraceArrivals):
        trace = (traces or read_traces(workload, base_dir)).get(window.arrivals)
    return _rate(window.arrivals, window.load, trace)


def make_process(
    cfg: Arrivals,
    load: float,
    rng: np.random.Generator,
    start_s: float,
    end_s: float,
    trace: Trace | None,
) -> Process:
    """The arrival process of ``cfg`` at ``load`` over ``[start_s, end_s)``."""
    if isinstance(cfg, PoissonArrivals):
        return PoissonProcess(cfg.rate_qps * load, rng, start_s, end_s)
    if isinstance(cfg, MMPPArrivals):
        return MMPPProcess(
            cfg.rate_low_qps * load,
            cfg.rate_high_qps * load,
            cfg.mean_low_s,
            cfg.mean_high_s,
            rng,
            start_s,
            end_s,
        )
    if isinstance(cfg, DiurnalArrivals):
        return DiurnalProcess(
            cfg.rate_qps * load, cfg.amplitude, cfg.period_s, cfg.peak_at_s, rng, start_s, end_s
        )
    assert isinstance(cfg, TraceArrivals) and trace is not None
    return TraceReplay(trace.times_s, trace_scale(cfg, load, trace), cfg.loop, start_s, end_s)
