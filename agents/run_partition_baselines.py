"""Partition-v0 baselines: the static initial plan and periodic PARIS (the simulator's
``periodic_paris``: re-plan every epoch from the last epoch's arrivals), on the held-out seeds,
logged as ``serving/*`` TensorBoard tags.

    python agents/run_partition_baselines.py [--scenario FILE] [--logdir runs/] [--episodes 2]

Logs go to ``<logdir>/<scenario>/<policy>-script/`` (step = episode index). Needs no torch. The
default scenario is a drift one (a static plan is wrong part of the time); an episode there is
``env.epochs_per_episode`` epochs of ``env.epoch_s`` simulated seconds (tens of seconds to run).
"""

import argparse
from pathlib import Path

import gymnasium as gym
import numpy as np

from mig_gym import hardware
from mig_gym.envs import EVAL_SEED_BASE, reference_policy
from mig_gym.output.tensorboard import ScalarWriter, serving_scalars

DEFAULT = Path(__file__).resolve().parents[1] / "scenarios" / "diurnal_drift.yaml"
TAGS = (
    "serving/p95_ms",
    "serving/sla_violation_rate",
    "serving/goodput_qps",
    "serving/utilization",
)

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--scenario", default=str(DEFAULT))
ap.add_argument("--logdir", default="runs")
ap.add_argument("--episodes", type=int, default=2)
args = ap.parse_args()

print(f"{'policy':<16}" + "".join(f"{t.split('/')[1]:>20}" for t in TAGS) + f"{'reconfigs':>12}")
for policy in ("static", "periodic_paris"):
    rows, reconfigs = [], []
    for i in range(args.episodes):
        env = gym.make("mig_gym/Partition-v0", scenario=args.scenario)
        pol = reference_policy(env, policy)
        obs, _ = env.reset(options={"episode_seed": EVAL_SEED_BASE + i})
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(pol.predict(obs)[0])
            done = terminated or truncated
        sc = env.unwrapped.scenario
        rows.append(serving_scalars(info["summary"], hardware.gpu_spec(sc.cluster.gpu).sizes))
        reconfigs.append(info["summary"]["reconfigurations"])
        env.close()
    with ScalarWriter(Path(args.logdir) / sc.name / f"{policy}-script") as w:
        for i, row in enumerate(rows):
            w.add_scalars(row, i)
    print(
        f"{policy:<16}"
        + "".join(f"{np.mean([r[t] for r in rows]):>20.4g}" for t in TAGS)
        + f"{np.mean(reconfigs):>12.1f}"
    )
print(f"({args.episodes} held-out episode(s) each, mean; TensorBoard: {args.logdir}/{sc.name}/)")
