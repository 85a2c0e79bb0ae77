"""The inference file: a run's generator, alone, in a file that loads without unpickling code.

Two containers, the same content (``gan_colorize.models.io``'s generator format)::

    model.pt           torch.save of {"format": "gan-colorize-generator/1", "config": dict,
                       "state_dict": {...}, "step": int, "ema": bool}; read with weights_only=True
    model.safetensors  the state dict as safetensors tensors; format, config (JSON), step and ema
                       in the file's string metadata

``half=True`` stores the parameters as float16 and keeps buffers (BatchNorm running statistics)
in float32: float16 has 10 mantissa bits against bfloat16's 7, and trained conv weights are far
inside its range; running variances can be small enough to fall into float16's subnormals, and
there are few of them. Loading casts everything back to the module's float32.

Both are read by ``gan_colorize.models.io.read_generator_file`` / ``load_generator`` (and so by
``Colorizer.from_checkpoint``, evaluation and ``init_from``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from gan_colorize.models.io import FORMAT, build_generator, read_generator_file, resolve_generator_file
from gan_colorize.rundir import GENERATOR_FILE, RunDir, atomic_write

FORMATS = ("pt", "safetensors")


def source_generator_file(run: str | Path, step: int | None = None) -> Path:
    """The generator file to export: a run's checkpoint at ``step``, else its latest (``run`` may
    also be a checkpoint folder or a generator file)."""
    if step is None:
        return resolve_generator_file(run)
    path = RunDir(run).checkpoint_dir(step) / GENERATOR_FILE
    if not path.is_file():
        steps = [s for s, _ in RunDir(run).list_checkpoints()]
        raise FileNotFoundError(
            f"{run}: no checkpoint at step {step} (complete checkpoints: {steps or 'none'})"
        )
    return path


def output_path(out: str | Path, fmt: str | None) -> tuple[Path, str]:
    """The file to write and its format: ``fmt`` when given, else the suffix of ``out``.

    A safetensors file always gets the ``.safetensors`` suffix, since loading dispatches on it
    (``--out model.pt --format safetensors`` writes ``model.safetensors``).
    """
    out = Path(out)
    if fmt is None:
        fmt = "safetensors" if out.suffix == ".safetensors" else "pt"
    if fmt not in FORMATS:
        raise ValueError(f"export format {fmt!r} is not one of {FORMATS}")
    if fmt == "safetensors" and out.suffix != ".safetensors":
        out = out.with_suffix(".safetensors") if out.suffix == ".pt" else Path(f"{out}.safetensors")
    if fmt == "pt" and out.suffix == ".safetensors":
        out = out.with_suffix(".pt")
    return out, fmt


def half_state_dict(
    state: dict[str, torch.Tensor], generator_spec: dict, source: Path, trust_code: bool = False
) -> dict[str, torch.Tensor]:
    """Floating parameters to float16; buffers (running statistics) and integer tensors unchanged.

    The generator is built (from ``source``'s config, so as ``load_generator`` would: see
    ``trust_code`` there) only to tell its parameters from its buffers."""
    module = build_generator(generator_spec, source, trust_code)
    parameters = {name for name, _ in module.named_parameters()}
    return {
        key: value.half() if key in parameters and value.is_floating_point() else value
        for key, value in state.items()
    }


def check_output(given: str | Path, out: Path, overwrite: bool) -> None:
    """Refuse a folder (``--out exp/``) and, unless ``overwrite``, an existing file: the suffix may
    have changed (``model.pt`` -> ``model.safetensors``), so the file replaced is not always the
    one named."""
    if str(given).endswith(("/", os.sep)) or Path(given).is_dir() or out.is_dir():
        raise ValueError(
            f"--out {given} is a folder; give the file to write, e.g. {Path(given) / 'model.pt'}"
        )
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass --overwrite (overwrite=True) to replace it")


def export_generator(
    run: str | Path,
    out: str | Path,
    step: int | None = None,
    half: bool = False,
    fmt: str | None = None,
    overwrite: bool = False,
    trust_code: bool = False,
) -> Path:
    """Write the inference file for ``run`` (a run folder, checkpoint folder or generator file).

    ``overwrite``: replace an existing file. ``trust_code``: see ``load_generator`` (only ``half``
    builds the generator)."""
    given = out
    out, fmt = output_path(out, fmt)
    check_output(given, out, overwrite)
    payload = read_generator_file(source_generator_file(run, step))
    state = payload["state_dict"]
    if half:
        try:
            generator_spec = payload["config"]["model"]["generator"]
        except (KeyError, TypeError):
            raise ValueError(f"{payload['path']}: its config names no model.generator") from None
        state = half_state_dict(state, generator_spec, payload["path"], trust_code)
    content = {
        "format": FORMAT,
        "config": payload["config"],
        "state_dict": state,
        "step": int(payload["step"]),
        "ema": bool(payload["ema"]),
    }
    save = torch.save if fmt == "pt" else _save_safetensors
    return atomic_write(out, lambda tmp: save(content, tmp))


def _save_safetensors(content: dict, path: Path) -> None:
    from safetensors.torch import save_file

    metadata = {
        "format": content["format"],
        "config": json.dumps(content["config"]),
        "step": str(content["step"]),
        "ema": json.dumps(content["ema"]),
    }
    # safetensors refuses tensors that share storage or are not contiguous
    tensors = {key: value.detach().contiguous().clone() for key, value in content["state_dict"].items()}
    save_file(tensors, str(path), metadata=metadata)
