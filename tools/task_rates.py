"""Measure the arrival rates of the registered Dispatch tasks (``mig_gym/envs/tasks.py``).

For each paper scenario, PARIS+ELSA's latency-bounded throughput under the serve-all criterion of
``mig_gym.runs.lbt`` (no rejection, <= 5 % late; bisection at 1 % resolution) on seeds
0, 1, 2, and the rates at 70 %, 90 % and 110 % of its mean. The numbers printed are pasted into
the task table, so ``gym.make`` of a task never simulates to find its rate.

    python tools/task_rates.py [--seeds 3] [--num-queries 20000]
"""

from __future__ import annotations

import argparse
import statistics

from mig_gym.runs import lbt
from mig_gym.scenario import load_scenario

SCENARIOS = ("paper_resnet50", "paper_mobilenet", "paper_bert")
FRACTIONS = (0.7, 0.9, 1.1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--num-queries", type=int, default=20_000)
    a = ap.parse_args()
    for name in SCENARIOS:
        sc = load_scenario(f"scenarios/{name}.yaml")
        res = lbt.measure(
            sc, ["paris+elsa"], seeds=a.seeds, num_queries=a.num_queries, criteria=["serve_all"]
        )
        base = sc.workload.arrivals.rate_qps * sc.workload.load
        loads = [r.load for r in res]
        qps = statistics.fmean(loads) * base
        sd = statistics.stdev(loads) * base if len(loads) > 1 else 0.0
        rates = ", ".join(f"{round(f * 100)}: {f * qps:.0f}" for f in FRACTIONS)
        print(f"{name}: LBT {qps:.0f} +- {sd:.0f} q/s (scenario rate {base:.0f}); {rates}")


if __name__ == "__main__":
    main()
