"""Tables of compare/sweep results: flat rows for CSV, Markdown summaries (mean ± sd over seeds).

The file boundary of the experiments: a :class:`~mig_gym.metrics.Summary` becomes a flat dict row
here (:func:`flat_row`), and only here.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mig_gym.metrics.summary import Summary

__all__ = ["FIELDS", "flat_row", "write_csv", "mean_sd", "compare_markdown", "sweep_markdown"]

# The Summary fields of a CSV row, in column order (then one utilization column per size).
FIELDS = (
    "offered_qps",
    "arrived",
    "completed",
    "rejected",
    "retried",
    "unfinished",
    "unfinished_late",
    "latency_mean_ms",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "sla_violation_rate",
    "throughput_qps",
    "goodput_qps",
    "utilization",
    "reconfigurations",
    "downtime_s",
    "downtime_reconfig_s",
    "downtime_failure_s",
    "conserved",
)

# Columns of the compare table: Summary field -> header.
COMPARE_COLUMNS = {
    "latency_p50_ms": "p50 ms",
    "latency_p95_ms": "p95 ms",
    "latency_p99_ms": "p99 ms",
    "sla_violation_rate": "SLA violations",
    "goodput_qps": "goodput q/s",
    "utilization": "utilization",
    "rejected": "rejected",
}


def flat_row(s: Summary, policy: str, seed: int, load: float | None) -> dict:
    """One CSV row: the point, the Summary's scalar fields, ``utilization_<k>g`` per size."""
    row: dict = {"policy": policy, "seed": seed, "load": load if load is not None else ""}
    row.update({k: getattr(s, k) for k in FIELDS})
    for k, v in s.utilization_by_size.items():
        row[f"utilization_{k}g"] = v
    return row


def write_csv(path: Path, rows: list[dict]) -> None:
    """Rows as CSV; the header is the union of the rows' keys in first-seen order."""
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def _num(x: float) -> str:
    if abs(x) < 1e-9:  # zero, or float noise in a spread over identical values
        return "0"
    if 0.01 <= abs(x) < 1e6:
        return f"{x:.3f}".rstrip("0").rstrip(".") if abs(x) < 10 else f"{x:.1f}"
    return f"{x:.2e}"


def mean_sd(xs: Sequence[float]) -> str:
    """``mean ± sd`` (sample sd) of the non-NaN values; the mean alone for one; ``n/a`` for none."""
    a = np.asarray([x for x in xs if x == x], dtype=float)
    if len(a) == 0:
        return "n/a"
    return f"{_num(a.mean())} ± {_num(a.std(ddof=1))}" if len(a) > 1 else _num(a.mean())


def compare_markdown(name: str, by_policy: dict[str, list[Summary]], seeds: int) -> str:
    """One row per policy: the compare columns as mean ± sd over its seeds."""
    head = "| policy | " + " | ".join(COMPARE_COLUMNS.values()) + " |"
    lines = [
        f"### {name}: {seeds} seed(s), mean ± sd",
        "",
        head,
        "|---" * (len(COMPARE_COLUMNS) + 1) + "|",
    ]
    for p, sums in by_policy.items():
        cols = [mean_sd([getattr(s, k) for s in sums]) for k in COMPARE_COLUMNS]
        lines.append(f"| {p} | " + " | ".join(cols) + " |")
    return "\n".join(lines) + "\n"


def sweep_markdown(name: str, lbt: dict[str, list[float]], seeds: int, base_rate_qps: float) -> str:
    """Latency-bounded throughput per policy, as a load multiplier and in queries per second."""
    md = [
        f"### {name}: highest load of the grid with <= 5 % late or rejected, "
        f"{seeds} seed(s) (grid resolution; bisection under three criteria: lbt.md)",
        "",
        "| policy | load multiplier | ≈ q/s |",
        "|---|---|---|",
    ]
    for p, v in lbt.items():
        md.append(f"| {p} | {mean_sd(v)} | {mean_sd([x * base_rate_qps for x in v])} |")
    return "\n".join(md) + "\n"
