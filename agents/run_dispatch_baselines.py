"""Every Dispatch-v0 reference rule (elsa, fifs_push, earliest_finish, jsq, round_robin, random)
on the held-out seeds, each logged as ``serving/*`` TensorBoard tags and printed as one table.

    python agents/run_dispatch_baselines.py [--scenario FILE] [--logdir runs/] [--episodes 5]

Logs go to ``<logdir>/<scenario>/<policy>-script/`` (step = episode index), beside the curves of
``mig-gym train`` and ``mig-gym compare``. Needs no torch.
"""

import argparse
from pathlib import Path

import gymnasium as gym
import numpy as np

from mig_gym import hardware
from mig_gym.envs import EVAL_SEED_BASE, reference_policy
from mig_gym.envs.reference import DISPATCH_POLICIES
from mig_gym.output.tensorboard import ScalarWriter, serving_scalars

DEFAULT = Path(__file__).resolve().parents[1] / "scenarios" / "paper_resnet50.yaml"
TAGS = (
    "serving/p95_ms",
    "serving/sla_violation_rate",
    "serving/goodput_qps",
    "serving/utilization",
)


def episode(scenario: str, policy: str, seed: int) -> tuple[str, dict[str, float]]:
    """One Dispatch-v0 episode on the arrivals of ``seed``: (scenario name, serving scalars)."""
    env = gym.make("mig_gym/Dispatch-v0", scenario=scenario)
    pol = reference_policy(env, policy)
    obs, _ = env.reset(options={"episode_seed": seed})
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(pol.predict(obs)[0])
        done = terminated or truncated
    sc = env.unwrapped.scenario
    env.close()
    return sc.name, serving_scalars(info["summary"], hardware.gpu_spec(sc.cluster.gpu).sizes)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", default=str(DEFAULT))
    ap.add_argument("--logdir", default="runs")
    ap.add_argument("--episodes", type=int, default=5)
    ap.add_argument("--policies", default=",".join(DISPATCH_POLICIES))
    args = ap.parse_args()
    print(f"{'policy':<16}" + "".join(f"{t.split('/')[1]:>20}" for t in TAGS))
    for policy in args.policies.split(","):
        runs = [episode(args.scenario, policy, EVAL_SEED_BASE + i) for i in range(args.episodes)]
        name = runs[0][0]
        with ScalarWriter(Path(args.logdir) / name / f"{policy}-script") as w:
            for i, (_, row) in enumerate(runs):
                w.add_scalars(row, i)
        print(f"{policy:<16}" + "".join(f"{np.mean([r[t] for _, r in runs]):>20.4g}" for t in TAGS))
    print(f"({args.episodes} held-out episode(s) each, mean; TensorBoard: {args.logdir}/{name}/)")
