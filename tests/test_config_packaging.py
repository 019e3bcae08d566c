"""pyproject.toml: dependency floors the code needs, the optional extras, package data."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def floor(name: str, requirements: list[str]) -> tuple[int, ...]:
    for req in requirements:
        m = re.match(rf"^{re.escape(name)}(\[[^\]]*\])?\s*>=\s*([\d.]+)", req)
        if m:
            return tuple(int(x) for x in m.group(2).split("."))
    raise AssertionError(f"{name} has no >= floor in {requirements}")


def test_transformers_floor_has_the_dtype_argument():
    # from_pretrained(..., dtype=) / from_config(..., dtype=) exist from transformers 4.56
    assert floor("transformers", PROJECT["project"]["dependencies"]) >= (4, 56)


def test_hf_extra_provides_datasets_for_hub_sources():
    assert floor("datasets", PROJECT["project"]["optional-dependencies"]["hf"]) >= (2, 16)


def test_declared_package_data_exists():
    data = PROJECT.get("tool", {}).get("setuptools", {}).get("package-data", {})
    for package, patterns in data.items():
        for pattern in patterns:
            assert list((REPO / "platform" / package.replace(".", "/")).glob(pattern)), f"{package}: {pattern} is absent"
