"""Full-resolution colorization of real photographs with a trained generator.

The method is DeOldify's and DDColor's: the network only ever sees a small greyscale image, and
only its chrominance is kept::

    input (any size, colour or grey, 8 or 16 bit)
      -> L at full resolution                      (colour inputs are reduced to L first)
      -> L resized to the working resolution       (shorter side = ``size``, aspect kept, longer <= 8 size)
      -> ab predicted there                        (``predict_ab_norm``: pads to the generator's multiple)
      -> ab upsampled bilinearly to full size, joined to the ORIGINAL full-resolution L
      -> Lab -> sRGB -> uint8                      (alpha passed through untouched)

so the output has every detail of the input's luminance, whatever the working resolution.

Memory stays bounded for any photo size: everything at full resolution (L from the input, ab
upsampling, Lab -> sRGB) runs in horizontal strips of about ``STRIP_PIXELS`` pixels, so a 12 MP
photo needs its L plane (48 MB) and the output besides a few hundred MB of strip temporaries.

Out-of-gamut colours are brought into the sRGB gamut by reducing their chroma at constant L and
hue (a table of the gamut's largest chroma per L and hue, with a per-pixel bisection where the
table is not exact), not by clipping R, G and B: clipping changes the lightness, and the output's
L would then no longer be the photo's.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gan_colorize.color.lab import denormalize_ab, lab_to_rgb, normalize_l, rgb_to_lab, to_uint8

# Pixels per full-resolution strip: 512 rows of a 4000-pixel-wide photo. rgb_to_lab and
# lab_to_rgb keep about ten float32 3-channel temporaries alive, ~25 MB each at this size.
STRIP_PIXELS = 1 << 21
# The network's input is at most this many times ``size`` on its longer side (working_shape): 8:1
# keeps the training scale for most panoramas and bounds memory (8 size**2 pixels) for any input.
MAX_ASPECT = 8
# Out-of-gamut colours: the max-chroma table's size (L rows, hue columns), the chroma its rays
# start from (sRGB chroma stays below ~134), the share of the table's limit used (its bilinear
# lookups overestimate by up to ~0.5 % for 999 pixels in 1000), and the bisection steps of the
# fallback for the rest (the kept chroma within 1/256 of the limit).
CHROMA_TABLE_SHAPE = (201, 512)
MAX_CHROMA = 200.0
TABLE_SAFETY = 0.99
GAMUT_STEPS = 8


@dataclass
class PreparedImage:
    """An input reduced to what colorization needs: its full-resolution L and the network input."""

    L: torch.Tensor  # (H, W) float32, CIE L in [0, 100], on the colorizer's device
    L_work: torch.Tensor  # (1, h, w) L_norm at the working resolution, on the colorizer's device
    alpha: np.ndarray | None  # (H, W) uint8, passed through


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The device asked for, else CUDA when available, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device} requested but CUDA is not available")
    return device


def working_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """Scale so that the SHORTER side is ``size`` and the aspect ratio is kept, with the longer
    side at most ``MAX_ASPECT * size``.

    The generator was trained on ``size`` x ``size`` crops, so the shorter side at ``size`` shows
    it objects at the scale it learnt them; a square resize (DeOldify, DDColor) would stretch
    panoramas. The cap bounds the network's input to ``MAX_ASPECT * size**2`` pixels: a 2 x 4000
    strip would otherwise go in at 256 x 512000 (out of memory); past 8:1 the shorter side gets
    smaller than ``size`` instead. Padding up to the generator's multiple is done by
    ``predict_ab_norm``.
    """
    scale = min(size / min(height, width), MAX_ASPECT * size / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def strips(height: int, width: int) -> Iterator[slice]:
    """Row ranges of about ``STRIP_PIXELS`` pixels (read at call time, so tests can shrink it)."""
    rows = max(1, STRIP_PIXELS // max(1, width))
    for top in range(0, height, rows):
        yield slice(top, min(top + rows, height))


# ---------------------------------------------------------------- input arrays
def _split_alpha(image: np.ndarray, alpha: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """HxW grey, HxWx1 grey, HxWx2 grey+alpha, HxWx3 RGB or HxWx4 RGBA -> (HxW or HxWx3, alpha)."""
    if image.ndim == 3 and image.shape[2] in (2, 4):
        if alpha is not None:
            raise ValueError(f"image has {image.shape[2]} channels (its own alpha) and alpha= was given too")
        image, alpha = image[..., :-1], image[..., -1]
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"expected an HxW, HxWx1, HxWx2, HxWx3 or HxWx4 image, got shape {image.shape}")
    if min(image.shape[:2]) < 1:
        raise ValueError(f"empty image of shape {image.shape}")
    if alpha is not None and alpha.shape != image.shape[:2]:
        raise ValueError(f"alpha of shape {alpha.shape} does not match the image's {image.shape[:2]}")
    return image, alpha


def _value_scale(dtype: np.dtype) -> float:
    """The value that means full intensity: uint8 255, uint16 65535, floats 1."""
    if dtype == np.uint8:
        return 255.0
    if dtype == np.uint16:
        return 65535.0
    if np.issubdtype(dtype, np.floating):
        return 1.0
    raise TypeError(f"expected a uint8, uint16 or float image, got {dtype}")


def alpha_to_uint8(alpha: np.ndarray) -> np.ndarray:
    if alpha.dtype == np.uint8:
        return alpha
    scale = _value_scale(alpha.dtype)
    return np.clip(alpha.astype(np.float32) / scale * 255.0 + 0.5, 0, 255).astype(np.uint8)


def full_resolution_L(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """CIE L (H, W) float32 of an HxW grey or HxWx3 sRGB image, computed strip by strip.

    The values are taken as floats in [0, 1] before the conversion, so a 16-bit photo keeps its
    full precision. A grey level g is the sRGB colour (g, g, g), whose L is that of its luminance.
    """
    scale = _value_scale(image.dtype)
    height, width = image.shape[:2]
    L = torch.empty((height, width), dtype=torch.float32, device=device)
    for rows in strips(height, width):
        part = (
            torch.from_numpy(image[rows].copy()).to(device).float() / scale
        )  # copy: the input may be read-only
        if part.ndim == 2:
            rgb = part[None, None].expand(1, 3, -1, -1)
        else:
            rgb = part.permute(2, 0, 1)[None]
        L[rows] = rgb_to_lab(rgb.clamp(0.0, 1.0))[0, 0]
    return L


# ---------------------------------------------------------------- full-resolution output
def upsample_rows(ab: torch.Tensor, rows: slice, height: int, width: int) -> torch.Tensor:
    """Rows ``rows`` of ``F.interpolate(ab, (height, width), mode="bilinear", align_corners=False)``.

    Computed with ``grid_sample`` so that only the strip is ever materialised: with
    ``align_corners=False`` the sampling position of output pixel i is its normalised centre
    (2 i + 1) / n - 1, and ``padding_mode="border"`` clamps at the edges as interpolate does.
    """
    ys = (torch.arange(rows.start, rows.stop, device=ab.device, dtype=torch.float32) * 2 + 1) / height - 1
    xs = (torch.arange(width, device=ab.device, dtype=torch.float32) * 2 + 1) / width - 1
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)[None]
    return F.grid_sample(ab[None].float(), grid, mode="bilinear", padding_mode="border", align_corners=False)


def _inside(rgb: torch.Tensor) -> torch.Tensor:
    """Per pixel: no channel was clipped by ``lab_to_rgb`` (which clamps to exactly 0 or 1)."""
    return ((rgb > 0) & (rgb < 1)).all(dim=1, keepdim=True)


def _largest_inside_scale(L: torch.Tensor, ab: torch.Tensor, high: torch.Tensor, steps: int) -> torch.Tensor:
    """Bisection for the largest s in [0, high] with Lab (L, s * ab) inside the sRGB gamut.

    Assumes the gamut is star-shaped around the grey axis along each chroma ray (it is: a convex
    cube seen from one of its interior points, the grey of lightness L).
    """
    low = torch.zeros_like(high)
    for _ in range(steps):
        mid = (low + high) / 2
        ok = _inside(lab_to_rgb(torch.cat((L, mid * ab), dim=1)))
        low = torch.where(ok, mid, low)
        high = torch.where(ok, high, mid)
    return low


@functools.cache
def max_chroma_table(device: torch.device) -> torch.Tensor:
    """(1, 1, 201, 513) the largest in-gamut sRGB chroma at L = 0, 0.5, ..., 100 (rows) and hue
    0, 2 pi / 512, ..., 2 pi (columns, the last repeating the first), to 200 / 2**16.

    Computed once per device (about 0.5 s on a CPU core) from ``lab_to_rgb`` itself, so it
    cannot disagree with the conversion. Bilinear lookups in it overestimate the true limit by
    more than 1 % for about 1 pixel in 1000 (measured on random L and hue); those are caught by
    the bisection fallback in :func:`lab_to_rgb_keep_lightness`.
    """
    L = torch.linspace(0, 100, CHROMA_TABLE_SHAPE[0], device=device)
    hue = torch.linspace(0, 2 * math.pi, CHROMA_TABLE_SHAPE[1] + 1, device=device)
    L, hue = torch.meshgrid(L, hue, indexing="ij")
    rays = MAX_CHROMA * torch.stack((hue.cos(), hue.sin()))  # (2, rows, cols): chroma MAX_CHROMA
    scale = _largest_inside_scale(L[None, None], rays[None], torch.ones_like(L)[None, None], steps=16)
    return MAX_CHROMA * scale


def _table_max_chroma(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup of :func:`max_chroma_table` for (1, 1, P, 1) L and (1, 2, P, 1) ab."""
    hue = torch.atan2(ab[:, 1], ab[:, 0]) % (2 * math.pi)  # (1, P, 1)
    grid = torch.stack((hue / math.pi - 1, L[:, 0] / 50 - 1), dim=-1)  # x: hue, y: L, both to [-1, 1]
    table = max_chroma_table(L.device)
    return F.grid_sample(table, grid, mode="bilinear", padding_mode="border", align_corners=True)


