"""Dispatch-v0's incremental observation and mask (envs/slots.py) against a full rebuild from the
simulator's partitions at every step (the construction the environment used before, written out
plainly here), over faults, forced re-partitioning and several models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from mig_gym import hardware
from mig_gym.envs import DispatchEnv
from mig_gym.envs.common import OBS_CLIP
from mig_gym.sim import compiled

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
FAULTS = [
    {"gpu": 2, "down_at_s": 0.5, "up_at_s": 1.5},
    {"gpu": 5, "down_at_s": 1.0, "up_at_s": 1.1},
    {"gpu": 7, "down_at_s": 2.0},
]


def full_rebuild(env: DispatchEnv) -> tuple[np.ndarray, np.ndarray]:
    """Observation and mask for the pending query, rebuilt from every partition."""
    obs = np.zeros(env.observation_space.shape, np.float32)
    mask = np.zeros(env.slots, bool)
    q, sim = env.pending_query, env.run.sim
    if q is None:
        return obs, mask
    m, b, now, slo = q.model, q.batch, sim.now, sim.slo_s[q.model]
    for g in sim.gpus:
        for j, p in enumerate(g.partitions):
            s = g.index * env.slot_width + j
            fits = b < len(p.lat) and p.lat[b] < np.inf
            ok = p.available and p.model == m and fits
            backlog = max(p.est_free_s - now, 0.0) / slo
            row = [
                p.gpcs / env.slot_width,
                float(p.model == m),
                backlog,
                backlog + p.lat[b] / slo if ok else np.inf,
                float(p.available),
                len(p.queue) / 10.0,
            ]
            obs[6 * s : 6 * s + 6] = np.minimum(row, OBS_CLIP)
            mask[s] = ok
    k = 6 * env.slots
    obs[k : k + 3] = [
        b / env.max_batch,
        min((now - q.arrival_s) / slo, OBS_CLIP),
        m / env.num_models,
    ]
    obs[k + 3 + m] = 1.0
    k += 3 + env.num_models
    obs[k] = min(env._rate / env._mean_rate, OBS_CLIP)
    obs[k + 1] = min(sim.active / env.slots, OBS_CLIP)
    obs[k + 2] = min(sim.rec.arrived / env.scenario.run.num_queries, 1.0)
    return obs, mask


def _scenario(name: str, **edits: object) -> dict:
    data = yaml.safe_load((SCENARIOS / f"{name}.yaml").read_text())
    data.update(edits)
    return data


def _reconfigure(env: DispatchEnv, rng: np.random.Generator) -> None:
    """Re-partition a random GPU to a random legal layout hosting random models."""
    sim = env.run.sim
    layouts = hardware.valid_layouts(env.scenario.cluster.gpu)
    lay = layouts[int(rng.integers(len(layouts)))]
    models = [int(rng.integers(env.num_models)) for _ in lay.placements]
    sim.reconfigure(int(rng.integers(len(sim.gpus))), lay, models)


@pytest.mark.parametrize(
    ("scenario", "num_queries", "reconfig_every"),
    [
        (None, 300, 0),
        (_scenario("faults", faults=FAULTS), 2500, 0),
        (_scenario("multi_model"), 600, 37),
        (_scenario("faults", faults=FAULTS), 1200, 101),
    ],
    ids=["default", "faults", "multi-reconfig", "faults-reconfig"],
)
@pytest.mark.parametrize("kernel", [True, False], ids=["compiled", "numpy"])
def test_incremental_observation_equals_full_rebuild(scenario, num_queries, reconfig_every,
                                                     kernel, monkeypatch):  # fmt: skip
    # the per-step columns by the compiled kernel (numba) and by the numpy pass
    if kernel and not compiled.AVAILABLE:
        pytest.skip("numba is not installed (the fast extra)")
    monkeypatch.setattr(compiled, "AVAILABLE", kernel)
    env = DispatchEnv(scenario, num_queries=num_queries)
    assert env.bank.compiled == kernel
    rng = np.random.default_rng(5)
    obs, info = env.reset(seed=3)
    checked = changed = 0
    for step in range(num_queries + 200):
        want_obs, want_mask = full_rebuild(env)
        np.testing.assert_array_equal(obs, want_obs, err_msg=f"observation, step {step}")
        np.testing.assert_array_equal(info["action_mask"], want_mask, err_msg=f"mask, step {step}")
        checked += 1
        valid = info["action_mask"]
        if reconfig_every and step % reconfig_every == reconfig_every - 1 and env.pending_query:
            _reconfigure(env, rng)  # the GPU stops taking work at once
            valid = valid & full_rebuild(env)[1]  # still valid after the change
            changed += 1
        slots = np.flatnonzero(valid)
        if len(slots) and rng.random() < 0.9:
            a = int(rng.choice(slots))
        else:  # invalid: remapped to the earliest-finish partition
            a = int(rng.integers(-1, env.slots + 1))
        obs, _, term, trunc, info = env.step(a)
        if term or trunc:
            obs, info = env.reset()
    assert checked == num_queries + 200
    assert changed >= (num_queries // reconfig_every if reconfig_every else 0)
