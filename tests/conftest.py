"""Shared fixtures: where the repository and the shared data live."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "scenarios"
SHARED_DATA = REPO.parent / "shared" / "data"


def _not_json(token: str) -> Any:
    raise ValueError(f"{token} is not JSON (strict parsers reject it; mig_gym writes null)")


def strict_loads(text: str) -> Any:
    """``json.loads`` as strict parsers read JSON: ``NaN``, ``Infinity`` and ``-Infinity``
    raise instead of becoming floats."""
    return json.loads(text, parse_constant=_not_json)


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the checkout; tests that need it skip in a user's clone."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (present in CI, absent in a clone)")
    return SHARED_DATA


def assert_close(a: object, b: object, rel: float = 1e-9, path: str = "") -> None:
    """Recursive equality of plain data: dicts key by key, floats to ``rel`` (NaN equals NaN;
    sums added in another order differ in rounding), everything else exactly."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for k in a:
            assert_close(a[k], b[k], rel, f"{path}.{k}")
    elif isinstance(a, float) or isinstance(b, float):
        if math.isnan(a) or math.isnan(b):  # type: ignore[arg-type]
            assert math.isnan(a) and math.isnan(b), (path, a, b)  # type: ignore[arg-type]
        else:
            assert math.isclose(a, b, rel_tol=rel, abs_tol=1e-12), (path, a, b)  # type: ignore[arg-type]
    else:
        assert a == b, (path, a, b)
