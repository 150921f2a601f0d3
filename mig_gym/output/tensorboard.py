"""Minimal TensorBoard scalar writer (no torch, no TensorFlow): event files via the tensorboard
package's own writer and protobufs, and the custom-scalars layouts people open first.

Tag namespaces, one x axis each, so no chart mixes two kinds of steps:

- ``serving/*``: training's held-out evaluation against **training steps**, the learned agent and
  the reference policies (flat lines at the same steps) on the same charts;
- ``random/*``: the random reference of training, on charts of its own (its latencies are an
  order of magnitude above every other line's and would squash them);
- ``compare/over_time/*`` (x = simulated seconds, the first seed's windows) and
  ``compare/by_seed/*`` (x = seed index) for ``mig-gym compare``; ``sweep/by_load/*`` (x = load x
  100) for ``mig-gym sweep``.

Every policy, heuristic or learned, writes the same metric names under its namespace.
:func:`write_layout` adds a custom-scalars layout (TensorBoard's *Custom Scalars* tab,
``#custom_scalars``) whose first, open category is the serving charts.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.custom_scalar import metadata as cs_metadata
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from mig_gym.metrics.summary import Summary

__all__ = [
    "ScalarWriter",
    "SERVING_TAGS",
    "serving_scalars",
    "namespaced",
    "reference_scalars",
    "LAYOUTS",
    "write_layout",
    "read_layout",
]

# Summary field -> TensorBoard tag: one set of tags for every policy, heuristic or learned
# (docs/architecture.md, the data path).
SERVING_TAGS = {
    "latency_p50_ms": "serving/p50_ms",
    "latency_p95_ms": "serving/p95_ms",
    "latency_p99_ms": "serving/p99_ms",
    "latency_mean_ms": "serving/mean_ms",
    "sla_violation_rate": "serving/sla_violation_rate",
    "goodput_qps": "serving/goodput_qps",
    "throughput_qps": "serving/throughput_qps",
    "utilization": "serving/utilization",
}


def serving_scalars(
    source: Summary | Mapping[str, Any], sizes: tuple[int, ...] = ()
) -> dict[str, float]:
    """The serving tags of a Summary, or those present in a time-series row (a dict per window).
    With ``sizes``, every size gets a ``serving/utilization_<k>g`` tag (0 where the plan has no
    partition of that size), so all policies share the same tags."""
    row: Mapping[str, Any] = (
        {k: getattr(source, k) for k in (*SERVING_TAGS, "utilization_by_size")}
        if isinstance(source, Summary)
        else source
    )
    out = {tag: float(row[k]) for k, tag in SERVING_TAGS.items() if k in row}
    by_size = row.get("utilization_by_size") or {}
    for k in sizes or tuple(by_size):
        out[f"serving/utilization_{k}g"] = float(by_size.get(k, 0.0))
    return out


def namespaced(scalars: Mapping[str, float], namespace: str) -> dict[str, float]:
    """``serving/<metric>`` tags moved to ``<namespace>/<metric>``."""
    return {f"{namespace}/{t.removeprefix('serving/')}": v for t, v in scalars.items()}


OWN_NAMESPACE = ("random",)  # training references kept off the serving charts


def reference_scalars(name: str, scalars: Mapping[str, float]) -> dict[str, float]:
    """A training reference's tags: ``serving/*``, or ``<name>/*`` for :data:`OWN_NAMESPACE`."""
    return namespaced(scalars, name) if name in OWN_NAMESPACE else dict(scalars)


_METRICS = ("sla_violation_rate", "p95_ms", "goodput_qps", "utilization", "p99_ms", "p50_ms")


def _category(title: str, prefix: str, closed: bool = False) -> layout_pb2.Category:
    charts = [
        layout_pb2.Chart(
            title=f"{prefix}/{m}",
            multiline=layout_pb2.MultilineChartContent(tag=[rf"^{prefix}/{m}$"]),
        )
        for m in _METRICS
    ]
    return layout_pb2.Category(title=title, chart=charts, closed=closed)


