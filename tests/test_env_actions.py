"""Action edge cases of both environments (issue 11 item 6) and the Dispatch slot width from the
GPU spec (issue 10 item 8)."""

from __future__ import annotations

import numpy as np
import pytest

from mig_gym import hardware
from mig_gym.envs import DispatchEnv, PartitionEnv
from mig_gym.envs.base import EpisodeEndedError

SMALL = {
    "name": "actions",
    "cluster": {"num_gpus": 2},
    "models": [{"name": "resnet50", "slo_ms": 100}],
    "run": {"num_queries": 1000, "warmup_queries": 0},
    "env": {"queries_per_episode": 30, "epoch_s": 0.05, "epochs_per_episode": 3},
}


def _valid_slot(env: DispatchEnv) -> int:
    return int(np.flatnonzero(env.action_masks())[0])


@pytest.mark.parametrize(
    "make_bool",
    [
        lambda s: bool(s),
        lambda s: np.bool_(s),
        lambda s: np.array([bool(s)]),
        lambda s: np.array(bool(s)),
        lambda s: [bool(s)],
    ],
    ids=["bool", "np.bool_", "bool array", "0-d bool array", "list of bool"],
)
def test_dispatch_refuses_every_bool_like_action(make_bool):
    env = DispatchEnv(SMALL)
    env.reset(seed=0)
    slot = _valid_slot(env)
    assert slot in (0, 1)  # so True/False would name a valid slot if read as a number
    _, _, _, _, info = env.step(make_bool(slot))
    assert info["invalid"] and info["invalid_actions"] == 1
    _, _, _, _, info = env.step(np.int64(_valid_slot(env)))  # a number still works
    assert not info["invalid"] and info["invalid_actions"] == 1


def test_partition_refuses_wrong_shapes_and_bools():
    env = PartitionEnv({**SMALL, "env": {**SMALL["env"], "epochs_per_episode": 20}})
    env.reset(seed=0)
    keep = env.current_action()
    assert keep.shape == (2,)
    for bad in (
        keep[None, :],
        keep[:, None],
        keep[:1],
        np.concatenate([keep, keep]),
        np.array(keep[0]),
        keep.astype(bool),
        [True, False],
        [bool(keep[0]), keep[1]],
    ):
        _, _, _, _, info = env.step(bad)
        assert info["invalid"], bad
        assert info["reconfigured"] == 0 and np.array_equal(env.current_action(), keep)
    for good in (keep, list(keep), keep.astype(np.float32)):
        assert not env.step(good)[4]["invalid"]


@pytest.mark.parametrize("cls", [DispatchEnv, PartitionEnv])
def test_step_after_the_end_raises_the_same_error(cls):
    env = cls(SMALL)
    with pytest.raises(
        EpisodeEndedError, match=rf"^{cls.__name__}\.step\(\) called before reset\(\)"
    ):
        env.step(0)
    env.reset(seed=1)
    steps, done = 0, False
    while not done:
        a = _valid_slot(env) if cls is DispatchEnv else env.current_action()
        _, _, term, trunc, info = env.step(a)
        done, steps = term or trunc, steps + 1
    assert trunc and "summary" in info and steps > 1
    msg = rf"^{cls.__name__}\.step\(\) called after the episode ended: call reset\(\)"
    for _ in range(2):
        with pytest.raises(EpisodeEndedError, match=msg):
            env.step(0 if cls is DispatchEnv else env.current_action())
    assert issubclass(EpisodeEndedError, RuntimeError)
    env.reset(seed=2)  # and a new episode starts
    assert env.step(env.action_space.sample())[4]["invalid_actions"] <= 1


@pytest.mark.parametrize("gpu", ["A100-80GB", "A30"])
def test_dispatch_slot_width_is_the_gpus_gpc_count(gpu):
    sc = {
        **SMALL,
        "cluster": {"num_gpus": 3, "gpu": gpu},
        "policy": {"partitioner": {"kind": "homogeneous", "gpcs": 1}},
    }
    env = DispatchEnv(sc)
    gpcs = hardware.gpu_spec(gpu).gpcs
    assert env.slot_width == gpcs and env.action_space.n == 3 * gpcs
    env.reset(seed=0)
    parts = [p for g in env.run.sim.gpus for p in g.partitions]
    assert len(parts) == 3 * gpcs  # homo1 fills every slot
    assert [env.partition_slot(p) for p in parts] == list(range(3 * gpcs))
    assert all(env.slot_partition(env.partition_slot(p)) is p for p in parts)
    assert env.action_masks().all()
