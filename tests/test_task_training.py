"""``mig-gym train TASK``: the recipes shipped for the registered tasks, the choice-feature policy
of Partition-v0, the wall-clock budget, and the score of a saved agent measured exactly as the
baseline tables measure a reference policy. Skipped without the ``train`` extra."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml

pytest.importorskip("sb3_contrib")

from sb3_contrib import MaskablePPO

from mig_gym.cli import main
from mig_gym.envs import EVAL_SEED_BASE
from mig_gym.envs.tasks import DISPATCH_TASKS, PARTITION_TASKS, get_task
from mig_gym.learn import nets, tasks
from mig_gym.runs import baselines
from mig_gym.scenario import config as C

ALL = [t.env_id for t in (*DISPATCH_TASKS, *PARTITION_TASKS)]
TINY_RECIPE = {  # one short rollout: a test, not a training run
    "defaults": {
        "partition": {
            "algo": "maskable_ppo",
            "time_limit_min": 5,
            "hyperparams": {
                "n_timesteps": 12,
                "policy": "LayoutPolicy",
                "n_envs": 1,
                "n_steps": 12,
                "batch_size": 12,
                "n_epochs": 1,
                "policy_kwargs": {"hidden": 16, "keep_init": 50.0},
            },
        }
    }
}


@pytest.mark.parametrize("task_id", ALL)
def test_every_task_has_a_recipe_that_names_a_known_policy(task_id: str):
    r = tasks.load_recipe(task_id)
    assert r.algo == "maskable_ppo" and 0 < r.time_limit_min <= 30
    assert r.hyperparams["policy"] in MaskablePPO.policy_aliases
    assert tasks.task_kind(task_id) == ("dispatch" if "Dispatch" in task_id else "partition")


def test_a_task_entry_overrides_the_defaults_key_by_key(tmp_path: Path):
    doc = {
        "defaults": TINY_RECIPE["defaults"],
        "mig_gym/Partition-mix_flip-v0": {"time_limit_min": 2, "hyperparams": {"n_steps": 24}},
    }
    f = tmp_path / "r.yml"
    f.write_text(yaml.safe_dump(doc))
    r = tasks.load_recipe("Partition-mix_flip-v0", f)
    assert r.time_limit_min == 2 and r.hyperparams["n_steps"] == 24
    assert r.hyperparams["policy"] == "LayoutPolicy"  # the rest from the defaults
    doc["mig_gym/Partition-mix_flip-v0"]["budget"] = 3
    f.write_text(yaml.safe_dump(doc))
    with pytest.raises(ValueError, match=r"unknown recipe keys \['budget'\]"):
        tasks.load_recipe("mig_gym/Partition-mix_flip-v0", f)
    with pytest.raises(KeyError, match="unknown task 'Partition-nope-v0'"):
        tasks.load_recipe("Partition-nope-v0", f)


def test_choice_features_follow_the_action_encoding():
    env = gym.make("mig_gym/Partition-mix_flip-v0").unwrapped
    sizes = (1, 2, 3, 4, 7)
    phi = np.asarray(nets.choice_features([lay.sizes for lay in env.layouts], sizes, 2))
    assert phi.shape[0] == env.choices == int(env.action_space.nvec[0])
    for a in (0, 5, env.choices - 1):
        lay, model = env.decode(a)
        counts = [sum(1 for p in lay.sizes if p == s) for s in sizes]
        assert phi[a, :5].tolist() == counts and phi[a, 5 + model] == 1.0


def test_layout_policy_starts_by_keeping_the_plan_and_scores_like_the_baseline(tmp_path: Path):
    """Untrained, with a large keep bonus, the agent keeps the initial (static PARIS) plan, so its
    score on a held-out seed is exactly the baseline table's static PARIS score: the agent is
    scored by the same measure as the baselines."""
    f = tmp_path / "r.yml"
    f.write_text(yaml.safe_dump(TINY_RECIPE))
    path = tasks.train_task(
        "Partition-tiny_huge-v0", logdir=tmp_path, recipes=f, eval_episodes=1, progress=False
    )
    assert path.relative_to(tmp_path).parts == (
        "Partition-tiny_huge-v0",
        "drift_tiny_huge",
        "maskable_ppo-s0",
        "model.zip",
    )
    meta = json.loads(path.with_name("model.json").read_text())
    assert meta["policy"] == "LayoutPolicy" and meta["steps_done"] >= 12
    assert meta["stopped_early"] is False
    seed = EVAL_SEED_BASE + 3
    (got,) = tasks.score(path, "Partition-tiny_huge-v0", [seed])
    env = gym.make("mig_gym/Partition-tiny_huge-v0", disable_env_checker=True)
    spec = baselines.TaskSpec("t", "partition", env.unwrapped.scenario, "medium")
    assert got == baselines.task_score(spec, "paris+elsa", seed)


def test_time_limit_stops_learning(tmp_path: Path):
    doc = json.loads(json.dumps(TINY_RECIPE))
    doc["defaults"]["partition"]["hyperparams"]["n_timesteps"] = 10_000
    f = tmp_path / "r.yml"
    f.write_text(yaml.safe_dump(doc))
    path = tasks.train_task(
        "Partition-tiny_huge-v0",
        logdir=tmp_path,
        recipes=f,
        time_limit_min=1e-4,  # 6 ms: the first rollout already passes it
        eval_episodes=1,
        progress=False,
    )
    meta = json.loads(path.with_name("model.json").read_text())
    assert meta["stopped_early"] is True and meta["steps_done"] < 10_000


def test_dispatch_task_scenario_is_the_task():
    """Dispatch-v0 on a task's scenario is the task: same horizon, same episode."""
    t = get_task("Dispatch-bert-90-v0")
    sc = t.load()
    assert isinstance(sc, C.Scenario) and sc.env.queries_per_episode == t.horizon
    a = gym.make(t.env_id, disable_env_checker=True)
    b = gym.make("mig_gym/Dispatch-v0", scenario=sc, disable_env_checker=True)
    oa, _ = a.reset(options={"episode_seed": 5})
    ob, _ = b.reset(options={"episode_seed": 5})
    assert np.array_equal(oa, ob)
    for _ in range(50):
        act = int(np.flatnonzero(a.unwrapped.action_masks())[0])
        ra = a.step(act)
        rb = b.step(act)
        assert np.array_equal(ra[0], rb[0]) and ra[1] == rb[1]


@pytest.mark.parametrize(
    ("argv", "msg"),
    [
        (["train", "Partition-nope-v0"], "neither a scenario file nor a task"),
        (["train", "Partition-mix_flip-v0", "--env", "dispatch"], "--env: a task's recipe"),
        (["train", "mig_gym/Dispatch-bert-90-v0", "--bc-steps", "5"], "--bc-steps: a task's"),
        (["train", "Dispatch-bert-90-v0", "--time-limit", "0"], "--time-limit"),
    ],
)
def test_train_task_user_errors(argv: list[str], msg: str, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err
