"""Environment step rates: Dispatch-v0 and Partition-v0 with random valid actions, measured side
by side with gymnasium's CartPole-v1 (all through ``gymnasium.make``, so with the same wrappers;
CartPole, Dispatch-v0 and its vector environment run in turn in quarter-second slices, so that a
change of machine speed touches all three alike); the aggregate steps/s of Dispatch-v0's native
vector environment with 8 environments in one process (``gymnasium.make_vec``, random valid
actions drawn for all 8 at once); and Partition-v0
on ``scenarios/diurnal_drift.yaml`` (8 GPUs) on the epoch fast path next to the same environment
on the event loop (``fast=False``), over the same first epochs of an episode (best of 3 each,
interleaved) with the same actions (random ones, which re-partition nearly every GPU at every
epoch, and ones that keep the plan), with the default dispatcher (ELSA) and, with random
actions, FIFS's central queue (the pull runner)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import mig_gym  # noqa: F401  (registers the environments)

DRIFT = Path(__file__).resolve().parent.parent / "scenarios" / "diurnal_drift.yaml"


def _stepper(env: gym.Env, pick: Any, seed: int = 0) -> Any:
    """A function ``run(seconds) -> (steps, elapsed)`` that steps ``env`` for about ``seconds``,
    each action drawn by ``pick(env, info)`` from the last step's (or reset's) info, carrying
    on where the previous call stopped (resets included)."""
    _, info = env.reset(seed=seed)
    last = [info]

    def run(seconds: float) -> tuple[int, float]:
        info, n, t0 = last[0], 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            _, _, term, trunc, info = env.step(pick(env, info))
            n += 1
            if term or trunc:
                _, info = env.reset()
        last[0] = info
        return n, time.perf_counter() - t0

    return run


def _interleaved(runs: dict[str, Any], seconds: float, slice_s: float = 0.25) -> dict[str, float]:
    """Steps/s of each stepper, run in turn in slices of ``slice_s`` for about ``seconds`` each:
    a change of machine speed during the measurement touches all of them alike."""
    steps = dict.fromkeys(runs, 0)
    spent = dict.fromkeys(runs, 0.0)
    for _ in range(max(1, round(seconds / slice_s))):
        for name, run in runs.items():
            n, dt = run(slice_s)
            steps[name] += n
            spent[name] += dt
    return {name: steps[name] / spent[name] for name in runs}


def _epochs_rate(fast: bool, mode: str, steps: int, policy: str | None = None,
                 compiled: bool = True) -> tuple[float, str, bool]:  # fmt: skip
    """Partition-v0 steps/s over the first ``steps`` epochs of an episode on diurnal_drift;
    the loop that ran and whether it was compiled (``compiled=False``: Python loops only)."""
    env = gym.make("mig_gym/Partition-v0", scenario=str(DRIFT), fast=fast, policy=policy,
                   compiled=compiled)  # fmt: skip
    env.reset(seed=0)
    env.action_space.seed(0)
    u = env.unwrapped
    t0 = time.perf_counter()
    for _ in range(steps):
        env.step(env.action_space.sample() if mode == "random" else u.current_action())
    rate = steps / (time.perf_counter() - t0)
    return rate, u.loop, u.compiled


_FIRST_USE = """
import time, gymnasium as gym, mig_gym
times = []
for _ in range(2):
    env = gym.make("mig_gym/Partition-v0", scenario=%r)
    env.reset(seed=0)
    t0 = time.perf_counter()
    env.step(env.unwrapped.current_action())
    times.append(time.perf_counter() - t0)
