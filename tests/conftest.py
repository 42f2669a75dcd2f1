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


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A tiny model whose tokenizer knows arithmetic-v0's prompts (one per test module)."""
    import torch

    from rft.envs import get_suite, suite_path
    from rft.tiny import save_tiny

    torch.set_num_threads(1)
    suite = get_suite(suite_path("rft/arithmetic-v0"))
    corpus = [m["content"] for it in suite.items("train")[:200] for m in suite.messages(it)] + ["\\boxed{12}"]
    return save_tiny(tmp_path_factory.mktemp("tiny") / "model", corpus=corpus)
