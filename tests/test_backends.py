"""Backends of ``compare``/``sweep``: the local process pool and Ray give the same results for the
same seeds, in the same order; errors raised on workers arrive as the workers' own exceptions."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

from mig_gym.cli import main
from mig_gym.runs import backends
from mig_gym.runs.backends import BackendError, run_map
from mig_gym.runs.experiments import Point, run_points
from mig_gym.scenario import load_scenario
from mig_gym.workload import WorkloadError

from .conftest import REPO

HAVE_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed (pip install -e .[ray])")

TRACE = "TIMESTAMP,ContextTokens\n" + "".join(
    f"{i * 0.013:.3f},{100 + 37 * i % 900}\n" for i in range(400)
)


def _square(shared: int, x: int) -> int:
    return shared * x * x


def _tiny(tmp_path: Path) -> Path:
    """A small scenario whose arrivals replay a trace given by a relative path."""
    (tmp_path / "trace.csv").write_text(TRACE)
    sc = tmp_path / "tiny.yaml"
    sc.write_text(
        "name: tiny\ncluster: {num_gpus: 2}\nmodels: [{name: bert, slo_ms: 900}]\n"
        "workload:\n  arrivals: {kind: trace, path: trace.csv, rate_qps: 60, loop: true}\n"
        "  batch: {kind: trace_column, column: ContextTokens, per_item: 128, max: 64}\n"
        "run: {num_queries: 600, warmup_queries: 50}\n"
    )
    return sc


def same(a: object, b: object) -> bool:
    """Equality where NaN equals NaN (empty windows have NaN percentiles)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def plain(results: list) -> list:
    """Results as plain data: each point's Summary dict and time series."""
    return [(r.summary.to_dict(), r.series) for r in results]


# --------------------------------------------------------------------------- local
def test_local_order_and_jobs_do_not_change_results():
    assert run_map(_square, 3, [4, 1, 2, 5], jobs=1) == [48, 3, 12, 75]
    assert run_map(_square, 3, [4, 1, 2, 5], jobs=2) == [48, 3, 12, 75]
    assert run_map(_square, 3, []) == []


def test_bad_backend_arguments():
    with pytest.raises(BackendError, match="unknown backend 'dask'"):
        run_map(_square, 1, [1], backend="dask")
    with pytest.raises(BackendError, match="jobs must be >= 1"):
        run_map(_square, 1, [1], jobs=0)
    with pytest.raises(BackendError, match="only meaningful with the ray backend"):
        run_map(_square, 1, [1], address="10.0.0.1:6379")


def test_missing_ray_is_a_clear_user_error(monkeypatch, capsys, tmp_path: Path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    msg = r"ray extra \(ray is missing\): pip install 'mig_gym\[ray\]'$"
    with pytest.raises(BackendError, match=msg):
        run_map(_square, 1, [1, 2], backend="ray")
    resnet = str(REPO / "scenarios" / "paper_resnet50.yaml")
    rc = main(["sweep", resnet, "--backend", "ray", "--loads", "1", "--seeds", "1",
               "--num-queries", "200", "--logdir", str(tmp_path)])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "pip install 'mig_gym[ray]'" in err and "Traceback" not in err


def test_runtime_env_ships_the_package():
    env = backends.ray_runtime_env()
    (pkg,) = env["py_modules"]
    assert (
        Path(pkg) == REPO / "mig_gym" and (Path(pkg) / "hardware" / "data" / "gpus.yaml").is_file()
    )


# --------------------------------------------------------------------------- ray
@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install -e .[ray])")
    if ray.is_initialized():
        ray.shutdown()
    # "local": a new instance even if /tmp/ray names another (possibly dead) cluster.
    try:
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env=backends.ray_runtime_env(),
        )
    except (RuntimeError, ConnectionError, OSError) as e:  # the machine, not mig_gym
        pytest.skip(f"cannot start a local Ray instance here: {e}")
    yield ray
    ray.shutdown()


@needs_ray
def test_ray_matches_local(ray_instance, tmp_path: Path, capsys):
    """One test (one Ray instance, one xdist worker): results, CLI, shipping, worker errors."""
    ray = ray_instance
    sc = load_scenario(_tiny(tmp_path))
    pts = [
        Point(p, sc.seed + i, ld)
        for p in ("paris+elsa", "homo7+fifs", "homo1+fifs")
        for ld in (0.5, 1.5)
        for i in range(2)
    ]
    local = run_points(sc, pts, jobs=2, progress=False)
    remote = run_points(sc, pts, jobs=2, progress=False, backend="ray")
    assert [r.point for r in local] == [r.point for r in remote] == pts
    assert same(plain(local), plain(remote))
    assert local[0].summary.seed == 0 and local[1].summary.seed == 1  # order of points kept
    alone = run_points(sc, pts[:3], jobs=1, progress=False, backend="ray")[2]
    assert same(plain([alone]), plain(local[2:3]))

    # The package was uploaded to the cluster (on one machine the workers may also find the
    # checkout on sys.path; on other nodes the uploaded copy is the one they import).
    @ray.remote
    def shipped() -> list[str]:
        return list(ray.get_runtime_context().runtime_env.get("py_modules", []))

    (uri,) = ray.get(shipped.remote())
    assert uri.startswith("gcs://") and uri.endswith(".zip")

    # The CLI: same CSV from both backends.
    common = [
        "sweep",
        str(tmp_path / "tiny.yaml"),
        "--policies",
        "paris+elsa,homo7+fifs",
        "--loads",
        "0.5,1",
        "--seeds",
        "2",
        "--no-progress",
    ]
    assert main([*common, "--logdir", str(tmp_path / "a"), "--jobs", "2"]) == 0
    assert main([*common, "--logdir", str(tmp_path / "b"), "--backend", "ray"]) == 0
    csv_a = (tmp_path / "a" / "tiny" / "sweep" / "sweep.csv").read_text()
    assert csv_a == (tmp_path / "b" / "tiny" / "sweep" / "sweep.csv").read_text()
    capsys.readouterr()

    # A file missing on the workers: the worker's own exception, not Ray's wrapper.
    (tmp_path / "trace.csv").unlink()
    with pytest.raises((FileNotFoundError, WorkloadError), match=r"trace\.csv"):
        run_points(sc, pts[:2], progress=False, backend="ray")
    rc = main([*common, "--logdir", str(tmp_path / "c"), "--backend", "ray"])
    assert rc == 2 and "trace.csv" in capsys.readouterr().err
    with pytest.raises(BackendError, match="already initialised"):
        run_map(_square, 1, [1], backend="ray", address="127.0.0.1:1")
