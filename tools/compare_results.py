"""Compare the policy-sweep caches (docs/results/<scenario>.json) with those of a git revision.

    python tools/compare_results.py [--rev HEAD | --ref-dir DIR] [--dir docs/results] [--rel 1e-9]

Run it after ``tools/make_results.py --section policies`` to check that a change that should not
move any figure did not: every row (policy, seed, load) must be present on both sides with equal
counts and every number equal to ``--rel`` relative. The run time (``seconds``) is not compared.
Exit status 0 when equal, 1 otherwise (each difference is printed).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAPER = ("paper_resnet50", "paper_mobilenet", "paper_bert")
SKIP = {"seconds"}


def differences(a: object, b: object, rel: float, path: str = "") -> list[str]:
    """Where ``a`` and ``b`` differ: numbers beyond ``rel``, anything else not equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{path}: keys {sorted(a.keys() ^ b.keys())} on one side only"]
        return [d for k in a if k not in SKIP for d in differences(a[k], b[k], rel, f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} vs {len(b)} items"]
        pairs = enumerate(zip(a, b, strict=True))
        return [d for i, (x, y) in pairs for d in differences(x, y, rel, f"{path}[{i}]")]
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool):
        if isinstance(a, float) or isinstance(b, float):
            if (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=rel, abs_tol=0.0):
                return []
        elif a == b:
            return []
        return [f"{path}: {a!r} vs {b!r}"]
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rev", default="HEAD", help="git revision holding the reference caches")
    ap.add_argument("--ref-dir", help="reference caches from a directory instead of --rev")
    ap.add_argument("--dir", default=str(ROOT / "docs" / "results"), help="caches to check")
    ap.add_argument("--rel", type=float, default=1e-9)
    a = ap.parse_args()
    bad = 0
    for name in PAPER:
        if a.ref_dir:
            ref = (Path(a.ref_dir) / f"{name}.json").read_text(encoding="utf-8")
        else:
            ref = subprocess.run(
                ["git", "-C", str(ROOT), "show", f"{a.rev}:docs/results/{name}.json"],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
        new = (Path(a.dir) / f"{name}.json").read_text(encoding="utf-8")
        diffs = differences(json.loads(new), json.loads(ref), a.rel)
        rows = len(json.loads(ref)["rows"])
        print(f"{name}: {rows} runs, {len(diffs)} difference(s) beyond {a.rel:g}")
        for d in diffs[:20]:
            print(f"  {d}")
        bad += bool(diffs)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
