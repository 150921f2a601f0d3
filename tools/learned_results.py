"""Learned agents against the reference policies (the ``learned`` section of docs/results.md).

Called by ``tools/make_results.py --section learned``. Needs the train extra and the cached
policy results (docs/results/policies.json) for PARIS+ELSA's latency-bounded throughput
(serve-all, eager profiles, measured admission).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

import mig_gym
from mig_gym.envs import reference_policy
from mig_gym.learn import evaluation, training
from mig_gym.metrics import strict_dumps
from mig_gym.scenario import replace_in

ROOT = Path(__file__).resolve().parents[1]
PAPER = ("paper_resnet50", "paper_mobilenet", "paper_bert")
DEFAULT = "paris+elsa"  # the scenarios' PARIS (knee=sla) + ELSA
SEEDS = [training.EVAL_SEED_BASE + i for i in range(5)]
BUDGET = {
    "dispatch_steps": 60_000,
    "bc_steps": 10_000,
    "partition_steps": 600,
    "eval_queries": 5_000,
}
QUICK = {"dispatch_steps": 2_048, "bc_steps": 1_000, "partition_steps": 64, "eval_queries": 1_000}


def _mean_sd(xs: list[float], d: int = 3) -> str:
    a = np.asarray(xs, dtype=float)
    return f"{a.mean():.{d}f} ± {a.std(ddof=1):.{d}f}"


def _lbt(cache: Path, name: str) -> float:
    datas = json.loads((cache / "policies.json").read_text())["datas"]
    rs = datas[f"{name} / parvagpu_eager / measured"]["results"]
    return float(
        np.mean([r["load"] for r in rs if (r["policy"], r["criterion"]) == (DEFAULT, "serve_all")])
    )


def dispatch_results(cache: Path, budget: dict, out_dir: Path) -> tuple[list[str], dict]:
    lines = [
        "### Dispatch-v0: trained agent vs ELSA, FIFS and random",
        "",
        f"MaskablePPO with the slot-scoring policy (`SlotPolicy`), warm-started by behaviour "
        f"cloning on {budget['bc_steps']:,} ELSA decisions, then {budget['dispatch_steps']:,} "
        f"RL steps (2 envs, hyperparameters in mig_gym/learn/hyperparams/maskable_ppo.yml), "
        f"trained "
        f"at 90 % of PARIS+ELSA's latency-bounded throughput (LBT). The layout is PARIS's in "
        f"every row. Evaluation: {len(SEEDS)} held-out seeds, "
        f"{budget['eval_queries']:,} queries each; mean ± sd over seeds.",
        "",
        "| scenario | load | policy | SLA violation rate | p95 ms |",
        "|---|---|---|---|---|",
    ]
    raw: dict = {}
    for name in PAPER:
        sc = mig_gym.load_scenario(ROOT / "scenarios" / f"{name}.yaml")
        lbt = _lbt(cache, name)
        train_sc = replace_in(sc, "workload.load", 0.9 * lbt)
        t0 = time.time()
        path = training.train(
            train_sc,
            "dispatch",
            "maskable_ppo",
            timesteps=budget["dispatch_steps"],
            seed=0,
            logdir=out_dir,
            bc_steps=budget["bc_steps"],
            progress=False,
            run_name="maskable_ppo-dispatch-bc",
        )
        secs = time.time() - t0
        agent = evaluation.load_learned(f"maskable_ppo:{path}")
        raw[name] = {"lbt": lbt, "train_seconds": secs, "model": str(path)}
        for frac in (0.7, 0.9):
            ev = replace_in(sc, "workload.load", frac * lbt)
            ev = dataclasses.replace(ev, run=dataclasses.replace(ev.run, warmup_queries=0))
            n = budget["eval_queries"]
            rows = {"trained agent": [agent.run(ev, s, n)[0].to_dict() for s in SEEDS]}
            for label, pol in (
                ("ELSA", "paris+elsa"),
                ("FIFS", "paris+fifs"),
                ("random", "paris+random"),
            ):
                rows[label] = [
                    mig_gym.simulate(ev, pol, s, budget["eval_queries"]).to_dict() for s in SEEDS
                ]
            for label, sums in rows.items():
                qps = frac * lbt * sc.workload.arrivals.rate_qps
                lines.append(
                    f"| {name} | {frac:.0%} LBT ({qps:.0f} q/s) | "
                    f"{label} | {_mean_sd([s['sla_violation_rate'] for s in sums], 4)} | "
                    f"{_mean_sd([s['latency_p95_ms'] for s in sums], 1)} |"
                )
            raw[name][f"{frac}"] = {
                k: [(s["sla_violation_rate"], s["latency_p95_ms"]) for s in v]
                for k, v in rows.items()
            }
    lines += ["", *dispatch_verdict(raw)]
    lines += [
        "Training time per agent (2 cores): "
        + ", ".join(f"{n} {raw[n]['train_seconds'] / 60:.1f} min" for n in PAPER),
        "",
    ]
    return lines, raw


def dispatch_verdict(raw: dict) -> list[str]:
    """Where the trained agent wins and loses against ELSA, computed from the runs above."""
    worse_v = better_p95 = cases = beats_random = 0
    for name in PAPER:
        for frac in ("0.7", "0.9"):
            rows = raw[name][frac]
            agent = (
                np.mean([v for v, _ in rows["trained agent"]]),
                np.mean([p for _, p in rows["trained agent"]]),
            )
            elsa = np.mean([v for v, _ in rows["ELSA"]]), np.mean([p for _, p in rows["ELSA"]])
            cases += 1
            worse_v += agent[0] > elsa[0]
            better_p95 += agent[1] < elsa[1]
            beats_random += agent[0] < np.mean([v for v, _ in rows["random"]])
    return [
        f"Against ELSA the trained agent has a higher violation rate in {worse_v} of {cases} "
        f"cases and a lower p95 in {better_p95} of {cases}; its violation rate is below random "
        f"dispatch's in {beats_random} of {cases}.",
        "",
    ]


def warm_start_curve(budget: dict, out_dir: Path, reuse: bool = False) -> tuple[list[str], dict]:
    """The same agent trained with and without behaviour cloning on paper_resnet50 (``reuse``:
    re-plot from the saved runs' model.json instead of training again)."""
    sc = mig_gym.load_scenario(ROOT / "scenarios" / "paper_resnet50.yaml")
    curves, refs = {}, {}
    for label, bc in (("with BC warm start", budget["bc_steps"]), ("from scratch", 0)):
        run_name = f"curve-{'bc' if bc else 'scratch'}"
        path = out_dir / sc.name / run_name / "model.zip"
        if not (reuse and path.is_file()):
            path = training.train(
                sc,
                "dispatch",
                "maskable_ppo",
                timesteps=budget["dispatch_steps"],
                seed=1,
                logdir=out_dir,
                bc_steps=bc,
                progress=False,
                run_name=run_name,
            )
        meta = json.loads(path.with_name("model.json").read_text())
        curves[label] = [
            (h["step"], h["serving/p95_ms"], h["serving/sla_violation_rate"])
            for h in meta["eval_history"]
        ]
        refs = meta["references"]
    _plot_curves(curves, refs)
    first = {k: v[0] for k, v in curves.items()}
    last = {k: v[-1] for k, v in curves.items()}
    lines = [
        "### Warm start",
        "",
        f"Same agent and budget ({budget['dispatch_steps']:,} steps, seed 1) with and without "
        f"behaviour cloning on {budget['bc_steps']:,} ELSA decisions; held-out evaluation "
        "during training (the same `serving/*` tags TensorBoard shows).",
        "",
        "| run | p95 ms at step 0 | p95 ms at the end | violations at the end |",
        "|---|---|---|---|",
    ]
    for k in curves:
        lines.append(f"| {k} | {first[k][1]:.1f} | {last[k][1]:.1f} | {last[k][2]:.4f} |")
    lines.append(
        f"| ELSA (reference) | | {refs['elsa']['serving/p95_ms']:.1f} | "
        f"{refs['elsa']['serving/sla_violation_rate']:.4f} |"
    )
    lines += ["", "![learning curves with and without warm start](img/warm_start_curve.png)", ""]
    return lines, curves


def _plot_curves(curves: dict, refs: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(12, 4))
    for label, pts in curves.items():
        steps = [p[0] for p in pts]
        ax[0].plot(steps, [p[1] for p in pts], marker="o", ms=3, label=label)
        ax[1].plot(steps, [p[2] for p in pts], marker="o", ms=3, label=label)
    for ref, style, name in (("elsa", ":", "ELSA"), ("fifs_push", "--", "FIFS (push form)")):
        ax[0].axhline(refs[ref]["serving/p95_ms"], color="k", ls=style, lw=0.8, label=name)
        ax[1].axhline(
            refs[ref]["serving/sla_violation_rate"], color="k", ls=style, lw=0.8, label=name
        )
    ax[0].set(
        xlabel="training steps",
        ylabel="held-out p95 (ms)",
        yscale="log",
        title="paper_resnet50: evaluation during training",
    )
    ax[1].set(
        xlabel="training steps",
        ylabel="held-out SLA violation rate",
        ylim=(-0.02, 1.05),
        title="same runs",
    )
    for a in ax:
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "img" / "warm_start_curve.png", dpi=100)
    plt.close(fig)


