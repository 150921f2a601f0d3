"""Service-time profiles: how long one query of ``batch`` items takes alone on a partition.

Built-in profiles are a compact fit to the ParvaGPU A100-80GB measurements (Lee et al., SC 2024;
see ``docs/profiles.md``): per (model, size) ``L(b) = (floor**p + (base + per_item*b)**p)**(1/p)``,
a smooth maximum of a flat floor and a line. Users can load measured tables instead (ParvaGPU CSV or
mig_gym CSV); batches between measured points interpolate, outside the range is an error unless
extrapolation is asked for. Memory is linear in batch, ``memory_gb(b) = base + per_item*b``.
"""

from __future__ import annotations

import csv
import functools
import math
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

from mig_gym import hardware

INTERPOLATIONS = ("loglinear", "loglog", "linear")
BUILTIN_FILES = {"A100-80GB": "profiles_a100_80gb.yaml"}
# Header of ParvaGPU prof_data/*.csv (MunQ-Lee/ParvaGPU_SC24); see docs/profiles.md.
PARVAGPU_COLUMNS = ("Mig instance", "Batch size", "Workload Number", "Throughput", "Latency")
MIG_GYM_COLUMNS = ("model", "gpu", "gpcs", "batch", "latency_ms")


class ProfileRangeError(ValueError):
    """A batch outside the profiled range of a profile that does not extrapolate."""


@dataclass(frozen=True)
class KneeCurve:
    """``L(b) = (floor_s**p + (base_s + per_item_s*b)**p)**(1/p)`` s; ``floor_s=0``: exact line."""

    floor_s: float
    base_s: float
    per_item_s: float
    p: float = 1.0

    def __call__(self, b: np.ndarray) -> np.ndarray:
        line = self.base_s + self.per_item_s * b
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
    """``memory_gb(b) = base_gb + per_item_gb*b``; ``violated`` lists data it could not match."""

    base_gb: float = 0.0
    per_item_gb: float = 0.0
    violated: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class LatencyProfile:
    """One model on one GPU type: service time for (gpcs, batch) and memory per batch.

    ``curves`` and ``ranges`` (profiled ``(min_batch, max_batch)``) are per partition size in GPCs;
    batches outside a range raise :class:`ProfileRangeError` unless ``extrapolate``.
    """

    model: str
    gpu: str
    curves: Mapping[int, KneeCurve | TableCurve]
    ranges: Mapping[int, tuple[int, int]]
    extrapolate: bool = False
    memory: MemoryModel = MemoryModel()
    _cache: dict[int, tuple[int, list[float]]] = field(default_factory=dict, repr=False)

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
        return MemoryModel(0.0, 0.0)
    caps = np.concatenate([ok[:, 0], bad[:, 0]])
    base = np.linspace(0.0, caps.min(), grid, endpoint=False)[:, None]
    lo = ((bad[:, 0] - base) / bad[:, 1]).max(axis=1)
    hi = ((ok[:, 0] - base) / ok[:, 1]).min(axis=1) if len(ok) else 4.0 * lo
    i = int(np.argmax(np.log(hi / lo)))
    m0, m1 = float(base[i, 0]), float(math.sqrt(lo[i] * hi[i]))
    violated = [f"batch {b:g} ran in {c:g} GiB" for c, b in ok if m0 + m1 * b > c]
    violated += [f"batch {b:g} out of memory in {c:g} GiB" for c, b in bad if m0 + m1 * b <= c]
    return MemoryModel(m0, m1, tuple(violated))


