"""Shared fixtures: where the repository and the shared data live."""

from __future__ import annotations

import json
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
