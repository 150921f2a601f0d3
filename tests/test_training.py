"""Learned agents end to end: train, save, load, compare, TensorBoard tags, behaviour cloning, the
PPO/DQN options, Partition-v0 training, the baseline scripts in ``agents/`` and the rl_zoo3
launcher. Skipped without the ``train`` extra; everything runs on a 2-GPU, low-load scenario."""

from __future__ import annotations

import csv
import itertools
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("sb3_contrib")

import torch
from sb3_contrib import MaskablePPO
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mig_gym.cli import main
from mig_gym.envs import reference_policy
from mig_gym.envs.dispatch import PART_FEATURES
from mig_gym.learn import evaluation, training
from mig_gym.output.tensorboard import read_layout, read_scalars, reference_scalars, serving_scalars
from mig_gym.scenario import load_scenario

from .conftest import REPO, strict_loads

TINY = {
    "name": "tiny",
    "seed": 0,
    "cluster": {"gpu": "A100-80GB", "num_gpus": 2, "reconfig_s": 1.0},
    "models": [{"name": "resnet50", "slo_ms": 100}],
    "workload": {"arrivals": {"kind": "poisson", "rate_qps": 120}},  # ~40 % of 2 GPUs
    "run": {"num_queries": 300, "warmup_queries": 0},
    "env": {"queries_per_episode": 300, "epoch_s": 1.0, "epochs_per_episode": 3},
}
SMALL_HP = {  # rollouts and updates small enough for a test
    "maskable_ppo": {
        "policy": "SlotPolicy",
        "n_envs": 1,
        "n_steps": 128,
        "batch_size": 64,
        "n_epochs": 2,
        "gamma": 0.9,
        "policy_kwargs": {"hidden": 32},
    },
    "ppo": {
        "policy": "MlpPolicy",
        "n_envs": 1,
        "n_steps": 128,
        "batch_size": 64,
        "n_epochs": 2,
        "policy_kwargs": {"net_arch": [32, 32]},
    },
    "dqn": {
        "policy": "MlpPolicy",
        "buffer_size": 1000,
        "learning_starts": 100,
        "batch_size": 32,
        "train_freq": 4,
        "target_update_interval": 100,
        "policy_kwargs": {"net_arch": [32]},
    },
}
MAIN_TAGS = {
    "serving/p95_ms",
    "serving/sla_violation_rate",
    "serving/goodput_qps",
    "serving/utilization",
}
EVAL_EPISODES = 2


def _serving(scalars: dict) -> set[str]:
    return {t for t in scalars if t.startswith("serving/")}


def _hp_file(tmp: Path, algo: str) -> Path:
    path = tmp / f"{algo}.yml"
    path.write_text(yaml.safe_dump({"mig_gym/Dispatch-v0": SMALL_HP[algo]}))
    return path


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    torch.set_num_threads(1)  # 2-core machines: more threads only contend


