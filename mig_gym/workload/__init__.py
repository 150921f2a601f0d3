"""Workload: arrival processes (:mod:`.arrivals`), trace files (:mod:`.traces`), batch-size
distributions (:mod:`.batches`), phases, rates and the traces a workload replays
(:mod:`.phases`), and the lazily generated query stream (:mod:`.stream`)."""

from mig_gym.workload.batches import batch_pmf
from mig_gym.workload.phases import Traces, WorkloadError, mean_rate_qps, read_traces
from mig_gym.workload.stream import QueryBlock, QueryStream, generate

__all__ = [
    "QueryBlock",
    "QueryStream",
    "Traces",
    "WorkloadError",
    "batch_pmf",
    "generate",
    "mean_rate_qps",
    "read_traces",
]