print(max(times[0] - times[1], 0.0))
"""


def _first_use_s() -> float:
    """Seconds of a fresh process's first fast-path step beyond its second: with numba, its
    import and the loading (or, with no cache yet, the compiling) of the kernels."""
    code = _FIRST_USE % str(DRIFT)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def run_epochs(steps: int, repeats: int = 3) -> dict[str, Any]:
    """The epoch fast path against the event loop on diurnal_drift, per kind of action: best of
    ``repeats`` for each, the two interleaved so that a change of load touches both (after the
    fast path's one-off first-use cost, reported on its own)."""
    out: dict[str, Any] = {"scenario": DRIFT.name, "steps": steps, "repeats": repeats,
                           "first_use_s": _first_use_s()}  # fmt: skip
    # the default dispatcher (ELSA) per kind of action, and FIFS (pull: its own compiled runner);
    # the reference is the Python event loop (compiled=False), the loop before either fast path;
    # the event loop with its compiled core (push rules only) is timed beside them
    for key, mode, policy in (("random", "random", None), ("keep", "keep", None),
                              ("fifs", "random", "paris+fifs")):  # fmt: skip
        fast = events = core = 0.0
        for _ in range(repeats):
            f, loop_f, compiled = _epochs_rate(True, mode, steps, policy)
            e, loop_e, _ = _epochs_rate(False, mode, steps, policy, compiled=False)
            c, _, _ = _epochs_rate(False, mode, steps, policy)
            fast, events, core = max(fast, f), max(events, e), max(core, c)
        out[key] = {"fast": fast, "events": events, "ratio": fast / events,
                    "events_core": core, "core_ratio": core / events,
                    "loops": [loop_f, loop_e], "compiled": compiled}  # fmt: skip
    return out


def _vector_stepper(scenario: str | None, num_envs: int, seed: int = 0,
                    compiled_step: bool = True) -> Any:  # fmt: skip
    """As :func:`_stepper` for the native vector environment, counting env-steps (autoreset
    included), random valid actions drawn for all rows at once."""
    venv = gym.make_vec("mig_gym/Dispatch-v0", num_envs=num_envs, scenario=scenario,
                        compiled_step=compiled_step)  # fmt: skip
    rng = np.random.default_rng(seed)
    _, info = venv.reset(seed=seed)
    last = [info]

    def run(seconds: float) -> tuple[int, float]:
        info, n, t0 = last[0], 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            # uniform over each row's valid slots (argmax of random keys on the mask)
            keys = rng.random(info["action_mask"].shape) * info["action_mask"]
            _, _, _, _, info = venv.step(keys.argmax(axis=1))
            n += num_envs
        last[0] = info
        return n, time.perf_counter() - t0

    return run


def run(scenario: str | None, seconds: float = 3.0, num_envs: int = 8) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    cart = gym.make("CartPole-v1")
    cart.action_space.seed(0)
    disp = gym.make("mig_gym/Dispatch-v0", scenario=scenario)
    part = gym.make("mig_gym/Partition-v0", scenario=scenario)

    draws = iter(rng.random(10_000_000))

    def valid(env: gym.Env, info: dict) -> int:  # uniform over the valid slots (the info's
        idx = np.flatnonzero(info["action_mask"])  # mask, as an agent reads it), cheap to draw
        return int(idx[int(next(draws) * len(idx))])

    def sample(env: gym.Env, info: dict) -> Any:
        return env.action_space.sample()

    # CartPole, Dispatch-v0 and its vector environment in turn, slice by slice
    rates = _interleaved({
        "cartpole": _stepper(cart, sample),
        "dispatch": _stepper(disp, valid),
        "dispatch_vec": _vector_stepper(scenario, num_envs),
        "dispatch_vec_python": _vector_stepper(scenario, num_envs, compiled_step=False),
    }, seconds)  # fmt: skip
    n, dt = _stepper(part, sample)(seconds)  # (seconds per step: not sliced)
    rates["partition"] = n / dt
    return {
        "steps_per_s": rates,
        "seconds": seconds,
        "dispatch_vs_cartpole": rates["dispatch"] / rates["cartpole"],
        "partition_vs_cartpole": rates["partition"] / rates["cartpole"],
        "vec_num_envs": num_envs,
        "dispatch_vec_vs_cartpole": rates["dispatch_vec"] / rates["cartpole"],
        "dispatch_vec_python_vs_cartpole": rates["dispatch_vec_python"] / rates["cartpole"],
    }
