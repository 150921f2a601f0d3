"""Tests of mig_gym.workload.traces: parsing and the error messages (file, column, line)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from mig_gym.workload.traces import TraceError, read_trace


def _write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_numeric_with_unit_and_columns(tmp_path):
    path = _write(tmp_path, "t.csv", "ts,tokens\n1000,5\n1500,7\n\n4000,9\n")
    tr = read_trace(path, "ts", time_unit_s=0.001, columns=["tokens"])
    assert tr.times_s.tolist() == [0.0, 0.5, 3.0]
    assert tr.columns["tokens"].tolist() == [5.0, 7.0, 9.0]
    assert tr.num_rows == 3 and tr.duration_s == 3.0 and tr.mean_gap_s == 1.5
    assert tr.rate_qps == pytest.approx(1 / 1.5)


def test_csv_datetimes_to_the_nanosecond(tmp_path):
    text = "TIMESTAMP,x\n2023-11-16 18:17:03.9799600,1\n2023-11-16 18:17:04.0319601,2\n"
    tr = read_trace(_write(tmp_path, "t.csv", text))
    assert tr.times_s[1] == pytest.approx(0.0520001, abs=1e-12)
    # time zones go through datetime.fromisoformat (converted to UTC)
    text = "TIMESTAMP\n2023-01-01T00:00:00+01:00\n2023-01-01T00:00:01Z\n2023-01-01T01:00:00\n"
    assert read_trace(_write(tmp_path, "z.csv", text)).times_s.tolist() == [0.0, 3601.0, 7200.0]


def test_large_integer_ticks_are_exact(tmp_path):
    # 100 ns ticks beyond 2**53: subtracting the first tick happens in integers
    path = _write(tmp_path, "t.csv", "ticks\n638357134239799600\n638357134239799601\n")
    assert read_trace(path, "ticks", time_unit_s=1e-7).times_s[1] == pytest.approx(1e-7)


def test_jsonl_and_json_array(tmp_path):
    path = _write(tmp_path, "t.jsonl", '{"timestamp": 0, "n": 3}\n\n{"timestamp": 2500, "n": 4}\n')
    tr = read_trace(path, "timestamp", time_unit_s=0.001, columns=["n"])
    assert tr.times_s.tolist() == [0.0, 2.5] and tr.columns["n"].tolist() == [3.0, 4.0]
    path = _write(
        tmp_path, "t.json", '[{"t": "2024-01-01T00:00:00"}, {"t": "2024-01-01T00:01:00"}]'
    )
    assert read_trace(path, "t").times_s.tolist() == [0.0, 60.0]


def test_sort_is_explicit(tmp_path):
    path = _write(tmp_path, "t.csv", "ts,x\n5,a5\n3,a3\n9,a9\n")
    with pytest.raises(TraceError) as e:
        read_trace(path, "ts")
    msg = str(e.value)
    assert str(path) in msg and "'ts'" in msg and "line 3" in msg and "sort=True" in msg
    path = _write(tmp_path, "s.csv", "ts,x\n5,50\n3,30\n9,90\n")
    tr = read_trace(path, "ts", columns=["x"], sort=True)
    assert tr.times_s.tolist() == [0.0, 2.0, 6.0] and tr.columns["x"].tolist() == [30.0, 50.0, 90.0]


@pytest.mark.parametrize(
    ("name", "text", "column", "expected"),
    [
        ("empty.csv", "", "ts", "empty"),
        ("header.csv", "ts,x\n", "ts", "no data rows"),
        ("empty.jsonl", "\n", "ts", "empty"),
        ("cols.csv", "a,b\n1,2\n", "ts", "no column 'ts'; available columns: a, b"),
        ("word.csv", "ts\n1\n2\nabc\n", "ts", "line 4: column 'ts' value 'abc' is not a number"),
        (
            "date.csv",
            "ts\n2023-01-01\nlater\n",
            "ts",
            "line 3: column 'ts' value 'later' is neither",
        ),
        ("nan.csv", "ts\n1\nnan\n", "ts", "line 3: column 'ts' value 'nan' is not a finite"),
        ("inf.jsonl", '{"ts": 1}\n{"ts": Infinity}\n', "ts", "line 2: column 'ts'"),
        ("short.csv", "x,ts\n1,2\n3\n", "ts", "line 3 has 1 fields"),
        (
            "key.jsonl",
            '{"ts": 1}\n{"t": 2}\n',
            "ts",
            "line 2: no column 'ts'; available columns: t",
        ),
        ("bad.jsonl", '{"ts": 1}\n{"ts": \n', "ts", "line 2: invalid JSON"),
        ("t.txt", "ts\n1\n", "ts", "unknown trace format '.txt'"),
    ],
)
def test_errors_name_file_column_and_line(tmp_path, name, text, column, expected):
    path = _write(tmp_path, name, text)
    with pytest.raises(TraceError, match=re.escape(expected)) as e:
        read_trace(path, column)
    assert str(path) in str(e.value)


def test_bad_extra_column_value(tmp_path):
    path = _write(tmp_path, "t.csv", "ts,tokens\n1,5\n2,many\n")
    with pytest.raises(TraceError, match="line 3: column 'tokens' value 'many' is not a number"):
        read_trace(path, "ts", columns=["tokens"])


def test_missing_file_names_path(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        read_trace(path)


def test_times_are_float64_from_zero(tmp_path):
    tr = read_trace(_write(tmp_path, "t.csv", "ts\n7\n7\n8\n"), "ts")
    assert tr.times_s.dtype == np.float64 and tr.times_s.tolist() == [0.0, 0.0, 1.0]
