"""Reading arrival traces from CSV or JSONL files.

A trace is one timestamp column (numbers, or ISO-8601 datetime strings such as the Azure LLM 2023
traces' ``2023-11-16 18:17:03.9799600``) plus, on request, further numeric columns (e.g.
``ContextTokens`` for :class:`~mig_gym.scenario.config.TraceColumnBatch`). Times are shifted to
start at 0.

Every problem raises :class:`TraceError` (a ``ValueError``) naming the file, the column and the line
(or, for a ``.json`` array, the record), except a missing file, which raises ``FileNotFoundError``.
Unsorted timestamps are an error, never silently fixed: pass ``sort=True`` to sort explicitly.
"""

from __future__ import annotations

import csv
import errno
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)


class TraceError(ValueError):
    """A trace file that cannot be used as it is."""


@dataclass(frozen=True, eq=False)
class Trace:
    """Timestamps (seconds from the first row, non-decreasing) and numeric columns of a trace."""

    path: Path
    column: str
    times_s: np.ndarray
    columns: dict[str, np.ndarray]

    @property
    def num_rows(self) -> int:
        return int(self.times_s.size)

    @property
    def duration_s(self) -> float:
        """Time from the first to the last row."""
        return float(self.times_s[-1])

    @property
    def mean_gap_s(self) -> float:
        """Mean inter-arrival time, ``duration / (rows - 1)``; 0 for a single row."""
        return self.duration_s / (self.num_rows - 1) if self.num_rows > 1 else 0.0

    @property
    def rate_qps(self) -> float:
        """Native mean rate, ``1 / mean_gap_s`` (inf when all rows share one timestamp)."""
        gap = self.mean_gap_s
        return 1.0 / gap if gap > 0 else float("inf")


def read_trace(
    path: str | Path,
    column: str = "TIMESTAMP",
    *,
    time_unit_s: float = 1.0,
    columns: Sequence[str] = (),
    sort: bool = False,
) -> Trace:
    """Read a trace file.

    Args:
        path: a ``.csv``, ``.jsonl`` or ``.json`` file (JSON: one object per line, or one array).
        column: the timestamp column.
        time_unit_s: seconds per unit of a numeric timestamp (0.001 for milliseconds); ignored for
            datetime strings, whose differences are exact to the nanosecond.
        columns: further columns to return, parsed as finite numbers.
        sort: sort the rows by time (stable) instead of rejecting out-of-order timestamps.

    Raises:
        FileNotFoundError: the file does not exist.
        TraceError: unknown extension, no rows, a missing column or value, a value that is not a
            finite number or datetime, or (without ``sort``) a timestamp earlier than the one
            before it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, "trace file not found", str(path))
    names = [column, *(c for c in columns if c != column)]
    raw, lines, where = _read_raw(path, names)
    times = _parse_times(raw[column], lines, where, path, column, time_unit_s)
    extra = {c: _parse_numbers(raw[c], lines, where, path, c) for c in names[1:]}
    bad = np.flatnonzero(np.diff(times) < 0)
    if bad.size and not sort:
        i = int(bad[0]) + 1
        raise TraceError(
            f"{path}: column {column!r} is not sorted: {where} {lines[i]} ({raw[column][i]!r}) is "
            f"earlier than {where} {lines[i - 1]} ({raw[column][i - 1]!r}); pass sort=True to "
            "sort the rows by time"
        )
    if bad.size:
        order = np.argsort(times, kind="stable")
        times = times[order]
        extra = {c: v[order] for c, v in extra.items()}
    return Trace(path=path, column=column, times_s=times - times[0], columns=extra)


def _read_raw(path: Path, names: list[str]) -> tuple[dict[str, list], list[int], str]:
    """Raw values of ``names`` per row, the file line (or record) of each row, and which it is."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            raw, lines = _read_csv(path, names)
            where = "line"
        elif suffix in (".jsonl", ".json"):
            raw, lines, where = _read_json(path, names)
        else:
            raise TraceError(
                f"{path}: unknown trace format {suffix!r}; expected .csv, .jsonl or .json"
            )
    except UnicodeDecodeError as e:
        raise TraceError(f"{path}: not a UTF-8 text file ({e})") from None
    except csv.Error as e:  # e.g. a NUL byte or an unterminated quote
        raise TraceError(f"{path}: malformed CSV: {e}") from None
    if not lines:
        raise TraceError(f"{path}: the file has no data rows")
    return raw, lines, where


