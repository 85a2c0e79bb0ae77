"""The generator file: what inference, evaluation and ``init_from`` read from a run.

Every checkpoint folder holds ``generator.pt`` (``gan_colorize.rundir.GENERATOR_FILE``), and
``gan-colorize export`` copies it: a dict of plain types and tensors, so it loads with
``torch.load(weights_only=True)`` and never unpickles arbitrary objects::

    {"format": "gan-colorize-generator/1", "config": <resolved config dict>,
     "state_dict": {...}, "step": int, "ema": bool}

``state_dict`` is the EMA generator's when the run keeps one (it is what gets evaluated).
``gan-colorize export`` can also write the same content as ``.safetensors`` (the state dict as
tensors; format, config as JSON, step and ema in the file's string metadata); every reader here
takes either, told apart by the ``.safetensors`` suffix.

The file holds no code, but its config names the generator's class, and a ``module:Class`` name
would be imported (its module's code run) to build it: a file may name only registered
generators unless its reader trusts it (``trust_code=True``, ``--trust-code``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from gan_colorize.config import Config, from_dict
from gan_colorize.registry import GENERATORS, ImportRefusedError
from gan_colorize.rundir import GENERATOR_FILE, RunDir, absent, atomic_write
from gan_colorize.weights import RefusedFileError, first_non_finite, load_tensors

FORMAT = "gan-colorize-generator/1"
TRUST_CODE_HINT = (
    "pass trust_code=True (--trust-code on the command line) to import and run it, only for a file "
    "you trust; a class already registered (its module imported first, its @GENERATORS.register "
    "run) is accepted without it"
)


@dataclass
class LoadedGenerator:
    module: torch.nn.Module
    config: Config
    step: int
    ema: bool
    path: Path


def save_generator(
    path: str | Path, generator: torch.nn.Module, config: Config, step: int, ema: bool
) -> Path:
    state = {k: v.detach().cpu().clone() for k, v in generator.state_dict().items()}
    payload = {
        "format": FORMAT,
        "config": config.to_dict(),
        "state_dict": state,
        "step": int(step),
        "ema": bool(ema),
    }
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def resolve_generator_file(path: str | Path) -> Path:
    """A generator file, a checkpoint folder, or a run folder (its latest checkpoint).

    A run folder (one with ``checkpoints/`` or ``config.yaml``) is always read through its latest
    checkpoint, never through a ``generator.pt`` lying at its root: no training writes one there,
    so it would be a file someone put in (and a study trusts what it trained, not that)."""
    path = Path(path)
    if path.is_file():
        return path
    run = RunDir(path)
    if path.is_dir() and (run.checkpoints.is_dir() or run.is_run()):
        latest = run.latest_checkpoint()
        if latest is not None:
            return latest / GENERATOR_FILE
        raise FileNotFoundError(f"{path}: a run folder with no complete checkpoint in {run.checkpoints}")
    if (path / GENERATOR_FILE).is_file():
        return path / GENERATOR_FILE
    if path.is_dir():
        raise FileNotFoundError(f"{path}: no {GENERATOR_FILE} and no checkpoints/ folder")
    raise FileNotFoundError(f"checkpoint {path} {absent(path)}")


def read_generator_file(path: str | Path) -> dict:
    """The payload (format, config, state_dict, step, ema, and the ``path`` read) of a generator
    file, a ``.safetensors`` export, a checkpoint folder or a run folder. Never unpickles code:
    ``.pt`` files are read with ``torch.load(weights_only=True)``, which refuses anything but
    tensors and plain containers."""
    path = resolve_generator_file(path)
    if path.suffix == ".safetensors":
        return read_safetensors_generator(path)
    try:
        payload = load_tensors(path)
    except RefusedFileError as refused:
        raise ValueError(f"{path}: not a readable gan-colorize generator file: {refused.reason}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not a gan-colorize generator file (expected format {FORMAT!r})")
    lacking = [key for key in ("config", "state_dict") if not isinstance(payload.get(key), dict)]
    if lacking:
        raise ValueError(f"{path}: an incomplete gan-colorize generator file (no {' or '.join(lacking)})")
    damaged = first_non_finite(payload["state_dict"])
    if damaged:  # it would colorize every image as garbage, in silence
        raise ValueError(f"{path}: tensor {damaged} holds NaN or infinite values (a damaged file)")
    payload["path"] = path
    return payload


def read_safetensors_generator(path: Path) -> dict:
    """``read_generator_file`` for the safetensors container written by ``gan-colorize export``."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} {absent(path)}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable safetensors file: {exc}") from exc
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{path}: not a gan-colorize generator file (metadata format is not {FORMAT!r})")
    try:
        config = json.loads(metadata["config"])
        step, ema = int(metadata["step"]), json.loads(metadata["ema"])
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{path}: incomplete gan-colorize metadata ({exc!r})") from exc
    return {
        "format": FORMAT,
        "config": config,
        "state_dict": state,
        "step": step,
        "ema": bool(ema),
        "path": path,
    }


