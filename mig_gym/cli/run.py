"""``mig-gym run``: one simulation and its summary table (or the Summary as JSON)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from mig_gym.cli.args import COUNT, LOAD, scenario_options
from mig_gym.metrics.summary import Summary, strict_dumps
from mig_gym.runs.build import Run, build

__all__ = ["add_parser", "cmd_run", "format_summary"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("run", help="one simulation, summary table")
    scenario_options(r)
    r.add_argument("--num-queries", type=COUNT, default=None)
    r.add_argument("--load", type=LOAD, default=None, help="arrival-rate multiplier")
    r.add_argument("--json", action="store_true", help="print the Summary as JSON")
    r.add_argument("--no-progress", action="store_true")
    r.add_argument(
        "--event-loop",
        action="store_true",
        help="simulate with the event loop even if the run could take the fast path",
    )
    r.add_argument(
        "--python-loop",
        action="store_true",
        help="the event loop without its compiled core (the reference; implies --event-loop)",
    )
    r.set_defaults(func=cmd_run)


def cmd_run(a: argparse.Namespace) -> int:
    run = build(
        a.scenario,
        policy=a.policy,
        seed=a.seed,
        num_queries=a.num_queries,
        load=a.load,
        progress=not a.no_progress,
        fast=not (a.event_loop or a.python_loop),
        compiled=not a.python_loop,
    )
    s = run.execute()
    if a.json:
        print(strict_dumps(s.to_dict(), indent=2))
    else:
        print(format_summary(s))
        print(f"simulated with the {_loop_of(run, a)}")
    return 0


def _loop_of(run: Run, a: argparse.Namespace) -> str:
    if run.loop == "fast":
        return "fast path (static run)"
    if a.python_loop:
        return "event loop (--python-loop: the Python loop)"
    why = "--event-loop" if a.event_loop else run.loop_note
    blocker = run.sim.core_blocker()
    core = "compiled core" if blocker is None else f"Python loop: {blocker}"
    return f"event loop ({why}; {core})"


def _table(rows: Sequence[tuple[str, str]]) -> str:
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{w}}  {v}" for k, v in rows)


def format_summary(s: Summary) -> str:
    """The summary table ``mig-gym run`` prints."""
    rows = [
        ("scenario / policy / seed", f"{s.scenario} / {s.policy} / {s.seed}"),
        ("queries arrived", f"{s.arrived:,}"),
        (
            "completed / rejected / unfinished (late)",
            f"{s.completed:,} / {s.rejected:,} / {s.unfinished:,} ({s.unfinished_late:,})",
        ),
        ("retried / re-dispatched", f"{s.retried:,} / {s.redispatched:,}"),
        (
            "latency mean / p50 / p95 / p99 (ms)",
            f"{s.latency_mean_ms:.2f} / {s.latency_p50_ms:.2f} / {s.latency_p95_ms:.2f}"
            f" / {s.latency_p99_ms:.2f}",
        ),
        (
            "SLA violation rate (violations / measured)",
            f"{s.sla_violation_rate:.4f} ({s.violations:,} / {s.measured:,})",
        ),
        (
            "offered / throughput / goodput (q/s)",
            f"{s.offered_qps:.1f} / {s.throughput_qps:.1f} / {s.goodput_qps:.1f}",
        ),
        ("utilization (busy / available GPC-s)", f"{s.utilization:.3f}"),
        (
            "utilization by size",
            ", ".join(f"{k}g {v:.3f}" for k, v in s.utilization_by_size.items()),
        ),
        (
            "reconfigurations / downtime reconfig + failure (GPU-s)",
            f"{s.reconfigurations} / {s.downtime_reconfig_s:.1f} + {s.downtime_failure_s:.1f}",
        ),
        ("simulated time (s)", f"{s.sim_time_s:.1f}"),
        ("all queries accounted for", "yes" if s.conserved else "NO"),
    ]
    if s.rejected_by_reason:
        reasons = ", ".join(f"{k}: {v}" for k, v in s.rejected_by_reason.items())
        rows.insert(3, ("rejected by reason", reasons))
    return _table(rows)
