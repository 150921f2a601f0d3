"""``make bench`` writes the README's benchmark block itself (issue 14 item 5): the block between
the markers is replaced, nothing else; a README without the markers is an error, not a silent
append."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("simpy")

from benchmarks import run as bench_run

from .conftest import REPO


def test_readme_has_one_benchmark_block():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert text.count(bench_run.BEGIN) == 1 and text.count(bench_run.END) == 1
    block = text.split(bench_run.BEGIN, 1)[1].split(bench_run.END, 1)[0]
    assert "mig_gym benchmarks (full)" in block  # written by a full run, not by hand


def test_write_readme_replaces_only_the_block(tmp_path: Path):
    readme = tmp_path / "README.md"
    readme.write_text(f"head\n{bench_run.BEGIN}\nold table\n{bench_run.END}\ntail\n")
    bench_run.write_readme(readme, "| new | table |")
    assert readme.read_text() == (
        f"head\n{bench_run.BEGIN}\n```\n| new | table |\n```\n{bench_run.END}\ntail\n"
    )
    readme.write_text("no markers here\n")
    with pytest.raises(SystemExit, match="no benchmark block"):
        bench_run.write_readme(readme, "x")
    assert readme.read_text() == "no markers here\n"
