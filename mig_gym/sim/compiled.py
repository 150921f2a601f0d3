"""The epoch runner's side of compiled dispatch loops (numba, the optional ``fast`` extra).

The epoch fast path (:mod:`mig_gym.sim.epochs`) spends nearly all its time in a rule's fast loop
and in replaying, per query, which partition of the chosen class served it. A rule that has a
compiled form (``FastRule.compiled_form``; the kernels are in
:mod:`mig_gym.policies.dispatch.kernels`) does both in one pass over flat arrays:

- classes: per model, its (model, size) classes smallest size first (``cls_off[m]`` to
  ``cls_off[m + 1]``), each class's size (``cls_size``) and latency row (``lat[c, batch]``, inf
  where the batch does not fit);
- partitions: each class's partitions as a binary min-heap of ``(free time, uid)`` in
  ``free[part_off[c]:part_off[c + 1]]`` and ``uid[...]``, the order of the runner's Python heaps, so
  the top is the partition free soonest, ties to the lowest uid, as the event loop's class index.

The kernel returns each query's end, size, service time and partition uid and leaves the heaps
updated; :class:`ClassArrays` packs the runner's heaps into these arrays and unpacks them back.
The arithmetic is the Python loop's, operation for operation (no fast-math), so results are
bit-identical; tests/test_compiled.py checks the kernels against the Python loops, and
tests/test_epochs.py the whole runner against the event loop, with and without them.

Importing this module does not import numba (whose import alone costs about 0.2 s):
``AVAILABLE`` says whether it is installed (``pip install 'mig-gym[fast]'``), and :func:`load`
imports a module of kernels (the pull mode's, Dispatch-v0's observation columns) when asked.
Without numba, or if its import fails (a numpy it does not support yet: one warning,
:func:`unusable`), rules offer no compiled form and the runner uses the Python loops, with the
same results; pull runs take the event loop; Dispatch-v0 computes its columns in numpy.
"""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from types import ModuleType
from typing import Protocol

import numpy as np

__all__ = ["AVAILABLE", "ClassArrays", "CompiledLoop", "load", "unusable"]


def _installed() -> bool:
    try:
        return importlib.util.find_spec("numba") is not None
    except (ImportError, ValueError):  # a finder that refuses it, or a stubbed-out module
        return False


# the optional ``fast`` extra; without it the epoch fast path runs its Python loops
AVAILABLE = _installed()


def unusable(error: ImportError) -> None:
    """numba is installed but its import failed: say so once, and use the Python loops from now
    on (the same results, slower)."""
    global AVAILABLE
    AVAILABLE = False
    warnings.warn(
        f"numba is installed but cannot be imported ({error}); Partition-v0's epoch fast path "
        "runs its Python loops (same results, slower)",
        RuntimeWarning,
        stacklevel=3,
    )


def load(module: str) -> ModuleType | None:
    """Import a module of compiled kernels (it imports numba), or None where numba is missing
    or cannot load (warned once, :func:`unusable`)."""
    if not AVAILABLE:
        return None
    try:
        return importlib.import_module(module)
    except ImportError as e:
        unusable(e)
        return None


class CompiledLoop(Protocol):
    """A rule's compiled form: one block of queries dispatched in order at times ``t`` (arrived at
    ``a``: the same times, except for queries held until then), with models and batches, on the
    packed classes; returns end times, sizes, service times and partition uids, in that order."""

    def __call__(
        self, t: np.ndarray, a: np.ndarray, m: np.ndarray, b: np.ndarray, arrays: ClassArrays
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]: ...


class ClassArrays:
    """The runner's per-class heaps as the kernels' flat arrays, and back.

    Args:
        idh: per model, per size, the heap of ``(free time, uid)`` of the class's partitions.
        lat: the latency table of each (model, size).
        num_models: models of the run (classes of a model without partitions are absent).
    """

    def __init__(
        self,
        idh: dict[int, dict[int, list[tuple[float, int]]]],
        lat: dict[tuple[int, int], list[float]],
        num_models: int,
    ) -> None:
        keys = [(m, k) for m in range(num_models) for k in sorted(idh.get(m, {})) if idh[m][k]]
        width = max((len(lat[key]) for key in keys), default=1)
        self.keys = keys
        self.cls_off = np.zeros(num_models + 1, np.int64)
        for m, _ in keys:
            self.cls_off[m + 1] += 1
        np.cumsum(self.cls_off, out=self.cls_off)
        self.cls_size = np.array([k for _, k in keys], np.int64)
        self.lat = np.full((max(len(keys), 1), width), np.inf)
        sizes = [len(idh[m][k]) for m, k in keys]
        self.part_off = np.zeros(len(keys) + 1, np.int64)
        self.part_off[1:] = np.cumsum(sizes)
        heaps = [h for m, k in keys for h in idh[m][k]]
        self.free = np.array([f for f, _ in heaps], np.float64)
        self.uid = np.array([u for _, u in heaps], np.int64)
        for c, key in enumerate(keys):
            self.lat[c, : len(lat[key])] = lat[key]

    def heaps(self) -> dict[int, dict[int, list[tuple[float, int]]]]:
        """The heaps as the runner keeps them (still heap-ordered)."""
        out: dict[int, dict[int, list[tuple[float, int]]]] = {}
        free, uid = self.free.tolist(), self.uid.tolist()
        for c, (m, k) in enumerate(self.keys):
            lo, hi = int(self.part_off[c]), int(self.part_off[c + 1])
            out.setdefault(m, {})[k] = list(zip(free[lo:hi], uid[lo:hi], strict=True))
        return out

    def outputs(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Empty result arrays for a block of ``n`` queries: end, size, service, uid."""
        return np.empty(n), np.empty(n, np.int64), np.empty(n), np.empty(n, np.int64)
