"""Regenerate docs/results.md (``make results``): the reproduction of the paper's two claims on
our measured profiles, and (``--section learned``) the learned agents against the references.

Every number in docs/results.md comes from the runs this script makes; the verdicts are computed
from them, not written by hand. Results are cached as JSON under docs/results/ so that one section
can be regenerated without the other.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mig_gym  # noqa: E402
from mig_gym import hardware  # noqa: E402
from mig_gym.hardware import profiles  # noqa: E402
from mig_gym.runs.experiments import VIOLATION_TARGET, Point, latency_bounded_load, run_points  # noqa: E402

DOCS = ROOT / "docs"
CACHE = DOCS / "results"
IMG = DOCS / "img"
PAPER = ("paper_resnet50", "paper_mobilenet", "paper_bert")
POLICIES = (
    "paris[knee=sla]+elsa",
    "paris[knee=utilization]+elsa",
    "paris[knee=both]+elsa",
    "paris_tuned[trial_queries=5000]+elsa",
    "paris+fifs",
    "homo1+fifs",
    "homo2+fifs",
    "homo3+fifs",
    "homo4+fifs",
    "homo7+fifs",
    "random+elsa",
)
DEFAULT = "paris[knee=sla]+elsa"
HOMO = tuple(p for p in POLICIES if p.startswith("homo"))


def _fmt(xs: list[float], digits: int = 2) -> str:
    a = np.asarray(xs, dtype=float)
    return (
        f"{a.mean():.{digits}f} ± {a.std(ddof=1):.{digits}f}"
        if len(a) > 1
        else f"{a[0]:.{digits}f}"
    )


# --------------------------------------------------------------------------- policies section
def sweep_scenario(name: str, loads: list[float], seeds: int, n: int, jobs: int) -> dict:
    sc = mig_gym.load_scenario(ROOT / "scenarios" / f"{name}.yaml")
    pts = [Point(p, sc.seed + i, ld) for p in POLICIES for ld in loads for i in range(seeds)]
    t0 = time.time()
    res = run_points(sc, pts, num_queries=n, jobs=jobs, progress=True)
    rows = [
        {
            "policy": r.point.policy,
            "seed": r.point.seed,
            "load": r.point.load,
            **{
                k: getattr(r.summary, k)
                for k in (
                    "latency_p95_ms",
                    "latency_p99_ms",
                    "sla_violation_rate",
                    "goodput_qps",
                    "utilization",
                    "rejected",
                    "arrived",
                    "offered_qps",
                )
            },
        }
        for r in res
    ]
    return {
        "scenario": name,
        "loads": loads,
        "seeds": seeds,
        "num_queries": n,
        "rows": rows,
        "rate_qps": sc.workload.arrivals.rate_qps,
        "slo_ms": sc.models[0].slo_ms,
        "model": sc.models[0].name,
        "seconds": time.time() - t0,
    }


def lbt(data: dict, policy: str) -> list[float]:
    out = []
    for i in range(data["seeds"]):
        rs = [r for r in data["rows"] if r["policy"] == policy and r["seed"] == i]
        rs.sort(key=lambda r: r["load"])
        out.append(
            latency_bounded_load([r["load"] for r in rs], [r["sla_violation_rate"] for r in rs])
        )
    return out


def at_load(data: dict, policy: str, load: float, key: str) -> list[float]:
    return [r[key] for r in data["rows"] if r["policy"] == policy and r["load"] == load]


def plot_sweep(data: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    IMG.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    show = (
        DEFAULT,
        "paris[knee=utilization]+elsa",
        "paris_tuned[trial_queries=5000]+elsa",
        "paris+fifs",
        "homo1+fifs",
        "homo2+fifs",
        "homo3+fifs",
        "homo7+fifs",
        "random+elsa",
    )
    loads = data["loads"]
    for p in show:
        p95 = [np.mean(at_load(data, p, ld, "latency_p95_ms")) for ld in loads]
        vio = [np.mean(at_load(data, p, ld, "sla_violation_rate")) for ld in loads]
        style = "-" if "elsa" in p else "--"
        axes[0].plot(loads, p95, style, marker="o", ms=3, label=p)
        axes[1].plot(loads, vio, style, marker="o", ms=3, label=p)
    axes[0].axhline(data["slo_ms"], color="k", lw=0.8, ls=":", label="SLA")
    axes[0].set(
        yscale="log",
        xlabel=f"offered load (x {data['rate_qps']:g} q/s)",
        ylabel="p95 latency (ms)",
        title=f"{data['scenario']}: p95 vs load",
    )
    axes[1].axhline(VIOLATION_TARGET, color="k", lw=0.8, ls=":", label="5 % (p95 = SLA)")
    axes[1].set(
        xlabel=f"offered load (x {data['rate_qps']:g} q/s)",
        ylabel="SLA violation rate",
        title=f"{data['scenario']}: violations vs load (mean of {data['seeds']} seeds)",
    )
    for a in axes:
        a.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out = IMG / f"{data['scenario']}_latency_vs_load.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out.relative_to(DOCS).as_posix()


def efficiency_table(model: str) -> str:
    """Throughput per GPC of each size at a few batches: why small slices win on these profiles."""
    prof = profiles.builtin_profiles("A100-80GB", [model])[model]
    spec = hardware.gpu_spec("A100-80GB")
    lines = [
        "| batch | " + " | ".join(f"{k}g" for k in spec.sizes) + " |",
        "|---|" + "---|" * len(spec.sizes),
    ]
    for b in (1, 8, 32, 64):
        cells = []
        for k in spec.sizes:
            fits = prof.memory_gb(b) <= spec.profile_for(k).mem_gb
            cells.append(f"{b / prof.latency_s(k, b) / k:.0f}" if fits else "OOM")
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def policies_section(datas: list[dict]) -> str:
    out = ["## Reproduction of the paper's claims", ""]
    out.append(
        "Setup: each paper scenario (8 x A100-80GB, one model, Poisson arrivals, log-normal query "
        "sizes with median 8, sigma 0.9, max 128; SLA = 4 x the 7g latency of the 99th-percentile "
        f"batch), {datas[0]['num_queries']:,} queries per run, seeds 0-{datas[0]['seeds'] - 1}, "
        f"loads {datas[0]['loads'][0]:g}-{datas[0]['loads'][-1]:g} x the scenario rate. "
        "**Latency-bounded throughput (LBT)** is the highest load of the grid up to which p95 "
        "latency stays within the SLA (equivalently at most 5 % of queries late or rejected); "
        "resolution = the grid step. Mean ± sd over seeds."
    )
    out.append("")
    claims1, claims2 = [], []
    for d in datas:
        lo, hi = 0.8, 1.2
        out += [
            f"### {d['scenario']} ({d['model']}, SLA {d['slo_ms']:g} ms, "
            f"rate {d['rate_qps']:g} q/s x load)",
            "",
            f"| policy | LBT (x rate) | LBT (q/s) | p95 ms @ {lo} | p95 ms @ {hi} | "
            f"violations @ {hi} | rejected @ {hi} |",
            "|---|---|---|---|---|---|---|",
        ]
        for p in POLICIES:
            v = lbt(d, p)
            out.append(
                f"| {p} | {_fmt(v)} | {_fmt([x * d['rate_qps'] for x in v], 0)} | "
                f"{_fmt(at_load(d, p, lo, 'latency_p95_ms'), 1)} | "
                f"{_fmt(at_load(d, p, hi, 'latency_p95_ms'), 1)} | "
                f"{_fmt(at_load(d, p, hi, 'sla_violation_rate'), 3)} | "
                f"{_fmt(at_load(d, p, hi, 'rejected'), 0)} |"
            )
        img = plot_sweep(d)
        out += ["", f"![{d['scenario']} latency and violations versus load]({img})", ""]
        best_homo = max(HOMO, key=lambda p: np.mean(lbt(d, p)))
        claims1.append(
            (d["scenario"], np.mean(lbt(d, DEFAULT)), best_homo, np.mean(lbt(d, best_homo)))
        )
        e_v = [np.mean(at_load(d, DEFAULT, ld, "sla_violation_rate")) for ld in d["loads"]]
        f_v = [np.mean(at_load(d, "paris+fifs", ld, "sla_violation_rate")) for ld in d["loads"]]
        claims2.append(
            (
                d["scenario"],
                np.mean(lbt(d, DEFAULT)),
                np.mean(lbt(d, "paris+fifs")),
                sum(a <= b for a, b in zip(e_v, f_v, strict=True)),
                len(e_v),
            )
        )
    out += ["### The claims, checked", ""]
    held1 = all(a > b for _, a, _, b in claims1)
    out.append(
        f"**Claim 1: PARIS+ELSA beats every homogeneous+FIFS server in latency-bounded "
        f"throughput.** {'Confirmed' if held1 else 'Not confirmed'} on our profiles:"
    )
    out.append("")
    for name, a, hp, b in claims1:
        verdict = "holds" if a > b else ("tie" if a == b else "does not hold")
        out.append(
            f"- {name}: PARIS+ELSA LBT {a:.2f} vs best homogeneous ({hp}) {b:.2f}: {verdict}."
        )
    held2 = all(a >= b and k == n for _, a, b, k, n in claims2)
    out += [
        "",
        f"**Claim 2: ELSA beats FIFS on the same (PARIS) layout.** "
        f"{'Confirmed' if held2 else 'Partly confirmed'}:",
        "",
    ]
    for name, a, b, k, n in claims2:
        out.append(
            f"- {name}: LBT {a:.2f} (ELSA) vs {b:.2f} (FIFS); ELSA's violation rate is "
            f"lower or equal at {k} of {n} loads."
        )
    out += ["", "**PARIS's plan against a random legal layout** (both with ELSA):", ""]
    for d in datas:
        a, r = np.mean(lbt(d, DEFAULT)), np.mean(lbt(d, "random+elsa"))
        word = "higher than" if a > r else ("equal to" if a == r else "lower than")
        out.append(f"- {d['scenario']}: PARIS {a:.2f} is {word} random {r:.2f}.")
    out += [
        "",
        "### Why",
        "",
        "On the ParvaGPU measurements every partition size has the same ~5 ms per-query floor "
        "(eager PyTorch, host copies) and latency then grows about linearly with the batch, "
        "with a slope that shrinks less than in proportion to the partition's GPCs. Per GPC, "
        "small slices therefore deliver more throughput at every batch that fits their "
        "memory. Throughput per GPC (items/s/GPC) of the built-in profiles:",
        "",
    ]
    for d in datas:
        out += [f"{d['model']}:", "", efficiency_table(d["model"]), ""]
    rej = []
    for d in datas:
        rs = [r for r in d["rows"] if r["policy"] == "homo1+fifs" and r["load"] == 1.0]
        frac = sum(r["rejected"] for r in rs) / max(sum(r["arrived"] for r in rs), 1)
        rej.append(f"{frac:.1%} of {d['model']}'s")
        rs = [r for r in d["rows"] if r["policy"] == DEFAULT and r["load"] == 1.0]
    paris_rej = sum(r["rejected"] for d in datas for r in d["rows"] if r["policy"] == DEFAULT)
    out += [
        "A server of 56 x 1g thus has the most raw capacity, and under the LBT criterion it may "
        "lose up to 5 % of queries: homo1 rejects the batches that do not fit a 1g.10gb slice's "
        f"memory (at load 1.0: {', '.join(rej)} queries) and can still count as meeting the "
        "target. Where homo1 wins, it wins on capacity while refusing the large queries that a "
        f"heterogeneous plan serves (PARIS+ELSA rejected {paris_rej} queries over all runs "
        "above). This is what the measured profiles imply, and we report it rather than tune it "
        "away.",
        "",
    ]
    rules = ("paris[knee=sla]+elsa", "paris[knee=utilization]+elsa", "paris[knee=both]+elsa")
    best = {d["scenario"]: max(rules, key=lambda p, d=d: np.mean(lbt(d, p))) for d in datas}
    wins = sum(b == DEFAULT for b in best.values())
    out += [
        f"**Default knee rule.** `sla` (beta 0.5) has the highest LBT of the three rules in "
        f"{wins} of {len(best)} paper scenarios ({'; '.join(f'{k}: {v}' for k, v in best.items())}"
        "), which is why it is the default. The `utilization` knee (smallest batch reaching "
        "theta of the size's peak throughput) bunches on these profiles because of the fixed "
        "floor: each size gets near its peak throughput only at large batches, so the small "
        "sizes are given batches they cannot serve within the SLA under load.",
        "",
    ]
    return "\n".join(out)


# --------------------------------------------------------------------------- learned section
def learned_section(data: dict) -> str:
    return data.get("markdown", "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--section",
        choices=("policies", "learned", "all", "none"),
        default="policies",
        help="what to re-run (none: re-render from the cache)",
    )
    ap.add_argument("--quick", action="store_true", help="few loads and queries (smoke run)")
    ap.add_argument("--jobs", type=int, default=None)
    a = ap.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    if a.section in ("policies", "all"):
        loads = [round(0.4 + 0.1 * i, 1) for i in range(17)] if not a.quick else [0.8, 1.2]
        for name in PAPER:
            d = sweep_scenario(
                name, loads, 3 if not a.quick else 2, 20_000 if not a.quick else 2_000, a.jobs
            )
            (CACHE / f"{name}.json").write_text(json.dumps(d))
            print(f"{name}: {len(d['rows'])} runs in {d['seconds']:.0f} s", flush=True)
    if a.section in ("learned", "all"):
        import learned_results

        learned_results.run(CACHE, quick=a.quick)
    datas = [
        json.loads((CACHE / f"{n}.json").read_text())
        for n in PAPER
        if (CACHE / f"{n}.json").is_file()
    ]
    parts = [
        "# Results",
        "",
        "Generated by `make results` (`tools/make_results.py`); do not edit by hand.",
        "",
    ]
    if datas:
        parts.append(policies_section(datas))
    lpath = CACHE / "learned.json"
    if lpath.is_file():
        parts.append(learned_section(json.loads(lpath.read_text())))
    (DOCS / "results.md").write_text("\n".join(parts) + "\n")
    print(f"wrote {DOCS / 'results.md'}")


if __name__ == "__main__":
    main()
