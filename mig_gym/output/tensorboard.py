"""Minimal TensorBoard scalar writer (no torch, no TensorFlow): event files via the tensorboard
package's own writer and protobufs. Tags are shared by every policy, heuristic or learned."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from mig_gym.metrics.summary import Summary

__all__ = ["ScalarWriter", "SERVING_TAGS", "serving_scalars"]

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
