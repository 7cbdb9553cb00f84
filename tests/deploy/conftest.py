"""Tiny networks run fastest on one thread, and this machine's cores are shared: extra threads only wait."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here runs on one thread (tests/conftest.py says why)."""
    yield
