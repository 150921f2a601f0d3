"""``mig-gym plan``: PARIS's partition plan per model and the nvidia-smi commands that make it."""

from __future__ import annotations

import argparse
from typing import Any

from mig_gym.cli.args import scenario_options
from mig_gym.metrics import strict_dumps
from mig_gym.runs.build import Run, build

__all__ = ["add_parser", "cmd_plan"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    pl = sub.add_parser("plan", help="PARIS's partition plan and the nvidia-smi commands for it")
    scenario_options(pl)
    pl.add_argument("--json", action="store_true")
    pl.set_defaults(func=cmd_plan)


def cmd_plan(a: argparse.Namespace) -> int:
    run = build(a.scenario, policy=a.policy or None, seed=a.seed)
    if a.json:
        print(strict_dumps(_plan_dict(run), indent=2))
    else:
        print(_plan_text(run))
    return 0


def _model_plans(run: Run) -> list[Any]:
    """The per-model plans of the partitioner (PARIS, periodic PARIS, or PARIS_tuned's best)."""
    part = run.policy.partitioner
    best = getattr(part, "best", None)
    if best is not None:
        return best.last
    return getattr(part, "last", None) or getattr(getattr(part, "paris", None), "last", [])


def _plan_dict(run: Run) -> dict:
    sc = run.scenario
    return {
        "scenario": sc.name,
        "policy": run.policy.label,
        "gpu": sc.cluster.gpu,
        "gpus": [
            {
                "gpu": g.index,
                "layout": list(g.layout.sizes),
                "models": [sc.model_names[m] for m in g.models],
                "commands": g.layout.nvidia_smi_commands(g.index),
            }
            for g in run.sim.gpus
        ],
        "models": [
            {
                "model": mp.model,
                "max_batch": mp.max_batch,
                "ranges": {k: list(v) for k, v in mp.ranges.items()},
                "partitions": mp.counts,
                "gpus": mp.gpus,
                "expected_load_per_partition": mp.load_per_partition,
            }
            for mp in _model_plans(run)
        ],
    }


def _plan_text(run: Run) -> str:
    sc = run.scenario
    lines = [f"{sc.name}: {run.policy.label} on {sc.cluster.num_gpus} x {sc.cluster.gpu}"]
    lines.append(f"profiles: {sc.profiles.family}, admission {sc.profiles.admission}")
    lines += [f"  {n}" for name in sc.model_names for n in run.context.profiles[name].notes()]
    for mp in _model_plans(run):
        lines.append(f"\nmodel {mp.model} ({mp.gpus} GPUs), SLA {sc.slo_s(mp.model) * 1e3:g} ms")
        lines.append("  size  knee(max batch)  batches homed   partitions  expected load/partition")
        for k in run.context.spec.sizes:
            homed = sorted(b for b, h in mp.home.items() if h == k)
            span = f"{homed[0]}-{homed[-1]}" if homed else "-"
            load = mp.load_per_partition.get(k)
            lines.append(
                f"  {k}g    {mp.max_batch.get(k, 0):>5}            "
                f"{span:<14}{mp.counts.get(k, 0):>6}      "
                f"{'' if load is None else f'{load:.2f}'}"
                f"{'' if mp.ranges.get(k) else '   (no range of its own)'}"
            )
    for label, viol, p95 in getattr(run.policy.partitioner, "scores", []):
        lines.append(f"  candidate {label}: violation rate {viol:.4f}, p95 {p95:.1f} ms")
    lines.append("\nlayout per GPU:")
    for g in run.sim.gpus:
        names = sorted({sc.model_names[m] for m in g.models})
        lines.append(f"  GPU {g.index}: {g.layout!s:<16} ({', '.join(names)})")
    lines.append(
        "\nnvidia-smi commands (run as root with MIG mode enabled: nvidia-smi -i N -mig 1):"
    )
    lines += [f"  {c}" for g in run.sim.gpus for c in g.layout.nvidia_smi_commands(g.index)]
    return "\n".join(lines)
