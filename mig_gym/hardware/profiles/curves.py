"""Latency curves, memory models and the profile containers (``LatencyProfile``, ``ProfileSet``)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "ADMISSIONS",
    "ProfileRangeError",
    "KneeCurve",
    "TableCurve",
    "MemoryModel",
    "LatencyProfile",
    "ProfileSet",
    "fit_memory_model",
]


# How a (model, size) decides which batches it serves (docs/profiles.md, "Admission"):
# measured    up to the largest batch measured to run (the default; the low end of the interval)
# before_oom  up to the batch before the first measured out-of-memory one (the high end)
# memory_line where the fitted memory line fits the instance (interpolates into the gap)
ADMISSIONS = ("measured", "before_oom", "memory_line")


class ProfileRangeError(ValueError):
    """A batch outside the profiled range of a profile that does not extrapolate."""


@dataclass(frozen=True)
class KneeCurve:
    """``L(b) = (floor_s**p + (base_s + per_item_s*b**q)**p)**(1/p)`` s; ``floor_s=0``: exact line.

    ``q`` (default 1) bends the line: below 1 the cost per item falls slowly with the batch.
    """

    floor_s: float
    base_s: float
    per_item_s: float
    p: float = 1.0
    q: float = 1.0

    def __call__(self, b: np.ndarray) -> np.ndarray:
        line = self.base_s + self.per_item_s * (b if self.q == 1.0 else np.power(b, self.q))
        if self.floor_s == 0.0:
            return line
        top = np.maximum(self.floor_s, line)  # scale by the larger term: no overflow for large p
        return top * ((self.floor_s / top) ** self.p + (line / top) ** self.p) ** (1.0 / self.p)


@dataclass(frozen=True)
class TableCurve:
    """Measured (batch, latency) points; interpolation between them, explicit rules outside.

    Above the last point the line through the last two points continues (slope clipped at 0 so
    latency never falls); below the first point latency stays at the first measured value.
    """

    batches: tuple[int, ...]
    latencies_s: tuple[float, ...]
    interpolation: str = "loglinear"

    def __call__(self, b: np.ndarray) -> np.ndarray:
        x, y = np.asarray(self.batches, float), np.asarray(self.latencies_s, float)
        b = np.asarray(b, float)
        if self.interpolation == "linear":
            out = np.interp(b, x, y)
        elif self.interpolation == "loglinear":
            out = np.interp(np.log(b), np.log(x), y)
        else:  # loglog: piecewise power law; exp(log(y)) may be off by an ulp, so pin the points
            out = np.exp(np.interp(np.log(b), np.log(x), np.log(y)))
            i = np.minimum(np.searchsorted(x, b), len(x) - 1)
            out = np.where(x[i] == b, y[i], out)
        slope = max((y[-1] - y[-2]) / (x[-1] - x[-2]), 0.0) if len(x) > 1 else 0.0
        return np.where(b > x[-1], y[-1] + slope * (b - x[-1]), out)


@dataclass(frozen=True)
class MemoryModel:
    """``memory_gb(b) = base_gb + per_item_gb*b``; ``violated`` lists data it could not match.

    ``source`` says where the line comes from: ``fit`` (out-of-memory boundaries), ``estimate``
    (weights + activations per item, for data without any OOM) or ``given`` (user data).
    """

    base_gb: float = 0.0
    per_item_gb: float = 0.0
    violated: tuple[str, ...] = ()
    source: str = "given"

    def max_batch(self, mem_gb: float, top: int) -> int:
        """Largest batch in ``0..top`` whose memory fits ``mem_gb`` (0: not even batch 1)."""
        if self.per_item_gb <= 0.0:
            return top if self.base_gb <= mem_gb else 0
        b = int(min(max(math.floor((mem_gb - self.base_gb) / self.per_item_gb), 0), top))
        while b > 0 and self.base_gb + self.per_item_gb * b > mem_gb:  # float rounding
            b -= 1
        while b < top and self.base_gb + self.per_item_gb * (b + 1) <= mem_gb:
            b += 1
        return b


@dataclass(frozen=True, eq=False)
class LatencyProfile:
    """One model on one GPU type: service time for (gpcs, batch) and memory per batch.

    ``curves`` and ``ranges`` (profiled ``(min_batch, max_batch)``) are per partition size in GPCs;
    batches outside a range raise :class:`ProfileRangeError` unless ``extrapolate``.
    ``measured`` holds, per size, the largest batch measured to run and the first batch measured
    out of memory (None: none ran out); ``admission`` (one of :data:`ADMISSIONS`) turns them and
    the memory line into the largest batch a partition serves (:meth:`admitted_max`).
    ``derived`` is empty for profiles fitted to this GPU's data, else the rule they came from.
    """

    model: str
    gpu: str
    curves: Mapping[int, KneeCurve | TableCurve]
    ranges: Mapping[int, tuple[int, int]]
    extrapolate: bool = False
    memory: MemoryModel = MemoryModel()
    measured: Mapping[int, tuple[int, int | None]] = field(default_factory=dict)
    admission: str = "measured"
    derived: str = ""
    family: str = ""
    _cache: dict[int, tuple[int, list[float]]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.admission not in ADMISSIONS:
            raise ValueError(f"unknown admission {self.admission!r}; use one of {ADMISSIONS}")

    def with_admission(self, admission: str) -> LatencyProfile:
        """The same profile under another admission rule."""
        if admission == self.admission:
            return self
        return dataclasses.replace(self, admission=admission, _cache={})

    def admitted_max(self, gpcs: int, mem_gb: float, top: int) -> int:
        """Largest batch in ``0..top`` a ``gpcs``-GPC partition with ``mem_gb`` GiB serves.

        ``memory_line``: where the memory line fits. ``measured``: also no further than the
        largest batch measured to run (the range end where no run data is known); with
        ``extrapolate`` a size that never ran out of memory is bounded by the line only.
        ``before_oom``: up to the batch before the first measured out-of-memory one.
        """
        line = self.memory.max_batch(mem_gb, top)
        if self.admission == "memory_line":
            return line
        ran, oom = self.measured.get(gpcs, (self.ranges[gpcs][1], None))
        if self.admission == "before_oom" and oom is not None:
            return min(oom - 1, top)
        if self.extrapolate and oom is None:
            return line
        return min(line, ran, top)

    @property
    def sizes(self) -> tuple[int, ...]:
        """Partition sizes (GPCs) covered, ascending."""
        return tuple(sorted(self.curves))

    @property
    def max_batch(self) -> int:
        """Largest profiled batch over all sizes."""
        return max(hi for _, hi in self.ranges.values())

    def _check(self, gpcs: int, batch: int) -> None:
        if gpcs not in self.curves:
            raise ValueError(
                f"{self.model} on {self.gpu}: no profile for {gpcs}g; sizes {self.sizes}"
            )
        if batch < 1 or int(batch) != batch:
            raise ValueError(f"{self.model}: batch must be a positive integer, got {batch!r}")
        lo, hi = self.ranges[gpcs]
        if not self.extrapolate and not lo <= batch <= hi:
            raise ProfileRangeError(
                f"{self.model} on {gpcs}g ({self.gpu}): batch {batch} outside the profiled range "
                f"{lo}..{hi}; load with extrapolate=True to extrapolate explicitly"
            )

    def latency_s(self, gpcs: int, batch: int) -> float:
        """Seconds one query of ``batch`` items takes alone on a ``gpcs``-GPC partition.

        Raises:
            ValueError: unknown size or non-positive batch.
            ProfileRangeError: batch outside the profiled range and not extrapolating.
        """
        entry = self._cache.get(gpcs)
        if entry is not None and entry[0] <= batch < len(entry[1]):
            try:
                return entry[1][batch]  # fast path: a list index
            except TypeError:  # a non-integer batch: checked below
                pass
        self._check(gpcs, batch)
        if gpcs not in self._cache:
            lo, hi = (1, self.ranges[gpcs][1]) if self.extrapolate else self.ranges[gpcs]
            self._cache[gpcs] = (lo, self.latency_curve(gpcs, hi).tolist())
        lo, table = self._cache[gpcs]
        if lo <= batch < len(table):
            return table[int(batch)]
        return float(self.curves[gpcs](np.array([float(batch)]))[0])

    def latency_curve(self, gpcs: int, max_batch: int) -> np.ndarray:
        """Latencies for batches ``0..max_batch`` (index 0 and unprofiled small batches are nan).

        Raises:
            ValueError: unknown size.
            ProfileRangeError: ``max_batch`` above the profiled range and not extrapolating.
        """
        self._check(gpcs, max_batch)
        out = np.full(max_batch + 1, np.nan)
        b = np.arange(1, max_batch + 1, dtype=float)
        out[1:] = self.curves[gpcs](b)
        if not self.extrapolate:
            out[: self.ranges[gpcs][0]] = np.nan
        return out

    def memory_gb(self, batch: int) -> float:
        """GiB one query of ``batch`` items needs (compare with the partition's usable memory)."""
        return self.memory.base_gb + self.memory.per_item_gb * batch

    def notes(self) -> list[str]:
        """Caveats a user should see next to results from this profile (``mig-gym plan``)."""
        out = []
        if self.derived:
            out.append(f"{self.model}: profile *derived* for {self.gpu}: {self.derived}")
        if self.memory.source == "estimate":
            out.append(
                f"warning: {self.model}: memory is an estimate (weights + activations per item; "
                "the data has no out-of-memory run)"
            )
        elif self.memory.source == "none":
            out.append(
                f"warning: {self.model}: no memory limit known (no out-of-memory data, no "
                "estimate): only the measured batch range limits admission"
            )
        return out


@dataclass(frozen=True)
class ProfileSet:
    """Latency profiles of several models on one GPU type."""

    gpu: str
    profiles: Mapping[str, LatencyProfile]

    def __post_init__(self) -> None:
        wrong = [m for m, p in self.profiles.items() if p.gpu != self.gpu]
        if wrong:
            raise ValueError(f"profiles {wrong} are not for {self.gpu}")

    @property
    def models(self) -> tuple[str, ...]:
        """Model names."""
        return tuple(self.profiles)

    def __contains__(self, model: object) -> bool:
        return model in self.profiles

    def __getitem__(self, model: str) -> LatencyProfile:
        try:
            return self.profiles[model]
        except KeyError:
            raise KeyError(
                f"no profile for model {model!r}; models: {', '.join(self.models)}"
            ) from None

    def latency_s(self, model: str, gpcs: int, batch: int) -> float:
        """See :meth:`LatencyProfile.latency_s`."""
        return self[model].latency_s(gpcs, batch)

    def memory_gb(self, model: str, batch: int) -> float:
        """See :meth:`LatencyProfile.memory_gb`."""
        return self[model].memory_gb(batch)

    def with_admission(self, admission: str) -> ProfileSet:
        """Every profile under ``admission`` (see :meth:`LatencyProfile.admitted_max`)."""
        return ProfileSet(
            self.gpu, {m: p.with_admission(admission) for m, p in self.profiles.items()}
        )


# --------------------------------------------------------------------------- memory model
def fit_memory_model(
    ran: Iterable[tuple[float, int]], oom: Iterable[tuple[float, int]], grid: int = 400
) -> MemoryModel:
    """Fit a memory line to (capacity_gb, batch) pairs that ran and that ran out of memory.

    Each pair bounds ``per_item`` for a given ``base``: ran means ``base + per_item*b <= cap``, OOM
    means ``> cap``. Over a grid of ``base`` in [0, smallest capacity) we take the base with the
    widest feasible interval (as a ratio) and its geometric middle. Without any OOM the data bound
    memory only from above, so the model is the constant 0.

    Returns:
        The fit and the constraints it violates (empty when all are met).
    """
    ok, bad = np.array(list(ran), float).reshape(-1, 2), np.array(list(oom), float).reshape(-1, 2)
    if len(bad) == 0:
        return MemoryModel(0.0, 0.0, source="none")
    caps = np.concatenate([ok[:, 0], bad[:, 0]])
    base = np.linspace(0.0, caps.min(), grid, endpoint=False)[:, None]
    lo = ((bad[:, 0] - base) / bad[:, 1]).max(axis=1)
    hi = ((ok[:, 0] - base) / ok[:, 1]).min(axis=1) if len(ok) else 4.0 * lo
    i = int(np.argmax(np.log(hi / lo)))
    m0, m1 = float(base[i, 0]), float(math.sqrt(lo[i] * hi[i]))
    violated = [f"batch {b:g} ran in {c:g} GiB" for c, b in ok if m0 + m1 * b > c]
    violated += [f"batch {b:g} out of memory in {c:g} GiB" for c, b in bad if m0 + m1 * b <= c]
    return MemoryModel(m0, m1, tuple(violated), source="fit")
