"""Measured profiles from CSV: ParvaGPU's ``prof_data`` tables and mig_gym's own format."""

from __future__ import annotations

import csv
import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from mig_gym import hardware
from mig_gym.hardware.profiles.curves import (
    LatencyProfile,
    MemoryModel,
    ProfileSet,
    TableCurve,
    fit_memory_model,
)

__all__ = [
    "INTERPOLATIONS",
    "MIG_GYM_COLUMNS",
    "PARVAGPU_COLUMNS",
    "load_mig_gym_csv",
    "load_parvagpu_csv",
    "read_parvagpu_csv",
]

INTERPOLATIONS = ("loglinear", "loglog", "linear")
# Header of ParvaGPU prof_data/*.csv (MunQ-Lee/ParvaGPU_SC24); see docs/profiles.md.
PARVAGPU_COLUMNS = ("Mig instance", "Batch size", "Workload Number", "Throughput", "Latency")
MIG_GYM_COLUMNS = ("model", "gpu", "gpcs", "batch", "latency_ms")


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
    measured = {g: (max(pts), min(oom[g]) if g in oom else None) for g, pts in ran.items()}
    return ProfileSet(gpu, {model: dataclasses.replace(profile, measured=measured)})


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
