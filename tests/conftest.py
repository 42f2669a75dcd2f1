"""Fixtures shared by the RL tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def warm(tmp_path_factory):
    """(model folder, suite file): a tiny model SFT-warmed on 2-digit addition to about half right."""
    from _warm import warm_model, write_add_suite

    folder = tmp_path_factory.mktemp("warm")
    suite = write_add_suite(folder)
    return warm_model(folder / "model", suite), suite
