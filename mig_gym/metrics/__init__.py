"""Serving metrics: the recorder the simulator feeds, the latency sketch and the ``Summary``."""

from mig_gym.metrics.histogram import SKETCH_RELATIVE_ERROR, LatencyHistogram
from mig_gym.metrics.recorder import Recorder
from mig_gym.metrics.records import Completions, Rejections, Unfinished
from mig_gym.metrics.summary import Summary, strict_dumps, strict_json

__all__ = [
    "Completions",
    "LatencyHistogram",
    "Recorder",
    "Rejections",
    "Summary",
    "SKETCH_RELATIVE_ERROR",
    "Unfinished",
    "strict_dumps",
    "strict_json",
]
