"""The package as users install it: a wheel built from the source, installed into a fresh venv and
run from outside the repository.

From the wheel, every registered task makes, resets and steps on the scenario files it ships
(``mig_gym._scenarios``: the top-level ``scenarios/`` folder, byte for byte); ``mig-gym train``
trains on a scenario file with the hyperparameters shipped as package data (the configured
``SlotPolicy`` for MaskablePPO on Dispatch-v0, not a silent ``MlpPolicy``) and on a task with its
shipped recipe.

The venv sees the shared venv's site-packages through a ``.pth`` line (torch and SB3 are not
reinstalled) but not its editable install of this checkout: the tests check that ``mig_gym`` and
its scenario files come from the venv's own copy. One wheel and venv serve the whole module.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

from mig_gym.envs.tasks import DISPATCH_TASKS, PARTITION_TASKS

from .conftest import REPO, SCENARIOS

TINY = (
    "name: tiny\ncluster: {num_gpus: 2}\nmodels: [{name: resnet50, slo_ms: 100}]\n"
    "workload: {arrivals: {kind: poisson, rate_qps: 120}}\n"
    "run: {num_queries: 300, warmup_queries: 0}\nenv: {queries_per_episode: 300}\n"
)

# Run in the venv: every registered id makes, resets and steps once on the wheel's files; every
# shipped scenario loads or names the file it misses (azure_trace.yaml's trace in ../shared).
TASKS = """
import sys
from pathlib import Path
import gymnasium as gym
import numpy as np
import mig_gym
from mig_gym.envs.tasks import DISPATCH_TASKS, PARTITION_TASKS
from mig_gym.scenario import ScenarioError, load_scenario, scenario_file, scenario_names

venv = Path(sys.prefix)
assert Path(mig_gym.__file__).is_relative_to(venv), mig_gym.__file__
ids = [t.env_id for t in (*DISPATCH_TASKS, *PARTITION_TASKS)]
assert set(ids) <= set(gym.registry), ids
for i in ids:
    env = gym.make(i)
    _, info = env.reset(seed=0)
    assert Path(env.unwrapped.scenario.base_dir).is_relative_to(venv), (i, env.unwrapped.scenario)
    if isinstance(env.action_space, gym.spaces.Discrete):
        action = int(np.flatnonzero(info["action_mask"])[0])
    else:
        env.action_space.seed(0)
        action = env.action_space.sample()
    env.step(action)
    env.close()
    print("made", i)
for name in scenario_names():
    try:
        load_scenario(scenario_file(name))
    except ScenarioError as e:
        print("missing", name, e)
    else:
        print("loaded", name)
