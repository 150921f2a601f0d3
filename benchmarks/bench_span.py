"""Cost against simulated span at a fixed query count (issue 11 item 2), one process per run.

The same 2,000 queries of the paper scenario arrive at rates from 1e3 down to 1e-6 q/s, so the
run simulates from about 2 s to about 2e9 s (``run.window_s`` 10 s: up to 2e8 windows); a run with
``window_s`` 1e-6 s at the scenario's rate, and the issue's 50 queries at 1e-6 q/s, complete it.
Every case runs on the fast path and on the event loop (``fast=False``). The figures per run:
seconds of ``build`` + ``execute`` (imports excluded), the process's peak RSS (``VmHWM``), and
the work counters (time-series windows closed, event-heap entries). Work is bounded by the
events: the seconds grow with the windows that have events (one at 2 s, about two per query
once queries are further apart than ``window_s``), then stay flat however long the span.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script (the child): this tree's mig_gym and benchmarks
    sys.path.insert(0, str(ROOT))

import mig_gym  # noqa: E402
from benchmarks.bench_memory import _KB_PER_MB, _proc_kb  # noqa: E402
from mig_gym.metrics import strict_dumps  # noqa: E402
from mig_gym.scenario import config as C  # noqa: E402
from mig_gym.scenario import load_scenario, replace_in  # noqa: E402

RATES_QPS = (1e3, 1e2, 1e1, 1.0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
QUICK_RATES_QPS = (1e3, 1e-6)
NUM_QUERIES = 2_000
TARGET_S, TARGET_MB = 2.0, 200.0  # issue 11: each of its two runs under 2 s and 200 MB


def _child(scenario: str | None, rate_qps: float | None, n: int, window_s: float | None,
           fast: bool) -> None:  # fmt: skip
    sc = load_scenario(scenario)
    if rate_qps is not None:
        sc = replace_in(sc, "workload.arrivals", C.PoissonArrivals(rate_qps=rate_qps))
    if window_s is not None:
        sc = replace_in(sc, "run.window_s", window_s)
    hwm0 = _proc_kb("VmHWM")
    t0 = time.perf_counter()
    run = mig_gym.build(sc, None, None, n, fast=fast)
    s = run.execute()
    dt = time.perf_counter() - t0
    print(strict_dumps({
        "seconds": dt,
        "peak_rss_mb": (_proc_kb("VmHWM") or 0) / _KB_PER_MB,
        "baseline_rss_mb": (hwm0 or 0) / _KB_PER_MB,
        "loop": run.loop,
        "sim_time_s": s.sim_time_s,
        "window_s": sc.run.window_s,
        "windows_closed": run.recorder.windows_closed,
        "series_rows": len(run.recorder.series),
        "events_scheduled": run.sim.events_scheduled,
        "arrived": s.arrived,
        "events": s.arrived + s.completed + s.rejected,
        "conserved": s.conserved and s.arrived == n,
    }), flush=True)  # fmt: skip


def measure(scenario: str | None, rate_qps: float | None, n: int, window_s: float | None,
            fast: bool) -> dict[str, Any]:  # fmt: skip
    """One run in a fresh process; its figures (see the module docstring)."""
    args = [strict_dumps([scenario, rate_qps, n, window_s, fast])]
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"span child failed ({proc.returncode}): {proc.stderr[-2000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res.update(rate_qps=rate_qps, num_queries=n)
    res["within_target"] = res["seconds"] < TARGET_S and res["peak_rss_mb"] < TARGET_MB
    # a window with events closes once, and so does each run of empty windows after one
    res["window_bound"] = 2 * res["events"] + 2
    return res


def _both(scenario: str | None, rate: float | None, n: int, window_s: float | None) -> dict:
    return {
        loop: measure(scenario, rate, n, window_s, fast)
        for loop, fast in (("fast", True), ("events", False))
    }


def run(scenario: str | None, quick: bool = False) -> dict[str, Any]:
    rates = QUICK_RATES_QPS if quick else RATES_QPS
    spans = [{"rate_qps": r, **_both(scenario, r, NUM_QUERIES, None)} for r in rates]
    issue = {
        "50q_at_1e-6qps": _both(scenario, 1e-6, 50, None),
        "2000q_window_1e-6s": _both(scenario, None, NUM_QUERIES, 1e-6),
    }
    runs = [s[k] for s in spans for k in ("fast", "events")]
    runs += [c[k] for c in issue.values() for k in ("fast", "events")]
    loops_ok = all(s[k]["loop"] == k for s in [*spans, *issue.values()] for k in ("fast", "events"))
    flat = {
        k: max(s[k]["seconds"] for s in spans) / min(s[k]["seconds"] for s in spans)
        for k in ("fast", "events")
    }
    return {
        "num_queries": NUM_QUERIES,
        "spans": spans,
        "issue": issue,
        "max_over_min_seconds": flat,
        "conserved": all(r["conserved"] for r in runs) and loops_ok,
        "bounded_by_events": all(r["windows_closed"] <= r["window_bound"] for r in runs),
        "issue_within_target": all(c[k]["within_target"] for c in issue.values() for k in c),
    }


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        _child(*json.loads(sys.argv[2]))
    else:
        sys.exit("usage: bench_span.py --child JSON (run.py calls this)")
