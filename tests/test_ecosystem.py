"""Ecosystem fit: SB3's make_vec_env, rgb_array frames, missing extras, the RLlib example."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import mig_gym  # noqa: F401  (registers the environments)
from mig_gym.envs.render import frame_shape

REPO = Path(__file__).resolve().parents[1]
RESNET = str(REPO / "scenarios" / "paper_resnet50.yaml")


@pytest.mark.parametrize("env_id", ["mig_gym/Dispatch-v0", "mig_gym/Partition-v0"])
def test_make_vec_env_as_users_call_it(env_id):
    pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.env_util import make_vec_env

    kw = {"num_queries": 64} if "Dispatch" in env_id else {}
    venv = make_vec_env(env_id, n_envs=2, seed=0, env_kwargs=kw)
    try:
        obs = venv.reset()
        assert obs.shape == (2, *venv.observation_space.shape)
        venv.step(np.array([venv.action_space.sample() for _ in range(2)]))
        frames = venv.get_images()  # SB3 asked for rgb_array first and got it
        assert all(f.shape == frames[0].shape and f.dtype == np.uint8 for f in frames)
    finally:
        venv.close()


def test_rgb_frame_shows_the_cluster():
    env = gym.make("mig_gym/Dispatch-v0", render_mode="rgb_array", num_queries=300)
    blank = env.unwrapped.render()  # before reset (gymnasium's order wrapper would refuse)
    n = env.unwrapped.scenario.cluster.num_gpus
    assert blank.shape == frame_shape(n) and not blank.any()
    env.reset(seed=0)
    frames = []
    for _ in range(200):
        frames.append(env.render())
        *_, trunc, _ = env.step(int(np.flatnonzero(env.unwrapped.action_masks())[0]))
        if trunc:
            break
    assert all(f.shape == frame_shape(n) for f in frames)
    assert frames[-1].any()  # partitions drawn
    assert len({f.tobytes() for f in frames}) > 1  # queues and busy states change the picture
    env.close()


@pytest.mark.parametrize("env_id", ["mig_gym/Dispatch-v0", "mig_gym/Partition-v0"])
@pytest.mark.filterwarnings("ignore:.*not in the possible render_modes")
def test_unsupported_render_mode_is_a_clear_error(env_id):
    with pytest.raises(
        ValueError, match=r"render_mode must be None, 'ansi' or 'rgb_array', got 'video'"
    ):
        gym.make(env_id, render_mode="video")


def _without(module: str, *args: str) -> subprocess.CompletedProcess:
    """Run a Python command line with ``module`` made unimportable."""
    code = (
        f"import sys, runpy; sys.modules[{module!r}] = None; sys.argv = {list(args)!r}; "
        f"runpy.run_path({args[0]!r}, run_name='__main__')"
        if args[0].endswith(".py")
        else f"import sys; sys.modules[{module!r}] = None; "
        f"from mig_gym.cli import main; sys.exit(main({list(args)!r}))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)


ZOO_LINE = "zoo_train.py needs rl_zoo3 (rl_zoo3 is missing): pip install 'mig_gym[zoo]'"


def test_zoo_train_without_rl_zoo3_names_the_extra():
    r = _without("rl_zoo3", str(REPO / "agents" / "zoo_train.py"), "-n", "512")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [ZOO_LINE]


def test_zoo_train_help_works_without_rl_zoo3():
    r = _without("rl_zoo3", str(REPO / "agents" / "zoo_train.py"), "--help")
    assert r.returncode == 0 and r.stderr == ""
    assert "python agents/zoo_train.py -n 512" in r.stdout  # the launcher's usage
    assert r.stdout.strip().splitlines()[-1] == ZOO_LINE


def test_train_without_the_train_extra_names_it(tmp_path: Path):
    r = _without("torch", "train", RESNET, "--timesteps", "10", "--logdir", str(tmp_path))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "pip install 'mig_gym[train]'" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_rllib_example_without_rllib_names_it():
    if importlib.util.find_spec("ray") is not None and _rllib_importable():
        pytest.skip("ray.rllib is installed here")
    r = _without("ray.rllib", str(REPO / "agents" / "rllib_train.py"), "--help")
    assert r.returncode == 2 and "pip install 'ray[rllib]'" in r.stderr


def _rllib_importable() -> bool:
    try:
        import ray.rllib  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.slow
def test_rllib_example_trains():
    if not _rllib_importable():
        pytest.skip(
            "ray.rllib is not importable here: ray[rllib] 2.60 pins gymnasium==1.2.2, so it is not "
            "installed into the shared venv (gymnasium 1.4.0); run this test with gymnasium 1.2.2, "
            "dm_tree, lz4, ormsgpack and scipy ahead of the venv on PYTHONPATH"
        )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [sys.executable, str(REPO / "agents" / "rllib_train.py"), "--iterations", "2",
           "--batch", "512", "--num-queries", "128"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "iteration 2: episode_return_mean" in r.stdout