"""


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # no checkout on the path
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=600)
    assert out.returncode == 0, (cmd, out.stdout[-2000:], out.stderr[-3000:])
    return out


def _wheel(tmp: Path) -> Path:
    """Build from a copy of the sources, so the build leaves nothing in the checkout."""
    src = tmp / "src"
    src.mkdir()
    for f in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / f, src / f)
    for d in ("mig_gym", "scenarios"):
        shutil.copytree(REPO / d, src / d, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip"]
    _run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(src)], tmp
    )
    (whl,) = (tmp / "dist").glob("mig_gym-*.whl")
    return whl


def _venv(tmp: Path, whl: Path) -> Path:
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp)
    py = venv / "bin" / "python"
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(_run([str(py), "-c", code], tmp).stdout.strip())
    (site / "shared_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", str(whl)], tmp)
    return venv


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """The wheel, the venv it is installed in, and an empty working folder outside the repo."""
    tmp = tmp_path_factory.mktemp("wheel")
    whl = _wheel(tmp)
    work = tmp / "elsewhere"
    work.mkdir()
    return whl, _venv(tmp, whl), work


def test_the_package_list_is_every_folder_of_mig_gym():
    """pyproject.toml lists the packages (a finder cannot map ``mig_gym._scenarios`` to
    ``scenarios/``): a new folder under ``mig_gym/`` must be listed or it is not installed."""
    setup = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    folders = [p for p in (REPO / "mig_gym").rglob("*") if p.is_dir() and p.name != "__pycache__"]
    found = {"mig_gym", *(".".join(p.relative_to(REPO).parts) for p in folders)}
    assert set(setup["setuptools"]["packages"]) == found | {"mig_gym._scenarios"}
    assert setup["setuptools"]["package-dir"] == {"mig_gym._scenarios": "scenarios"}


def test_the_wheel_ships_the_scenario_files_byte_for_byte(installed):
    whl = installed[0]
    with zipfile.ZipFile(whl) as z:
        shipped = {
            Path(n).name: z.read(n) for n in z.namelist() if n.startswith("mig_gym/_scenarios/")
        }
    source = {p.name: p.read_bytes() for p in SCENARIOS.glob("*.yaml")}
    assert sorted(shipped) == sorted(source)
    assert shipped == source


def test_installed_wheel_makes_every_task_on_its_own_scenario_files(installed):
    _, venv, work = installed
    out = _run([str(venv / "bin" / "python"), "-c", TASKS], work).stdout.splitlines()
    made = [x.split()[1] for x in out if x.startswith("made ")]
    assert made == [t.env_id for t in (*DISPATCH_TASKS, *PARTITION_TASKS)]
    missing = [x for x in out if x.startswith("missing ")]
    loaded = {x.split()[1] for x in out if x.startswith("loaded ")}
    # Only the trace replay needs a file beside a checkout; its error names the file.
    assert [x.split()[1] for x in missing] == ["azure_trace.yaml"]
    assert "file not found" in missing[0] and "AzureLLMInferenceTrace_conv.csv" in missing[0]
    assert loaded == {p.name for p in SCENARIOS.glob("*.yaml")} - {"azure_trace.yaml"}


def test_installed_wheel_trains_with_the_packaged_hyperparameters(installed):
    pytest.importorskip("sb3_contrib")
    _, venv, work = installed
    (work / "tiny.yaml").write_text(TINY)
    train = [str(venv / "bin" / "mig-gym"), "train", "tiny.yaml", "--timesteps", "64"]
    train += ["--n-envs", "1", "--eval-episodes", "1", "--eval-freq", "1000000", "--no-progress"]
    assert "saved runs/tiny/maskable_ppo-dispatch-s0/model.zip" in _run(train, work).stdout

    model = work / "runs" / "tiny" / "maskable_ppo-dispatch-s0" / "model.zip"
    meta = json.loads(model.with_name("model.json").read_text())
    packaged = yaml.safe_load((REPO / "mig_gym/learn/hyperparams/maskable_ppo.yml").read_text())
    want = packaged["mig_gym/Dispatch-v0"]
    assert meta["policy"] == want["policy"] == "SlotPolicy"
    assert meta["n_steps"] == str(want["n_steps"])  # the rest of the file was read too
    code = (
        "import sys, mig_gym; from sb3_contrib import MaskablePPO\n"
        "m = MaskablePPO.load(sys.argv[1], device='cpu')\n"
        "print(mig_gym.__file__); print(type(m.policy).__module__, type(m.policy).__name__)"
    )
    where, cls = _run([str(venv / "bin" / "python"), "-c", code, str(model)], work).stdout.split(
        "\n"
    )[:2]
    assert Path(where).is_relative_to(venv)  # the installed copy, not the checkout
    assert cls == "mig_gym.learn.nets SlotPolicy"


def test_installed_wheel_trains_on_a_task_with_its_shipped_recipe(installed):
    """``mig-gym train TASK`` from the wheel. The recipe's first rollout is 2 x 96 Partition steps
    (about 20 s), so a 60 ms budget stops learning within it; the evaluations still run."""
    pytest.importorskip("sb3_contrib")
    _, venv, work = installed
    train = [str(venv / "bin" / "mig-gym"), "train", "Partition-tiny_huge-v0", "--timesteps", "12"]
    train += ["--eval-episodes", "1", "--eval-freq", "1000000", "--time-limit", "0.001"]
    run = "runs/Partition-tiny_huge-v0/drift_tiny_huge/maskable_ppo-s0"
    assert f"saved {run}/model.zip" in _run([*train, "--no-progress"], work).stdout

    meta = json.loads((work / run / "model.json").read_text())
    assert meta["env"] == "mig_gym/Partition-v0" and meta["policy"] == "LayoutPolicy"
    assert meta["stopped_early"] and meta["steps_done"] < 2 * 96
    assert Path(meta["scenario"]["base_dir"]).is_relative_to(venv)  # the wheel's scenario file
