"""mig_gym benchmarks (``make bench``): run them all, print one table, write ``results.json``.

Benchmarks (``--only NAME`` runs one):

- ``simpy``: queries/s of ``mig_gym.simulate()`` (PARIS layout + earliest-finish push dispatch) on
  the paper scenario versus a SimPy model of the same queueing system, which must agree with it on
  mean latency (see ``bench_sim.py`` and ``simpy_model.py``);
- ``fast``: the same ``simulate()`` runs on the fast path and on the event loop, per dispatch
  rule (ELSA, earliest finish, FIFS), and whether they agree (see ``bench_fast.py``);
- ``memory``: peak RSS and queries/s of a long ``simulate()`` run in a fresh process, at two run
  lengths, to show memory stays bounded (see ``bench_memory.py``);
- ``envs``: Dispatch-v0 and Partition-v0 steps/s with random valid actions next to CartPole-v1,
  and the aggregate steps/s of Dispatch-v0's native vector environment (8 environments in one
  process) against the same CartPole-v1 rate (see ``bench_envs.py``);
- ``eval``: seconds to evaluate a saved MaskablePPO Dispatch-v0 agent on 100,000 queries as
  ``mig-gym compare`` does, in a fresh process (see ``bench_eval.py``);
- ``scale``: PARIS+ELSA queries/s on 8 and on 1,000 GPUs, and PARIS planning time for 1,000 GPUs
  (see ``bench_scale.py``);
- ``soak``: a 10M-query run with GPU failures and periodic re-partitioning in its own process:
  every query accounted for, peak RSS (see ``bench_soak.py``);
- ``span``: seconds and peak RSS of the same 2,000 queries over simulated spans from 2 s to 2e9 s
  (and with a 1e-6 s metrics window), fast path and event loop, each run in its own process:
  flat, since work is bounded by events (see ``bench_span.py``).

``--quick`` is a smoke version (< 1 min). Exit status 1 if the simulators disagree (mig_gym and
SimPy, or the fast path and the event loop) or the soak loses a query.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import (  # noqa: E402
    bench_envs,
    bench_eval,
    bench_fast,
    bench_memory,
    bench_scale,
    bench_sim,
    bench_soak,
    bench_span,
)
from mig_gym.metrics import strict_dumps  # noqa: E402

POLICY = "paris+earliest_finish"
# Load (arrival-rate multiplier) at which PARIS + earliest-finish runs at ~76 % GPC utilization on
# paper_resnet50 (0.9 -> ~0.62, 1.0 -> 0.69, 1.1 -> 0.76, 1.2 -> 0.83; saturated by 1.5).
LOAD = 1.1
DEFAULT_SCENARIO = ROOT / "scenarios" / "paper_resnet50.yaml"
TARGET_SPEEDUP = 3.0
TARGET_RSS_MB = 1024.0

SIZES = {
    # name: (full, quick)
    "sim_queries": (200_000, 20_000),
    "sim_repeats": (3, 1),
    "fast_queries": (200_000, 20_000),
    "mem_small": (1_000_000, 100_000),
    "mem_large": (10_000_000, 1_000_000),
    "env_seconds": (3.0, 0.5),
    "epoch_steps": (20, 3),
    "epoch_repeats": (3, 1),
    "eval_queries": (100_000, 5_000),
    "scale_small": (200_000, 20_000),
    "scale_large": (1_000_000, 50_000),
    "scale_repeats": (2, 1),
    "soak": (10_000_000, 200_000),
}
TARGET_ENV_RATIO = 0.5  # Dispatch-v0 steps/s vs CartPole-v1
TARGET_EPOCHS_RATIO = 10.0  # Partition-v0 on the epoch fast path vs the event loop (diurnal_drift)
TARGET_VEC_RATIO = 1.0  # Dispatch-v0 vector env (8 envs, one process) aggregate vs CartPole-v1
TARGET_EVENTS_RATIO = 2.0  # event loop (fast=False) vs SimPy lean
TARGET_EVAL_S = 120.0  # evaluating a saved Dispatch-v0 agent on 100,000 queries
TARGET_SCALE_RATIO = 0.5  # 1,000-GPU vs 8-GPU queries/s
TARGET_PLAN_S = 1.0  # PARIS plan for 1,000 GPUs


def _environment() -> dict[str, Any]:
    import numpy
    import simpy

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--", "mig_gym"],
                cwd=ROOT,
                capture_output=True,
                text=True,
            ).stdout.strip()
        )
    except OSError:
        commit, dirty = "", False
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "numpy": numpy.__version__,
        "simpy": simpy.__version__,
        "git_commit": commit,
        "mig_gym_tree_modified": dirty,
        "loadavg_1min_at_start": os.getloadavg()[0],
    }


def _mb(x: float) -> str:
    return f"{x:,.1f} MB"


def _qps(x: float) -> str:
    return f"{x:,.0f} q/s"


def _verdict(met: bool, target: str) -> str:
    return f"{target}: {'met' if met else 'MISSED'}"


def _rows_sim(r: dict[str, Any]) -> list[list[str]]:
    n = f"{r['num_queries']:,}"
    q, sp = r["qps"], r["speedup"]
    ok = _verdict(sp["lean"] >= TARGET_SPEEDUP, f">= {TARGET_SPEEDUP:g}x")
    mg, ref = r["mig_gym"], r["simpy"]["lean"]
    c = r["checks"]
    spe = r["speedup_events"]
    return [
        [
            "simpy",
            f"simulate() speed, {n} queries vs SimPy lean",
            _qps(q["mig_gym"]),
            _qps(q["lean"]),
            f"{sp['lean']:.2f}x",
            ok,
        ],
        [
            "simpy",
            f"simulate() speed, {n} queries vs SimPy Store",
            _qps(q["mig_gym"]),
            _qps(q["store"]),
            f"{sp['store']:.2f}x",
            _verdict(sp["store"] >= TARGET_SPEEDUP, f">= {TARGET_SPEEDUP:g}x"),
        ],
        [
            "simpy",
            "event loop (fast=False, compiled core) vs SimPy lean",
            _qps(q["mig_gym_events"]),
            _qps(q["lean"]),
            f"{spe['lean']:.2f}x",
            _verdict(
                spe["lean"] >= TARGET_EVENTS_RATIO and r["core_used"],
                f">= {TARGET_EVENTS_RATIO:g}x",
            ),
        ],
        [
            "simpy",
            "event loop, service noise + 2 GPU faults (compiled core), vs SimPy lean (static)",
            _qps(q["mig_gym_noisy"]),
            _qps(q["lean"]),
            f"{r['speedup_noisy']['lean']:.2f}x",
            _verdict(
                r["speedup_noisy"]["lean"] >= TARGET_EVENTS_RATIO and r["core_used"],
                f">= {TARGET_EVENTS_RATIO:g}x",
            ),
        ],
        [
            "simpy",
            "event loop, Python (compiled=False) vs SimPy lean",
            _qps(q["mig_gym_events_python"]),
            _qps(q["lean"]),
            f"{r['speedup_events_python']['lean']:.2f}x",
            "the reference loop",
        ],
        [
            "simpy",
            "event loop, noise + faults, Python (compiled=False) vs SimPy lean (static)",
            _qps(q["mig_gym_noisy_python"]),
            _qps(q["lean"]),
            f"{r['speedup_noisy_python']['lean']:.2f}x",
            "",
        ],
        [
            "simpy",
            "event loop: compiled core vs Python loop (static; noise + faults)",
            f"{r['core_vs_python']:.2f}x",
            f"{r['core_vs_python_noisy']:.2f}x",
            "",
            "same counts, sums to 1e-9" if r["python_agrees"] else "DISAGREE",
        ],
        [
            "simpy",
            "event loop's compiled core: added cost of a process's first run",
            f"{r['core_first_use_s']:.2f} s",
            "",
            "",
            "numba import + kernel load; once, not in the rates",
        ],
        [
            "simpy",
            "simulate() (fast path) vs event loop",
            _qps(q["mig_gym"]),
            _qps(q["mig_gym_events"]),
            f"{r['fast_vs_events']:.2f}x",
            "",
        ],
        [
            "simpy",
            "mean latency",
            f"{mg['latency_mean_ms']:.9f} ms",
            f"{ref['latency_mean_ms']:.9f} ms",
            f"rel diff {c['latency_mean_rel_diff']:.1e}",
            "agree" if r["agree"] else "DISAGREE",
        ],
        [
            "simpy",
            "mean latency, event loop",
            f"{mg['events_latency_mean_ms']:.9f} ms",
            f"{ref['latency_mean_ms']:.9f} ms",
            f"rel diff {c['events_latency_mean_rel_diff']:.1e}",
            "",
        ],
        [
            "simpy",
            "max latency",
            f"{mg['latency_max_ms']:.6f} ms",
            f"{ref['latency_max_ms']:.6f} ms",
            f"rel diff {c['latency_max_rel_diff']:.1e}",
            "",
        ],
        [
            "simpy",
            "p95 latency (mig_gym: sketch)",
            f"{mg['latency_p95_ms']:.4f} ms",
            f"{ref['latency_p95_ms']:.4f} ms",
            f"rel diff {c['latency_p95_rel_diff']:.1e}",
            "<= 5e-4",
        ],
        ["simpy", f"GPC utilization at load {r['load']:g}", f"{r['utilization']:.3f}", "", "", ""],
    ]


def _rows_fast(r: dict[str, Any]) -> list[list[str]]:
    n = f"{r['num_queries']:,}"
    return [
        [
            "fast",
            f"{policy}, {n} q: fast path vs event loop",
            _qps(p["qps_fast"]),
            _qps(p["qps_events"]),
            f"{p['speedup']:.2f}x",
            "agree" if p["agree"] else "DISAGREE",
        ]
        for policy, p in r["policies"].items()
    ]


def _rows_mem(r: dict[str, Any]) -> list[list[str]]:
    small, large = r["small"], r["large"]
    ns, nl = f"{small['num_queries']:,}", f"{large['num_queries']:,}"
    verdict = _verdict(large["peak_rss_mb"] <= TARGET_RSS_MB, f"<= {TARGET_RSS_MB:g} MB")
    return [
        [
            "memory",
            f"peak RSS, {nl} vs {ns} queries",
            _mb(large["peak_rss_mb"]),
            _mb(small["peak_rss_mb"]),
            f"{large['peak_rss_mb'] / small['peak_rss_mb']:.2f}x",
            verdict,
        ],
        [
            "memory",
            "RSS after imports (before simulate)",
            _mb(large["baseline_rss_mb"]),
            _mb(small["baseline_rss_mb"]),
            "",
            "",
        ],
        [
            "memory",
            f"RSS max, 1st vs 2nd half of {nl} run",
            _mb(large["rss_first_half_max_mb"]),
            _mb(large["rss_second_half_max_mb"]),
            f"{large['rss_second_half_max_mb'] / large['rss_first_half_max_mb']:.2f}x",
            "",
        ],
        [
            "memory",
            f"speed, {nl} vs {ns} queries",
            _qps(large["qps"]),
            _qps(small["qps"]),
            f"{large['qps'] / small['qps']:.2f}x",
            "",
        ],
    ]


def _rows_envs(r: dict[str, Any]) -> list[list[str]]:
    sps = r["steps_per_s"]
    return [
        [
            "envs",
            "Dispatch-v0 vs CartPole-v1 steps/s",
            f"{sps['dispatch']:,.0f}/s",
            f"{sps['cartpole']:,.0f}/s",
            f"{r['dispatch_vs_cartpole']:.2f}x",
            _verdict(r["dispatch_vs_cartpole"] >= TARGET_ENV_RATIO, f">= {TARGET_ENV_RATIO:g}x"),
        ],
        [
            "envs",
            f"Dispatch-v0 vector env ({r['vec_num_envs']} envs, 1 process, compiled step) vs "
            "CartPole-v1",
            f"{sps['dispatch_vec']:,.0f}/s",
            f"{sps['cartpole']:,.0f}/s",
            f"{r['dispatch_vec_vs_cartpole']:.2f}x",
            _verdict(
                r["dispatch_vec_vs_cartpole"] >= TARGET_VEC_RATIO, f">= {TARGET_VEC_RATIO:g}x"
            ),
        ],
        [
            "envs",
            f"Dispatch-v0 vector env ({r['vec_num_envs']} envs, Python step) vs CartPole-v1",
            f"{sps['dispatch_vec_python']:,.0f}/s",
            f"{sps['cartpole']:,.0f}/s",
            f"{r['dispatch_vec_python_vs_cartpole']:.2f}x",
            "compiled_step=False",
        ],
        [
            "envs",
            "Partition-v0 vs CartPole-v1 steps/s",
            f"{sps['partition']:,.2f}/s",
            f"{sps['cartpole']:,.0f}/s",
            f"{r['partition_vs_cartpole']:.1e}x",
            "one step = 60 s simulated",
        ],
        *_rows_epochs(r["epochs"]),
    ]


def _rows_epochs(e: dict[str, Any]) -> list[list[str]]:
    rows = []
    for mode, what in (("random", "random actions"), ("keep", "actions keeping the plan"),
                       ("fifs", "FIFS, random actions")):  # fmt: skip
        if mode not in e:
            continue
        m = e[mode]
        ok = m["loops"] == ["fast", "events"]
        how = "compiled" if m.get("compiled") else "Python"
        rows.append([
            "envs",
            f"Partition-v0 {e['scenario']} fast ({how}) vs Python event loop, {what}",
            f"{m['fast']:,.1f}/s",
            f"{m['events']:,.1f}/s",
            f"{m['ratio']:.1f}x",
            _verdict(ok and m["ratio"] >= TARGET_EPOCHS_RATIO, f">= {TARGET_EPOCHS_RATIO:g}x"),
        ])  # fmt: skip
        if "events_core" in m:
            rows.append([
                "envs",
                f"Partition-v0 {e['scenario']} event loop, compiled core vs Python, {what}",
                f"{m['events_core']:,.1f}/s",
                f"{m['events']:,.1f}/s",
                f"{m['core_ratio']:.1f}x",
                "" if mode != "fifs" else "pull: no core (Python loop both)",
            ])  # fmt: skip
    if "first_use_s" in e:
        rows.append(["envs", "Partition-v0 fast path: added cost of a process's first step",
                     f"{e['first_use_s']:.2f} s", "", "",
                     "numba import + kernel load; once, not in the rates"])  # fmt: skip
    return rows


def _rows_eval(r: dict[str, Any]) -> list[list[str]]:
    n = r["num_queries"]
    target = TARGET_EVAL_S * n / 100_000  # the target scaled to the run's length (--quick)
    return [
        [
            "eval",
            f"saved MaskablePPO on Dispatch-v0, {n:,} queries ({_qps(r['qps'])})",
            f"{r['seconds']:.1f} s",
            "",
            "",
            _verdict(r["seconds"] < target, f"< {target:g} s"),
        ]
    ]


def _rows_scale(r: dict[str, Any]) -> list[list[str]]:
    return [
        [
            "scale",
            f"PARIS+ELSA q/s, 1,000 GPUs ({r['n_large']:,} q) vs 8 GPUs ({r['n_small']:,} q)",
            _qps(r["qps_1000"]),
            _qps(r["qps_8"]),
            f"{r['ratio']:.2f}x",
            _verdict(r["ratio"] >= TARGET_SCALE_RATIO, f">= {TARGET_SCALE_RATIO:g}x"),
        ],
        [
            "scale",
            "build (PARIS plan) for 1,000 GPUs",
            f"{r['build_1000_s']:.3f} s",
            "",
            "",
            _verdict(r["build_1000_s"] < TARGET_PLAN_S, f"< {TARGET_PLAN_S:g} s"),
        ],
        [
            "scale",
            "1,000 GPUs: p95 / utilization / all accounted",
            f"{r['p95_ms_1000']:.1f} ms",
            f"{r['utilization_1000']:.3f}",
            "",
            "yes" if r["conserved_1000"] else "NO",
        ],
    ]


def _rows_soak(r: dict[str, Any]) -> list[list[str]]:
    n = f"{r['num_queries']:,}"
    ok = r["conserved"] and r["arrived"] == r["num_queries"]
    return [
        [
            "soak",
            f"{n} queries, {r['faults']} GPU failures, periodic PARIS",
            _qps(r["qps"]),
            "",
            "",
            "",
        ],
        [
            "soak",
            "arrived = completed + rejected + in system",
            f"{r['arrived']:,} = {r['completed']:,} + {r['rejected']:,} + {r['unfinished']:,}",
            "",
            "",
            "all accounted" if ok else "LOST QUERIES",
        ],
        [
            "soak",
            "retried / re-dispatched / reconfigurations",
            f"{r['retried']:,} / {r['redispatched']:,} / {r['reconfigurations']:,}",
            "",
            "",
            "",
        ],
        [
            "soak",
            "peak RSS",
            _mb(r["peak_rss_mb"]),
            "",
            "",
            _verdict(r["peak_rss_mb"] <= TARGET_RSS_MB, f"<= {TARGET_RSS_MB:g} MB"),
        ],
    ]


def _rows_span(r: dict[str, Any]) -> list[list[str]]:
    def cell(x: dict[str, Any]) -> str:
        return f"{x['seconds']:.3f} s, {x['peak_rss_mb']:.0f} MB"

    def pair(what: str, c: dict[str, Any], target: str = "") -> list[str]:
        f, e = c["fast"], c["events"]
        return ["span", what, cell(f), cell(e), f"{f['seconds'] / e['seconds']:.2f}x", target]

    n = f"{r['num_queries']:,}"
    rows = [
        pair(
            f"{n} q at {s['rate_qps']:.0e} q/s, span {s['fast']['sim_time_s']:.0e} s "
            f"({s['fast']['windows_closed']:,} window{'s' * (s['fast']['windows_closed'] > 1)}): "
            "fast / event loop",
            s,
        )
        for s in r["spans"]
    ]
    flat, last = r["max_over_min_seconds"], r["spans"][-1]["fast"]
    rows.append([
        "span", "seconds, slowest / quickest span (fast; event loop)", f"{flat['fast']:.2f}x",
        f"{flat['events']:.2f}x", "", "flat once queries are windows apart",
    ])  # fmt: skip
    rows.append([
        "span", f"windows closed vs 2 x events + 2, span {last['sim_time_s']:.0e} s",
        f"{last['windows_closed']:,}", f"{last['window_bound']:,}", "",
        _verdict(r["bounded_by_events"] and r["conserved"], "every run bounded, all accounted"),
    ])  # fmt: skip
    target = f"< {bench_span.TARGET_S:g} s, < {bench_span.TARGET_MB:g} MB"
    for key, what in (("50q_at_1e-6qps", "50 q at 1e-6 q/s"),
                      ("2000q_window_1e-6s", f"{n} q, window_s 1e-6 s")):  # fmt: skip
        c = r["issue"][key]
        met = c["fast"]["within_target"] and c["events"]["within_target"]
        rows.append(pair(f"{what} (issue 11): fast / event loop", c, _verdict(met, target)))
    return rows


def _table(rows: list[list[str]]) -> str:
    head = ["bench", "figure", "mig_gym / A", "reference / B", "ratio A/B", "target"]
    rows = [head, *rows]
    w = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["| " + " | ".join(c.ljust(w[i]) for i, c in enumerate(r)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (x + 2) for x in w) + "|")
    return "\n".join(lines)


BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def _report(results: dict[str, Any], rows: list[list[str]], load: float, out: str) -> str:
    """The printed report: what ran where, the table, how speeds were measured."""
    env = results["environment"]
    lines = [
        f"mig_gym benchmarks ({results['mode']}): {Path(results['scenario']).name}, {POLICY}, "
        f"load {load:g}; Python {env['python']}, {env['cpu']}, {env['cpus']} CPUs, "
        f"SimPy {env['simpy']}; commit {env['git_commit'] or '?'}"
        + (" (mig_gym/ modified)" if env["mig_gym_tree_modified"] else ""),
        _table(rows),
    ]
    if "simpy" in results["benchmarks"]:
        r = results["benchmarks"]["simpy"]
        lines.append(
            f"speed = queries / wall seconds, best of {r['repeats']}; both timings include "
            f"workload generation ({r['generate_seconds_best'] * 1e3:.0f} ms); mig_gym's also "
            f"includes build() ({r['build_seconds'] * 1e3:.0f} ms: profiles, PARIS plan)."
        )
    lines.append(
        f"total {results['wall_seconds']:.0f} s; 1-min load average "
        f"{env['loadavg_1min_at_start']:.2f} at start, {env['loadavg_1min_at_end']:.2f} at end "
        f"(other work on the machine skews speeds); results in {Path(out).name}"
    )
    return "\n".join(lines)


def write_readme(readme: Path, report: str) -> None:
    """Replace the README's benchmark block (between ``BEGIN`` and ``END``) with ``report``."""
    text = readme.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{readme}: no benchmark block ({BEGIN} ... {END}) to replace")
    head, rest = text.split(BEGIN, 1)
    block = f"{BEGIN}\n```\n{report}\n```\n{END}"
    readme.write_text(head + block + rest.split(END, 1)[1], encoding="utf-8")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fast smoke version (< 1 min)")
    ap.add_argument(
        "--only",
        choices=["simpy", "fast", "memory", "envs", "eval", "scale", "soak", "span"],
        help="run just this benchmark",
    )
    ap.add_argument(
        "--scenario",
        default=None,
        help=f"scenario YAML (default {DEFAULT_SCENARIO.relative_to(ROOT)} if it "
        "exists, else mig_gym's built-in default scenario)",
    )
    ap.add_argument("--load", type=float, default=LOAD, help=f"load override (default {LOAD})")
    ap.add_argument("--out", default=str(HERE / "results.json"), help="results JSON path")
    ap.add_argument(
        "--readme",
        default=str(ROOT / "README.md"),
        help="README whose benchmark block a full run (no --quick, no --only) rewrites",
    )
    ap.add_argument("--no-readme", dest="readme", action="store_const", const=None)
    args = ap.parse_args(argv)

    scenario = args.scenario
    if scenario is None and DEFAULT_SCENARIO.exists():
        scenario = str(DEFAULT_SCENARIO)
    k = 1 if args.quick else 0
    size = {name: v[k] for name, v in SIZES.items()}
    t_start = time.perf_counter()
    results: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "scenario": scenario or "<mig_gym default scenario>",
        "policy": POLICY,
        "load": args.load,
        "environment": _environment(),
        "benchmarks": {},
    }
    rows: list[list[str]] = []
    if args.only in (None, "simpy"):
        print(f"[simpy] {size['sim_queries']:,} queries x {size['sim_repeats']} ...", flush=True)
        r = bench_sim.run(scenario, POLICY, size["sim_queries"], args.load, size["sim_repeats"])
        results["benchmarks"]["simpy"] = r
        rows += _rows_sim(r)
    if args.only in (None, "fast"):
        print(f"[fast] {size['fast_queries']:,} queries per rule and loop ...", flush=True)
        r = bench_fast.run(scenario, size["fast_queries"], args.load, size["sim_repeats"])
        results["benchmarks"]["fast"] = r
        rows += _rows_fast(r)
    if args.only in (None, "memory"):
        mem = {}
        for key in ("mem_small", "mem_large"):
            print(f"[memory] {size[key]:,} queries in a subprocess ...", flush=True)
            mem[key.split("_")[1]] = bench_memory.measure(scenario, POLICY, size[key], args.load)
        mem["within_target"] = mem["large"]["peak_rss_mb"] <= TARGET_RSS_MB
        results["benchmarks"]["memory"] = mem
        rows += _rows_mem(mem)
    if args.only in (None, "envs"):
        print(f"[envs] {size['env_seconds']:g} s per environment ...", flush=True)
        r = bench_envs.run(scenario, size["env_seconds"])
        print(f"[envs] Partition-v0 epochs, fast vs event loop, {size['epoch_steps']} steps ...")
        r["epochs"] = bench_envs.run_epochs(size["epoch_steps"], size["epoch_repeats"])
        results["benchmarks"]["envs"] = r
        rows += _rows_envs(r)
    if args.only in (None, "eval"):
        print(
            f"[eval] saved agent on {size['eval_queries']:,} queries in a subprocess ...",
            flush=True,
        )
        r = bench_eval.run(scenario, size["eval_queries"])
        results["benchmarks"]["eval"] = r
        rows += _rows_eval(r)
    if args.only in (None, "scale"):
        print("[scale] 8 vs 1,000 GPUs ...", flush=True)
        r = bench_scale.run(size["scale_small"], size["scale_large"], size["scale_repeats"])
        results["benchmarks"]["scale"] = r
        rows += _rows_scale(r)
    if args.only in (None, "soak"):
        print(f"[soak] {size['soak']:,} queries with faults in a subprocess ...", flush=True)
        r = bench_soak.run(size["soak"])
        results["benchmarks"]["soak"] = r
        rows += _rows_soak(r)
    if args.only in (None, "span"):
        print(f"[span] {bench_span.NUM_QUERIES:,} queries over spans, in subprocesses ...")
        r = bench_span.run(scenario, quick=args.quick)
        results["benchmarks"]["span"] = r
        rows += _rows_span(r)
    results["wall_seconds"] = time.perf_counter() - t_start
    results["environment"]["loadavg_1min_at_end"] = os.getloadavg()[0]

    report = _report(results, rows, args.load, args.out)
    print()
    print(report)
    if args.readme is not None and not args.quick and args.only is None:
        write_readme(Path(args.readme), report)
        print(f"README table updated: {args.readme}")
    Path(args.out).write_text(strict_dumps(results, indent=2, sort_keys=True) + "\n")
    return results


if __name__ == "__main__":
    res = main()
    sim = res["benchmarks"].get("simpy")
    fast = res["benchmarks"].get("fast")
    soak = res["benchmarks"].get("soak")
    span = res["benchmarks"].get("span")
    lost = (soak is not None and not soak["conserved"]) or (
        span is not None and not span["conserved"]
    )
    agree = (sim is None or sim["agree"]) and (fast is None or fast["agree"])
    sys.exit(0 if agree and not lost else 1)
