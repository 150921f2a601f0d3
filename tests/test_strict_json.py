"""Every JSON output of mig_gym is strict JSON (``null``, never ``NaN``; issue 11 items 3 and 7).

The ``--json`` outputs of ``mig-gym run`` and ``mig-gym plan`` and the files mig_gym writes
(``baselines.json``; ``model.json`` is read strictly in tests/test_training.py) are parsed with a
strict parser on runs whose Summary has NaN fields; the committed result files are too, and every
JSON writer in the source goes through :func:`mig_gym.metrics.strict_dumps`.
"""

from __future__ import annotations

import math
import re

import pytest
import yaml

from mig_gym.cli import main
from mig_gym.metrics import strict_dumps
from mig_gym.runs.baselines import merge_results

from .conftest import REPO, SCENARIOS, strict_loads

# homo1 with batch 128: every query rejected, so no latency (NaN in the Summary)
ALL_REJECTED = {
    "name": "all_rejected",
    "cluster": {"num_gpus": 2},
    "workload": {"batch": {"kind": "fixed", "value": 128}},
    "policy": {"partitioner": {"kind": "homogeneous", "gpcs": 1}, "dispatcher": {"kind": "fifs"}},
    "run": {"num_queries": 300, "warmup_queries": 30},
}


def test_strict_loads_rejects_what_strict_parsers_reject():
    for bad in ("NaN", "[Infinity]", '{"x": -Infinity}'):
        with pytest.raises(ValueError, match="is not JSON"):
            strict_loads(bad)
    assert strict_dumps({"a": math.nan, "b": [math.inf, 1.0], "c": (2, -math.inf)}) == (
        '{"a": null, "b": [null, 1.0], "c": [2, null]}'
    )


@pytest.mark.parametrize("loop", [[], ["--event-loop"]], ids=["fast", "events"])
def test_run_json_has_null_for_undefined_latencies(tmp_path, capsys, loop):
    path = tmp_path / "all_rejected.yaml"
    path.write_text(yaml.safe_dump(ALL_REJECTED))
    assert main(["run", str(path), "--json", "--no-progress", *loop]) == 0
    d = strict_loads(capsys.readouterr().out)
    assert d["rejected"] == d["arrived"] == 300 and d["sla_violation_rate"] == 1.0
    for key in ("latency_mean_ms", "latency_p95_ms", "latency_max_ms"):
        assert d[key] is None, key
    assert d["by_model"]["resnet50"]["latency_mean_ms"] is None


def test_plan_json_is_strict(capsys):
    assert main(["plan", str(SCENARIOS / "paper_resnet50.yaml"), "--json"]) == 0
    assert strict_loads(capsys.readouterr().out)


def test_baselines_file_is_strict(tmp_path):
    path = tmp_path / "baselines.json"
    merge_results(path, {"T-v0": {"rows": {"x": {"scores": [0.5, math.nan]}}}}, ["T-v0"])
    assert strict_loads(path.read_text())["T-v0"]["rows"]["x"]["scores"] == [0.5, None]


@pytest.mark.parametrize(
    "path",
    [*sorted((REPO / "docs" / "results").glob("*.json")), REPO / "benchmarks" / "results.json"],
    ids=lambda p: p.name,
)
def test_committed_json_files_are_strict(path):
    strict_loads(path.read_text(encoding="utf-8"))


def test_every_json_writer_goes_through_strict_dumps():
    # json.dump(s) writes NaN by default: only strict_dumps may call it (with allow_nan=False)
    call = re.compile(r"(?<!`)\bjson\.dumps?\(")  # (not in ``docstrings``)
    offenders = []
    for folder in ("mig_gym", "tools", "benchmarks", "agents"):
        for f in sorted((REPO / folder).rglob("*.py")):
            for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
                code = line.split("#", 1)[0]
                if call.search(code) and "allow_nan=False" not in code:
                    offenders.append(f"{f.relative_to(REPO)}:{i}: {line.strip()}")
    assert not offenders, "write JSON with mig_gym.metrics.strict_dumps:\n" + "\n".join(offenders)