# --------------------------------------------------------------------------- CSV loaders
def _rows(path: str | Path, required: Sequence[str]) -> tuple[Path, list[tuple[int, dict]]]:
    """(line number, row) pairs of a CSV, after checking the required columns exist."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"profile file not found: {path}")
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        try:
            header = [h.strip() for h in reader.fieldnames or ()]
            if missing := [c for c in required if c not in header]:
                raise ValueError(f"{path}: missing column(s) {missing}; found {header}")
            rows = [
                (reader.line_num, {k.strip(): (v or "").strip() for k, v in r.items() if k})
                for r in reader
            ]
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: not a UTF-8 text file ({e})") from None
        except csv.Error as e:
            raise ValueError(f"{path}, line {reader.line_num}: malformed CSV: {e}") from None
    return path, rows


def _num(where: str, row: dict[str, str], col: str, integer: bool = False) -> float:
    """The value of ``col`` as a number; errors name the file, line, column and value."""
    text = row.get(col, "")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: column {col!r} has non-numeric value {text!r}") from None
    if not math.isfinite(value) or (integer and not value.is_integer()):
        kind = "an integer" if integer else "a finite number"
        raise ValueError(f"{where}: column {col!r} value {text!r} is not {kind}")
    return value


def _table_profile(
    model: str,
    gpu: str,
    points: Mapping[int, Mapping[int, float]],
    interpolation: str,
    extrapolate: bool,
    memory: MemoryModel,
) -> LatencyProfile:
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {interpolation!r}; use one of {INTERPOLATIONS}")
    bs = {g: tuple(sorted(pts)) for g, pts in sorted(points.items())}
    curves = {
        g: TableCurve(b, tuple(points[g][x] for x in b), interpolation) for g, b in bs.items()
    }
    ranges = {g: (b[0], b[-1]) for g, b in bs.items()}
    return LatencyProfile(model, gpu, curves, ranges, extrapolate, memory)


def read_parvagpu_csv(path: str | Path) -> tuple[dict[int, dict[int, float]], dict[int, list[int]]]:
    """Measured latencies (s) per size and batch, and the OOM batches per size, of a ParvaGPU CSV.

    Only ``Workload Number == 1`` rows (one process per instance) count. A ``0,0`` row is an OOM
    when a smaller batch ran on the same size, otherwise a run that was not made.
    """
    path, rows = _rows(path, PARVAGPU_COLUMNS)
    ran: dict[int, dict[int, float]] = {}
    zero: dict[int, list[int]] = {}
    seen: dict[tuple[int, int], int] = {}
    for line, row in rows:
        where = f"{path}, line {line}"
        g, b, wn = (int(_num(where, row, c, True)) for c in PARVAGPU_COLUMNS[:3])
        thr, lat = _num(where, row, "Throughput"), _num(where, row, "Latency")
        if wn != 1:
            continue
        if g < 1 or b < 1:
            raise ValueError(f"{where}: 'Mig instance' {g} and 'Batch size' {b} must be >= 1")
        if (g, b) in seen:
            raise ValueError(
                f"{where}: duplicate row for Mig instance {g}, Batch size {b} "
                f"(also line {seen[g, b]})"
            )
        seen[g, b] = line
        if lat == 0.0 and thr == 0.0:
            zero.setdefault(g, []).append(b)
        elif lat <= 0.0:
            raise ValueError(f"{where}: column 'Latency' has non-positive value {row['Latency']!r}")
        else:
            ran.setdefault(g, {})[b] = lat
    if not ran:
        raise ValueError(f"{path}: no measured rows with Workload Number 1")
    oom = {g: sorted(b for b in bs if g in ran and b > min(ran[g])) for g, bs in zero.items()}
    return ran, {g: bs for g, bs in oom.items() if bs}


def load_parvagpu_csv(
    path: str | Path,
    model: str,
    gpu: str = "A100-80GB",
    interpolation: str = "loglinear",
    extrapolate: bool = False,
    instance_mem_gb: Mapping[int, float] | None = None,
) -> ProfileSet:
    """Load one model's ParvaGPU profiling CSV as a measured table.

    Args:
        path: CSV with columns ``Mig instance,Batch size,Workload Number,Throughput,Latency``.
        model: Name to give the model (a file holds one model).
        gpu: GPU type the file was measured on.
        interpolation: ``loglinear`` (default), ``loglog`` or ``linear`` between measured batches.
        extrapolate: Allow batches outside each size's measured range.
        instance_mem_gb: Usable memory per size; default from :func:`mig_gym.hardware.gpu_spec`.

    OOM rows drop out and end each size's range. The memory line comes from
    :func:`fit_memory_model` (a warning lists constraints it cannot meet).
    """
    ran, oom = read_parvagpu_csv(path)
    if instance_mem_gb is None:
        spec = hardware.gpu_spec(gpu)
        instance_mem_gb = {g: spec.profile_for(g).mem_gb for g in ran}
    memory = fit_memory_model(
        [(instance_mem_gb[g], b) for g, pts in ran.items() for b in pts],
        [(instance_mem_gb[g], b) for g, bs in oom.items() for b in bs],
    )
    if memory.violated:
        warnings.warn(f"{path}: memory line cannot meet {list(memory.violated)}", stacklevel=2)
    profile = _table_profile(model, gpu, ran, interpolation, extrapolate, memory)
    return ProfileSet(gpu, {model: profile})


def load_mig_gym_csv(
    path: str | Path, interpolation: str = "loglinear", extrapolate: bool = False
) -> ProfileSet:
    """Load a ``model,gpu,gpcs,batch,latency_ms[,memory_gb]`` CSV (one GPU type per file).

    ``memory_gb`` is optional (also per row): a least-squares line per model over the given
    points, a constant with one distinct batch, 0 without any.
    """
    path, rows = _rows(path, MIG_GYM_COLUMNS)
    points: dict[str, dict[int, dict[int, float]]] = {}
    mem: dict[str, list[tuple[int, float]]] = {}
    gpus: set[str] = set()
    for line, row in rows:
        where, model = f"{path}, line {line}", row["model"]
        g, b = (int(_num(where, row, c, True)) for c in ("gpcs", "batch"))
        lat = _num(where, row, "latency_ms")
        m = _num(where, row, "memory_gb") if row.get("memory_gb") else 0.0
        for col, bad in (
            ("model", not model),
            ("gpu", not row["gpu"]),
            ("gpcs", g < 1),
            ("batch", b < 1),
            ("latency_ms", lat <= 0),
            ("memory_gb", m < 0),
        ):
            if bad:
                raise ValueError(f"{where}: column {col!r} has invalid value {row[col]!r}")
        if b in points.setdefault(model, {}).setdefault(g, {}):
            raise ValueError(f"{where}: duplicate row for model {model}, gpcs {g}, batch {b}")
        points[model][g][b] = lat / 1000.0
        gpus.add(row["gpu"])
        if row.get("memory_gb"):
            mem.setdefault(model, []).append((b, m))
    if len(gpus) != 1:
        raise ValueError(
            f"{path}: column 'gpu' must hold exactly one GPU type, found {sorted(gpus)}"
        )
    gpu, profiles = gpus.pop(), {}
    for model, pts in points.items():
        bm = np.array(mem.get(model, [(1, 0.0)]), float)
        one = len(set(bm[:, 0])) == 1
        m1, m0 = (0.0, bm[:, 1].mean()) if one else np.polyfit(bm[:, 0], bm[:, 1], 1)
        memory = MemoryModel(float(m0), float(m1))
        profiles[model] = _table_profile(model, gpu, pts, interpolation, extrapolate, memory)
    return ProfileSet(gpu, profiles)


# --------------------------------------------------------------------------- fitted and synthetic
def load_fitted_yaml(path: str | Path, extrapolate: bool = False) -> ProfileSet:
    """Load a fitted-profile YAML (the format of ``mig_gym/data/profiles_a100_80gb.yaml``)."""
    return _fitted_from_text(Path(path).read_text(encoding="utf-8"), str(path), extrapolate)


def _fitted_from_text(text: str, source: str, extrapolate: bool) -> ProfileSet:
    doc = yaml.safe_load(text)
    try:
        gpu, (lo, hi) = doc["gpu"], doc["batch_range"]
        profiles = {}
        for model, spec in doc["models"].items():
            curves = {
                int(g): KneeCurve(
                    c["floor_ms"] / 1e3, c.get("base_ms", 0.0) / 1e3, c["per_item_ms"] / 1e3, c["p"]
                )
                for g, c in spec["latency"].items()
            }
            memory = MemoryModel(spec["memory_gb"]["base"], spec["memory_gb"]["per_item"])
            ranges = dict.fromkeys(curves, (lo, hi))
            profiles[model] = LatencyProfile(model, gpu, curves, ranges, extrapolate, memory)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{source}: malformed fitted-profile file ({exc!r})") from None
    return ProfileSet(gpu, profiles)


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


@functools.cache
def _builtin(gpu: str, extrapolate: bool) -> ProfileSet:
    text = resources.files("mig_gym.data").joinpath(BUILTIN_FILES[gpu]).read_text(encoding="utf-8")
    return _fitted_from_text(text, f"mig_gym/data/{BUILTIN_FILES[gpu]}", extrapolate)


def builtin_profiles(
    gpu: str = "A100-80GB", models: Sequence[str] | None = None, extrapolate: bool = False
) -> ProfileSet:
    """The calibrated built-in profiles (batch 1..256), optionally only ``models``.

    Raises:
        ValueError: unknown GPU (naming those with built-in data) or unknown model.
    """
    name = next((k for k in BUILTIN_FILES if _norm(k) == _norm(gpu)), None)
    if name is None:
        raise ValueError(
            f"no built-in profiles for GPU {gpu!r}; available: {', '.join(BUILTIN_FILES)}"
        )
    full = _builtin(name, extrapolate)
    unknown = [m for m in models or () if m not in full]
    if unknown:
        raise ValueError(
            f"no built-in {name} profile for {unknown}; models: {', '.join(full.models)}"
        )
    keep = full.models if models is None else tuple(models)
    return ProfileSet(name, {m: full[m] for m in keep})


def linear_profile(
    model: str,
    gpu: str,
    base_s: dict[int, float] | float,
    per_item_s: dict[int, float] | float,
    max_batch: int = 1024,
    mem_gb: float = 0.0,
    sizes: Sequence[int] | None = None,
) -> ProfileSet:
    """An exact ``L = base_s + per_item_s*b`` profile (for tests and queueing theory).

    Scalars apply to every size in ``sizes`` (default: the GPU's sizes in :mod:`mig_gym.hardware`);
    dicts give per-size values and define the sizes.
    """
    keys = [set(x) for x in (base_s, per_item_s) if isinstance(x, dict)]
    if sizes is None:
        sizes = sorted(keys[0]) if keys else hardware.gpu_spec(gpu).sizes
    base = base_s if isinstance(base_s, dict) else dict.fromkeys(sizes, base_s)
    per = per_item_s if isinstance(per_item_s, dict) else dict.fromkeys(sizes, per_item_s)
    if set(base) != set(per) or any(
        base[g] < 0 or per[g] < 0 or base[g] + per[g] <= 0 for g in base
    ):
        raise ValueError(
            f"linear_profile {model}: need matching sizes and base, per_item >= 0 "
            f"with positive latency; got {base_s!r}, {per_item_s!r}"
        )
    curves = {int(g): KneeCurve(0.0, float(base[g]), float(per[g])) for g in sorted(base)}
    ranges = dict.fromkeys(curves, (1, max_batch))
    profile = LatencyProfile(model, gpu, curves, ranges, memory=MemoryModel(float(mem_gb)))
    return ProfileSet(gpu, {model: profile})


def merge(*sets: ProfileSet) -> ProfileSet:
    """Combine profile sets of one GPU type; a model in two sets is an error."""
    if not sets:
        raise ValueError("merge needs at least one ProfileSet")
    gpus = {s.gpu for s in sets}
    if len(gpus) > 1:
        raise ValueError(f"cannot merge profiles of different GPUs {sorted(gpus)}")
    out: dict[str, LatencyProfile] = {}
    for s in sets:
        for m in s.models:
            if m in out:
                raise ValueError(f"model {m!r} is in more than one ProfileSet")
            out[m] = s[m]
    return ProfileSet(sets[0].gpu, out)
