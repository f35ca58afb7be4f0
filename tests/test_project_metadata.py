"""pyproject.toml builds without setuptools warnings (``make run`` prints none)."""

from __future__ import annotations

import warnings

from setuptools.config.pyprojecttoml import apply_configuration
from setuptools.dist import Distribution

from tests.support import REPO


def test_pyproject_applies_without_warnings() -> None:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        dist = apply_configuration(Distribution(), REPO / "pyproject.toml")
    assert [str(w.message) for w in seen] == []
    assert dist.metadata.name == "congress-exchange"
    assert getattr(dist.metadata, "license_expression", None) == "Apache-2.0"
