"""Serving metrics: the recorder the simulator feeds, the latency sketch and the ``Summary``."""

from mig_gym.metrics.histogram import SKETCH_RELATIVE_ERROR, LatencyHistogram
from mig_gym.metrics.recorder import Completions, Recorder, Rejections
from mig_gym.metrics.summary import Summary

__all__ = [
    "Completions",
    "LatencyHistogram",
    "Recorder",
    "Rejections",
    "Summary",
    "SKETCH_RELATIVE_ERROR",
]
