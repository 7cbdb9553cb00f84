"""Fixtures shared across the test tree."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_thread():
    """Tiny networks run fastest on one thread, and this machine's cores are shared: extra threads only wait."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