def _sb3_category() -> layout_pb2.Category:
    rows = (("training return", r"^rollout/ep_rew_mean$"), ("training losses", r"^train/.*loss$"),
            ("warm start", r"^bc/loss$"))  # fmt: skip
    charts = [
        layout_pb2.Chart(title=t, multiline=layout_pb2.MultilineChartContent(tag=[r]))
        for t, r in rows
    ]
    return layout_pb2.Category(
        title="training (SB3, x = training steps)", chart=charts, closed=True
    )


# Layouts by writer. TensorBoard merges the layouts of every run, in run order.
LAYOUTS: dict[str, list[layout_pb2.Category]] = {
    "train": [
        _category("serving: held-out evaluation (x = training steps)", "serving"),
        _category("random reference (x = training steps)", "random", closed=True),
        _sb3_category(),
    ],
    "compare": [
        _category("compare: per seed (x = seed index)", "compare/by_seed"),
        _category("compare: over time, first seed (x = simulated s)", "compare/over_time", True),
    ],
    "sweep": [_category("sweep: by load (x = load x 100)", "sweep/by_load")],
}


class ScalarWriter:
    """Writes scalars to ``logdir`` (created if needed). Wall time is fixed per writer so the
    event contents depend only on the data."""

    def __init__(self, logdir: str | Path) -> None:
        Path(logdir).mkdir(parents=True, exist_ok=True)
        self._w = EventFileWriter(str(logdir))
        self._wall = time.time()

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        summ = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])
        self._w.add_event(event_pb2.Event(wall_time=self._wall, step=int(step), summary=summ))

    def add_scalars(self, values: dict[str, float], step: int) -> None:
        for tag, v in values.items():
            if v == v:  # skip NaN (an empty window)
                self.add_scalar(tag, v, step)

    def add_text(self, tag: str, text: str) -> None:
        tensor = summary_pb2.Summary.Value(tag=tag)
        tensor.metadata.plugin_data.plugin_name = "text"
        tensor.tensor.dtype = 7  # DT_STRING
        tensor.tensor.string_val.append(text.encode())
        tensor.tensor.tensor_shape.dim.add(size=1)
        self._w.add_event(
            event_pb2.Event(
                wall_time=self._wall, step=0, summary=summary_pb2.Summary(value=[tensor])
            )
        )

    def add_layout(self, categories: list[layout_pb2.Category]) -> None:
        """A custom-scalars layout (the summary TensorBoard's ``custom_scalar`` plugin reads)."""
        value = summary_pb2.Summary.Value(tag=cs_metadata.CONFIG_SUMMARY_TAG)
        value.metadata.CopyFrom(cs_metadata.create_summary_metadata())
        value.tensor.dtype = 7  # DT_STRING
        value.tensor.string_val.append(layout_pb2.Layout(category=categories).SerializeToString())
        summ = summary_pb2.Summary(value=[value])
        self._w.add_event(event_pb2.Event(wall_time=self._wall, step=0, summary=summ))

    def close(self) -> None:
        self._w.flush()
        self._w.close()

    def __enter__(self) -> ScalarWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_scalars(logdir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Read back every scalar under ``logdir`` (for tests and reports)."""
    acc = EventAccumulator(str(logdir))
    acc.Reload()
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


def write_layout(logdir: str | Path, kind: str) -> None:
    """Write the custom-scalars layout :data:`LAYOUTS` ``[kind]`` into ``logdir``."""
    with ScalarWriter(logdir) as w:
        w.add_layout(LAYOUTS[kind])


def read_layout(logdir: str | Path) -> layout_pb2.Layout | None:
    """The custom-scalars layout written under ``logdir`` (None if there is none)."""
    acc = EventAccumulator(str(logdir), size_guidance={"tensors": 0})
    acc.Reload()
    if cs_metadata.CONFIG_SUMMARY_TAG not in acc.Tags()["tensors"]:
        return None
    event = acc.Tensors(cs_metadata.CONFIG_SUMMARY_TAG)[-1]
    return layout_pb2.Layout.FromString(event.tensor_proto.string_val[0])
