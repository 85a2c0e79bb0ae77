"""THE evaluation protocol: what every approach is scored on, stated once and printable.

1. Images: the shorter side is resized to S (bicubic, antialiased by PIL) and the centre S x S
   is cropped (``gan_colorize.data.EvalImages`` does it; S = 256 by default, as Zhang et al. 2016
   and pix2pix evaluate). No flip, no random crop: the same pixels for every approach.
   ``builtin:skimage`` (the CPU demo) instead serves the grid of S x S crops of its held-out photo
   resized to a shorter side of 4 S (``gan_colorize.data.dataset``), so that one photo gives
   several images.
2. Model input: L of the ground truth, normalised (``L / 50 - 1``, ``gan_colorize.color.lab``).
3. Prediction: Lab(L of the ground truth, predicted ab) -> sRGB, clipped to the gamut and rounded
   to uint8. Keeping the ground truth's L means the metrics measure colour, not a re-rendered
   luminance (the "Colorful Image Colorization" and DDColor protocols do the same). A predicted
   ab that is not finite is an error naming the checkpoint (``NonFiniteOutputError``), never an
   all-black image that gets scored or saved.
4. "bins" generators (Zhang et al.'s 313-bin classifier) are decoded with the annealed mean at
   T = 0.38 (Zhang et al. 2016, sec. 3.3), the run's ``loss.temperature``.
5. Metrics are computed on the sRGB uint8 images as saved (PNG, lossless), so an outside method's
   PNGs scored with ``gan-colorize evaluate --pred DIR --gt DIR`` are measured the same way.

Reference rows: "ground truth" (prediction = ground truth: the best a metric can say) and
"greyscale input" (L only, ab = 0: what doing nothing scores).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from gan_colorize.color.lab import lab_norm_to_rgb, to_uint8, uint8_to_lab_norm
from gan_colorize.config import ConfigError, read_yaml
from gan_colorize.registry import closest
from gan_colorize.rundir import UnsafeNameError, absent, check_name
from gan_colorize.schema import check_keys, key_names, read_dataclass

PROTOCOL_VERSION = 1
DEFAULT_SIZE = 256  # Zhang et al. 2016 and pix2pix evaluate 256 x 256 crops
DEFAULT_TEMPERATURE = 0.38  # annealed mean, Zhang et al. 2016, sec. 3.3 (config: loss.temperature)
DEFAULT_BATCH_SIZE = 16


def describe_images(size: int, data: str | None = None) -> str:
    """How the evaluation images are made from ``data`` (see point 1 of the module docstring)."""
    if data == "builtin:skimage":
        from gan_colorize.data.dataset import EVAL_GRID_SCALE

        return f"held-out photo's shorter side to {EVAL_GRID_SCALE * size}, grid of {size}x{size} crops"
    return f"shorter side to {size} (bicubic, antialiased), centre crop {size}x{size}"


def describe_protocol(
    size: int = DEFAULT_SIZE, temperature: float = DEFAULT_TEMPERATURE, data: str | None = None
) -> dict:
    """The protocol as the flat dict stored in every metrics.json (``"protocol"``).

    Two results are comparable when their dicts are equal; the report warns otherwise.
    """
    return {
        "version": PROTOCOL_VERSION,
        "size": int(size),
        "resize": describe_images(size, data),
        "input": "L of the ground truth",
        "output": "Lab(L_gt, ab_pred) -> sRGB uint8",
        "metrics_on": "sRGB uint8",
        "bins_temperature": float(temperature),
    }


def protocol_markdown(
    size: int = DEFAULT_SIZE, temperature: float = DEFAULT_TEMPERATURE, data: str | None = None
) -> str:
    """The protocol as a markdown list, for reports."""
    return "\n".join(
        [
            f"- Images: {describe_images(size, data)}.",
            "- Model input: L of the ground truth (L / 50 - 1).",
            "- Prediction: Lab(L of the ground truth, predicted ab) -> sRGB, clipped and rounded to uint8.",
            f"- Classification (313 bins) generators: annealed-mean decoding, T = {temperature:g} "
            "(Zhang et al. 2016, sec. 3.3).",
            "- Metrics on the sRGB uint8 images as saved (PNG); the same code scores outside methods "
            "(`--pred/--gt`).",
            "- Reference rows: ground truth (prediction = ground truth) and greyscale input "
            "(L only, ab = 0).",
        ]
    )


def _device_of(module: torch.nn.Module) -> torch.device:
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")


class NonFiniteOutputError(ValueError):
    """A generator's prediction holds NaN or inf: its weights are unusable."""


def check_finite(ab_norm: torch.Tensor, source: str | Path) -> torch.Tensor:
    """``ab_norm`` when every value is finite; otherwise a NonFiniteOutputError naming ``source``.

    NaN ab turns into black pixels, which would be saved, or scored, as a colorization. Weights
    can be finite and still give it (1e30 from a run that diverged between two checks)."""
    if not bool(torch.isfinite(ab_norm).all()):
        raise NonFiniteOutputError(
            f"{source}: the generator predicts non-finite colours (NaN or inf), so its weights are "
            "unusable (e.g. saved by a training run that diverged); use an earlier checkpoint"
        )
    return ab_norm


