"""Workload: arrival processes (:mod:`.arrivals`), trace files (:mod:`.traces`) and the lazily
generated query stream with batch sizes, model mix and phases (:mod:`.stream`)."""

from mig_gym.workload.stream import (
    QueryBlock,
    QueryStream,
    WorkloadError,
    batch_pmf,
    generate,
    mean_rate_qps,
)

__all__ = ["QueryBlock", "QueryStream", "WorkloadError", "batch_pmf", "generate", "mean_rate_qps"]
