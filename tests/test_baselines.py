"""Baseline score tables (mig_gym.runs.baselines, ``mig-gym baselines``): the score is the
environment's, tuning sees training seeds only, the tables regenerate into the docs page."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import mig_gym  # noqa: F401  (registers the tasks)
from mig_gym.cli import main
from mig_gym.cli.baselines import BEGIN, END, task_specs
from mig_gym.envs import EVAL_SEED_BASE, reference_policy
from mig_gym.envs.tasks import PARTITION_TASKS
from mig_gym.runs import baselines as B

REPO = Path(__file__).resolve().parents[1]
TINY = "mig_gym/Dispatch-resnet50-70-v0"


def _episode(env_id: str, ref: str, seed: int) -> dict:
    env = gym.make(env_id).unwrapped
    env.reset(seed=0, options={"episode_seed": seed})
    pol = reference_policy(env, ref)
    while True:
        *_, term, trunc, info = env.step(pol.decide(env))
        if term or trunc:
            return info["summary"]


@pytest.mark.parametrize(
    ("env_id", "ref", "policy"),
    [
        ("mig_gym/Dispatch-resnet50-110-v0", "jsq", "scenario+jsq"),
        ("mig_gym/Dispatch-resnet50-faults-v0", "elsa", "scenario+elsa"),
    ],
)
def test_the_score_is_the_environment_episode_score(env_id, ref, policy):
    seed = EVAL_SEED_BASE + 3
    spec = task_specs([env_id])[0]
    env_rate = _episode(env_id, ref, seed)["sla_violation_rate"]
    assert B.task_score(spec, policy, seed) == env_rate
    assert B.task_score(spec, policy, seed + 1) != env_rate  # the seed matters


def test_tuning_sees_training_seeds_only_and_takes_the_best(monkeypatch):
    seen: list[tuple[str, int]] = []

    def fake(spec, policy, seed):  # alpha=0.5, prior=0.2, homo2 best on training seeds only
        seen.append((policy if isinstance(policy, str) else policy.name, seed))
        best = ("alpha=0.5", "prior=0.2", "homo2+")
        good = any(b in policy for b in best) if seed < 100 else False
        return 0.1 + 0.01 * seed - (0.05 if good else 0.0)

    monkeypatch.setattr(B, "task_score", fake)
    spec = task_specs([TINY])[0]
    res = B.run_baselines([spec], seeds=3, train_seeds=4, eval_base=100, jobs=1, progress=False)
    rows = res[TINY]["rows"]
    assert rows["ELSA tuned"]["policy"] == "scenario+elsa[alpha=0.5]"
    assert rows["best homogeneous"]["policy"] == "homo2+elsa"
    assert rows["periodic PARIS tuned"]["policy"].endswith(",prior=0.2]+elsa")
    assert set(rows) == set(B.ROWS) - {"reactive", "clairvoyant"}
    tuning = {s for p, s in seen if "alpha=0.5" in p or "homo" in p or "prior" in p}
    tuning -= {100, 101, 102}
    assert tuning == {0, 1, 2, 3}
    for row in rows.values():  # held-out scores: seeds 100..102 exactly
        assert row["scores"] == pytest.approx([0.1 + 0.01 * s for s in (100, 101, 102)])
    assert len(seen) == len(set(seen))  # no run twice
    with pytest.raises(ValueError, match="train_seeds must be in"):
        B.run_baselines([spec], seeds=2, train_seeds=5, eval_base=3, jobs=1, progress=False)


def test_the_default_prior_is_the_periodic_row_run_once(monkeypatch):
    """When the rule's default prior wins the tuning, the tuned row reuses the periodic PARIS
    row's held-out runs (the same policy) instead of running them again."""
    seen: list[tuple[str, int]] = []

    def fake(spec, policy, seed):
        seen.append((policy, seed))
        return 0.1 + 0.001 * seed

    monkeypatch.setattr(B, "task_score", fake)
    spec = task_specs([TINY])[0]
    res = B.run_baselines([spec], seeds=2, train_seeds=2, eval_base=100, jobs=1, progress=False)
    rows = res[TINY]["rows"]
    assert rows["periodic PARIS tuned"]["policy"].endswith(f",prior={B.PRIOR_GRID[0]:g}]+elsa")
    assert rows["periodic PARIS tuned"]["scores"] == rows["periodic PARIS"]["scores"]
    held = [p for p, s in seen if s >= 100 and p.startswith("periodic")]
    assert held == [rows["periodic PARIS"]["policy"]] * 2


def test_headroom_and_table_from_results():
    rows = {
        "static PARIS": {"policy": "paris+elsa", "scores": [0.4, 0.6]},
        "best homogeneous": {"policy": "homo1+elsa", "scores": [0.2, 0.2]},
        "clairvoyant": {"policy": "schedule:clairvoyant", "scores": [0.05, 0.07]},
        "random": {"policy": "scenario+random", "scores": [0.01, 0.01]},
    }
    task = {"kind": "partition", "difficulty": "medium", "seeds": 2, "eval_base": 7,
            "train_seeds": 1, "rows": rows}  # fmt: skip
    assert B.headroom(task) == pytest.approx(0.3)
    md = B.markdown({"mig_gym/Partition-x-v0": task})
    line = next(x for x in md.splitlines() if "`Partition-x-v0`" in x)
    assert "**6.00 ± 1.41**" in line and "20.00 ± 0.00 (homo1)" in line  # random is not "best"
    assert line.endswith("| 0.30 |") and "over 2 held-out seeds (7 .. 8)" in md