def lab_to_rgb_keep_lightness(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """(N,1,H,W) L and (N,2,H,W) ab in Lab units -> sRGB in [0, 1] with the lightness L kept.

    Colours outside the sRGB gamut get the largest chroma s * ab (s in [0, 1]) inside it, at the
    same L and hue: first from the max-chroma table (times ``TABLE_SAFETY``), then, for the few
    pixels that still clip, by bisection below that. In-gamut colours are left exactly as they are.
    Pixels with a channel exactly at 0 or 1 count as clipped: at worst an in-gamut colour on the
    gamut's surface loses 1/256 of its chroma. Grey pixels (ab = 0) have nothing to reduce.
    """
    rgb = lab_to_rgb(torch.cat((L, ab), dim=1))
    clipped = (~_inside(rgb)) & (ab != 0).any(dim=1, keepdim=True)
    if not clipped.any():
        return rgb
    # the clipped pixels as one (1, C, P, 1) image, so that each step is one batched conversion
    index = clipped.flatten().nonzero().squeeze(1)
    pixels = rgb.permute(0, 2, 3, 1).reshape(-1, 3)
    L_px = L.permute(0, 2, 3, 1).reshape(-1, 1)[index].T[None, ..., None]
    ab_px = ab.permute(0, 2, 3, 1).reshape(-1, 2)[index].T[None, ..., None]
    chroma = ab_px.norm(dim=1, keepdim=True)
    scale = (TABLE_SAFETY * _table_max_chroma(L_px, ab_px) / chroma).clamp(max=1.0)
    fixed = lab_to_rgb(torch.cat((L_px, scale * ab_px), dim=1))
    still = ((~_inside(fixed)) & (scale > 0)).flatten().nonzero().squeeze(1)
    if len(still):
        sub = (slice(None), slice(None), still)
        scale[sub] = _largest_inside_scale(L_px[sub], ab_px[sub], scale[sub], GAMUT_STEPS)
        fixed[sub] = lab_to_rgb(torch.cat((L_px[sub], scale[sub] * ab_px[sub]), dim=1))
    pixels[index] = fixed[0, :, :, 0].T
    return pixels.reshape(rgb.shape[0], rgb.shape[2], rgb.shape[3], 3).permute(0, 3, 1, 2)


def compose_rgb(L: torch.Tensor, ab_norm: torch.Tensor) -> np.ndarray:
    """Full-resolution L (H, W) + working-resolution ab_norm (2, h, w) -> uint8 RGB (H, W, 3)."""
    height, width = L.shape
    out = np.empty((height, width, 3), dtype=np.uint8)
    for rows in strips(height, width):
        ab = denormalize_ab(upsample_rows(ab_norm, rows, height, width))
        rgb = lab_to_rgb_keep_lightness(L[rows][None, None], ab)
        out[rows] = to_uint8(rgb)[0].permute(1, 2, 0).cpu().numpy()
    return out


# ---------------------------------------------------------------- the colorizer
class Colorizer:
    """Colorize photographs of any size with a trained generator.

    >>> colorizer = Colorizer.from_checkpoint("runs/unet_gan")     # doctest: +SKIP
    >>> colorizer(Image.open("photo.jpg")).save("photo_color.png")  # doctest: +SKIP

    ``size``: the working resolution (shorter side), default the run's ``data.size``.
    ``temperature``: annealed-mean temperature of classification ("bins") generators, default the
    run's ``loss.temperature`` (0.38, Zhang et al. 2016, sec. 3.3); ignored by "ab" generators.
    """

    def __init__(
        self,
        generator: torch.nn.Module,
        size: int,
        temperature: float = 0.38,
        device: str | torch.device | None = None,
        source: Path | None = None,
    ):
        if size < 8:
            raise ValueError(f"working size must be at least 8 pixels, got {size}")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.device = resolve_device(device)
        self.generator = generator.to(self.device).eval()
        self.size = int(size)
        self.temperature = float(temperature)
        self.source = source

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str | torch.device | None = None,
        size: int | None = None,
        temperature: float | None = None,
        trust_code: bool = False,
    ) -> Colorizer:
        """``path``: an exported ``.pt``/``.safetensors`` file, a ``generator.pt``, a checkpoint
        folder or a run folder (its latest checkpoint). ``trust_code``: allow a generator type
        ``module:Class`` that is not registered (see ``gan_colorize.models.io.load_generator``)."""
        from gan_colorize.models.io import load_generator

        device = resolve_device(device)
        loaded = load_generator(path, device=device, trust_code=trust_code)
        config = loaded.config
        return cls(
            loaded.module,
            size=size if size is not None else config.data.size,
            temperature=temperature if temperature is not None else config.loss.temperature,
            device=device,
            source=loaded.path,
        )

    # -- stages (the batch runner calls them separately to batch the network and overlap decoding)
    @torch.inference_mode()
    def prepare(self, image: np.ndarray, alpha: np.ndarray | None = None) -> PreparedImage:
        image, alpha = _split_alpha(np.asarray(image), alpha)
        L = full_resolution_L(image, self.device)
        shape = working_shape(*L.shape, self.size)
        # antialiased resize: downscaling a 12 MP photo to 256 px must average, not alias
        L_work = F.interpolate(
            L[None, None], size=shape, mode="bilinear", antialias=True, align_corners=False
        )
        return PreparedImage(L, normalize_l(L_work[0]), None if alpha is None else alpha_to_uint8(alpha))

    @torch.inference_mode()
    def predict(self, L_work: torch.Tensor) -> torch.Tensor:
        """(N, 1, h, w) L_norm -> (N, 2, h, w) float32 ab_norm; ``NonFiniteOutputError`` (naming
        the checkpoint) when the prediction holds NaN or inf."""
        from gan_colorize.evaluation.protocol import check_finite
        from gan_colorize.models.io import predict_ab_norm

        # float32, as evaluation runs it: a photo colorized here matches its row in the report. At
        # the working resolution the generator is a few GFLOP per image, so bf16 would save little.
        L_work = L_work.to(self.device)
        ab_norm = predict_ab_norm(self.generator, L_work, temperature=self.temperature).float()
        return check_finite(ab_norm, self.source or "the generator")  # NaN would be written as black

    @torch.inference_mode()
    def finish(self, prepared: PreparedImage, ab_norm: torch.Tensor) -> np.ndarray:
        """uint8 (H, W, 3), or (H, W, 4) when the input had alpha."""
        rgb = compose_rgb(prepared.L, ab_norm.to(self.device))
        if prepared.alpha is None:
            return rgb
        return np.concatenate((rgb, prepared.alpha[..., None]), axis=2)

    # -- one image
    @torch.inference_mode()
    def colorize_array(self, image: np.ndarray, alpha: np.ndarray | None = None) -> np.ndarray:
        """Colorize an HxW grey or HxWx3 RGB array (uint8, uint16, or float in [0, 1]; HxWx2 and
        HxWx4 carry their own alpha). Returns uint8 RGB of the same height and width, RGBA when
        there was alpha."""
        prepared = self.prepare(image, alpha)
        return self.finish(prepared, self.predict(prepared.L_work[None])[0])

    def __call__(self, image):
        """PIL image in, PIL image out (RGBA when the input has transparency).

        EXIF orientation is applied first, as when reading files, so the result is upright. An
        image that cannot be decoded (a truncated file) raises ``BadImageError`` naming its file.
        """
        from PIL import Image, ImageOps

        from gan_colorize.data.decode import BadImageError, decode_failure, pil_to_array

        try:  # an opened file is decoded only here: a truncated one fails here, naming the file
            rgb, alpha = pil_to_array(ImageOps.exif_transpose(image), keep_16bit=True)
        except BadImageError:
            raise
        except (OSError, SyntaxError, ValueError) as exc:
            raise BadImageError(getattr(image, "filename", "") or "<image>", decode_failure(exc)) from None
        out = self.colorize_array(rgb, alpha)
        return Image.fromarray(out, mode="RGBA" if out.shape[2] == 4 else "RGB")

    def colorize_file(self, path: str | Path) -> np.ndarray:
        """Read a file with the data package's decoder (EXIF orientation, 16 bit, palette, CMYK) and
        colorize it."""
        from gan_colorize.data.decode import load_image_keep_alpha

        rgb, alpha, _ = load_image_keep_alpha(path)
        return self.colorize_array(rgb, alpha)
