"""Regenerate docs/results.md (``make results``): the reproduction of the paper's two claims on
our measured profiles, and (``--section learned``) the learned agents against the references.

Every number in docs/results.md comes from the runs this script makes; the verdicts are computed
from them, not written by hand. Results are cached as JSON under docs/results/ so that one section
can be regenerated without the other.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mig_gym  # noqa: E402
from mig_gym import workload  # noqa: E402
from mig_gym.hardware import profiles  # noqa: E402
from mig_gym.metrics import strict_dumps  # noqa: E402
from mig_gym.runs import lbt  # noqa: E402

DOCS = ROOT / "docs"
CACHE = DOCS / "results"
IMG = DOCS / "img"
PAPER = ("paper_resnet50", "paper_mobilenet", "paper_bert")
POLICIES = (
    "paris+elsa",
    "paris+fifs",
    "homo1+fifs",
    "homo2+fifs",
    "homo3+fifs",
    "homo4+fifs",
    "homo7+fifs",
    "random+elsa",
)


def _fmt(xs: list[float], digits: int = 2) -> str:
    a = np.asarray(xs, dtype=float)
    return (
        f"{a.mean():.{digits}f} ± {a.std(ddof=1):.{digits}f}"
        if len(a) > 1
        else f"{a[0]:.{digits}f}"
    )


# --------------------------------------------------------------------------- policies section
# One entry per setting the claims are checked under: (scenario, family, admission).
SETTINGS = (
    ("paper_resnet50", "parvagpu_eager", "measured"),
    ("paper_resnet50", "parvagpu_eager", "before_oom"),
    ("paper_mobilenet", "parvagpu_eager", "measured"),
    ("paper_mobilenet", "parvagpu_eager", "before_oom"),
    ("paper_bert", "parvagpu_eager", "measured"),
    ("paper_resnet50", "tensorrt", "measured"),
    ("paper_bert", "tensorrt", "measured"),
)
SENS_FLOOR = (0.1, 0.3, 1.0, 3.0)
SENS_EXPONENT = (0.8, 0.9, 1.0, 1.1)


def variant(name: str, family: str, admission: str, **knobs: float) -> tuple:
    """The paper scenario under another profile family: the SLA by the scenarios' rule (4 x the
    7g latency of batch 64, 2 significant digits) and the rate scaled by the 7g mean service time,
    so that the load multiplier means the same utilisation as in the eager scenario."""
    sc = mig_gym.load_scenario(ROOT / "scenarios" / f"{name}.yaml")
    model = sc.models[0].name
    if family == "parvagpu_eager" and not knobs:
        sc = mig_gym.load_scenario(sc, profiles={"admission": admission})
        return sc, "SLA as in the scenario"
    eager = profiles.builtin_profiles(models=[model])[model]
    prof = profiles.builtin_profiles(models=[model], family=family, **knobs)[model]
    pmf = workload.batch_pmf(sc.workload.batch)
    mean = {p: sum(w * p.latency_s(7, b) for b, w in pmf.items()) for p in (eager, prof)}
    slo = float(f"{4 * prof.latency_s(7, 64) * 1e3:.2g}")
    rate = sc.workload.arrivals.rate_qps * mean[eager] / mean[prof]
    sc = mig_gym.load_scenario(
        sc,
        profiles={"admission": admission, "family": family, **knobs},
        models=[{"name": model, "slo_ms": slo, "share": 1.0}],
        workload={"arrivals": {"kind": "poisson", "rate_qps": round(rate, 1)}},
    )
    return sc, f"SLA {slo:g} ms = 4 x L(7g, 64), rate {rate:.0f} q/s"


def measure_setting(sc: object, seeds: int, n: int, jobs: int | None, pols=POLICIES) -> dict:
    t0 = time.time()
    res = lbt.measure(sc, pols, seeds, num_queries=n, jobs=jobs)
    return {
        "results": [dataclasses.asdict(r) for r in res],
        "rejected_work": {p: lbt.rejected_work_share(sc, p, sc.seed) for p in pols},
        "rate_qps": sc.workload.arrivals.rate_qps,
        "slo_ms": sc.models[0].slo_ms,
        "seconds": time.time() - t0,
    }


def lbt_of(d: dict, policy: str, criterion: str) -> float:
    return float(
        np.mean(
            [
                r["load"]
                for r in d["results"]
                if (r["policy"], r["criterion"]) == (policy, criterion)
            ]
        )
    )


def best_homo(d: dict, criterion: str) -> tuple[str, float]:
    homo = [p for p in dict.fromkeys(r["policy"] for r in d["results"]) if p.startswith("homo")]
    p = max(homo, key=lambda h: lbt_of(d, h, criterion))
    return p, lbt_of(d, p, criterion)


def _verdict(a: float, b: float) -> str:
    return "holds" if a > b * 1.01 else ("tie (within 1 %)" if a >= b / 1.01 else "fails")


def claims_tables(datas: dict) -> list[str]:
    out = [
        "| setting | criterion | PARIS+ELSA | best homogeneous | claim 1 | PARIS+FIFS | claim 2 |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, d in datas.items():
        for c in lbt.CRITERIA:
            a, (hp, b), f = lbt_of(d, "paris+elsa", c), best_homo(d, c), lbt_of(d, "paris+fifs", c)
            cells = [f"{a:.2f}", f"{hp} {b:.2f}", _verdict(a, b), f"{f:.2f}", _verdict(a, f)]
            out.append(f"| {key} | {c} | " + " | ".join(cells) + " |")
    return out


def sensitivity(seeds: int, n: int, jobs: int | None) -> dict:
    pols = ("paris+elsa", "homo1+fifs", "homo2+fifs", "homo3+fifs", "homo4+fifs", "homo7+fifs")
    cells = {}
    for fs in SENS_FLOOR:
        for ge in SENS_EXPONENT:
            sc, _ = variant(
                "paper_resnet50", "parametric", "measured", floor_scale=fs, gpc_exponent=ge
            )
            d = measure_setting(sc, seeds, n, jobs, pols)
            cells[f"{fs}/{ge}"] = {
                c: (lbt_of(d, "paris+elsa", c), *best_homo(d, c)) for c in lbt.CRITERIA
            }
            print(f"sensitivity {fs} {ge}: {cells[f'{fs}/{ge}']['serve_all']}", flush=True)
    return cells


def plot_sensitivity(cells: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def cell(fs: float, ge: float) -> float:
        a, _, b = cells[f"{fs}/{ge}"]["serve_all"]
        return a / max(b, 1e-9)

    ratio = np.array([[cell(fs, ge) for ge in SENS_EXPONENT] for fs in SENS_FLOOR])
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    im = ax.imshow(ratio, origin="lower", cmap="RdBu", vmin=0.5, vmax=1.5, aspect="auto")
    for i, fs in enumerate(SENS_FLOOR):
        for j, ge in enumerate(SENS_EXPONENT):
            hp = cells[f"{fs}/{ge}"]["serve_all"][1].split("+")[0]
            mark = "holds" if ratio[i, j] > 1.01 else ""
            ax.text(j, i, f"{ratio[i, j]:.2f}\n{hp}\n{mark}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(SENS_EXPONENT)), [f"{g:g}" for g in SENS_EXPONENT])
    ax.set_yticks(range(len(SENS_FLOOR)), [f"{f:g}" for f in SENS_FLOOR])
    ax.set(xlabel="gpc_exponent (per-item cost ~ GPCs**-a)", ylabel="floor_scale",
           title="resnet50 (parametric): PARIS+ELSA / best homogeneous LBT")  # fmt: skip
    fig.colorbar(im, ax=ax, label="ratio (> 1: claim 1 holds)")
    fig.tight_layout()
    IMG.mkdir(parents=True, exist_ok=True)
    out = IMG / "sensitivity_parametric.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out.relative_to(DOCS).as_posix()


def policies_section(datas: dict, notes: dict, sens: dict | None, meta: dict) -> str:
    out = ["## Reproduction of the paper's claims", ""]
    out.append(
        f"Setup: each paper scenario (8 x A100-80GB, one model, Poisson arrivals, log-normal query "
        f"sizes with median 8, sigma 0.9, max 128), {meta['num_queries']:,} queries per run, "
        f"seeds 0-{meta['seeds'] - 1}. **Latency-bounded throughput (LBT)**: the highest load "
        "(multiple of the scenario's rate) that meets a criterion, found by bisection to 1 % "
        "(`mig_gym/runs/lbt.py`), under three criteria side by side: "
        + "; ".join(f"**{c}**: {t}" for c, t in lbt.CRITERION_TEXT.items())
        + ". serve_all is the primary one. *Rejected work*: share of the offered batch items the "
        "policy's layout cannot serve (no hosting partition admits the batch). Admission "
        "(`docs/profiles.md`): `measured` serves up to the largest batch measured to run; "
        "`before_oom` up to the batch before the first out-of-memory one (the two ends of the "
        "feasible interval). Mean over seeds. `paris_tuned` is left out of these searches (it "
        "re-plans with trial simulations at every load)."
    )
    out.append("")
    for key, d in datas.items():
        out += [f"### {key}", "", notes[key], ""]
        res = [lbt.LBTResult(**r) for r in d["results"]]
        out += [lbt.lbt_markdown(res, d["rejected_work"], d["rate_qps"]), ""]
    out += [
        "### The claims, checked",
        "",
        "Claim 1: PARIS+ELSA has a higher LBT than every homogeneous+FIFS server. Claim 2: ELSA "
        "beats FIFS on the same (PARIS) layout. A difference within 1 % is a tie.",
        "",
        *claims_tables(datas),
        "",
    ]
    if sens:
        img = plot_sensitivity(sens)
        held = [k for k, v in sens.items() if v["serve_all"][0] > v["serve_all"][2] * 1.01]
        out += [
            "### Sensitivity: the parametric family",
            "",
            "paper_resnet50 on the `parametric` family (`docs/profiles.md`): every floor scaled by "
            "`floor_scale`, per-item cost `per_item(1g) * k**-gpc_exponent`; SLA re-derived by the "
            "scenarios' rule per cell, admission `measured`. Cells: PARIS+ELSA's serve-all LBT "
            "over the best homogeneous server's (named), 'holds' where claim 1 holds.",
            "",
            f"![sensitivity of claim 1]({img})",
            "",
            f"Claim 1 holds in {len(held)} of {len(sens)} cells"
            + (f" (floor_scale/gpc_exponent: {', '.join(held)})." if held else "."),
            "",
        ]
    out += [
        "### Reconfiguration cost",
        "",
        "`cluster.reconfig` names the downtime of one GPU's re-partitioning "
        "(`mig_gym/scenario/config.py`, `RECONFIG_PRESETS`, where each preset's sources are "
        "cited): `driver` 1 s (destroying and creating the instances with `nvidia-smi mig`), "
        "`reload` 5 s (plus starting the server and loading the model), `orchestrated` 120 s "
        "(the GPU operator's MIG manager re-templating a cordoned, drained node). These are "
        "order-of-magnitude estimates, not measurements (no timing of MIG operations is in the "
        "data at hand); `cluster.reconfig_s` sets any measured number. The static plans above "
        "never reconfigure; the cost matters for periodic PARIS and the Partition environment.",
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
    ap.add_argument("--quick", action="store_true", help="few queries, one seed (smoke run)")
    ap.add_argument("--no-sensitivity", action="store_true")
    ap.add_argument("--jobs", type=int, default=None)
    a = ap.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    seeds, n = (1, 3000) if a.quick else (2, 20_000)
    path = CACHE / "policies.json"
    if a.section in ("policies", "all"):
        t0, datas, notes = time.time(), {}, {}
        for name, fam, adm in SETTINGS:
            sc, note = variant(name, fam, adm)
            key = f"{name} / {fam} / {adm}"
            datas[key], notes[key] = measure_setting(sc, seeds, n, a.jobs), note
            print(f"{key}: {datas[key]['seconds']:.0f} s", flush=True)
        sens = None if a.no_sensitivity else sensitivity(1, n // 2, a.jobs)
        meta = {"seeds": seeds, "num_queries": n, "seconds": time.time() - t0}
        path.write_text(strict_dumps({"datas": datas, "notes": notes, "sens": sens, "meta": meta}))
        print(f"policies: {meta['seconds']:.0f} s", flush=True)
    if a.section in ("learned", "all"):
        import learned_results

        learned_results.run(CACHE, quick=a.quick)
    parts = [
        "# Results",
        "",
        "Generated by `make results` (`tools/make_results.py`); do not edit by hand.",
        "",
    ]
    if path.is_file():
        c = json.loads(path.read_text())
        parts.append(policies_section(c["datas"], c["notes"], c["sens"], c["meta"]))
    lpath = CACHE / "learned.json"
    if lpath.is_file():
        parts.append(learned_section(json.loads(lpath.read_text())))
    (DOCS / "results.md").write_text("\n".join(parts) + "\n")
    print(f"wrote {DOCS / 'results.md'}")


if __name__ == "__main__":
    main()
