"""User errors exit with status 2 and one message (no traceback unless --verbose); bugs exit with
status 1 and a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mig_gym.cli import main, validate

from .conftest import SCENARIOS

RESNET = str(SCENARIOS / "paper_resnet50.yaml")
SMALL = ["--num-queries", "200"]
PROFILE_HEADER = "model,gpu,gpcs,batch,latency_ms\n"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = main(argv)
    return rc, capsys.readouterr().err


def user_error(argv: list[str], capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    """Status 2, no traceback, every needle in the message; returns stderr."""
    rc, err = run(argv, capsys)
    assert rc == 2, err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, (n, err)
    return err


def scenario(tmp_path: Path, body: str, name: str = "s.yaml") -> str:
    p = tmp_path / name
    p.write_text(
        "name: s\ncluster: {num_gpus: 2}\nrun: {num_queries: 300, warmup_queries: 0}\n" + body
    )
    return str(p)


def profiles_csv(tmp_path: Path, rows: str, header: str = PROFILE_HEADER) -> None:
    (tmp_path / "prof.csv").write_text(header + rows)


GOOD_ROWS = "".join(
    f"resnet50,A100-80GB,{g},{b},{2 + b / g:.3f}\n" for g in (1, 2, 3, 4, 7) for b in (1, 128)
)


# --------------------------------------------------------------------------- data files
def test_good_profiles_file_runs(tmp_path: Path, capsys):
    profiles_csv(tmp_path, GOOD_ROWS)
    sc = scenario(tmp_path, "profiles: {path: prof.csv}\n")
    rc, err = run(["run", sc, "--no-progress", *SMALL], capsys)
    assert rc == 0, err


@pytest.mark.parametrize(
    ("rows", "header", "needles"),
    [
        (
            GOOD_ROWS + "resnet50,A100-80GB,1,abc,2\n",
            PROFILE_HEADER,
            ("profiles.path", "prof.csv", "line 12", "'batch'", "'abc'"),
        ),
        ("resnet50,A100-80GB,1\n", "model,gpu,gpcs\n", ("missing column(s)", "latency_ms")),
        (
            GOOD_ROWS.replace("resnet50", "bert"),
            PROFILE_HEADER,
            ("no profile for model(s) ['resnet50']",),
        ),
        (
            GOOD_ROWS.replace("A100-80GB", "H100-80GB"),
            PROFILE_HEADER,
            ("measured on H100-80GB", "cluster.gpu is A100-80GB"),
        ),
        (GOOD_ROWS + "resnet50,A100-80GB,1,1,5\n", PROFILE_HEADER, ("duplicate row",)),
        (GOOD_ROWS + "resnet50,A100-80GB,1,64,-3\n", PROFILE_HEADER, ("'latency_ms'", "'-3'")),
        ("", PROFILE_HEADER, ("exactly one GPU type",)),
    ],
)
def test_malformed_profiles_file(tmp_path: Path, capsys, rows, header, needles):
    """A valid YAML whose profiles CSV is malformed: status 2 from run and from validate."""
    profiles_csv(tmp_path, rows, header)
    sc = scenario(tmp_path, "profiles: {path: prof.csv}\n")
    user_error(["run", sc, "--no-progress", *SMALL], capsys, *needles)
    user_error(["validate", sc], capsys, *needles)


def test_binary_profiles_file(tmp_path: Path, capsys):
    (tmp_path / "prof.csv").write_bytes(b"\xff\xfe\x00\x81garbage\x00\n")
    sc = scenario(tmp_path, "profiles: {path: prof.csv}\n")
    user_error(["run", sc, *SMALL], capsys, "profiles.path", "prof.csv")


@pytest.mark.parametrize(
    ("content", "arrivals", "needles"),
    [
        (
            "T,ContextTokens\n0.1,100\n0.2,50\n",
            "",
            ("trace.csv", "no column 'TIMESTAMP'", "available columns: T, ContextTokens"),
        ),
        ("TIMESTAMP\n0.1\nabc\n", "", ("trace.csv", "line 3", "'abc'")),
        ("TIMESTAMP\n0.2\n0.1\n", "", ("trace.csv", "not sorted", "line 3")),
        ("TIMESTAMP\n", "", ("trace.csv", "no data rows")),
        ("", "", ("trace.csv", "empty")),
        ("TIMESTAMP\n0.5\n", "", ("trace.csv", "span 0 s")),
        ("TIMESTAMP,ContextTokens\n0.1,5\n0.2,6\n", ", column: When", ("no column 'When'",)),
    ],
)
def test_malformed_trace_file(tmp_path: Path, capsys, content, arrivals, needles):
    (tmp_path / "trace.csv").write_text(content)
    sc = scenario(
        tmp_path,
        f"workload:\n  arrivals: {{kind: trace, path: trace.csv, rate_qps: 100{arrivals}}}\n",
    )
    user_error(["run", sc, "--no-progress", *SMALL], capsys, *needles)
    user_error(["validate", sc], capsys, *needles)


def test_trace_column_batch_with_a_missing_column(tmp_path: Path, capsys):
    (tmp_path / "trace.csv").write_text("TIMESTAMP,Tokens\n0.1,5\n0.2,6\n0.4,9\n")
    sc = scenario(
        tmp_path,
        "workload:\n  arrivals: {kind: trace, path: trace.csv, loop: true}\n"
        "  batch: {kind: trace_column, column: ContextTokens}\n",
    )
    for cmd in ("run", "plan"):
        user_error(
            [cmd, sc, *(SMALL if cmd == "run" else [])],
            capsys,
            "trace.csv",
            "no column 'ContextTokens'",
            "available columns: TIMESTAMP, Tokens",
        )


def test_scenario_file_that_is_not_text_or_not_yaml(tmp_path: Path, capsys):
    b = tmp_path / "b.yaml"
    b.write_bytes(b"\x7fELF\x02\x01\x01\x00\xd0\xff")
    user_error(["run", str(b)], capsys, str(b), "not a UTF-8 text file")
    d = tmp_path / "d.yaml"
    d.write_text("name: 2023-13-45\n")  # YAML reads dates: an impossible one
    user_error(["validate", str(d)], capsys, str(d), "not valid YAML")
    user_error(["run", str(tmp_path)], capsys, "scenario file not found")


def test_too_many_models_for_the_gpus(tmp_path: Path, capsys):
    sc = tmp_path / "m.yaml"
    sc.write_text(
        "cluster: {num_gpus: 2}\nmodels: [{name: resnet50}, {name: bert}, {name: mobilenetv2}]\n"
    )
    user_error(["validate", str(sc)], capsys, "cluster.num_gpus", "3 models")


# --------------------------------------------------------------------------- options
@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["run", RESNET, "--num-queries", "0"], "argument --num-queries: must be >= 1"),
        (["run", RESNET, "--num-queries", "-5"], "argument --num-queries: must be >= 1"),
        (["run", RESNET, "--num-queries", "1e3"], "expected an integer, got '1e3'"),
        (["run", RESNET, "--seed", "-1"], "argument --seed: must be >= 0"),
        (["run", RESNET, "--load", "-1"], "argument --load: must be > 0"),
        (["run", RESNET, "--load", "0"], "argument --load: must be > 0"),
        (["run", RESNET, "--load", "nan"], "argument --load: must be > 0"),
        (["run", RESNET, "--load", "inf"], "argument --load: must be > 0"),
        (["compare", RESNET, "--seeds", "0"], "argument --seeds: must be >= 1"),
        (["compare", RESNET, "--seeds", "-2"], "argument --seeds: must be >= 1"),
        (["compare", RESNET, "--jobs", "0"], "argument --jobs: must be >= 1"),
        (["sweep", RESNET, "--jobs", "-1"], "argument --jobs: must be >= 1"),
        (["compare", RESNET, "--load", "-1"], "argument --load: must be > 0"),
        (["compare", RESNET, "--backend", "dask"], "argument --backend: invalid choice"),
        (["train", RESNET, "--timesteps", "0"], "argument --timesteps: must be >= 1"),
        (["train", RESNET, "--n-envs", "0"], "argument --n-envs: must be >= 1"),
        (["run"], "the following arguments are required: scenario"),
        (["teleport"], "invalid choice: 'teleport'"),
    ],
)
def test_bad_option_values_exit_2(argv, needle, capsys):
    rc, err = run(argv, capsys)
    assert rc == 2 and "Traceback" not in err
    assert needle in err.strip().splitlines()[-1], err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["sweep", RESNET, "--loads=-1,1"], "--loads '-1,1'"),
        (["sweep", RESNET, "--loads", "0.5,nan"], "--loads '0.5,nan'"),
        (["sweep", RESNET, "--loads", "0.5,inf"], "--loads '0.5,inf'"),
        (["sweep", RESNET, "--loads", "0:1:0.1"], "--loads '0:1:0.1'"),
        (["sweep", RESNET, "--loads", "0.1:1:0"], "--loads '0.1:1:0'"),
        (["sweep", RESNET, "--loads", "0.1:1e9:1e-9"], "--loads '0.1:1e9:1e-9'"),
        (["run", RESNET, "--policy", "paris+elsa[alpha=-1]", *SMALL], "alpha: got -1, must be > 0"),
        (["run", RESNET, "--policy", "paris[theta=2]+elsa", *SMALL], "theta: got 2, must be <= 1"),
        (["run", RESNET, "--policy", "paris[knee=knee]+elsa", *SMALL], "knee: got 'knee'"),
        (["run", RESNET, "--policy", "paris[beta=nan]+elsa", *SMALL], "expected a finite number"),
        (
            ["compare", RESNET, "--address", "10.0.0.1:6379", "--seeds", "1", *SMALL],
            "only meaningful with the ray backend",
        ),
    ],
)
def test_bad_values_reported_as_one_line(argv, needle, capsys):
    err = user_error(argv, capsys, needle)
    assert err.count("\n") == 1, err


def test_logdir_that_is_a_file(tmp_path: Path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    user_error(
        [
            "compare",
            RESNET,
            "--policies",
            "homo7+fifs",
            "--seeds",
            "1",
            "--jobs",
            "1",
            "--logdir",
            str(f),
            "--no-progress",
            *SMALL,
        ],
        capsys,
        str(f),
    )


# --------------------------------------------------------------------------- verbose and bugs
@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_shows_the_traceback_of_a_user_error(where, capsys):
    argv = ["run", "no/such.yaml"]
    argv = ["--verbose", *argv] if where == "before" else [*argv, "--verbose"]
    rc, err = run(argv, capsys)
    assert rc == 2 and "Traceback" in err and "scenario file not found" in err.splitlines()[-1]


def test_a_bug_exits_1_with_a_traceback(monkeypatch, capsys):
    def broken(a):
        raise ZeroDivisionError("oops")

    monkeypatch.setattr(validate, "cmd_validate", broken)
    rc, err = run(["validate", RESNET], capsys)
    assert rc == 1 and "Traceback" in err and "ZeroDivisionError: oops" in err
    assert "internal error" in err.splitlines()[-1]


def test_help_exits_0(capsys):
    assert main(["--help"]) == 0
    assert main(["sweep", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--backend" in out and "--address" in out


def test_exit_status_of_the_installed_command(tmp_path: Path):
    def status(*argv: str) -> tuple[int, str]:
        r = subprocess.run(
            [sys.executable, "-m", "mig_gym", *argv], capture_output=True, text=True, check=False
        )
        return r.returncode, r.stderr

    rc, err = status("run", RESNET, "--num-queries", "0")
    assert rc == 2 and "--num-queries" in err and "Traceback" not in err
    rc, err = status("compare", RESNET, "--seeds", "1", "--jobs", "0")
    assert rc == 2 and "--jobs" in err
