"""cProfile of the benchmark's ``simulate()`` run (not part of ``make bench``).

    python benchmarks/profile_sim.py [--queries N] [--load L] [--top K] [--sort tottime|cumtime]

cProfile inflates the cost of small Python calls, so read the shares, not the absolute times.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
from pathlib import Path

import mig_gym

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=str(ROOT / "scenarios" / "paper_resnet50.yaml"))
    ap.add_argument("--policy", default="paris+earliest_finish")
    ap.add_argument("--queries", type=int, default=200_000)
    ap.add_argument("--load", type=float, default=1.1)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--sort", default="tottime", choices=["tottime", "cumtime"])
    a = ap.parse_args()
    prof = cProfile.Profile()
    prof.enable()
    mig_gym.simulate(a.scenario, a.policy, num_queries=a.queries, load=a.load)
    prof.disable()
    pstats.Stats(prof).strip_dirs().sort_stats(a.sort).print_stats(a.top)


if __name__ == "__main__":
    main()
