"""``mig-gym baselines``: the baseline score tables of the registered tasks, into docs/tasks.md.

Every reference policy of :mod:`mig_gym.runs.baselines` on every selected task over held-out
seeds; the per-seed scores go to a JSON file (``--json``; tasks not run keep their earlier rows)
and the tables, rendered from all of it, replace the generated section of ``--doc`` (between
``<!-- baselines:begin -->`` and ``<!-- baselines:end -->``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import gymnasium as gym

from mig_gym.cli.args import COUNT, UsageError
from mig_gym.envs import EVAL_SEED_BASE
from mig_gym.envs.tasks import DISPATCH_TASKS, PARTITION_TASKS, DispatchTask
from mig_gym.runs import baselines

__all__ = ["add_parser", "cmd_baselines", "task_specs", "DEFAULT_SKIP"]

BEGIN, END = "<!-- baselines:begin -->", "<!-- baselines:end -->"
# One episode of Partition-diurnal-v0 is 2 h of simulated time (about 3.5 M queries: 4 s on the
# epoch fast path, 40 s on the event loop, which its random and JSQ rows take): its rows alone
# take about 15 minutes on 2 cores, so it runs only when named.
DEFAULT_SKIP = ("mig_gym/Partition-diurnal-v0",)
ALL = tuple(t.env_id for t in (*DISPATCH_TASKS, *PARTITION_TASKS))


def add_parser(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser(
        "baselines", help="baseline score tables of the registered tasks (docs/tasks.md)"
    )
    b.add_argument(
        "--tasks",
        default=None,
        help="comma list of task ids (the mig_gym/ prefix optional) or 'all' "
        f"(default: every task but {', '.join(DEFAULT_SKIP)})",
    )
    b.add_argument("--seeds", type=COUNT, default=10, help="held-out seeds per row (default 10)")
    b.add_argument("--train-seeds", type=COUNT, default=5, help="training seeds for the tuned rows")
    b.add_argument("--jobs", type=COUNT, default=2, help="worker processes (default 2)")
    b.add_argument("--json", type=Path, default=Path("docs/results/baselines.json"))
    b.add_argument("--doc", type=Path, default=Path("docs/tasks.md"))
    b.add_argument("--no-progress", action="store_true")
    b.set_defaults(func=cmd_baselines)


def _selected(text: str | None) -> list[str]:
    if text is None:
        return [t for t in ALL if t not in DEFAULT_SKIP]
    if text.strip() == "all":
        return list(ALL)
    out = []
    for name in (x.strip() for x in text.split(",") if x.strip()):
        full = name if name.startswith("mig_gym/") else f"mig_gym/{name}"
        if full not in ALL:
            raise UsageError(f"--tasks: unknown task {name!r}; known: {', '.join(ALL)}")
        out.append(full)
    if not out:
        raise UsageError("--tasks: give at least one task id, or 'all'")
    return out


def task_specs(ids: list[str]) -> list[baselines.TaskSpec]:
    """The tasks as their environments run them (the scenario of ``gym.make(id)``)."""
    by_id = {t.env_id: t for t in (*DISPATCH_TASKS, *PARTITION_TASKS)}
    specs = []
    for i in ids:
        env = gym.make(i, disable_env_checker=True)
        kind = "dispatch" if isinstance(by_id[i], DispatchTask) else "partition"
        specs.append(baselines.TaskSpec(i, kind, env.unwrapped.scenario, by_id[i].difficulty))
        env.close()
    return specs


def write_section(doc: Path, body: str) -> None:
    """Replace the generated section of ``doc`` with ``body``."""
    text = doc.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise UsageError(f"--doc {doc}: no generated section ({BEGIN} ... {END}) to replace")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    doc.write_text(f"{head}{BEGIN}\n{body}{END}{tail}", encoding="utf-8")


def cmd_baselines(a: argparse.Namespace) -> int:
    ids = _selected(a.tasks)
    if not a.doc.is_file():
        raise UsageError(f"--doc: file not found: {a.doc}")
    t0 = time.monotonic()
    res = baselines.run_baselines(
        task_specs(ids), a.seeds, a.train_seeds, EVAL_SEED_BASE, a.jobs, not a.no_progress
    )
    merged = baselines.merge_results(a.json, res, ALL)
    write_section(a.doc, baselines.markdown(merged))
    print(baselines.markdown(res))
    print(f"{len(ids)} tasks in {time.monotonic() - t0:.0f} s: wrote {a.json} and {a.doc}")
    return 0
