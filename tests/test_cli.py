"""The mig-gym command line: exit codes, messages and outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mig_gym.cli import main
from mig_gym.output.tensorboard import read_layout, read_scalars
from mig_gym.sim import compiled

from .conftest import SCENARIOS

RESNET = str(SCENARIOS / "paper_resnet50.yaml")


def test_run_prints_summary(capsys):
    assert main(["run", RESNET, "--num-queries", "2000", "--policy", "homo7+fifs"]) == 0
    out = capsys.readouterr().out
    assert "homo7+fifs" in out and "all queries accounted for" in out and "yes" in out


def test_run_json_is_the_summary(capsys):
    assert main(["run", RESNET, "--num-queries", "1500", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["arrived"] == 1500 and d["conserved"] is True and d["policy"] == "paris+elsa"


def test_run_says_which_loop_simulated_and_event_loop_forces_it(capsys):
    base = ["run", RESNET, "--num-queries", "3000", "--no-progress"]
    assert main([*base, "--policy", "paris+jsq"]) == 0
    assert "event loop (dispatcher JoinShortestQueue has no" in capsys.readouterr().out
    assert main(base) == 0
    assert "simulated with the fast path" in capsys.readouterr().out
    assert main([*base, "--event-loop"]) == 0
    core = "compiled core" if compiled.AVAILABLE else "Python loop: numba"
    assert f"event loop (--event-loop; {core}" in capsys.readouterr().out
    assert main([*base, "--python-loop"]) == 0
    assert "event loop (--python-loop: the Python loop)" in capsys.readouterr().out
    out = {}
    for flag in ("", "--event-loop", "--python-loop"):
        assert main([*base, "--json", *([flag] if flag else [])]) == 0
        out[flag] = json.loads(capsys.readouterr().out)
    for d in out.values():
        assert d["completed"] == 3000
        assert d["latency_mean_ms"] == pytest.approx(out[""]["latency_mean_ms"], rel=1e-9)


def test_validate_ok_and_bad(tmp_path: Path, capsys):
    assert main(["validate", RESNET]) == 0
    assert "OK" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("cluster: {num_gpus: -2}\nworkload: {load: 0}\n")
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "cluster.num_gpus" in err and "workload.load" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["run", "no/such/file.yaml"], "scenario file not found"),
        (["run", RESNET, "--policy", "paris"], "expected 'partitioner+dispatcher'"),
        (["run", RESNET, "--policy", "paris+teleport"], "unknown dispatcher 'teleport'"),
        (["run", RESNET, "--policy", "paris[gamma=2]+elsa"], "unknown parameter 'gamma'"),
        (["sweep", RESNET, "--loads", "1:0.5:0.1"], "--loads"),
        (["compare", RESNET, "--policies", ","], "--policies"),
    ],
)
def test_user_errors_exit_2_with_one_message(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_plan_json_lists_every_gpu_and_commands(capsys):
    assert main(["plan", RESNET, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert len(d["gpus"]) == 8
    assert all(
        g["commands"][0].startswith(f"nvidia-smi mig -i {g['gpu']} -cgi ") for g in d["gpus"]
    )
    assert sum(sum(g["layout"]) for g in d["gpus"]) >= 8 * 6
    (model,) = d["models"]
    assert model["model"] == "resnet50" and sum(model["partitions"].values()) > 8


def test_plan_text(capsys):
    assert main(["plan", RESNET]) == 0
    out = capsys.readouterr().out
    assert "nvidia-smi mig -i 7" in out and "layout per GPU" in out


def test_compare_writes_report_and_same_tags(tmp_path: Path, capsys):
    pols = ["paris+elsa", "homo7+fifs"]
    rc = main(
        [
            "compare",
            RESNET,
            "--policies",
            ",".join(pols),
            "--seeds",
            "2",
            "--num-queries",
            "3000",
            "--logdir",
            str(tmp_path),
            "--jobs",
            "1",
        ]
    )
    assert rc == 0
    out = tmp_path / "paper_resnet50"
    for f in ("compare.csv", "compare.md", "latency_over_time.png", "utilization_by_size.png"):
        assert (out / f).stat().st_size > 0
    assert len((out / "compare.csv").read_text().strip().splitlines()) == 1 + 2 * 2
    tags = [set(read_scalars(out / p)) for p in pols]
    assert tags[0] == tags[1]
    assert {
        "compare/by_seed/p95_ms",
        "compare/by_seed/sla_violation_rate",
        "compare/over_time/p95_ms",
        "compare/over_time/goodput_qps",
        "compare/by_seed/utilization",
    } <= tags[0]
    assert not any(t.startswith("serving/") for t in tags[0])  # training's charts stay its own
    assert read_layout(out).category[0].title.startswith("compare: per seed")


def test_sweep_writes_curves(tmp_path: Path, capsys):
    rc = main(
        [
            "sweep",
            RESNET,
            "--policies",
            "paris+elsa",
            "--loads",
            "0.5,1.0",
            "--seeds",
            "1",
            "--num-queries",
            "2000",
            "--logdir",
            str(tmp_path),
            "--jobs",
            "1",
        ]
    )
    assert rc == 0
    out = tmp_path / "paper_resnet50" / "sweep"
    for f in ("sweep.csv", "sweep.md", "latency_vs_load.png", "violation_vs_load.png", "lbt.csv"):
        assert (out / f).stat().st_size > 0
    assert all(f"LBT {c}" in (out / "lbt.md").read_text() for c in ("serve_all", "p99", "p95"))
    steps = [s for s, _ in read_scalars(out / "paris+elsa")["sweep/by_load/p95_ms"]]
    assert steps == [50, 100]


def test_python_dash_m_entry_point():
    r = subprocess.run(
        [sys.executable, "-m", "mig_gym", "validate", RESNET],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "mig_gym", "validate", "missing.yaml"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 2 and r.stderr.count("\n") == 1
