"""Fixtures shared by the test files: a workspace per test and the demo dataset as zip bytes.

Tests never touch the network: `TLCORE_OFFLINE` is set for the whole session before anything is
imported from `tlcore`.
"""

import os

os.environ["TLCORE_OFFLINE"] = "1"

import pytest  # noqa: E402

from tlcore.demo import demo_zip  # noqa: E402
from tlcore.workspace import Workspace  # noqa: E402


@pytest.fixture(scope="session")
def demo_zip_bytes() -> bytes:
    """The demo shapes dataset, small: 3 classes × 8 images of 32×32 pixels."""
    return demo_zip(classes=3, per_class=8, size=32, seed=0)


@pytest.fixture
def workspace(tmp_path) -> Workspace:
    """An empty workspace of its own for each test."""
    return Workspace(tmp_path / "ws")
