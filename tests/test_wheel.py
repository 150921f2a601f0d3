"""The package as users install it: a wheel built from the source, installed into a fresh venv,
trains with ``mig-gym train`` from outside the repository with the hyperparameters shipped as
package data (the configured ``SlotPolicy`` for MaskablePPO on Dispatch-v0, not a silent
``MlpPolicy``).

The venv sees the shared venv's site-packages through a ``.pth`` line (torch and SB3 are not
reinstalled) but not its editable install of this checkout: the test checks that ``mig_gym`` is
imported from the venv's own copy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

from .conftest import REPO

pytest.importorskip("sb3_contrib")

TINY = (
    "name: tiny\ncluster: {num_gpus: 2}\nmodels: [{name: resnet50, slo_ms: 100}]\n"
    "workload: {arrivals: {kind: poisson, rate_qps: 120}}\n"
    "run: {num_queries: 300, warmup_queries: 0}\nenv: {queries_per_episode: 300}\n"
)


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
    shutil.copytree(REPO / "mig_gym", src / "mig_gym", ignore=shutil.ignore_patterns("__pycache__"))
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


def test_installed_wheel_trains_with_the_packaged_hyperparameters(tmp_path: Path):
    whl = _wheel(tmp_path)
    venv = _venv(tmp_path, whl)
    work = tmp_path / "elsewhere"
    work.mkdir()
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
