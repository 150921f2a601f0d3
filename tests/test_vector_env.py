"""Dispatch-v0's native vector environment (envs/vector.py) and its SB3 adapter (learn/vecenv.py):
the same trajectories as independent environments, gymnasium's autoreset modes, MaskablePPO."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml

import mig_gym  # noqa: F401  (registers the environments)
from mig_gym.envs.vector import DispatchVectorEnv
from mig_gym.sim import compiled

from .conftest import assert_close

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
FAULTS = [{"gpu": 2, "down_at_s": 0.2, "up_at_s": 0.6}, {"gpu": 5, "down_at_s": 0.4}]


def _faults() -> dict:
    data = yaml.safe_load((SCENARIOS / "faults.yaml").read_text())
    data["faults"] = FAULTS
    return data


def _actions(rng: np.random.Generator, masks: np.ndarray) -> np.ndarray:
    """Mostly valid actions, some invalid (remapped by the environments)."""
    out = []
    for m in masks:
        valid = np.flatnonzero(m)
        bad = rng.random() < 0.1 or not len(valid)
        out.append(int(rng.integers(-1, m.size + 1)) if bad else int(rng.choice(valid)))
    return np.array(out)


@pytest.mark.parametrize("scenario", [None, "faults"])
def test_same_trajectories_as_independent_envs(scenario, monkeypatch):
    kw = {
        "scenario": _faults() if scenario else None,
        "num_queries": 60 if scenario is None else 400,
    }
    n = 3
    vec = gym.make_vec("mig_gym/Dispatch-v0", num_envs=n, **kw)
    assert isinstance(vec.unwrapped, DispatchVectorEnv)
    assert vec.unwrapped.bank.compiled == compiled.AVAILABLE
    # the independent environments compute their observations in numpy: with numba, the
    # vector environment's compiled columns are checked against them
    monkeypatch.setattr(compiled, "AVAILABLE", False)
    ref = gym.vector.SyncVectorEnv([lambda: gym.make("mig_gym/Dispatch-v0", **kw)] * n)
    monkeypatch.undo()
    assert not any(e.unwrapped.bank.compiled for e in ref.envs)
    assert ref.metadata["autoreset_mode"] == vec.metadata["autoreset_mode"]
    obs, info = vec.reset(seed=4)
    robs, rinfo = ref.reset(seed=4)
    rng = np.random.default_rng(1)
    ends = 0
    for step in range(2 * kw["num_queries"] + 30):
        np.testing.assert_array_equal(obs, robs, err_msg=f"step {step}")
        np.testing.assert_array_equal(info["action_mask"], rinfo["action_mask"])
        a = _actions(rng, info["action_mask"])
        obs, r, te, tr, info = vec.step(a)
        robs, rr, rte, rtr, rinfo = ref.step(a)
        np.testing.assert_array_equal(r, rr)
        np.testing.assert_array_equal(te, rte)
        np.testing.assert_array_equal(tr, rtr)
        if "invalid" in rinfo:
            np.testing.assert_array_equal(
                info["invalid"][rinfo["_invalid"]], rinfo["invalid"][rinfo["_invalid"]]
            )
        if tr.any():
            ends += int(tr.sum())
            for i in np.flatnonzero(tr):
                assert (
                    info["summary"]["sla_violation_rate"][i]
                    == rinfo["summary"]["sla_violation_rate"][i]
                )
    assert ends >= n  # every environment went through an autoreset
    vec.close()
    ref.close()


def test_same_step_autoreset_resets_at_once():
    vec = DispatchVectorEnv(2, autoreset_mode="same_step", num_queries=20)
    obs, info = vec.reset(seed=0)
    for _ in range(25):
        obs, _r, _te, tr, info = vec.step(_actions(np.random.default_rng(0), info["action_mask"]))
        if tr.any():
            break
    assert tr.all()  # same episode length in both
    assert info["_final_obs"].all() and not np.stack(info["final_obs"]).any()
    assert info["action_mask"].any(axis=1).all() and obs.any(axis=1).all()  # new episodes


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="num_envs"):
        DispatchVectorEnv(0)
    with pytest.raises(ValueError, match="autoreset_mode"):
        DispatchVectorEnv(2, autoreset_mode="disabled")


def test_maskable_ppo_trains_on_the_sb3_adapter():
    from sb3_contrib import MaskablePPO  # torch: only this test
    from stable_baselines3.common.vec_env import VecEnv

    from mig_gym.learn.vecenv import DispatchSB3VecEnv

    venv = DispatchSB3VecEnv(4, seed=0, num_queries=50)
    assert isinstance(venv, VecEnv)
    masks = np.stack(venv.env_method("action_masks"))
    assert masks.shape == (4, venv.action_space.n)
    model = MaskablePPO("MlpPolicy", venv, n_steps=64, batch_size=64, n_epochs=1, seed=0)
    model.learn(total_timesteps=512)
    assert model.num_timesteps >= 512
    obs = venv.reset()
    acts, _ = model.predict(obs, action_masks=venv.action_masks(), deterministic=True)
    assert venv.action_masks()[np.arange(4), acts].all()
    venv.close()


@pytest.mark.skipif(not compiled.AVAILABLE, reason="the compiled step needs numba")
@pytest.mark.parametrize("mode", ["next_step", "same_step"])
def test_compiled_step_equals_independent_envs_over_long_overloaded_episodes(mode, monkeypatch):
    # the packed episodes (one kernel call per step, vec_core.py) against independent Python
    # environments: overloaded (queues grow past the slot pool: it grows; outcome buffers fill:
    # they are flushed), blocks of arrivals end, episodes end in Python, invalid actions remapped
    sc = yaml.safe_load((SCENARIOS / "paper_resnet50.yaml").read_text())
    sc["workload"]["load"] = 1.6
    kw = {"scenario": sc, "num_queries": 2500}
    n = 3
    vec = DispatchVectorEnv(n, autoreset_mode=mode, **kw)
    core = vec.core
    seen = {"flush": 0, "grow": 0, "packed": 0}
    flush, alloc = core.flush, core._alloc
    monkeypatch.setattr(core, "flush", lambda e: (seen.__setitem__("flush", seen["flush"] + 1),
                                                  flush(e))[1])  # fmt: skip
    monkeypatch.setattr(core, "_alloc", lambda dims: (seen.__setitem__("grow", seen["grow"] + 1),
                                                      alloc(dims))[1])  # fmt: skip
    mode_enum = gym.vector.AutoresetMode.SAME_STEP if mode == "same_step" else None
    ref = gym.vector.SyncVectorEnv(
        [lambda: gym.make("mig_gym/Dispatch-v0", **kw)] * n,
        **({"autoreset_mode": mode_enum} if mode_enum else {}),
    )
    obs, info = vec.reset(seed=7)
    robs, rinfo = ref.reset(seed=7)
    rng = np.random.default_rng(3)
    ends = 0
    for step in range(2 * kw["num_queries"] + 20):
        np.testing.assert_array_equal(obs, robs, err_msg=f"step {step}")
        np.testing.assert_array_equal(info["action_mask"], rinfo["action_mask"])
        seen["packed"] += int(core.packed.sum())
        a = _actions(rng, info["action_mask"])
        obs, r, te, tr, info = vec.step(a)
        robs, rr, rte, rtr, rinfo = ref.step(a)
        np.testing.assert_array_equal(r, rr, err_msg=f"step {step}")
        np.testing.assert_array_equal(tr, rtr)
        np.testing.assert_array_equal(te, rte)
        if "invalid_actions" in rinfo:
            m = rinfo["_invalid_actions"]
            np.testing.assert_array_equal(info["invalid_actions"][m], rinfo["invalid_actions"][m])
            np.testing.assert_array_equal(info["invalid"][m], rinfo["invalid"][m])
        for i in np.flatnonzero(tr):
            ends += 1
            want = rinfo["summary"] if "summary" in rinfo else rinfo["final_info"]["summary"]
            keys = [k for k, v in want.items() if isinstance(v, np.ndarray) and v.dtype != object]
            assert len(keys) > 20
            got = {k: info["summary"][k][i].item() for k in keys}
            assert_close(got, {k: want[k][i].item() for k in keys})  # sums to rounding (bulk)
    assert ends >= n and seen["packed"] > n * kw["num_queries"]
    assert seen["flush"] and seen["grow"] > 1  # the first allocation, then growth
    vec.close()
    ref.close()
