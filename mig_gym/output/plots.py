"""Plots of compare/sweep results (PNG, matplotlib's Agg backend).

matplotlib is imported on the first plot, not with the package: simulating, training and
``mig-gym run`` never pay for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mig_gym.metrics.summary import Summary

__all__ = ["plot_compare", "plot_sweep"]


def _plt() -> Any:
    import matplotlib  # imported here: a plot is the only user (see the module docstring)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_compare(
    out: Path,
    name: str,
    slo_ms: float,
    title_note: str,
    series: dict[str, list[dict]],
    summaries: dict[str, list[Summary]],
) -> None:
    """``latency_over_time.png`` (p95 and p99 per window of each policy's first seed, log scale,
    the tightest SLA as a line) and ``utilization_by_size.png`` (mean over seeds, per size)."""
    plt = _plt()
    fig, ax = plt.subplots(1, 2, figsize=(12, 4.2))
    for p, ser in series.items():
        t = [r["t_s"] for r in ser]
        ax[0].plot(t, [r["latency_p95_ms"] for r in ser], label=p)
        ax[1].plot(t, [r["latency_p99_ms"] for r in ser], label=p)
    for a, q in zip(ax, ("p95", "p99"), strict=True):
        a.axhline(slo_ms, color="k", ls="--", lw=0.8, label=f"SLA {slo_ms:g} ms")
        a.set(
            xlabel="simulated time (s)",
            ylabel=f"{q} latency (ms)",
            yscale="log",
            title=f"{name}: {q} per {title_note}",
        )
        a.grid(alpha=0.3)
    ax[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "latency_over_time.png", dpi=110)
    plt.close(fig)
    _plot_utilization(out, name, summaries, plt)


def _plot_utilization(out: Path, name: str, summaries: dict[str, list[Summary]], plt: Any) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    sizes = sorted({int(k) for ss in summaries.values() for s in ss for k in s.utilization_by_size})
    width = 0.8 / max(len(summaries), 1)
    for i, (p, ss) in enumerate(summaries.items()):
        vals = [np.mean([s.utilization_by_size.get(k, np.nan) for s in ss]) for k in sizes]
        ax.bar(np.arange(len(sizes)) + i * width, vals, width, label=p)
    ax.set_xticks(
        np.arange(len(sizes)) + width * (len(summaries) - 1) / 2, [f"{k}g" for k in sizes]
    )
    ax.set(ylabel="busy / available GPC-s", title=f"{name}: utilization per partition size")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "utilization_by_size.png", dpi=110)
    plt.close(fig)


# (Summary field, file name, axis label) of the sweep's plots.
SWEEP_PLOTS = (
    ("latency_p95_ms", "latency_vs_load.png", "p95 latency (ms)"),
    ("sla_violation_rate", "violation_vs_load.png", "SLA violation rate"),
)


def plot_sweep(
    out: Path,
    name: str,
    slo_ms: float,
    target: float,
    loads: Sequence[float],
    by_load: dict[str, dict[float, list[Summary]]],
) -> None:
    """p95 latency and violation rate versus load: the mean over seeds with a min..max band;
    the tightest SLA (latency) and the violation ``target`` as lines."""
    plt = _plt()
    for key, fname, ylabel in SWEEP_PLOTS:
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for p, per_load in by_load.items():
            v = [np.array([getattr(s, key) for s in per_load[ld]]) for ld in loads]
            ax.plot(loads, [x.mean() for x in v], marker="o", ms=3, label=p)
            ax.fill_between(loads, [x.min() for x in v], [x.max() for x in v], alpha=0.2)
        if key == "latency_p95_ms":
            ax.axhline(slo_ms, color="k", ls="--", lw=0.8, label=f"SLA {slo_ms:g} ms")
            ax.set_yscale("log")
        else:
            ax.axhline(target, color="k", ls="--", lw=0.8, label=f"{target * 100:g} % target")
        ax.set(
            xlabel="offered load (x scenario rate)",
            ylabel=ylabel,
            title=f"{name}: {ylabel} vs load (band = min..max over seeds)",
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / fname, dpi=110)
        plt.close(fig)
