"""Every user error exits 2 from the CLI with one message whose first line says what is wrong and
names the file, field or value; one problem line per problem (issue 11, item 5).

Each case is ``scenarios/paper_resnet50.yaml`` edited as a user would: a homogeneous size the
GPU lacks (from a policy string, in every command that takes one, and in the YAML), a profile
CSV without a size the plan needs, duplicate YAML keys, empty layouts, wrong-typed values.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import mig_gym
from mig_gym.cli import main
from mig_gym.envs.dispatch import DispatchEnv
from mig_gym.envs.partition import PartitionEnv
from mig_gym.hardware.profiles import builtin_profiles
from mig_gym.policies import PolicyError, parse_policy
from mig_gym.scenario import ScenarioError, load_scenario

from .conftest import SCENARIOS

RESNET = (SCENARIOS / "paper_resnet50.yaml").read_text(encoding="utf-8")
FEW = ["--num-queries", "200"]


def edited(tmp_path: Path, *edits: tuple[str, str], name: str = "s.yaml") -> str:
    """paper_resnet50.yaml with each ``(old, new)`` replaced (``old`` must occur)."""
    text = RESNET
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def cli_error(argv: list[str], capsys: pytest.CaptureFixture[str], *needles: str) -> list[str]:
    """Run the CLI: status 2, no traceback, the needles on the first line; returns the lines."""
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err and "internal error" not in err, err
    lines = err.rstrip("\n").splitlines()
    assert lines[0].startswith(f"mig-gym {argv[0]}: error: "), err
    for n in needles:
        assert n in lines[0], (n, err)
    return lines


def problem_lines(lines: list[str], n: int) -> list[str]:
    """The problem lines of a CLI error reporting ``n`` problems: the first line itself for one,
    else a count line then one ``  - `` line each (and nothing else)."""
    if n == 1:
        assert len(lines) == 1, lines
        return lines
    assert f"{n} problems" in lines[0], lines
    assert len(lines) == n + 1 and all(ln.startswith("  - ") for ln in lines[1:]), lines
    return lines[1:]


# --------------------------------------------------------------------------- a size the GPU lacks
A30 = ("gpu: A100-80GB", "gpu: A30")


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "{s}", "--policy", "{p}", "--no-progress", *FEW],
        ["plan", "{s}", "--policy", "{p}"],
        ["plan", "{s}", "--policy", "{p}", "--json"],
        ["compare", "{s}", "--policies", "paris+elsa,{p}", "--seeds", "1", "--no-progress", *FEW],
        ["sweep", "{s}", "--policies", "{p}", "--loads", "1", "--no-lbt", "--no-progress", *FEW],
    ],
    ids=["run", "plan", "plan-json", "compare", "sweep"],
)
@pytest.mark.parametrize("size", [7, 3])
def test_homogeneous_size_the_gpu_lacks_from_a_policy_string(tmp_path, capsys, argv, size):
    s, p = edited(tmp_path, A30), f"homo{size}+fifs"
    argv = [a.format(s=s, p=p) for a in argv]
    if argv[0] in ("compare", "sweep"):
        argv += ["--logdir", str(tmp_path / "runs")]
    lines = cli_error(argv, capsys, f"'{p}'", f"no {size}g partition", "A30", "1g, 2g, 4g")
    problem_lines(lines, 1)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.csv"))


def test_homogeneous_size_the_gpu_lacks_in_the_yaml(tmp_path, capsys):
    s = edited(
        tmp_path, A30, ("{kind: paris, knee: sla, beta: 0.5}", "{kind: homogeneous, gpcs: 7}")
    )
    lines = cli_error(["validate", s], capsys, s, "policy.partitioner.gpcs", "got 7", "1g, 2g, 4g")
    problem_lines(lines, 1)


def test_the_policy_check_is_shared_by_the_library_and_the_environments(tmp_path):
    s = edited(tmp_path, A30)
    sc = load_scenario(s)
    for call in (
        lambda: parse_policy("homo7+fifs", sc),
        lambda: mig_gym.simulate(sc, "homo7+fifs", num_queries=200),
        lambda: DispatchEnv(s, policy="homo7+fifs_push"),
        lambda: PartitionEnv(s, policy="homo7+elsa"),
    ):
        with pytest.raises(PolicyError, match=r"'homo7\+\w+'.*no 7g partition.*1g, 2g, 4g"):
            call()
    assert parse_policy("homo4+fifs", sc)[0].gpcs == 4  # the sizes it has are fine


# --------------------------------------------------------------------------- profile sizes
def profile_csv(tmp_path: Path, sizes: tuple[int, ...], models=("resnet50",)) -> None:
    """A mig_gym profile CSV with rows for ``sizes`` only (from the built-in curves)."""
    prof = builtin_profiles("A100-80GB", list(models))
    rows = ["model,gpu,gpcs,batch,latency_ms"]
    rows += [
        f"{m},A100-80GB,{k},{b},{prof.latency_s(m, k, b) * 1e3:.4f}"
        for m in models
        for k in sizes
        for b in (1, 2, 4, 8, 16, 32, 64, 128)
    ]
    (tmp_path / "prof.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")


FROM_CSV = ("profiles: builtin", "profiles: {path: prof.csv}")


@pytest.mark.parametrize("command", ["validate", "run", "plan"])
def test_profile_without_a_size_paris_may_choose(tmp_path, capsys, command):
    profile_csv(tmp_path, (1, 2, 3, 4))
    s = edited(tmp_path, FROM_CSV)
    argv = [command, s] + (["--no-progress", *FEW] if command == "run" else [])
    needles = ("profiles.path", "prof.csv", "'resnet50'", "no rows for 7g", "paris")
    problem_lines(cli_error(argv, capsys, *needles), 1)


def test_profile_sizes_are_checked_against_the_policy_that_runs(tmp_path, capsys):
    profile_csv(tmp_path, (1, 2, 4))
    s = edited(tmp_path, FROM_CSV)
    assert main(["run", s, "--policy", "homo4+elsa", "--no-progress", *FEW]) == 0
    lines = cli_error(
        ["run", s, "--policy", "homo7+fifs", "--no-progress", *FEW], capsys, "no rows for 7g"
    )
    assert "homo7 uses" in lines[0] and "1g, 2g, 4g" in lines[0]
    compare = ["compare", s, "--policies", "homo4+elsa,homo3+fifs", "--seeds", "1"]
    compare += ["--logdir", str(tmp_path / "runs"), "--no-progress", *FEW]
    problem_lines(cli_error(compare, capsys, "no rows for 3g", "homo3"), 1)
    with pytest.raises(ScenarioError, match="no rows for 7g"):
        DispatchEnv(s, policy="homo7+fifs_push").reset(seed=0)


@pytest.mark.parametrize(
    ("layout", "ok"), [("[[4, 2, 1]]", True), ("[[4, 3]]", False), ("[[7]]", False)]
)
def test_profile_sizes_of_fixed_layouts(tmp_path, capsys, layout, ok):
    profile_csv(tmp_path, (1, 2, 4))
    part = ("{kind: paris, knee: sla, beta: 0.5}", f"{{kind: fixed, layouts: {layout}}}")
    s = edited(tmp_path, FROM_CSV, part)
    if ok:
        assert main(["validate", s]) == 0
        assert main(["run", s, "--no-progress", *FEW]) == 0
    else:
        problem_lines(cli_error(["validate", s], capsys, "no rows for", "fixed uses"), 1)


def test_one_problem_per_model_without_the_sizes(tmp_path, capsys):
    profile_csv(tmp_path, (1, 2, 3, 4), models=("resnet50", "bert"))
    models = "  - {name: resnet50, slo_ms: 100, share: 1.0}\n  - {name: bert, slo_ms: 400}\n"
    s = edited(tmp_path, FROM_CSV, ("  - {name: resnet50, slo_ms: 100, share: 1.0}\n", models))
    lines = problem_lines(cli_error(["validate", s], capsys, "scenario 'paper_resnet50'"), 2)
    assert "'resnet50'" in lines[0] and "'bert'" in lines[1]
    assert all("no rows for 7g" in ln for ln in lines)


def test_partition_env_masks_layouts_the_profile_lacks(tmp_path):
    """With a partial profile (possible with a homogeneous initial plan) Partition-v0's mask
    rules out every layout with a size the model has no rows for; such a choice keeps the GPU
    and is counted as invalid, like an out-of-range one."""
    profile_csv(tmp_path, (1, 2, 4))
    env = PartitionEnv(edited(tmp_path, FROM_CSV), policy="homo4+elsa")
    env.reset(seed=0)
    mask = env.action_masks().reshape(env.num_gpus, env.choices)
    for a in range(env.choices):
        lay, _ = env.decode(a)
        assert mask[0, a] == (set(lay.sizes) <= {1, 2, 4}), lay
    assert (mask == mask[0]).all() and mask.any(axis=1).all() and not mask.all()
    keep = env.current_action()
    bad = next(a for a in range(env.choices) if not mask[0, a])
    good = next(a for a in range(env.choices) if mask[0, a] and a != keep[0])
    act = keep.copy()
    act[0], act[1] = bad, good
    _, _, _, _, info = env.step(act)
    assert info["invalid"] and info["invalid_actions"] == 1
    now = env.current_action()
    assert now[0] == keep[0] and now[1] == good  # the masked entry kept its GPU, not the rest


# --------------------------------------------------------------------------- duplicate keys
DUPLICATES = [
    (("seed: 0\n", "seed: 0\nseed: 1\n"), "seed: duplicate key 'seed' on line 9"),
    (
        ("num_gpus: 8,", "num_gpus: 8, num_gpus: 4,"),
        "cluster.num_gpus: duplicate key 'num_gpus' on line 9, column",
    ),
    (
        ("slo_ms: 100, share: 1.0}", "slo_ms: 100, share: 1.0, slo_ms: 50}"),
        "models[0].slo_ms: duplicate key 'slo_ms' on line 11",
    ),
    (
        ("  service_cv: 0.0\n", "  service_cv: 0.0\n  batch: {kind: fixed, value: 8}\n"),
        "workload.batch: duplicate key 'batch' on line 17 (first given on line 15)",
    ),
]


@pytest.mark.parametrize(("edit", "problem"), DUPLICATES)
def test_duplicate_yaml_key(tmp_path, capsys, edit, problem):
    s = edited(tmp_path, edit)
    with pytest.raises(ScenarioError) as err:
        load_scenario(s)
    assert len(err.value.problems) == 1, err.value.problems
    assert err.value.problems[0].startswith(problem), err.value.problems
    assert str(err.value).startswith(s)
    problem_lines(cli_error(["validate", s], capsys, s, problem), 1)
    cli_error(["run", s, "--no-progress", *FEW], capsys, problem)


def test_every_duplicate_key_is_one_problem(tmp_path, capsys):
    s = edited(tmp_path, DUPLICATES[0][0], DUPLICATES[2][0])
    lines = problem_lines(cli_error(["validate", s], capsys, s), 2)
    assert "seed:" in lines[0] and "models[0].slo_ms:" in lines[1]


def test_merged_keys_may_be_overridden_and_aliases_are_not_duplicates(tmp_path):
    text = "base: &b {num_gpus: 2, reconfig_s: 1.0}\ncluster:\n  <<: *b\n  num_gpus: 4\n"
    (tmp_path / "m.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError) as err:  # only the unknown key `base`
        load_scenario(tmp_path / "m.yaml")
    assert len(err.value.problems) == 1 and err.value.problems[0].startswith("base: unknown key")
    text = "workload:\n  batch: &b {kind: fixed, value: 8}\n  phases: [{start_s: 10, batch: *b}]\n"
    (tmp_path / "a.yaml").write_text(text, encoding="utf-8")
    assert load_scenario(tmp_path / "a.yaml").workload.phases[0].batch.value == 8


# --------------------------------------------------------------------------- empty layouts
@pytest.mark.parametrize(
    ("layouts", "gpus", "field"),
    [("[[]]", 8, "layouts[0]"), ("[[7], []]", 2, "layouts[1]"), ("[[], []]", 2, "layouts[0]")],
)
def test_empty_layout(tmp_path, capsys, layouts, gpus, field):
    part = ("{kind: paris, knee: sla, beta: 0.5}", f"{{kind: fixed, layouts: {layouts}}}")
    s = edited(tmp_path, part, ("num_gpus: 8", f"num_gpus: {gpus}"))
    n = layouts.count("[]")
    lines = cli_error(["validate", s], capsys, s)
    assert f"policy.partitioner.{field}: an empty layout" in problem_lines(lines, n)[0]
    with pytest.raises(ScenarioError, match=rf"policy\.partitioner\.{field[:-3]}"):
        load_scenario(s)


# --------------------------------------------------------------------------- wrong types
def test_wrong_type_is_one_problem_line(tmp_path, capsys):
    s = edited(tmp_path, ("num_gpus: 8", "num_gpus: eight"))
    lines = cli_error(["validate", s], capsys, s, "cluster.num_gpus", "'eight'", "an integer")
    problem_lines(lines, 1)
    assert "must be >=" not in lines[0]


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"cluster": {"num_gpus": "eight"}}, "cluster.num_gpus"),
        ({"cluster": {"reconfig_s": "slow"}}, "cluster.reconfig_s"),
        ({"run": {"num_queries": 1.5}}, "run.num_queries"),
        ({"seed": "zero"}, "seed"),
        ({"models": [{"name": "resnet50", "slo_ms": [100]}]}, "models[0].slo_ms"),
        ({"workload": {"arrivals": {"kind": "poisson", "rate_qps": "x"}}}, "rate_qps"),
        ({"faults": [{"gpu": 0, "down_at_s": 1.0, "up_at_s": "never"}]}, "faults[0].up_at_s"),
        ({"workload": {"load": True}}, "workload.load"),
    ],
)
def test_a_type_failure_suppresses_the_range_checks(patch, field):
    with pytest.raises(ScenarioError) as err:
        load_scenario(str(SCENARIOS / "paper_resnet50.yaml"), **patch)
    assert len(err.value.problems) == 1, err.value.problems
    assert field in err.value.problems[0] and "expected" in err.value.problems[0]


def test_range_checks_still_apply_to_values_of_the_right_type():
    with pytest.raises(ScenarioError) as err:
        load_scenario(None, cluster={"num_gpus": 0}, run={"num_queries": 10, "warmup_queries": 0})
    assert err.value.problems == ["cluster.num_gpus: got 0, must be >= 1"]