@torch.no_grad()
def colorize_batch(
    generator: torch.nn.Module,
    rgb_u8: torch.Tensor,
    temperature: float = DEFAULT_TEMPERATURE,
    source: str | Path | None = None,
) -> torch.Tensor:
    """Ground-truth uint8 (N,3,H,W) -> the generator's colorization as uint8 (N,3,H,W) on the CPU.

    The generator sees L of the ground truth; its ab goes back together with that same L.
    ``source``: the checkpoint the generator was read from; when given, a non-finite prediction is
    a :class:`NonFiniteOutputError` naming it (evaluation). Training samples pass None: the loop's
    own non-finite check speaks for a run that is still training.
    """
    from gan_colorize.models import predict_ab_norm

    L_norm, _ = uint8_to_lab_norm(rgb_u8.to(_device_of(generator)))
    ab_norm = predict_ab_norm(generator, L_norm, temperature=temperature)
    if source is not None:
        check_finite(ab_norm, source)
    return to_uint8(lab_norm_to_rgb(L_norm, ab_norm)).cpu()


@torch.no_grad()
def greyscale_batch(rgb_u8: torch.Tensor) -> torch.Tensor:
    """uint8 (N,3,H,W) -> its greyscale (L kept, ab = 0) as uint8 (N,3,H,W) with R = G = B."""
    L_norm, ab_norm = uint8_to_lab_norm(rgb_u8)
    rgb = lab_norm_to_rgb(L_norm, torch.zeros_like(ab_norm))
    # skimage's sRGB->XYZ rows do not sum exactly to the D65 white (0.950456 vs 0.95047), so ab = 0
    # comes back with channels ~4e-5 apart, enough to round differently; the mean makes it neutral
    return to_uint8(rgb.mean(dim=1, keepdim=True).expand_as(rgb)).contiguous()


# ---------------------------------------------------------------- evaluation sets
class EvalSetError(ValueError):
    """An evaluation set file that is missing or does not fit the schema (names file and key)."""


@dataclass
class EvalSet:
    """A named evaluation set (``eval/sets/NAME.yaml``): which images, at which size, which metrics."""

    name: str
    data: str  # an image folder or builtin:skimage (its held-out photo)
    size: int = DEFAULT_SIZE
    # folders only: evaluate on the share that training on ``data`` with this data.eval_fraction
    # holds out (the stable hash split of gan_colorize.data.files); None: every usable image
    eval_fraction: float | None = None
    metrics: list[str] | None = None  # None: gan_colorize.metrics.DEFAULT_METRICS
    batch_size: int = DEFAULT_BATCH_SIZE
    notes: str = ""
    path: Path | None = None  # the file it was read from


_EVAL_SET_KEYS = key_names(EvalSet)


def eval_set_dirs() -> list[Path]:
    """Where set names are looked up: ./eval/sets, then the repository the package runs from."""
    repo = Path(__file__).resolve().parents[2] / "eval" / "sets"
    return list(dict.fromkeys([Path.cwd() / "eval" / "sets", repo]))


def available_eval_sets() -> list[str]:
    return sorted({p.stem for d in eval_set_dirs() if d.is_dir() for p in d.glob("*.yaml")})


def find_eval_set(name_or_path: str | Path) -> Path:
    """A ``.yaml`` path as given, else ``eval/sets/NAME.yaml`` in :func:`eval_set_dirs`."""
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or "/" in text:
        path = Path(text).expanduser()
        if not path.is_file():
            raise EvalSetError(f"evaluation set file {path} {absent(path)}")
        return path
    for folder in eval_set_dirs():
        if (folder / f"{text}.yaml").is_file():
            return folder / f"{text}.yaml"
    known = available_eval_sets()
    raise EvalSetError(
        f"unknown evaluation set {text!r}{closest(text, known)}; known: {', '.join(known) or 'none'} "
        f"(eval/sets/NAME.yaml), or give a .yaml path"
    )


def load_eval_set(name_or_path: str | Path) -> EvalSet:
    """Read and check an evaluation set (``gan_colorize.schema``: unknown keys are errors that
    suggest the closest key, values are type-checked), then its ranges."""
    path = find_eval_set(name_or_path)
    try:
        raw = read_yaml(path)
    except ConfigError as exc:
        raise EvalSetError(str(exc)) from None
    if not isinstance(raw, dict):
        raise EvalSetError(f"{path}: expected a mapping with keys {', '.join(_EVAL_SET_KEYS)}")
    raw.setdefault("name", path.stem)
    if not raw.get("data") or not isinstance(raw["data"], str):
        check_keys(raw, _EVAL_SET_KEYS, str(path), EvalSetError)  # a misspelt 'data' says so first
        raise EvalSetError(f"{path}: 'data' must name an image folder or builtin:skimage")
    if isinstance(raw.get("metrics"), str):
        raw["metrics"] = [m.strip() for m in raw["metrics"].split(",") if m.strip()]
    eval_set = read_dataclass(EvalSet, raw, str(path), EvalSetError)
    eval_set.path = path
    check_eval_set(eval_set)
    return eval_set


def check_eval_set(es: EvalSet) -> None:
    """What the types do not say: a plain folder name, a fraction in (0, 1) of a folder, sizes."""
    where = es.path or es.name
    try:  # results go to RUN/eval/<name>/: '..' would write (and a rerun clear) the run's root
        check_name(es.name, "'name' (the RUN/eval/<name> folder)")
    except UnsafeNameError as exc:
        raise EvalSetError(f"{where}: {exc}") from None
    fraction = es.eval_fraction
    if fraction is not None and not 0 < fraction < 1:
        raise EvalSetError(f"{where}: 'eval_fraction' must be a number between 0 and 1, got {fraction!r}")
    if fraction is not None and es.data == "builtin:skimage":
        raise EvalSetError(
            f"{where}: 'eval_fraction' applies to folders; builtin:skimage always holds out its own photo"
        )
    if es.size < 8 or es.batch_size < 1:
        raise EvalSetError(f"{where}: size >= 8 and batch_size >= 1 are required")
