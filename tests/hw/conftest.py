"""Every hw test runs with an empty user profile folder, so a developer's own profiles never change results."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def isolated_chipfit_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("chipfit_home")
    monkeypatch.setenv("CHIPFIT_HOME", str(home))
    return home
