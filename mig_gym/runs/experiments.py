"""``compare`` and ``sweep``: many simulations on the same arrivals, written as CSV, Markdown, PNG
plots and TensorBoard event files (``runs/<scenario>/<policy>/``, the same tags for every policy).

Every (policy, seed[, load]) point is an independent simulation; points fan out over a local
process pool (``jobs``) or a Ray cluster (``backend="ray"``, :mod:`mig_gym.runs.backends`). Seed ``i``
of a comparison is ``scenario.seed + i`` for every policy, so all policies see the same arrivals.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mig_gym.scenario import config as C
from mig_gym import hardware
from mig_gym.runs.backends import run_map
from mig_gym.runs.build import build
from mig_gym.policies import parse_policy
from mig_gym.output.progress import Progress
from mig_gym.scenario import load_scenario, replace_in
from mig_gym.output.tensorboard import ScalarWriter, serving_scalars

__all__ = ["Point", "run_points", "compare", "sweep", "latency_bounded_load", "VIOLATION_TARGET"]

# p95 latency within the SLA <=> at most 5 % of queries miss it (rejections count as misses).
VIOLATION_TARGET = 0.05


@dataclass(frozen=True)
class Point:
    policy: str
    seed: int
    load: float | None = None


def is_learned(policy: str) -> bool:
    """``algo:path/model.zip`` names a saved learned agent rather than a reference policy."""
    return ":" in policy.split("+")[0] and not policy.startswith("scenario")


def _run_point(sc: C.Scenario, pt: Point, num_queries: int | None) -> tuple[dict, list[dict]]:
    if is_learned(pt.policy):
        from mig_gym.learn import training

        if pt.load is not None:
            sc = replace_in(sc, "workload.load", pt.load)
        return training.load_learned(pt.policy).run(sc, pt.seed, num_queries)
    run = build(sc, pt.policy, pt.seed, num_queries, pt.load)
    s = run.execute()
    return s.to_dict(), run.recorder.series


def _worker(sc: C.Scenario, item: tuple[Point, int | None]) -> tuple[dict, list[dict]]:
    return _run_point(sc, *item)


def run_points(
    sc: C.Scenario,
    points: Sequence[Point],
    num_queries: int | None = None,
    jobs: int | None = None,
    progress: bool = True,
    backend: str = "local",
    address: str | None = None,
) -> list[tuple[dict, list[dict]]]:
    """Simulate every point; results in the order of ``points`` (independent of ``jobs`` and
    of the backend: ``"local"`` process pool or ``"ray"`` cluster at ``address``, see
    :mod:`mig_gym.runs.backends`)."""
    for p in {pt.policy for pt in points}:
        if is_learned(p):  # fail fast on a missing model, before any work starts
            path = Path(p.partition(":")[2])
            if not path.is_file():
                raise FileNotFoundError(f"model file not found: {path} (policy {p!r})")
        else:
            parse_policy(p, sc)  # fail fast on a bad policy string
    if backend == "ray":  # workers resolve relative trace/profile paths from their own cwd
        sc = dataclasses.replace(sc, base_dir=str(Path(sc.base_dir).resolve()))
        points = [_absolute_model(pt) for pt in points]
    items = [(pt, num_queries) for pt in points]
    with Progress(len(points), f"{sc.name}: {len(points)} runs", force=False) as bar:
        bar.enabled = bar.enabled and progress
        return run_map(
            _worker, sc, items, backend=backend, jobs=jobs, address=address, on_result=bar.update
        )


def _absolute_model(pt: Point) -> Point:
    if not is_learned(pt.policy):
        return pt
    algo, _, path = pt.policy.partition(":")
    return dataclasses.replace(pt, policy=f"{algo}:{Path(path).resolve()}")


# --------------------------------------------------------------------------- outputs
_FIELDS = (
    "policy",
    "seed",
    "load",
    "offered_qps",
    "arrived",
    "completed",
    "rejected",
    "retried",
    "in_system",
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
    "conserved",
)


def _flat(d: dict, pt: Point) -> dict:
    row = {k: d.get(k) for k in _FIELDS}
    row.update(policy=pt.policy, seed=pt.seed, load=pt.load if pt.load is not None else "")
    for k, v in d["utilization_by_size"].items():
        row[f"utilization_{k}g"] = v
    return row


def _write_csv(path: Path, rows: list[dict]) -> None:
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


def _mean_sd(xs: Sequence[float]) -> str:
    a = np.asarray([x for x in xs if x == x], dtype=float)
    if len(a) == 0:
        return "n/a"
    return f"{_num(a.mean())} ± {_num(a.std(ddof=1))}" if len(a) > 1 else _num(a.mean())


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def compare(
    scenario: str | Path | C.Scenario,
    policies: Sequence[str],
    seeds: int = 3,
    logdir: Path = Path("runs"),
    num_queries: int | None = None,
    load: float | None = None,
    jobs: int | None = None,
    progress: bool = True,
    quiet: bool = False,
    backend: str = "local",
    address: str | None = None,
) -> list[dict]:
    """Run every policy on seeds ``seed .. seed+seeds-1`` and write the report under
    ``logdir/<scenario>/``. Returns one flat row per (policy, seed). ``backend``/``address``:
    where the simulations run (:func:`run_points`)."""
    sc = scenario if isinstance(scenario, C.Scenario) else load_scenario(scenario)
    points = [Point(p, sc.seed + i, load) for p in policies for i in range(seeds)]
    results = run_points(sc, points, num_queries, jobs, progress, backend, address)
    out = Path(logdir) / sc.name
    out.mkdir(parents=True, exist_ok=True)
    rows = [_flat(d, pt) for (d, _), pt in zip(results, points, strict=True)]
    _write_csv(out / "compare.csv", rows)
    for p in policies:  # TensorBoard: first seed's time series, summary of every seed
        res = [(d, ser) for (d, ser), pt in zip(results, points, strict=True) if pt.policy == p]
        with ScalarWriter(out / _safe(p)) as w:
            for row in res[0][1]:
                w.add_scalars(serving_scalars(row), round(row["t_s"]))
            for i, (d, _) in enumerate(res):
                scal = serving_scalars(d, _sizes(sc))
                w.add_scalars({f"summary/{k}": v for k, v in scal.items()}, i)
    md = _compare_markdown(sc, policies, rows, seeds)
    (out / "compare.md").write_text(md)
    _plot_compare(out, sc, policies, results, points)
    if not quiet:
        print(md)
        print(
            f"\nwrote {out}/compare.csv, compare.md, latency_over_time.png, utilization_by_size.png"
        )
        print(f"TensorBoard: tensorboard --logdir {Path(logdir)}")
    return rows


def _sizes(sc: C.Scenario) -> tuple[int, ...]:
    return hardware.gpu_spec(sc.cluster.gpu).sizes


def _safe(policy: str) -> str:
    """Folder name of a policy: learned models are named by algorithm and run folder."""
    if is_learned(policy):
        algo, _, path = policy.partition(":")
        return f"{algo}-{Path(path).parent.name}"
    return policy.replace("/", "_").replace(":", "_")


def _compare_markdown(sc: C.Scenario, policies: Sequence[str], rows: list[dict], seeds: int) -> str:
    head = (
        "| policy | p50 ms | p95 ms | p99 ms | SLA violations | goodput q/s | utilization |"
        " rejected |\n|---|---|---|---|---|---|---|---|"
    )
    lines = [f"### {sc.name}: {seeds} seed(s), mean ± sd", "", head]
    for p in policies:
        rs = [r for r in rows if r["policy"] == p]
        cols = [
            _mean_sd([r[k] for r in rs])
            for k in (
                "latency_p50_ms",
                "latency_p95_ms",
                "latency_p99_ms",
                "sla_violation_rate",
                "goodput_qps",
                "utilization",
                "rejected",
            )
        ]
        lines.append(f"| {p} | " + " | ".join(cols) + " |")
    return "\n".join(lines) + "\n"


def _plot_compare(
    out: Path,
    sc: C.Scenario,
    policies: Sequence[str],
    results: list[tuple[dict, list[dict]]],
    points: list[Point],
) -> None:
    plt = _plt()
    fig, ax = plt.subplots(1, 2, figsize=(12, 4.2))
    for p in policies:
        ser = next(s for (_, s), pt in zip(results, points, strict=True) if pt.policy == p)
        t = [r["t_s"] for r in ser]
        ax[0].plot(t, [r["latency_p95_ms"] for r in ser], label=p)
        ax[1].plot(t, [r["latency_p99_ms"] for r in ser], label=p)
    slo = min(m.slo_ms for m in sc.models)
    for a, q in zip(ax, ("p95", "p99"), strict=True):
        a.axhline(slo, color="k", ls="--", lw=0.8, label=f"SLA {slo:g} ms")
        a.set(
            xlabel="simulated time (s)",
            ylabel=f"{q} latency (ms)",
            yscale="log",
            title=f"{sc.name}: {q} per {sc.run.window_s:g} s window (seed {points[0].seed})",
        )
        a.grid(alpha=0.3)
    ax[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "latency_over_time.png", dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 4))
    sizes = sorted({int(k) for (d, _) in results for k in d["utilization_by_size"]})
    width = 0.8 / max(len(policies), 1)
    for i, p in enumerate(policies):
        ds = [d for (d, _), pt in zip(results, points, strict=True) if pt.policy == p]
        vals = [np.mean([d["utilization_by_size"].get(k, np.nan) for d in ds]) for k in sizes]
        ax.bar(np.arange(len(sizes)) + i * width, vals, width, label=p)
    ax.set_xticks(np.arange(len(sizes)) + width * (len(policies) - 1) / 2, [f"{k}g" for k in sizes])
    ax.set(ylabel="busy / available GPC-s", title=f"{sc.name}: utilization per partition size")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "utilization_by_size.png", dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- sweep
def latency_bounded_load(
    loads: Sequence[float], violation: Sequence[float], target: float = VIOLATION_TARGET
) -> float:
    """Highest load of the grid up to which every point keeps violations within ``target``
    (p95 latency within the SLA); 0 if even the lowest load fails."""
    best = 0.0
    for ld, v in sorted(zip(loads, violation, strict=True)):
        if v > target:
            break
        best = ld
    return best


def sweep(
    scenario: str | Path | C.Scenario,
    policies: Sequence[str],
    loads: Sequence[float],
    seeds: int = 3,
    logdir: Path = Path("runs"),
    num_queries: int | None = None,
    jobs: int | None = None,
    progress: bool = True,
    quiet: bool = False,
    backend: str = "local",
    address: str | None = None,
) -> dict:
    """Latency and violations versus offered load; latency-bounded throughput per policy.
    ``backend``/``address``: where the simulations run (:func:`run_points`)."""
    sc = scenario if isinstance(scenario, C.Scenario) else load_scenario(scenario)
    points = [Point(p, sc.seed + i, ld) for p in policies for ld in loads for i in range(seeds)]
    results = run_points(sc, points, num_queries, jobs, progress, backend, address)
    out = Path(logdir) / sc.name / "sweep"
    out.mkdir(parents=True, exist_ok=True)
    rows = [_flat(d, pt) for (d, _), pt in zip(results, points, strict=True)]
    _write_csv(out / "sweep.csv", rows)
    base_rate = rows[0]["offered_qps"] / loads[0] if rows and loads[0] else math.nan
    lbt: dict[str, list[float]] = {}
    for p in policies:
        per_seed = []
        for i in range(seeds):
            rs = [r for r in rows if r["policy"] == p and r["seed"] == sc.seed + i]
            per_seed.append(
                latency_bounded_load([r["load"] for r in rs], [r["sla_violation_rate"] for r in rs])
            )
        lbt[p] = per_seed
        with ScalarWriter(out / _safe(p)) as w:
            for ld in loads:
                rs = [r for r in rows if r["policy"] == p and r["load"] == ld]
                mean = {
                    k: float(np.mean([r[k] for r in rs]))
                    for k in (
                        "latency_p95_ms",
                        "latency_p99_ms",
                        "latency_p50_ms",
                        "sla_violation_rate",
                        "goodput_qps",
                        "throughput_qps",
                        "utilization",
                    )
                }
                w.add_scalars(serving_scalars(mean), round(ld * 100))
    md = [
        "### " + f"{sc.name}: highest load of the grid with <= 5 % late or rejected, "
        f"{seeds} seed(s) (grid resolution; bisection under three criteria: lbt.md)",
        "",
        "| policy | load multiplier | ≈ q/s |",
        "|---|---|---|",
    ]
    for p, v in lbt.items():
        md.append(f"| {p} | {_mean_sd(v)} | {_mean_sd([x * base_rate for x in v])} |")
    text = "\n".join(md) + "\n"
    (out / "sweep.md").write_text(text)
    _plot_sweep(out, sc, policies, loads, rows)
    if not quiet:
        print(text)
        print(
            f"wrote {out}/sweep.csv, sweep.md, latency_vs_load.png, violation_vs_load.png; "
            f"TensorBoard step = load x 100"
        )
    return {"rows": rows, "lbt": lbt, "base_rate_qps": base_rate}


def _plot_sweep(
    out: Path, sc: C.Scenario, policies: Sequence[str], loads: Sequence[float], rows: list[dict]
) -> None:
    plt = _plt()
    for key, fname, ylabel in (
        ("latency_p95_ms", "latency_vs_load.png", "p95 latency (ms)"),
        ("sla_violation_rate", "violation_vs_load.png", "SLA violation rate"),
    ):
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for p in policies:
            m, lo, hi = [], [], []
            for ld in loads:
                v = np.array([r[key] for r in rows if r["policy"] == p and r["load"] == ld])
                m.append(v.mean())
                lo.append(v.min())
                hi.append(v.max())
            ax.plot(loads, m, marker="o", ms=3, label=p)
            ax.fill_between(loads, lo, hi, alpha=0.2)
        if key == "latency_p95_ms":
            slo = min(mm.slo_ms for mm in sc.models)
            ax.axhline(slo, color="k", ls="--", lw=0.8, label=f"SLA {slo:g} ms")
            ax.set_yscale("log")
        else:
            ax.axhline(VIOLATION_TARGET, color="k", ls="--", lw=0.8, label="5 % target")
        ax.set(
            xlabel="offered load (x scenario rate)",
            ylabel=ylabel,
            title=f"{sc.name}: {ylabel} vs load (band = min..max over seeds)",
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / fname, dpi=110)
        plt.close(fig)
