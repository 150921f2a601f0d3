"""The ``mig-gym`` command line: run, validate, plan, compare, sweep.

User errors (a malformed scenario or data file, a missing file, an unknown policy, a bad option
value) print one clear message and exit with status 2 (``--verbose`` adds the traceback); anything
else is a bug and exits with status 1 and a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mig_gym import hardware
from mig_gym.hardware.profiles import ProfileRangeError
from mig_gym.policies import PolicyError
from mig_gym.runs.backends import BACKENDS, BackendError
from mig_gym.runs.build import build
from mig_gym.scenario import ScenarioError, load_scenario
from mig_gym.workload import WorkloadError
from mig_gym.workload.traces import TraceError

__all__ = ["main"]

# OSError: missing or unreadable files, a --logdir that is a file, an unreachable Ray cluster.
USER_ERRORS = (
    ScenarioError,
    PolicyError,
    ProfileRangeError,
    WorkloadError,
    TraceError,
    OSError,
    hardware.UnknownGPUError,
    BackendError,
)


class UsageError(Exception):
    """A command-line mistake reported without a traceback."""


def _summary_table(rows: Sequence[tuple[str, str]]) -> str:
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{w}}  {v}" for k, v in rows)


def _fmt_summary(s: object) -> str:
    d = s.to_dict()  # type: ignore[attr-defined]
    rows = [
        ("scenario / policy / seed", f"{d['scenario']} / {d['policy']} / {d['seed']}"),
        ("queries arrived", f"{d['arrived']:,}"),
        (
            "completed / rejected / in system",
            f"{d['completed']:,} / {d['rejected']:,} / {d['in_system']:,}",
        ),
        ("retried / re-dispatched", f"{d['retried']:,} / {d['redispatched']:,}"),
        (
            "latency mean / p50 / p95 / p99 (ms)",
            f"{d['latency_mean_ms']:.2f} / {d['latency_p50_ms']:.2f} / {d['latency_p95_ms']:.2f}"
            f" / {d['latency_p99_ms']:.2f}",
        ),
        ("SLA violation rate", f"{d['sla_violation_rate']:.4f}"),
        (
            "offered / throughput / goodput (q/s)",
            f"{d['offered_qps']:.1f} / {d['throughput_qps']:.1f} / {d['goodput_qps']:.1f}",
        ),
        ("utilization (busy / available GPC-s)", f"{d['utilization']:.3f}"),
        (
            "utilization by size",
            ", ".join(f"{k}g {v:.3f}" for k, v in d["utilization_by_size"].items()),
        ),
        ("reconfigurations / downtime (s)", f"{d['reconfigurations']} / {d['downtime_s']:.1f}"),
        ("simulated time (s)", f"{d['sim_time_s']:.1f}"),
        ("all queries accounted for", "yes" if d["conserved"] else "NO"),
    ]
    if d["rejected_by_reason"]:
        rows.insert(
            3,
            (
                "rejected by reason",
                ", ".join(f"{k}: {v}" for k, v in d["rejected_by_reason"].items()),
            ),
        )
    return _summary_table(rows)


# --------------------------------------------------------------------------- commands
def cmd_run(a: argparse.Namespace) -> int:
    run = build(
        a.scenario,
        policy=a.policy,
        seed=a.seed,
        num_queries=a.num_queries,
        load=a.load,
        progress=not a.no_progress,
        fast=not a.event_loop,
    )
    s = run.execute()
    if a.json:
        print(json.dumps(s.to_dict(), indent=2))
    else:
        print(_fmt_summary(s))
        why = "--event-loop" if a.event_loop else run.loop_note
        loop = "fast path (static run)" if run.loop == "fast" else f"event loop ({why})"
        print(f"simulated with the {loop}")
    return 0


def cmd_validate(a: argparse.Namespace) -> int:
    from mig_gym import workload
    from mig_gym.runs import build as engine  # lazy, as the other commands' imports

    sc = load_scenario(a.scenario)
    # The files a scenario names are read too: profiles (and their batch range), traces.
    engine.latency_tables(sc, engine.load_profiles(sc), hardware.gpu_spec(sc.cluster.gpu))
    workload.QueryStream(
        sc.workload, sc.model_names, [m.share for m in sc.models], sc.seed, 0, base_dir=sc.base_dir
    )
    print(
        f"{a.scenario}: OK ({sc.name}: {sc.cluster.num_gpus} x {sc.cluster.gpu}, "
        f"models {', '.join(sc.model_names)}, {sc.run.num_queries:,} queries)"
    )
    return 0


def cmd_plan(a: argparse.Namespace) -> int:
    run = build(a.scenario, policy=a.policy or None, seed=a.seed)
    part = run.policy.partitioner
    sc, sim = run.scenario, run.sim
    layouts = [(g.index, g.layout, g.models) for g in sim.gpus]
    model_plans = getattr(part, "last", None) or getattr(getattr(part, "paris", None), "last", [])
    best = getattr(part, "best", None)
    if best is not None:
        model_plans = best.last
    if a.json:
        out = {
            "scenario": sc.name,
            "policy": run.policy.label,
            "gpu": sc.cluster.gpu,
            "gpus": [
                {
                    "gpu": i,
                    "layout": list(lay.sizes),
                    "models": [sc.model_names[m] for m in mods],
                    "commands": lay.nvidia_smi_commands(i),
                }
                for i, lay, mods in layouts
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
                for mp in model_plans
            ],
        }
        print(json.dumps(out, indent=2))
        return 0
    print(f"{sc.name}: {run.policy.label} on {sc.cluster.num_gpus} x {sc.cluster.gpu}")
    for mp in model_plans:
        print(f"\nmodel {mp.model} ({mp.gpus} GPUs), SLA {sc.slo_s(mp.model) * 1e3:g} ms")
        print("  size  knee(max batch)  batches homed   partitions  expected load/partition")
        for k in run.context.spec.sizes:
            rng = mp.ranges.get(k)
            homed = sorted(b for b, h in mp.home.items() if h == k)
            span = f"{homed[0]}-{homed[-1]}" if homed else "-"
            load = mp.load_per_partition.get(k)
            print(
                f"  {k}g    {mp.max_batch.get(k, 0):>5}            "
                f"{span:<14}{mp.counts.get(k, 0):>6}      "
                f"{'' if load is None else f'{load:.2f}'}"
                f"{'' if rng else '   (no range of its own)'}"
            )
    for label, viol, p95 in getattr(part, "scores", []):
        print(f"  candidate {label}: violation rate {viol:.4f}, p95 {p95:.1f} ms")
    print("\nlayout per GPU:")
    for i, lay, mods in layouts:
        names = sorted({sc.model_names[m] for m in mods})
        print(f"  GPU {i}: {lay!s:<16} ({', '.join(names)})")
    print("\nnvidia-smi commands (run as root with MIG mode enabled: nvidia-smi -i N -mig 1):")
    for i, lay, _ in layouts:
        for c in lay.nvidia_smi_commands(i):
            print(f"  {c}")
    return 0


def cmd_compare(a: argparse.Namespace) -> int:
    from mig_gym.runs import experiments as report

    report.compare(
        a.scenario,
        _split(a.policies),
        seeds=a.seeds,
        logdir=Path(a.logdir),
        num_queries=a.num_queries,
        load=a.load,
        jobs=a.jobs,
        progress=not a.no_progress,
        backend=a.backend,
        address=a.address,
    )
    return 0


def cmd_sweep(a: argparse.Namespace) -> int:
    from mig_gym.runs import experiments as report

    report.sweep(
        a.scenario,
        _split(a.policies),
        loads=_loads(a.loads),
        seeds=a.seeds,
        logdir=Path(a.logdir),
        num_queries=a.num_queries,
        jobs=a.jobs,
        progress=not a.no_progress,
        backend=a.backend,
        address=a.address,
    )
    return 0


def cmd_train(a: argparse.Namespace) -> int:
    try:
        from mig_gym.learn import training
    except ImportError as e:
        raise UsageError(f"training needs the train extra (pip install -e .[train]): {e}") from None
    path = training.train(
        a.scenario,
        env_kind=a.env,
        algo=a.algo,
        timesteps=a.timesteps,
        seed=a.seed,
        n_envs=a.n_envs,
        logdir=a.logdir,
        bc_steps=a.bc_steps,
        eval_freq=a.eval_freq,
        eval_episodes=a.eval_episodes,
        hyperparams=a.hyperparams,
        progress=not a.no_progress,
    )
    print(f"saved {path}")
    print(f"compare it: mig-gym compare {a.scenario} --policies paris+elsa,{a.algo}:{path}")
    print(f"TensorBoard: tensorboard --logdir {a.logdir}")
    return 0


def _split(text: str) -> list[str]:
    items = [p.strip() for p in text.split(",") if p.strip()]
    if not items:
        raise UsageError("--policies: give at least one policy, e.g. paris+elsa,homo7+fifs")
    return items


def _loads(text: str) -> list[float]:
    try:
        if ":" in text:
            lo, hi, step = (float(x) for x in text.split(":"))
            if not (0 < lo <= hi < math.inf and 0 < step < math.inf):
                raise ValueError
            n = round((hi - lo) / step) + 1
            if n > 100_000:
                raise ValueError
            return [round(lo + i * step, 10) for i in range(n)]
        out = [float(x) for x in text.split(",")]
        if not all(0 < x < math.inf for x in out):
            raise ValueError
        return out
    except ValueError:
        raise UsageError(
            f"--loads {text!r}: expected lo:hi:step (e.g. 0.2:1.4:0.1) "
            "or a comma list of positive numbers"
        ) from None


def _number(kind: type, lo: float, lo_open: bool = False) -> Callable[[str], Any]:
    """An argparse ``type``: an int or finite float >= ``lo`` (> ``lo`` when ``lo_open``)."""

    def parse(text: str) -> int | float:
        try:
            x = kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not math.isfinite(x) or x < lo or (lo_open and x == lo):
            raise argparse.ArgumentTypeError(
                f"must be {'>' if lo_open else '>='} {lo:g}, got {text!r}"
            )
        return x

    parse.__name__ = kind.__name__  # argparse names the type in some messages
    return parse


_COUNT = _number(int, 1)  # --num-queries, --seeds, --jobs, ...
_NONNEG = _number(int, 0)
_LOAD = _number(float, 0.0, lo_open=True)


# --------------------------------------------------------------------------- parser
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mig-gym", description=__doc__.split("\n")[0])
    p.add_argument("--verbose", action="store_true", help="show tracebacks for user errors too")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser, policy: bool = True) -> None:
        sp.add_argument("scenario", help="scenario YAML file")
        sp.add_argument("--seed", type=_NONNEG, default=None, help="override the scenario's seed")
        if policy:
            sp.add_argument(
                "--policy",
                default=None,
                help="partitioner+dispatcher, e.g. paris+elsa (default: scenario's)",
            )

    r = sub.add_parser("run", help="one simulation, summary table")
    common(r)
    r.add_argument("--num-queries", type=_COUNT, default=None)
    r.add_argument("--load", type=_LOAD, default=None, help="arrival-rate multiplier")
    r.add_argument("--json", action="store_true", help="print the Summary as JSON")
    r.add_argument("--no-progress", action="store_true")
    r.add_argument(
        "--event-loop",
        action="store_true",
        help="simulate with the event loop even if the run could take the fast path",
    )
    r.set_defaults(func=cmd_run)

    v = sub.add_parser("validate", help="check a scenario file and explain every problem")
    v.add_argument("scenario")
    v.set_defaults(func=cmd_validate)

    pl = sub.add_parser("plan", help="PARIS's partition plan and the nvidia-smi commands for it")
    common(pl)
    pl.add_argument("--json", action="store_true")
    pl.set_defaults(func=cmd_plan)

    for name, fn, helptext in (
        ("compare", cmd_compare, "several policies on the same arrivals"),
        ("sweep", cmd_sweep, "latency and violations versus offered load"),
    ):
        c = sub.add_parser(name, help=helptext)
        c.add_argument("scenario")
        c.add_argument("--policies", default="paris+elsa,paris+fifs,homo7+fifs,homo1+fifs")
        c.add_argument(
            "--seeds", type=_COUNT, default=3, help="number of seeds (scenario seed + i)"
        )
        c.add_argument("--logdir", default="runs", help="TensorBoard / CSV / plot output folder")
        c.add_argument("--num-queries", type=_COUNT, default=None)
        c.add_argument(
            "--jobs",
            type=_COUNT,
            default=None,
            help="worker processes (default: cores); ray: points in flight",
        )
        c.add_argument(
            "--backend",
            choices=BACKENDS,
            default="local",
            help="local process pool (default) or a Ray cluster (pip install .[ray])",
        )
        c.add_argument(
            "--address",
            default=None,
            help="ray: cluster address (host:6379, ray://host:10001 or auto); "
            "default: $RAY_ADDRESS, else a private local instance (docs/ray.md)",
        )
        c.add_argument("--no-progress", action="store_true")
        if name == "compare":
            c.add_argument("--load", type=_LOAD, default=None)
        else:
            c.add_argument("--loads", default="0.2:1.4:0.1", help="lo:hi:step or a comma list")
        c.set_defaults(func=fn)
    t = sub.add_parser("train", help="train a learned agent (needs the train extra)")
    t.add_argument("scenario")
    t.add_argument("--env", choices=("dispatch", "partition"), default="dispatch")
    t.add_argument("--algo", choices=("maskable_ppo", "ppo", "dqn"), default="maskable_ppo")
    t.add_argument("--timesteps", type=_COUNT, default=None, help="default: hyperparameter file")
    t.add_argument("--seed", type=_NONNEG, default=0)
    t.add_argument("--n-envs", type=_COUNT, default=None, help="default: hyperparameter file")
    t.add_argument("--logdir", default="runs")
    t.add_argument(
        "--bc-steps",
        type=_NONNEG,
        default=0,
        help="warm start: behaviour-clone this many reference decisions first",
    )
    t.add_argument("--eval-freq", type=_COUNT, default=None)
    t.add_argument("--eval-episodes", type=_COUNT, default=5, help="held-out evaluation seeds")
    t.add_argument("--hyperparams", default=None, help="rl-zoo3-style YAML file")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=cmd_train)
    for sp in sub.choices.values():  # --verbose also after the subcommand
        sp.add_argument(
            "--verbose",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show tracebacks for user errors too",
        )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status: 0 success, 2 user error (one message; ``--verbose`` adds the traceback),
    1 a bug (traceback), 130 interrupted."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:  # argparse: --help (0) or a bad argument (2, message printed)
        return e.code if isinstance(e.code, int) else 2
    try:
        return int(args.func(args))
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (keep interpreter exit quiet)
        return 0
    except (*USER_ERRORS, UsageError) as e:
        if args.verbose:
            traceback.print_exc()
        msg = str(e) if not isinstance(e, KeyError) else str(e.args[0])
        print(f"mig-gym {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        print(
            f"mig-gym {args.command}: internal error (a bug in mig_gym; please report it with "
            "the traceback above)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
