"""``mig-gym validate``: check a scenario file and the files it names, explaining every problem."""

from __future__ import annotations

import argparse

from mig_gym import hardware, workload
from mig_gym.runs import build as engine
from mig_gym.scenario import load_scenario

__all__ = ["add_parser", "cmd_validate"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    v = sub.add_parser("validate", help="check a scenario file and explain every problem")
    v.add_argument("scenario")
    v.set_defaults(func=cmd_validate)


def cmd_validate(a: argparse.Namespace) -> int:
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
