"""ELSA through ``mig_gym/Dispatch-v0``: the smallest complete evaluation loop.

    python agents/run_elsa.py [--scenario FILE] [--logdir runs/] [--episodes 5]

Runs ELSA (``reference_policy(env, "elsa")``) on the held-out seeds that ``mig-gym train`` evaluates
on, logs each episode's ``serving/*`` TensorBoard tags under ``<logdir>/<scenario>/elsa-script/``
(step = episode index) and prints the mean. Needs no torch. Replace ``pol.predict`` with your own
agent's ``predict`` to evaluate it the same way.
"""

import argparse
from pathlib import Path

import gymnasium as gym
import numpy as np

from mig_gym import hardware
from mig_gym.envs import EVAL_SEED_BASE, reference_policy
from mig_gym.output.tensorboard import ScalarWriter, serving_scalars

DEFAULT = Path(__file__).resolve().parents[1] / "scenarios" / "paper_resnet50.yaml"

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--scenario", default=str(DEFAULT))
ap.add_argument("--logdir", default="runs")
ap.add_argument("--episodes", type=int, default=5)
args = ap.parse_args()

rows = []
for i in range(args.episodes):
    env = gym.make("mig_gym/Dispatch-v0", scenario=args.scenario)
    pol = reference_policy(env, "elsa")
    obs, _ = env.reset(options={"episode_seed": EVAL_SEED_BASE + i})
    done = False
    while not done:
        action, _ = pol.predict(obs)
        obs, reward, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    sc = env.unwrapped.scenario
    rows.append(serving_scalars(info["summary"], hardware.gpu_spec(sc.cluster.gpu).sizes))
    env.close()

with ScalarWriter(Path(args.logdir) / sc.name / "elsa-script") as w:
    for i, row in enumerate(rows):
        w.add_scalars(row, i)
print(f"{sc.name}: ELSA on Dispatch-v0, {args.episodes} held-out episode(s), mean")
for tag in (
    "serving/p95_ms",
    "serving/sla_violation_rate",
    "serving/goodput_qps",
    "serving/utilization",
):
    print(f"  {tag:<28} {np.mean([r[tag] for r in rows]):10.4g}")
