"""TensorBoard output: namespaces per x axis, random on its own charts, custom-scalars layout."""

from __future__ import annotations

from pathlib import Path

from mig_gym.output.tensorboard import (
    LAYOUTS,
    namespaced,
    read_layout,
    read_scalars,
    reference_scalars,
    write_layout,
)

SERVING = {"serving/p95_ms": 12.0, "serving/sla_violation_rate": 0.1}


def test_namespaces_keep_the_metric_names():
    assert namespaced(SERVING, "compare/by_seed") == {
        "compare/by_seed/p95_ms": 12.0,
        "compare/by_seed/sla_violation_rate": 0.1,
    }
    assert reference_scalars("elsa", SERVING) == SERVING  # on the training charts
    assert set(reference_scalars("random", SERVING)) == {
        "random/p95_ms",
        "random/sla_violation_rate",
    }


def test_layout_round_trip_opens_on_the_serving_charts(tmp_path: Path):
    assert read_layout(tmp_path) is None
    write_layout(tmp_path, "train")
    layout = read_layout(tmp_path)
    assert layout is not None and list(layout.category) == LAYOUTS["train"]
    first = layout.category[0]
    assert not first.closed and all(c.closed for c in layout.category[1:])
    assert {t for c in first.chart for t in c.multiline.tag} >= {
        "^serving/p95_ms$",
        "^serving/sla_violation_rate$",
    }
    assert not any("random" in t for c in first.chart for t in c.multiline.tag)
    assert read_scalars(tmp_path) == {}  # a layout adds no scalar to the charts
