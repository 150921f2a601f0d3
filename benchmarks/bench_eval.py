"""Evaluating a saved Dispatch-v0 agent: one ``mig-gym compare`` point of a MaskablePPO model
(``maskable_ppo:path/model.zip``) on ``num_queries`` queries, run as ``compare`` runs it
(``mig_gym.learn.evaluation.run_learned``: one torch thread, the policy's forward pass without
``predict``'s overhead), in a fresh process.

The model is freshly initialised and saved, not trained: evaluation costs the same forward pass
whatever the weights (the episode's dynamics differ a little with the actions chosen).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import sys, time
from pathlib import Path
import gymnasium as gym
from sb3_contrib import MaskablePPO
import mig_gym
from mig_gym.learn.evaluation import run_learned
from mig_gym.metrics import strict_dumps

scenario, n, out = sys.argv[1] or None, int(sys.argv[2]), Path(sys.argv[3])
sc = mig_gym.load_scenario(scenario)
env = gym.make("mig_gym/Dispatch-v0", scenario=sc)
MaskablePPO("MlpPolicy", env, seed=0, device="cpu").save(out / "model.zip")
meta = {"algo": "maskable_ppo", "env": "mig_gym/Dispatch-v0"}
(out / "model.json").write_text(strict_dumps(meta))
t0 = time.perf_counter()
summary, _ = run_learned(sc, f"maskable_ppo:{out / 'model.zip'}", 1, n)
dt = time.perf_counter() - t0
print(strict_dumps({"seconds": dt, "completed": summary.completed, "rejected": summary.rejected,
                  "conserved": summary.conserved}))
"""


def run(scenario: str | None, num_queries: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        args = [sys.executable, "-c", _CHILD, scenario or "", str(num_queries), tmp]
        res = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"evaluation benchmark failed:\n{res.stderr[-2000:]}")
    r = json.loads(res.stdout.strip().splitlines()[-1])
    r |= {"num_queries": num_queries, "qps": num_queries / r["seconds"]}
    return r
