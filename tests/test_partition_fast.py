"""Partition-v0 on the epoch fast path (mig_gym.sim.epochs) against the event-loop environment.

The same actions from the same reset give the same trajectory: rewards, reward terms and the
episode summary equal to 1e-9 (relative), the other info entries exactly, and observations equal
to float32 rounding (they are float32 casts of values equal to 1e-9). Actions reconfigure GPUs,
so the boundary semantics (queued queries re-dispatched, running ones draining, downtime) are
exercised. Runs the fast path cannot take fall back to the event loop and say why.
"""

from __future__ import annotations

import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import mig_gym  # noqa: F401  (registers the environments)
from mig_gym.scenario import load_scenario, replace_in
from mig_gym.sim import compiled

SCEN = Path(__file__).resolve().parent.parent / "scenarios"
REL = 1e-9


def _close(a: object, b: object, path: str = "") -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, path  # type: ignore[union-attr]
        if a.dtype == np.float32:  # one float32 rounding step apart at most
            np.testing.assert_allclose(a, b, rtol=2.0**-22, atol=1e-7, err_msg=path)
        else:
            np.testing.assert_array_equal(a, b, err_msg=path)
    elif isinstance(a, float) or isinstance(b, float):
        if math.isnan(a) or math.isnan(b):  # type: ignore[arg-type]
            assert math.isnan(a) and math.isnan(b), (path, a, b)  # type: ignore[arg-type]
        else:
            assert math.isclose(a, b, rel_tol=REL, abs_tol=1e-12), (path, a, b)  # type: ignore[arg-type]
    else:
        assert a == b, (path, a, b)


def _rollout(name: str, mode: str, steps: int, fast: bool, policy: str | None = None) -> list:
    env = gym.make("mig_gym/Partition-v0", scenario=str(SCEN / f"{name}.yaml"), fast=fast,
                   policy=policy)  # fmt: skip
    u = env.unwrapped
    obs, info = env.reset(seed=5)
    assert u.loop == ("fast" if fast else "events")
    assert u.compiled == (fast and compiled.AVAILABLE)  # the default: compiled wherever numba is
    rng = np.random.default_rng(2)
    out: list = [obs, info]
    for i in range(steps):
        if mode == "random":  # nearly every GPU changes at every epoch
            action = rng.integers(0, u.choices, u.num_gpus)
        else:  # one GPU every other epoch
            action = u.current_action()
            if i % 2 == 0:
                action[rng.integers(u.num_gpus)] = rng.integers(u.choices)
        obs, reward, term, trunc, info = env.step(action)
        assert info.pop("loop") == u.loop
        out += [obs, reward, term, trunc, info]
        if term or trunc:
            break
    env.close()
    return out


@pytest.mark.parametrize(
    ("name", "mode", "steps", "policy"),
    [
        ("diurnal_drift", "random", 5, None),
        ("diurnal_drift", "sometimes", 6, None),
        ("drift_mix_flip", "random", 8, None),
        ("drift_tiny_huge", "sometimes", 8, None),
        ("drift_load_ramp", "random", 8, None),
        ("drift_mix_flip", "random", 8, "paris+fifs"),
        ("drift_tiny_huge", "sometimes", 8, "periodic_paris+fifs"),
    ],
)
def test_partition_env_on_the_fast_path_equals_the_event_loop_env(name, mode, steps, policy):
    if policy and "fifs" in policy and not compiled.AVAILABLE:
        pytest.skip("pull dispatch takes the epoch fast path only with numba (the fast extra)")
    fast = _rollout(name, mode, steps, fast=True, policy=policy)
    events = _rollout(name, mode, steps, fast=False, policy=policy)
    assert len(fast) == len(events)
    for i, (a, b) in enumerate(zip(fast, events, strict=True)):
        _close(a, b, f"item {i}")
    assert sum(x["reconfigured"] for x in events[6::5]) > 0  # the actions re-partitioned


def test_without_numba_the_fast_path_runs_its_python_loops_with_the_same_results(monkeypatch):
    monkeypatch.setattr(compiled, "AVAILABLE", False)
    fast = _rollout("drift_tiny_huge", "random", 6, fast=True)
    events = _rollout("drift_tiny_huge", "random", 6, fast=False)
    for i, (a, b) in enumerate(zip(fast, events, strict=True)):
        _close(a, b, f"item {i}")


def test_a_whole_episode_matches_with_its_summary():
    sc = replace_in(load_scenario(SCEN / "drift_mix_flip.yaml"), "env.epoch_s", 5.0)
    sc = replace_in(sc, "env.epochs_per_episode", 6)
    runs = []
    for fast in (True, False):
        env = gym.make("mig_gym/Partition-v0", scenario=sc, fast=fast)
        env.reset(seed=1)
        rng = np.random.default_rng(0)
        while True:
            _, _, _, trunc, info = env.step(rng.integers(0, env.unwrapped.choices, 8))
            if trunc:
                break
        runs.append((info["summary"], env.unwrapped.run.recorder.series))
    _close(runs[0][0], runs[1][0])
    assert len(runs[0][1]) == len(runs[1][1]) == 6
    for a, b in zip(runs[0][1], runs[1][1], strict=True):
        _close(a, b)


@pytest.mark.parametrize(
    ("scenario", "policy", "why"),
    [
        ("faults.yaml", None, "faults"),
        ("drift_mix_flip.yaml", "paris+jsq", "no closed-form fast rule"),
    ],
)
def test_runs_the_fast_path_cannot_take_use_the_event_loop_and_say_why(scenario, policy, why):
    env = gym.make("mig_gym/Partition-v0", scenario=str(SCEN / scenario), policy=policy)
    env.reset(seed=0)
    assert env.unwrapped.loop == "events" and why in env.unwrapped.loop_note
    assert env.step(env.unwrapped.current_action())[4]["loop"] == "events"


def test_without_numba_pull_dispatch_uses_the_event_loop_and_says_why(monkeypatch):
    monkeypatch.setattr(compiled, "AVAILABLE", False)
    env = gym.make("mig_gym/Partition-v0", scenario=str(SCEN / "drift_mix_flip.yaml"),
                   policy="paris+fifs")  # fmt: skip
    env.reset(seed=0)
    assert env.unwrapped.loop == "events" and "only with numba" in env.unwrapped.loop_note


@pytest.mark.skipif(not compiled.AVAILABLE, reason="pull dispatch: epoch path only with numba")
def test_the_pull_runner_pickles_mid_episode_and_resumes_the_same_trajectory():
    import pickle

    env = gym.make("mig_gym/Partition-v0", scenario=str(SCEN / "drift_mix_flip.yaml"),
                   policy="paris+fifs").unwrapped  # fmt: skip
    env.reset(seed=3)
    rng = np.random.default_rng(4)
    for _ in range(2):
        env.step(rng.integers(0, env.choices, env.num_gpus))
    assert env.loop == "fast"
    twin = pickle.loads(pickle.dumps(env))
    for _ in range(3):
        act = rng.integers(0, env.choices, env.num_gpus)
        for i, (x, y) in enumerate(zip(env.step(act), twin.step(act), strict=True)):
            _close(x, y, f"item {i}")
