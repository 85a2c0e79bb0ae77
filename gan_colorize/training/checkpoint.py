"""The training state in a checkpoint folder, in files that load without running code.

A checkpoint folder ``RUN/checkpoints/step_XXXXXXXX/`` holds:

* ``training_state.pt``: every network's weights, every optimizer's and schedule's state, the EMA
  generator, the fp16 loss scaler and the step: tensors and plain containers only, written with
  ``torch.save`` and read with ``torch.load(weights_only=True)``, whose unpickler refuses anything
  else (a pickled object in the file is an error naming the file, and nothing of it runs);
* ``rng_state_<rank>.pt``: each process's Python, NumPy, torch (and CUDA) random states, the same way
  (NumPy's key array stored as a tensor);
* ``generator.pt`` (:mod:`gan_colorize.models.io`), what inference and evaluation read;
* ``replicas.json``, the digests of each process's weights.

accelerate's ``save_state``/``load_state`` is not used: its ``load_state`` unpickles
``custom_checkpoint_*.pkl`` and ``random_states_*.pkl`` with ``weights_only=False``, so a run folder
received from elsewhere could run code on ``--resume``. A folder in that older layout is refused
with a message saying so.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from gan_colorize.rundir import atomic_write
from gan_colorize.weights import RefusedFileError, first_non_finite, load_tensors

STATE_FILE = "training_state.pt"
STATE_FORMAT = "gan-colorize-training-state/1"
RNG_FORMAT = "gan-colorize-rng-state/1"


class CheckpointError(ValueError):
    """A checkpoint folder or file that cannot be resumed from (names the file and why)."""


def rng_file(folder: Path, rank: int) -> Path:
    return Path(folder) / f"rng_state_{rank}.pt"


def save_training_state(folder: Path, state: dict) -> Path:
    payload = {"format": STATE_FORMAT, **state}
    return atomic_write(Path(folder) / STATE_FILE, lambda tmp: torch.save(payload, tmp))


def save_rng_state(folder: Path, rank: int) -> Path:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "format": RNG_FORMAT,
        "python": random.getstate(),
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return atomic_write(rng_file(folder, rank), lambda tmp: torch.save(state, tmp))


def _load(path: Path, expected_format: str) -> dict:
    """``torch.load(weights_only=True)`` of one of our files, every failure a CheckpointError."""
    if not path.is_file():
        raise CheckpointError(f"{path}: missing from the checkpoint folder")
    try:
        payload = load_tensors(path)
    except RefusedFileError as refused:
        raise CheckpointError(f"{path}: not a gan-colorize checkpoint file: {refused.reason}") from None
    if not isinstance(payload, dict) or payload.get("format") != expected_format:
        raise CheckpointError(
            f"{path}: not a gan-colorize checkpoint file (expected format {expected_format!r})"
        )
    return payload


def check_resumable(folder: Path) -> None:
    """Refuse a checkpoint folder written in accelerate's pickled layout by an older version."""
    folder = Path(folder)
    if not (folder / STATE_FILE).is_file():
        legacy = sorted(p.name for p in folder.glob("*.pkl")) + sorted(p.name for p in folder.glob("*.bin"))
        what = (
            f" (it has {', '.join(legacy)}: accelerate's pickled layout of older versions)" if legacy else ""
        )
        raise CheckpointError(
            f"{folder}: cannot resume: no {STATE_FILE}{what}. Its generator.pt can still be evaluated, "
            "colorized, or start a new run as its model.init_from"
        )


def load_training_state(folder: Path) -> dict:
    folder = Path(folder)
    check_resumable(folder)
    state = _load(folder / STATE_FILE, STATE_FORMAT)
    for key, kind in (("step", int), ("networks", dict), ("optimizers", dict), ("schedulers", dict)):
        if not isinstance(state.get(key), kind) or isinstance(state.get(key), bool):
            raise CheckpointError(f"{folder / STATE_FILE}: '{key}' is missing or not a {kind.__name__}")
    if state["step"] < 0:
        raise CheckpointError(f"{folder / STATE_FILE}: step {state['step']} is negative")
    # a damaged file would resume and stop at its first step blaming the learning rate
    damaged = first_non_finite({key: state[key] for key in ("networks", "optimizers")})
    if damaged:
        raise CheckpointError(f"{folder / STATE_FILE}: tensor {damaged} holds NaN or infinite values")
    return state


def restore_rng_state(folder: Path, rank: int) -> Path:
    """Restore this process's random states from its file (rank 0's when the world size grew)."""
    path = rng_file(folder, rank)
    if not path.is_file():
        path = rng_file(folder, 0)
    state = _load(path, RNG_FORMAT)
    try:
        version, internal, gauss = state["python"]
        random.setstate((int(version), tuple(int(x) for x in internal), gauss))
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state(
            (str(name), keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached))
        )
        torch.set_rng_state(state["torch"])
        if state["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"][: torch.cuda.device_count()])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: malformed random state ({type(exc).__name__}: {exc})") from None
    return path
