"""``mig-gym compare`` and ``mig-gym sweep``: many simulations, written as a report."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from mig_gym.cli.args import COUNT, LOAD, UsageError, split
from mig_gym.runs import experiments, lbt
from mig_gym.runs.backends import BACKENDS
from mig_gym.scenario import load_scenario

__all__ = ["add_parser", "cmd_compare", "cmd_sweep", "parse_loads"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    for name, fn, helptext in (
        ("compare", cmd_compare, "several policies on the same arrivals"),
        ("sweep", cmd_sweep, "latency and violations versus offered load"),
    ):
        c = sub.add_parser(name, help=helptext)
        c.add_argument("scenario")
        c.add_argument("--policies", default="paris+elsa,paris+fifs,homo7+fifs,homo1+fifs")
        c.add_argument("--seeds", type=COUNT, default=3, help="number of seeds (scenario seed + i)")
        c.add_argument("--logdir", default="runs", help="TensorBoard / CSV / plot output folder")
        c.add_argument("--num-queries", type=COUNT, default=None)
        c.add_argument(
            "--jobs",
            type=COUNT,
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
            c.add_argument("--load", type=LOAD, default=None)
        else:
            c.add_argument("--loads", default="0.2:1.4:0.1", help="lo:hi:step or a comma list")
            c.add_argument(
                "--no-lbt",
                action="store_true",
                help="skip the latency-bounded throughput search (bisection, three criteria)",
            )
        c.set_defaults(func=fn)


def _common(a: argparse.Namespace) -> dict:
    return {
        "seeds": a.seeds,
        "logdir": Path(a.logdir),
        "num_queries": a.num_queries,
        "jobs": a.jobs,
        "progress": not a.no_progress,
        "backend": a.backend,
        "address": a.address,
    }


def _learned_runner(policies: list[str]) -> experiments.LearnedRunner | None:
    """The runner of saved agents when a policy is one (``algo:path``), else None."""
    if not any(experiments.is_learned(p) for p in policies):
        return None
    try:
        # Imported here, and only for saved agents: it loads torch and stable-baselines3.
        from mig_gym.learn import evaluation
    except ImportError as e:
        msg = f"saved agents need the train extra ({e.name} is missing): "
        msg += "pip install 'mig_gym[train]'"
        raise UsageError(msg) from None
    return evaluation.run_learned


def cmd_compare(a: argparse.Namespace) -> int:
    policies = split(a.policies)
    learned = _learned_runner(policies)
    experiments.compare(a.scenario, policies, load=a.load, learned=learned, **_common(a))
    return 0


def cmd_sweep(a: argparse.Namespace) -> int:
    policies, loads = split(a.policies), parse_loads(a.loads)
    learned = _learned_runner(policies)
    common = _common(a)
    experiments.sweep(a.scenario, policies, loads=loads, learned=learned, **common)
    if not a.no_lbt:
        sc = load_scenario(a.scenario)
        out = common.pop("logdir") / sc.name / "sweep"
        common.pop("progress")  # one bar per bisection round would only be noise
        print(lbt.report(sc, policies, out, **common))
        print(f"wrote {out}/lbt.md, lbt.csv")
    return 0


def parse_loads(text: str) -> list[float]:
    """``lo:hi:step`` (inclusive grid) or a comma list of positive load multipliers."""
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