def _doc(tmp_path: Path) -> Path:
    doc = tmp_path / "tasks.md"
    doc.write_text(f"# page\n\nbefore\n{BEGIN}\nSTALE\n{END}\nafter\n", encoding="utf-8")
    return doc


def test_cli_regenerates_one_tiny_task_with_two_seeds(tmp_path: Path, capsys):
    doc, js = _doc(tmp_path), tmp_path / "b.json"
    other = {"mig_gym/Dispatch-bert-90-v0": {"kind": "dispatch", "difficulty": "medium",
             "seeds": 2, "eval_base": 1, "train_seeds": 1,
             "rows": {"ELSA": {"policy": "scenario+elsa", "scores": [0.5, 0.5]}}},
             "mig_gym/Gone-v0": {}}  # fmt: skip
    js.write_text(json.dumps(other))
    argv = ["baselines", "--tasks", TINY.removeprefix("mig_gym/"), "--seeds", "2",
            "--train-seeds", "1", "--jobs", "1", "--json", str(js), "--doc", str(doc),
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    data = json.loads(js.read_text())
    assert list(data) == [TINY, "mig_gym/Dispatch-bert-90-v0"]  # registered order, gone dropped
    rows = data[TINY]["rows"]
    assert all(len(r["scores"]) == 2 for r in rows.values()) and "ELSA tuned" in rows
    elsa = B.task_score(task_specs([TINY])[0], "scenario+elsa", EVAL_SEED_BASE + 1)
    assert rows["ELSA"]["scores"][1] == elsa
    text = doc.read_text()
    assert text.startswith("# page\n\nbefore\n") and text.endswith(f"{END}\nafter\n")
    assert "STALE" not in text and "`Dispatch-resnet50-70-v0`" in text
    assert "`Dispatch-bert-90-v0`" in text  # kept from the earlier run
    assert f"{100 * np.mean(rows['random']['scores']):.2f}" in text


def test_cli_bad_input_is_exit_2(tmp_path: Path, capsys):
    assert main(["baselines", "--tasks", "Dispatch-nope-v0", "--doc", str(_doc(tmp_path))]) == 2
    assert "unknown task 'Dispatch-nope-v0'" in capsys.readouterr().err
    plain = tmp_path / "plain.md"
    plain.write_text("no markers\n")
    argv = ["baselines", "--tasks", TINY, "--seeds", "1", "--train-seeds", "1", "--jobs", "1",
            "--doc", str(plain), "--json", str(tmp_path / "j.json"), "--no-progress"]  # fmt: skip
    assert main(argv) == 2
    assert "no generated section" in capsys.readouterr().err
    assert main(["baselines", "--seeds", "0"]) == 2


def test_docs_page_is_generated_and_partition_difficulty_follows_headroom():
    text = (REPO / "docs" / "tasks.md").read_text(encoding="utf-8")
    assert BEGIN in text and END in text
    data = json.loads((REPO / "docs" / "results" / "baselines.json").read_text())
    section = text.split(BEGIN)[1].split(END)[0]
    assert section.strip() == B.markdown(data).strip()  # the page is the JSON, rendered
    for t in PARTITION_TASKS:
        h = B.headroom(data[t.env_id]) if t.env_id in data else None
        if h is not None:
            assert t.difficulty == ("medium" if h <= B.HEADROOM else "hard"), t.env_id


def test_reference_plans_on_a_scenario_whose_own_partitioner_replans():
    from mig_gym.runs import schedules
    from mig_gym.scenario import load_scenario

    policy = {
        "partitioner": {"kind": "periodic_paris", "epoch_s": 0.05},
        "dispatcher": {"kind": "elsa"},
    }
    sc = load_scenario(REPO / "scenarios" / "drift_tiny_huge.yaml", policy=policy)
    plans = schedules.choose_plans(sc, 4, 20.0, trial_queries=300)  # candidates stay fixed
    assert len(plans) == 4 and all(len(p.layouts) == sc.cluster.num_gpus for p in plans)
    spec = B.TaskSpec("x", "partition", sc, "medium")
    assert B._fixed_rows(spec)["JSQ"] == "paris+jsq"  # static PARIS, not the re-planner


@pytest.mark.parametrize(
    ("agent", "base", "kind", "want"),
    [
        ([0.10, 0.12], [0.50, 0.52], "partition", "wins"),  # 0.11 + 0.01 < 0.51 - 0.01
        ([0.50, 0.52], [0.10, 0.12], "partition", "loses"),
        ([0.10, 0.30], [0.25, 0.35], "partition", "tie (spreads overlap)"),
        ([0.00, 0.00], [0.00, 0.001], "dispatch", "no worse"),
        ([0.01, 0.01], [0.01, 0.01], "dispatch", "no worse"),
        ([0.02, 0.04], [0.00, 0.02], "dispatch", "worse, within spread"),
        ([0.05, 0.05], [0.00, 0.00], "dispatch", "worse"),
    ],
)
def test_verdict_of_an_agent_against_a_baseline(agent, base, kind, want):
    assert B.verdict(agent, base, kind) == want
