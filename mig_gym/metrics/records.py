"""Batches of query outcomes handed to the :class:`~mig_gym.metrics.recorder.Recorder` at once:
completions and rejections (recorded in bulk by the fast path) and the queries still in the
system when a summary is taken."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Completions", "Rejections", "Unfinished"]


class Completions(NamedTuple):
    """Queries that completed, sorted by ``end_s`` (arrays of equal length; ``slo_s`` per model)."""

    end_s: np.ndarray
    arrival_s: np.ndarray
    qid: np.ndarray
    model: np.ndarray
    size: np.ndarray  # GPCs of the partition that served it
    service_s: np.ndarray
    slo_s: np.ndarray


class Rejections(NamedTuple):
    """Queries rejected at arrival, sorted by ``t_s``; ``reason`` indexes ``reasons``."""

    t_s: np.ndarray
    qid: np.ndarray
    model: np.ndarray
    reason: np.ndarray
    reasons: tuple[str, ...]


class Unfinished(NamedTuple):
    """Queries still in the system when a summary is taken; ``late``: its deadline (arrival +
    SLA) has passed, so it will be a violation whenever it completes."""

    qid: np.ndarray
    model: np.ndarray
    late: np.ndarray

    @classmethod
    def none(cls) -> Unfinished:
        return cls(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, bool))