def build_generator(spec, path: Path, trust_code: bool = False) -> torch.nn.Module:
    """The generator ``spec`` (read from the file ``path``) names: a registered one, or with
    ``trust_code`` any importable ``module:Class``. Every failure is a ValueError naming the file."""
    try:
        generator = GENERATORS.build(spec, allow_import=trust_code)
    except ImportRefusedError as exc:
        raise ValueError(f"{path}: {exc}; {TRUST_CODE_HINT}") from None
    except Exception as exc:  # the file's config is data from outside: any mistake in it lands here
        raise ValueError(f"{path}: cannot build its generator ({type(exc).__name__}: {exc})") from None
    if not isinstance(generator, torch.nn.Module):
        raise ValueError(f"{path}: its generator type built a {type(generator).__name__}, not a torch module")
    return generator


def load_generator(
    path: str | Path, device: str | torch.device = "cpu", trust_code: bool = False
) -> LoadedGenerator:
    """Build the generator its config names and load its weights (strictly), in eval mode.

    ``path``: anything :func:`read_generator_file` reads. Half-precision exports are copied into
    the module's float32 parameters by ``load_state_dict``. ``trust_code``: allow a generator type
    ``module:Class`` that is not registered (importing it runs its module's code).
    Raises ValueError, naming the file, for anything in it that cannot be loaded."""
    payload = read_generator_file(path)
    path = payload["path"]
    try:
        config = from_dict(payload["config"])
    except Exception as exc:
        raise ValueError(f"{path}: no valid config in the file ({type(exc).__name__}: {exc})") from None
    generator = build_generator(config.model.generator, path, trust_code)
    try:
        generator.load_state_dict(payload["state_dict"], strict=True)
        step, ema = int(payload["step"]), bool(payload["ema"])
    except Exception as exc:
        raise ValueError(f"{path}: cannot load its weights ({type(exc).__name__}: {exc})") from None
    generator.to(device).eval()
    return LoadedGenerator(generator, config, step, ema, path)


_codecs: dict[torch.device, torch.nn.Module] = {}


def _codec(device: torch.device) -> torch.nn.Module:
    from gan_colorize.color.bins import ABCodec

    if device not in _codecs:
        _codecs[device] = ABCodec().to(device)
    return _codecs[device]


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad H and W up to a multiple (replicate where the image is too small to reflect)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


def predict_ab_norm(
    generator: torch.nn.Module, L_norm: torch.Tensor, temperature: float = 0.38
) -> torch.Tensor:
    """ab_norm (N,2,H,W) at L's resolution, whatever the generator's output kind.

    "bins" generators (the Zhang classifier) are decoded with the annealed mean at ``temperature``
    (Zhang et al. 2016, sec. 3.3) and upsampled bilinearly, as the released model does.
    """
    multiple = int(getattr(generator, "input_multiple", 1))
    padded, (h, w) = pad_to_multiple(L_norm, multiple)
    out = generator(padded)
    if getattr(generator, "output_kind", "ab") == "bins":
        from gan_colorize.color.lab import normalize_ab

        ab = _codec(out.device).decode(out.float(), temperature=temperature)
        out = normalize_ab(ab)
    if out.shape[-2:] != padded.shape[-2:]:
        out = F.interpolate(out.float(), size=padded.shape[-2:], mode="bilinear", align_corners=False)
    return out[..., :h, :w].float()
