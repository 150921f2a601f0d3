"""Benchmark 2: peak memory (and speed) of long ``simulate()`` runs, each in its own process.

The parent starts ``python bench_memory.py --child ...``, samples the child's ``VmRSS`` from
``/proc/<pid>/status`` while it runs (to show whether memory grows during the run), and reads the
child's own ``VmHWM`` (peak RSS) just before ``simulate()`` (interpreter + mig_gym and its imports
loaded) and after it. ``ru_maxrss`` from ``os.wait4`` is recorded too but not used: on Linux it also
counts the parent's memory image the child was forked from (before ``exec``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mig_gym.metrics import strict_dumps

_KB_PER_MB = 1024  # MB here means MiB (2**20 bytes); /proc and ru_maxrss report KiB


def _proc_kb(field: str, pid: int | str = "self") -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _child(scenario: str | None, policy: str, n: int, load: float) -> None:
    import mig_gym

    hwm0 = _proc_kb("VmHWM")
    t0 = time.perf_counter()
    s = mig_gym.simulate(scenario, policy, num_queries=n, load=load)
    dt = time.perf_counter() - t0
    out = {
        "num_queries": n,
        "seconds": dt,
        "qps": n / dt,
        "vmhwm_before_kb": hwm0,
        "vmhwm_kb": _proc_kb("VmHWM"),
        "arrived": s.arrived,
        "completed": s.completed,
        "rejected": s.rejected,
        "unfinished": s.unfinished,
        "retried": s.retried,
        "redispatched": s.redispatched,
        "reconfigurations": s.reconfigurations,
        "conserved": s.conserved,
        "latency_mean_ms": s.latency_mean_ms,
        "utilization": s.utilization,
    }
    print(strict_dumps(out), flush=True)


def measure(
    scenario: str | None, policy: str, n: int, load: float, sample_s: float = 0.25
) -> dict[str, Any]:
    """Run one ``simulate()`` of ``n`` queries in a fresh process; return its figures."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(n), policy, str(load)]
    if scenario is not None:
        cmd.append(scenario)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples: list[tuple[float, int]] = []
    # Not proc.poll()/wait(): they would reap the child, and os.wait4 below needs it unreaped.
    while not _exited(proc.pid):
        kb = _proc_kb("VmRSS", proc.pid)
        if kb is not None:
            samples.append((time.perf_counter() - t0, kb))
        time.sleep(sample_s)
    stdout, stderr = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"memory child failed ({proc.returncode}): {stderr[-2000:]}")
    res = json.loads(stdout.strip().splitlines()[-1])
    # ru_maxrss of a child also counts the parent's image it was forked from (Linux keeps the
    # pre-exec high-water mark), so it reads the benchmark parent's RSS when that is larger: kept
    # for reference only; the peak reported is the child's own VmHWM, taken after simulate().
    res["ru_maxrss_kb_incl_fork_image"] = ru.ru_maxrss
    res["peak_rss_mb"] = res["vmhwm_kb"] / _KB_PER_MB
    res["baseline_rss_mb"] = (res["vmhwm_before_kb"] or 0) / _KB_PER_MB
    res["process_wall_s"] = wall
    if samples:
        half = samples[len(samples) // 2 :]
        first = samples[: max(1, len(samples) // 2)]
        res["rss_samples"] = len(samples)
        res["rss_first_half_max_mb"] = max(kb for _, kb in first) / _KB_PER_MB
        res["rss_second_half_max_mb"] = max(kb for _, kb in half) / _KB_PER_MB
    return res


def _exited(pid: int) -> bool:
    """True once ``pid`` is a zombie (exited, not yet reaped), without reaping it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


if __name__ == "__main__":
    if len(sys.argv) >= 5 and sys.argv[1] == "--child":
        _child(
            sys.argv[5] if len(sys.argv) > 5 else None,
            sys.argv[3],
            int(sys.argv[2]),
            float(sys.argv[4]),
        )
    else:
        sys.exit("usage: bench_memory.py --child N POLICY LOAD [SCENARIO] (run.py calls this)")
