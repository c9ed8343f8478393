"""Fixtures shared by the engine tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mathtx_helpers.core import store


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models gain nothing from threads, and on a busy machine extra threads only contend."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def data(tmp_path, monkeypatch) -> Path:
    """A private data/ folder: runs and test sets never touch the repository's."""
    d = tmp_path / "data"
    monkeypatch.setattr(store, "DATA", d)
    return d