@pytest.fixture(scope="module")
def tiny_yaml(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("scenario") / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One short MaskablePPO run (behaviour-cloning warm start, 256 steps, 3 evaluations)."""
    tmp = tmp_path_factory.mktemp("train")
    return training.train(
        TINY,
        timesteps=256,
        logdir=tmp / "runs",
        eval_freq=128,
        eval_episodes=EVAL_EPISODES,
        bc_steps=600,
        bc_epochs=5,
        hyperparams=_hp_file(tmp, "maskable_ppo"),
        progress=False,
    )


def test_train_save_load_and_compare(trained: Path, tiny_yaml: Path, tmp_path: Path):
    assert trained.name == "model.zip" and trained.is_file()
    assert trained.parent.name == "maskable_ppo-dispatch-s0-bc"
    pol = evaluation.load_learned(f"maskable_ppo:{trained}")
    assert isinstance(pol.model, MaskablePPO) and pol.env_kind == "dispatch"
    summary, _ = pol.run(load_scenario(TINY), seed=3)
    assert summary.arrived == 300 and summary.conserved
    # "ppo:" also loads it: model.json names the algorithm
    assert isinstance(evaluation.load_learned(f"ppo:{trained}").model, MaskablePPO)

    spec = f"maskable_ppo:{trained}"
    rc = main(
        [
            "compare",
            str(tiny_yaml),
            "--policies",
            f"paris+elsa,{spec}",
            "--seeds",
            "1",
            "--num-queries",
            "2500",
            "--logdir",
            str(tmp_path),
            "--jobs",
            "1",
            "--no-progress",
        ]
    )
    assert rc == 0
    with (tmp_path / "tiny" / "compare.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["policy"] for r in rows] == ["paris+elsa", spec]
    assert all(int(r["arrived"]) == 2500 and r["conserved"] == "True" for r in rows)
    learned = read_scalars(tmp_path / "tiny" / "maskable_ppo-maskable_ppo-dispatch-s0-bc")
    assert set(learned) == set(read_scalars(tmp_path / "tiny" / "paris+elsa"))
    by_seed = {t.replace("serving/", "compare/by_seed/") for t in MAIN_TAGS}
    assert set(learned) >= by_seed and not set(learned) & MAIN_TAGS  # compare's own namespace


def test_missing_model_is_a_user_error(tiny_yaml: Path, tmp_path: Path, capsys):
    rc = main(
        [
            "compare",
            str(tiny_yaml),
            "--policies",
            f"paris+elsa,ppo:{tmp_path}/no.zip",
            "--logdir",
            str(tmp_path),
            "--no-progress",
        ]
    )
    assert rc == 2 and "model file not found" in capsys.readouterr().err


def test_evaluation_writes_serving_tags_beside_references(trained: Path):
    agent = read_scalars(trained.parent)
    assert _serving(agent) >= MAIN_TAGS
    steps = [s for s, _ in agent["serving/p95_ms"]]
    assert steps == [0, 128, 256]
    for ref in training.REFERENCES["dispatch"]:
        ref_scalars = read_scalars(trained.parent.parent / f"{ref}-eval")
        tags = set(reference_scalars(ref, dict.fromkeys(_serving(agent), 0.0)))
        assert set(ref_scalars) == tags, ref  # the same metrics, nothing else
        p95 = "random/p95_ms" if ref == "random" else "serving/p95_ms"  # random: own charts
        assert [s for s, _ in ref_scalars[p95]] == steps
        assert len({v for _, v in ref_scalars[p95]}) == 1  # a flat line
    layout = read_layout(trained.parent)
    assert layout.category[0].title.startswith("serving") and not layout.category[0].closed
    assert [c.multiline.tag[0] for c in layout.category[0].chart][:2] == [
        "^serving/sla_violation_rate$",
        "^serving/p95_ms$",
    ]
    meta = strict_loads((trained.parent / "model.json").read_text())
    assert [h["step"] for h in meta["eval_history"]] == steps
    # validation seeds, disjoint from the held-out ones that score a finished agent
    assert meta["eval_seeds"] == [training.VALIDATION_SEED_BASE + i for i in range(EVAL_EPISODES)]
    assert not set(meta["eval_seeds"]) & {training.EVAL_SEED_BASE + i for i in range(100)}
    assert meta["keep_best"] is False and meta["selected_step"] == meta["steps_done"]
    assert set(meta["references"]) == set(training.REFERENCES["dispatch"])


def test_hyperparameters_logged(trained: Path):
    meta = strict_loads((trained.parent / "model.json").read_text())
    assert meta["algo"] == "maskable_ppo" and meta["env"] == "mig_gym/Dispatch-v0"
    assert meta["timesteps"] == 256 and meta["bc_steps"] == 600
    assert meta["policy"] == "SlotPolicy"
    assert meta["n_steps"] == "128" and meta["gamma"] == "0.9" and "hidden" in meta["policy_kwargs"]
    assert meta["scenario_name"] == "tiny" and meta["scenario"]["cluster"]["num_gpus"] == 2
    acc = EventAccumulator(str(trained.parent))
    acc.Reload()
    hp_tags = acc.PluginTagToContent("hparams")
    assert "_hparams_/session_start_info" in hp_tags and "_hparams_/experiment" in hp_tags
    assert b"n_steps" in hp_tags["_hparams_/session_start_info"]
    assert b"serving/p95_ms" in hp_tags["_hparams_/experiment"]  # the hparams metric
    losses = read_scalars(trained.parent)["bc/loss"]
    assert [v for _, v in losses] == pytest.approx(meta["bc_losses"])


def _slot_features(obs: np.ndarray, actions: np.ndarray, slots: int) -> np.ndarray:
    """(size, estimated completion / SLA) of the chosen slot of every observation."""
    f = len(PART_FEATURES)
    block = obs[:, : slots * f].reshape(len(obs), slots, f)
    return block[np.arange(len(obs)), actions][:, [0, 3]]


def test_behaviour_cloning_imitates_elsa(trained: Path):
    """A SlotPolicy cloned on 3000 ELSA decisions picks, on held-out observations, a partition
    the observation cannot tell apart from ELSA's (same size and estimated completion) in ~97 %
    of cases (measured 0.97; untrained 0.06), and ELSA's exact slot in ~62 % (ELSA breaks ties
    between idle partitions of a size by when they became free, which the observation clips)."""
    meta = strict_loads((trained.parent / "model.json").read_text())
    assert all(b < a + 1e-3 for a, b in itertools.pairwise(meta["bc_losses"]))
    assert meta["bc_losses"][-1] < meta["bc_losses"][0]

    sc = load_scenario(TINY)
    obs, acts, masks = training.record_demonstrations(sc, "dispatch", 3000, seed=0)
    h_obs, h_acts, h_masks = training.record_demonstrations(sc, "dispatch", 2000, seed=777)
    torch.manual_seed(0)
    venv = training.make_vec_env(sc, "dispatch", 1, 0)
    model = MaskablePPO("SlotPolicy", venv, seed=0, device="cpu", policy_kwargs={"hidden": 64})

    def accuracy() -> tuple[float, float]:
        pred, _ = model.predict(h_obs, action_masks=h_masks, deterministic=True)
        same = (
            np.abs(
                _slot_features(h_obs, pred, masks.shape[1])
                - _slot_features(h_obs, h_acts, masks.shape[1])
            )
            < 1e-5
        )
        return float((pred == h_acts).mean()), float(same.all(axis=1).mean())

    _, before = accuracy()
    losses = training.behaviour_clone(model, obs, acts, masks, epochs=15, lr=3e-3, seed=0)
    exact, equivalent = accuracy()
    venv.close()
    assert all(b < a + 1e-3 for a, b in itertools.pairwise(losses)), losses
    assert losses[-1] < 0.6 * losses[0]
    assert before < 0.3
    assert equivalent >= 0.90, (exact, equivalent)
    assert exact >= 0.45, (exact, equivalent)


def test_keep_best_saves_the_checkpoint_with_the_fewest_violations(tmp_path: Path):
    """With keep_best the saved model is the evaluation with the lowest validation score (the
    first of equals): scored again on the validation seeds it gives that evaluation's score,
    and a run without it saves the last parameters."""
    busy = {**TINY, "workload": {"arrivals": {"kind": "poisson", "rate_qps": 330}}}  # ~110 %
    hp = {**SMALL_HP["maskable_ppo"], "learning_rate": 0.05}  # large: RL moves the cloned rule
    kw = dict(timesteps=512, eval_freq=128, eval_episodes=2, bc_steps=600, bc_epochs=5)
    path = training.train(
        busy, logdir=tmp_path, hyperparams=hp, progress=False, keep_best=True, **kw
    )
    meta = strict_loads((path.parent / "model.json").read_text())
    hist = [(h["step"], h["serving/sla_violation_rate"]) for h in meta["eval_history"]]
    assert len({v for _, v in hist}) > 1, hist  # the evaluations differ: a choice to make
    best = min(hist, key=lambda sv: sv[1])  # min() keeps the first of equals
    assert meta["keep_best"] is True and meta["selected_step"] == best[0]
    model = MaskablePPO.load(path, device="cpu")
    again = evaluation.evaluate(
        load_scenario(busy), "dispatch", evaluation.model_act(model), meta["eval_seeds"]
    )
    assert np.mean([s.sla_violation_rate for s, _ in again]) == pytest.approx(best[1], abs=1e-12)


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_ppo_and_dqn_train(algo: str, tmp_path: Path):
    path = training.train(
        TINY,
        algo=algo,
        timesteps=300,
        logdir=tmp_path,
        eval_episodes=1,
        hyperparams=_hp_file(tmp_path, algo),
        progress=False,
    )
    meta = strict_loads((path.parent / "model.json").read_text())
    assert meta["algo"] == algo and meta["timesteps"] == 300
    scalars = read_scalars(path.parent)
    assert set(scalars) >= MAIN_TAGS | {"train/loss"}  # gradient steps were taken
    pol = evaluation.load_learned(f"{algo}:{path}")
    assert pol.algo == algo and type(pol.model) is evaluation.ALGOS[algo]
    summary, _ = pol.run(load_scenario(TINY), seed=1)
    assert summary.conserved and summary.arrived == 300


def test_dqn_on_partition_is_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="dqn needs a Discrete action space"):
        training.train(TINY, algo="dqn", env_kind="partition", timesteps=10, logdir=tmp_path)
    with pytest.raises(ValueError, match="env must be one of"):
        training.train(TINY, env_kind="placement", timesteps=10, logdir=tmp_path)


def test_partition_training_smoke(tmp_path: Path):
    path = training.train(
        TINY,
        env_kind="partition",
        timesteps=64,
        n_envs=1,
        logdir=tmp_path,
        eval_episodes=1,
        progress=False,
    )
    assert path.parent.name == "maskable_ppo-partition-s0"
    meta = strict_loads((path.parent / "model.json").read_text())
    assert meta["env"] == "mig_gym/Partition-v0" and meta["policy"] == "MlpPolicy"
    agent = _serving(read_scalars(path.parent))
    assert agent >= MAIN_TAGS
    for ref in training.REFERENCES["partition"]:
        tags = set(reference_scalars(ref, dict.fromkeys(agent, 0.0)))
        assert set(read_scalars(tmp_path / "tiny" / f"{ref}-eval")) == tags
    pol = evaluation.load_learned(f"maskable_ppo:{path}")
    assert pol.env_kind == "partition"
    summary, _ = pol.run(load_scenario(TINY), seed=2)
    assert summary.conserved
    bare = tmp_path / "bare" / "model.zip"  # no model.json (as rl_zoo3 saves): the space tells
    bare.parent.mkdir()
    shutil.copy(path, bare)
    assert evaluation.load_learned(f"maskable_ppo:{bare}").env_kind == "partition"


# --------------------------------------------------------------------------- agents/ scripts
NO_TORCH = (
    "import sys, runpy; sys.modules['torch'] = None; sys.argv = sys.argv[1:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


@pytest.mark.parametrize(
    ("script", "policies"),
    [
        ("run_elsa.py", ["elsa"]),
        (
            "run_dispatch_baselines.py",
            ["elsa", "fifs_push", "earliest_finish", "jsq", "round_robin", "random"],
        ),
        ("run_partition_baselines.py", ["static", "periodic_paris"]),
    ],
)
def test_baseline_scripts_write_serving_tags(script, policies, tiny_yaml, tmp_path):
    path = REPO / "agents" / script
    text = path.read_text()
    assert len(text.splitlines()) < 60
    assert "from mig_gym.envs import EVAL_SEED_BASE" in text  # the same held-out seeds
    # without torch: the scripts need only the core package
    cmd = [
        sys.executable,
        "-c",
        NO_TORCH,
        str(path),
        "--scenario",
        str(tiny_yaml),
        "--logdir",
        str(tmp_path),
        "--episodes",
        str(EVAL_EPISODES),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert all(p in out.stdout.lower() for p in policies)
    sc = load_scenario(tiny_yaml)
    held = [training.EVAL_SEED_BASE + i for i in range(EVAL_EPISODES)]
    for p in policies:
        scalars = read_scalars(tmp_path / "tiny" / f"{p}-script")
        assert set(scalars) >= MAIN_TAGS
        assert [s for s, _ in scalars["serving/p95_ms"]] == list(range(EVAL_EPISODES))
        if p in ("elsa", "fifs_push"):  # stateless: the held-out episodes evaluate() plays
            probe = evaluation.make_env(sc, "dispatch")
            probe.reset(seed=0)
            pol = reference_policy(probe, p)
            runs = evaluation.evaluate(
                sc, "dispatch", lambda e, _o, q=pol: q.decide(e.unwrapped), held
            )
            for tag in MAIN_TAGS:
                want = np.mean([serving_scalars(s, (1, 2, 3, 4, 7))[tag] for s, _ in runs])
                got = np.mean([v for _, v in scalars[tag]])
                assert got == pytest.approx(want, rel=1e-5), (p, tag)


def test_zoo_launcher_trains_a_loadable_model(tiny_yaml: Path, tmp_path: Path):
    pytest.importorskip("rl_zoo3")
    sys.path.insert(0, str(REPO / "agents"))
    try:
        import zoo_train
    finally:
        sys.path.remove(str(REPO / "agents"))
    argv = zoo_train.zoo_argv(["--scenario", "x.yaml", "-n", "5", "--env-kwargs", "a:1"])
    assert argv[:4] == ["--algo", "ppo_mask", "--env", "mig_gym/Dispatch-v0"]
    assert argv[argv.index("--conf-file") + 1].endswith(
        "mig_gym/learn/hyperparams/maskable_ppo.yml"
    )
    assert argv[argv.index("--env-kwargs") + 1 :] == ["scenario:'x.yaml'", "a:1"]
    assert zoo_train.zoo_argv(["--algo", "dqn"])[5].endswith("dqn.yml")

    cmd = [
        sys.executable,
        str(REPO / "agents" / "zoo_train.py"),
        "-n",
        "256",
        "--seed",
        "0",
        "--scenario",
        str(tiny_yaml),
        "-f",
        str(tmp_path / "logs"),
        "--num-threads",
        "1",
        "--eval-freq",
        "128",
        "--eval-episodes",
        "1",
        "--verbose",
        "0",
        "-params",
        "n_envs:1",
        "n_steps:128",
        "batch_size:64",
        "n_epochs:2",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp_path / "logs" / "ppo_mask" / "mig_gym-Dispatch-v0_1"
    model = run / "mig_gym-Dispatch-v0.zip"
    assert model.is_file() and (run / "evaluations.npz").is_file()
    cfg = (run / "mig_gym-Dispatch-v0" / "config.yml").read_text()
    assert "SlotPolicy" in cfg and "hidden" in cfg  # our YAML, read by rl_zoo3
    pol = evaluation.load_learned(f"maskable_ppo:{model}")
    assert pol.env_kind == "dispatch"
    summary, _ = pol.run(load_scenario(TINY), seed=0)
    assert summary.conserved
