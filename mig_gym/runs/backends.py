"""Where independent simulations run: a local process pool (default) or a Ray cluster.

``run_map(fn, shared, items, backend=...)`` returns ``[fn(shared, item) for item in items]`` in the
order of ``items`` whatever the backend, the number of workers or the order in which they finish.
``fn`` must be a module-level function of ``mig_gym`` (workers import it by name) and its results
depend only on its arguments, so the same seeds give identical results on every backend.

Ray is imported only when ``backend="ray"`` (``pip install -e .[ray]``). The ``mig_gym`` package
of the driver is shipped to the workers through Ray's runtime environment (``py_modules``), so the
workers run the driver's code; its dependencies (numpy, pyyaml, gymnasium) must be installed on
the cluster. Files that a scenario references (traces, profiles, learned models) are read on the
workers: their paths must resolve there (shared filesystem, or the same path on every node); see
``docs/ray.md``.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["BACKENDS", "BackendError", "ray_runtime_env", "run_map"]

BACKENDS = ("local", "ray")

S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")


class BackendError(RuntimeError):
    """The backend cannot be used (unknown name, Ray not installed, cluster unreachable)."""


def run_map(
    fn: Callable[[S, T], R],
    shared: S,
    items: Sequence[T],
    *,
    backend: str = "local",
    jobs: int | None = None,
    address: str | None = None,
    on_result: Callable[[], None] | None = None,
) -> list[R]:
    """``[fn(shared, it) for it in items]``, in order, computed on ``backend``.

    Args:
        fn: a picklable module-level function.
        shared: the argument common to every call (e.g. the scenario); Ray stores it once.
        items: one call per item.
        backend: ``"local"`` (process pool on this machine) or ``"ray"``.
        jobs: local: worker processes (default: cores; 1 runs in this process). Ray: at most
            this many points in flight (default: no limit, Ray schedules one per free CPU), and
            the CPUs of a Ray instance started here.
        address: Ray only: the cluster to join (``host:6379``, ``ray://host:10001``, or ``auto``
            for the one started on this machine with ``ray start``); None: the cluster named by
            the ``RAY_ADDRESS`` environment variable, else a new private local instance with
            ``jobs`` CPUs (default: all cores), shut down at the end.
        on_result: called once per finished item (progress bars).

    Raises:
        BackendError: unknown backend, Ray missing or unreachable. Exceptions raised by ``fn``
            propagate unchanged (on Ray: the original exception of the worker).
    """
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if jobs is not None and jobs < 1:
        raise BackendError(f"jobs must be >= 1, got {jobs}")
    if address is not None and backend != "ray":
        raise BackendError("an address is only meaningful with the ray backend")
    tick = on_result or (lambda: None)
    if backend == "ray":
        return _ray_map(fn, shared, items, jobs, address, tick)
    return _local_map(fn, shared, items, jobs, tick)


# --------------------------------------------------------------------------- local
def _local_map(
    fn: Callable[[S, T], R],
    shared: S,
    items: Sequence[T],
    jobs: int | None,
    tick: Callable[[], None],
) -> list[R]:
    jobs = jobs or os.cpu_count() or 1
    out: list[R] = []
    if jobs == 1 or len(items) <= 1:
        for it in items:
            out.append(fn(shared, it))
            tick()
        return out
    with ProcessPoolExecutor(max_workers=min(jobs, len(items))) as ex:
        for res in ex.map(partial(fn, shared), items):
            out.append(res)
            tick()
    return out


# --------------------------------------------------------------------------- ray
def _import_ray() -> Any:
    try:
        import ray  # optional dependency, imported only for this backend
    except ImportError as e:
        raise BackendError(
            f"the ray backend needs the ray extra ({e.name} is missing): pip install 'mig_gym[ray]'"
        ) from None
    return ray


def ray_runtime_env() -> dict[str, Any]:
    """The runtime environment that ships this ``mig_gym`` package to Ray workers."""
    pkg = Path(__file__).resolve().parents[1]
    return {"py_modules": [str(pkg)], "excludes": ["__pycache__", "*.pyc"]}


def _ray_map(
    fn: Callable[[S, T], R],
    shared: S,
    items: Sequence[T],
    jobs: int | None,
    address: str | None,
    tick: Callable[[], None],
) -> list[R]:
    ray = _import_ray()
    started = _ray_init(ray, jobs, address)
    # Ray initialised by the caller: its runtime env applies (Ray uploads local directories
    # only at the job level): ray.init(..., runtime_env=ray_runtime_env()) ships this package.
    remote = ray.remote(fn).options(num_cpus=1, max_retries=3, retry_exceptions=False)
    shared_ref = ray.put(shared)
    window = jobs if jobs is not None else len(items)
    index: dict[Any, int] = {}
    results: list[Any] = [None] * len(items)
    pending: list[Any] = []
    nxt = 0
    try:
        while nxt < len(items) or pending:
            while nxt < len(items) and len(pending) < window:
                ref = remote.remote(shared_ref, items[nxt])
                index[ref] = nxt
                pending.append(ref)
                nxt += 1
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                results[index.pop(ref)] = _ray_get(ray, ref)
                tick()
    finally:
        for ref in pending:  # an error or Ctrl-C: do not leave work running on the cluster
            with contextlib.suppress(Exception):  # best effort: it may have just finished
                ray.cancel(ref, force=True)
        if started:
            ray.shutdown()
    return results


def _ray_init(ray: Any, jobs: int | None, address: str | None) -> bool:
    """Join or start Ray unless the caller already did; True if this call started it."""
    if ray.is_initialized():
        if address is not None:
            raise BackendError(
                f"Ray is already initialised in this process; cannot also join "
                f"{address!r} (call ray.shutdown() first)"
            )
        return False
    # No address: the cluster of RAY_ADDRESS (set by `ray job submit`), else a private local
    # instance ("local": never a stale /tmp/ray/ray_current_cluster of a crashed cluster).
    target = address or os.environ.get("RAY_ADDRESS") or "local"
    kwargs: dict[str, Any] = {
        "runtime_env": ray_runtime_env(),
        "include_dashboard": False,
        "log_to_driver": True,
    }
    if target == "local" and jobs is not None:
        kwargs["num_cpus"] = jobs
    _probe(target)  # Ray itself retries an unreachable address for many minutes
    try:
        ray.init(address=target, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = (
            "start a local Ray instance"
            if target == "local"
            else f"connect to the Ray cluster at {target!r}"
        )
        raise BackendError(
            f"cannot {where}: {e} (a cluster with token authentication also needs "
            "RAY_AUTH_MODE=token and its token on this machine; see docs/ray.md)"
        ) from None
    return True


_CURRENT_CLUSTER = Path("/tmp/ray/ray_current_cluster")  # where `ray start` notes its address


def _probe(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast when nothing listens at ``host:port`` (for ``auto``: at the address Ray would
    pick, RAY_ADDRESS or the last cluster started on this machine)."""
    if address == "auto":
        found = os.environ.get("RAY_ADDRESS", "")
        if not found and _CURRENT_CLUSTER.is_file():
            found = _CURRENT_CLUSTER.read_text().strip()
        if not found or found == "auto":
            return  # Ray reports "no cluster found" itself, quickly
        address = found
    hostport = address.removeprefix("ray://")
    if address == "local" or ":" not in hostport:
        return
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except ValueError:
        raise BackendError(
            f"Ray address {address!r}: expected host:port, ray://host:port or auto"
        ) from None
    except OSError as e:
        raise BackendError(
            f"cannot reach a Ray cluster at {address!r}: {e} (is its head node "
            "running? `ray start --head` starts one)"
        ) from None


def _ray_get(ray: Any, ref: Any) -> Any:
    """``ray.get`` re-raising the worker's own exception (not Ray's wrapper with its remote
    traceback), so callers catch ``ScenarioError``, ``FileNotFoundError``... as locally."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, Exception):
            raise cause from None
        raise
