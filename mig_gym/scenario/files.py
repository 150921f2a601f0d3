"""The scenario files shipped with mig_gym: the repository's ``scenarios/`` folder.

There is one copy of the files and two ways to reach it. In a source tree (a checkout on
``PYTHONPATH``, or ``pip install -e .``) the folder sits beside the package. An installed wheel
carries the same files as the data-only package ``mig_gym._scenarios``: ``pyproject.toml`` maps
that package to ``scenarios/`` (``package-dir``) and ships its ``*.yaml``. The source tree is
looked at first, because setuptools' editable finder cannot import a data package that lives
outside ``mig_gym/``, and a worktree on ``PYTHONPATH`` should read its own files rather than those
of some other checkout installed in the same environment.

A shipped scenario that names another file (``azure_trace.yaml`` replays a trace kept beside a
checkout, in ``../shared``) loads only where that file exists. Elsewhere the loader's check
reports ``file not found:`` with the path it tried.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["PACKAGE", "scenario_file", "scenario_names", "scenarios_dir"]

PACKAGE = "mig_gym._scenarios"
_SOURCE_TREE = Path(__file__).resolve().parents[2]


def scenarios_dir() -> Path:
    """The folder of the shipped scenario files.

    Raises:
        FileNotFoundError: neither a source tree's ``scenarios/`` nor the package data is there
            (a broken install), naming both places.
    """
    # pyproject.toml marks a source tree: site-packages/scenarios could be another distribution's.
    tree = _SOURCE_TREE / "scenarios"
    if (_SOURCE_TREE / "pyproject.toml").is_file() and tree.is_dir():
        return tree
    spec = importlib.util.find_spec(PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    raise FileNotFoundError(
        f"the scenario files are missing: no source tree at {_SOURCE_TREE} (pyproject.toml and "
        f"scenarios/) and no package data {PACKAGE}; reinstall mig_gym"
    )


def scenario_names() -> tuple[str, ...]:
    """The file names of the shipped scenarios, sorted (``"bursty.yaml"``, ...)."""
    return tuple(sorted(p.name for p in scenarios_dir().glob("*.yaml")))


def scenario_file(name: str) -> Path:
    """The path of the shipped scenario ``name``, a file name in ``scenarios/``.

    Raises:
        FileNotFoundError: no such scenario; the message lists the shipped names.
    """
    path = scenarios_dir() / name
    if not path.is_file():
        raise FileNotFoundError(
            f"no shipped scenario {name!r} in {path.parent}; shipped: {', '.join(scenario_names())}"
        )
    return path