def _read_csv(path: Path, names: list[str]) -> tuple[dict[str, list], list[int]]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise TraceError(f"{path}: the file is empty")
        header = [h.strip() for h in header]
        index = {}
        for name in names:
            if name not in header:
                raise TraceError(
                    f"{path}: no column {name!r}; available columns: {', '.join(header)}"
                )
            index[name] = header.index(name)
        raw: dict[str, list] = {n: [] for n in names}
        lines: list[int] = []
        width = max(index.values()) + 1
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue  # blank line
            if len(row) < width:
                raise TraceError(
                    f"{path}: line {reader.line_num} has {len(row)} fields, expected {len(header)}"
                )
            for name, i in index.items():
                raw[name].append(row[i].strip())
            lines.append(reader.line_num)
    return raw, lines


def _read_json(path: Path, names: list[str]) -> tuple[dict[str, list], list[int], str]:
    text = path.read_text(encoding="utf-8-sig")
    if not text.strip():
        raise TraceError(f"{path}: the file is empty")
    if path.suffix.lower() == ".json" and text.lstrip().startswith("["):
        try:
            records = list(enumerate(json.loads(text), 1))
        except json.JSONDecodeError as e:
            raise TraceError(f"{path}: invalid JSON: {e}") from None
        where = "record"
    else:
        records, where = [], "line"
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    records.append((lineno, json.loads(line)))
                except json.JSONDecodeError as e:
                    raise TraceError(f"{path}: line {lineno}: invalid JSON: {e}") from None
    raw: dict[str, list] = {n: [] for n in names}
    lines: list[int] = []
    for lineno, rec in records:
        if not isinstance(rec, dict):
            raise TraceError(f"{path}: {where} {lineno}: expected a JSON object, got {rec!r:.60}")
        for name in names:
            if name not in rec:
                raise TraceError(
                    f"{path}: {where} {lineno}: no column {name!r}; available columns: "
                    f"{', '.join(rec)}"
                )
            raw[name].append(rec[name])
        lines.append(lineno)
    return raw, lines, where


def _number(value: object) -> float | None:
    """``value`` as a float, or None when it is not a number (booleans are not numbers)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _parse_numbers(
    values: list, lines: list[int], where: str, path: Path, column: str
) -> np.ndarray:
    """Finite float64 values; the first bad one is reported with its line."""
    try:
        out = np.array(values, dtype=np.float64)
        ok = out.ndim == 1 and not any(isinstance(v, bool) for v in values)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        numbers = []
        for i, v in enumerate(values):
            x = _number(v)
            if x is None:
                raise TraceError(
                    f"{path}: {where} {lines[i]}: column {column!r} value {v!r} is not a number"
                )
            numbers.append(x)
        out = np.array(numbers, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(out))
    if bad.size:
        i = int(bad[0])
        raise TraceError(
            f"{path}: {where} {lines[i]}: column {column!r} value {values[i]!r} is not a finite "
            "number"
        )
    return out


def _parse_times(
    values: list, lines: list[int], where: str, path: Path, column: str, time_unit_s: float
) -> np.ndarray:
    """Seconds since the first row: numbers times ``time_unit_s``, or ISO datetimes."""
    if _number(values[0]) is None:
        ns = _parse_datetimes(values, lines, where, path, column)
        return (ns - ns[0]).astype(np.float64) / 1e9
    if all(type(v) is int for v in values) or all(isinstance(v, str) for v in values):
        # Integer ticks (e.g. 100 ns) can exceed float64's 2**53: subtract the first exactly.
        try:
            ticks = np.array(values, dtype=np.int64)
            return (ticks - ticks[0]).astype(np.float64) * time_unit_s
        except (ValueError, OverflowError):
            pass
    return _parse_numbers(values, lines, where, path, column) * time_unit_s


def _parse_datetimes(
    values: list, lines: list[int], where: str, path: Path, column: str
) -> np.ndarray:
    """Nanoseconds as int64. numpy parses naive ISO strings fast and to the nanosecond; strings it
    rejects (time zones, odd forms) go through ``datetime.fromisoformat`` (aware -> UTC, naive as
    if UTC), which also names the first bad value."""
    if all(isinstance(v, str) for v in values):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # numpy deprecates parsing time zones
                ns = np.array(values, dtype="datetime64[ns]").astype(np.int64)
            if not np.any(ns == np.iinfo(np.int64).min):  # NaT
                return ns
        except (ValueError, DeprecationWarning, UserWarning):
            pass
    out = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        try:
            dt = datetime.fromisoformat(v)
        except (TypeError, ValueError):
            raise TraceError(
                f"{path}: {where} {lines[i]}: column {column!r} value {v!r} is neither a number "
                "nor an ISO datetime"
            ) from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        delta = dt - _EPOCH_UTC
        out[i] = (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000
    return out
