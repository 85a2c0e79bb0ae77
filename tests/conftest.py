"""Fixtures shared by the test modules: no network access, and a temporary TORCH_HOME."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import pytest
import torch

# Tests run tiny tensors: with two threads each small convolution pays more in synchronisation than
# it gains (about 10x slower on the 2-core CI machines). Subprocesses set OMP_NUM_THREADS themselves.
torch.set_num_threads(1)


@pytest.fixture
def no_network(monkeypatch):
    """Every route to a download raises: a test passing with it proves nothing was fetched."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[:1]}")

    import pytorch_fid.inception
    import torchvision.models._api

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(pytorch_fid.inception, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture
def hub_checkpoints(tmp_path, monkeypatch, no_network) -> Path:
    """An empty ``$TORCH_HOME/hub/checkpoints`` in a temporary TORCH_HOME (the folder
    gan_colorize.weights looks in), with the network blocked."""
    home = tmp_path / "torch_home"
    checkpoints = home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    monkeypatch.setenv("TORCH_HOME", str(home))
    return checkpoints