def partition_results(budget: dict, out_dir: Path) -> tuple[list[str], dict]:
    sc = mig_gym.load_scenario(ROOT / "scenarios" / "diurnal_drift.yaml")
    t0 = time.time()
    path = training.train(
        sc,
        "partition",
        "maskable_ppo",
        timesteps=budget["partition_steps"],
        seed=0,
        logdir=out_dir,
        eval_episodes=1,
        progress=False,
        eval_freq=max(budget["partition_steps"] // 2, 1),
        run_name="maskable_ppo-partition",
    )
    secs = time.time() - t0
    agent = evaluation.load_learned(f"maskable_ppo:{path}")
    act = evaluation.model_act(agent.model)
    res = {"trained agent": evaluation.evaluate(sc, "partition", act, SEEDS)}
    probe = evaluation.make_env(sc, "partition")
    probe.reset(seed=0)
    for label, name in (("static PARIS", "static"), ("periodic PARIS", "periodic_paris")):
        pol = reference_policy(probe, name)
        res[label] = evaluation.evaluate(
            sc, "partition", lambda e, _o, p=pol: p.decide(e.unwrapped), SEEDS
        )
    lines = [
        "### Partition-v0 on diurnal_drift: trained agent vs static and periodic PARIS",
        "",
        f"MaskablePPO (MlpPolicy), {budget['partition_steps']:,} epochs of training "
        f"({secs / 60:.1f} min on 2 cores), ELSA dispatching inside each epoch. One episode = "
        f"{sc.env.epochs_per_episode} epochs of {sc.env.epoch_s:g} s. {len(SEEDS)} held-out "
        "seeds, mean ± sd.",
        "",
        "| policy | goodput q/s | SLA violation rate | p95 ms | reconfigurations |",
        "|---|---|---|---|---|",
    ]
    for label, runs in res.items():
        s = [r[0].to_dict() for r in runs]
        lines.append(
            f"| {label} | {_mean_sd([x['goodput_qps'] for x in s], 1)} | "
            f"{_mean_sd([x['sla_violation_rate'] for x in s], 4)} | "
            f"{_mean_sd([x['latency_p95_ms'] for x in s], 1)} | "
            f"{_mean_sd([x['reconfigurations'] for x in s], 1)} |"
        )
    return [*lines, ""], {k: [r[0].to_dict() for r in v] for k, v in res.items()}


def run(cache: Path, quick: bool = False) -> None:
    budget = QUICK if quick else BUDGET
    out_dir = ROOT / "runs" / "results"
    t0 = time.time()
    lines = [
        "## Learned agents",
        "",
        "Report of what was measured, including where the agent loses. Budgets are small "
        "(2 CPU cores); they are stated with each table.",
        "",
        "The benchmark of trained agents on the registered tasks, each trained by the recipe "
        "shipped for it and scored beside that task's baselines, is in docs/tasks.md "
        "(*Trained agents*, `make agents`). This section studies the scenario-level setup: "
        "Dispatch-v0 at fixed loads, the warm start, Partition-v0 on diurnal_drift.",
        "",
    ]
    d_lines, d_raw = dispatch_results(cache, budget, out_dir)
    w_lines, w_raw = warm_start_curve(budget, out_dir)
    p_lines, p_raw = partition_results(budget, out_dir)
    lines += d_lines + w_lines + p_lines
    lines.append(f"Total time of this section: {(time.time() - t0) / 60:.1f} min.")
    (cache / "learned.json").write_text(
        strict_dumps(
            {
                "markdown": "\n".join(lines),
                "budget": budget,
                "dispatch": d_raw,
                "warm_start": w_raw,
                "partition": p_raw,
            },
            default=str,
        )
    )
