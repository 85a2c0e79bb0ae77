"""Decoding image files robustly: every file becomes RGB (plus alpha when asked), or a
:class:`BadImageError` that names the file and the reason. Nothing here kills a run.

Handled: EXIF orientation (applied), CMYK (converted by PIL's ICC-less CMYK->RGB), 16-bit and
32-bit integer greyscale (scaled, not clipped: 65535 -> 255), palette (expanded, transparency
kept as alpha), greyscale (replicated to RGB), alpha (composited on white for training, kept for
inference). A truncated file is detected: PIL's ``LOAD_TRUNCATED_IMAGES`` is never set.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# A decompression bomb check that still admits real 100-megapixel scans.
Image.MAX_IMAGE_PIXELS = 200_000_000


class BadImageError(ValueError):
    """A file that cannot be used as an image."""

    def __init__(self, path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def open_image(path: str | Path) -> Image.Image:
    """Open and fully decode a file (so truncation shows here), with EXIF orientation applied."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                return ImageOps.exif_transpose(img)
    except FileNotFoundError:
        raise BadImageError(path, "file not found") from None
    except UnidentifiedImageError:
        raise BadImageError(path, "not an image file PIL can identify (corrupt or unsupported)") from None
    except (
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as exc:
        raise BadImageError(path, f"cannot decode ({type(exc).__name__}: {exc})") from None


def _high_bit_depth(img: Image.Image) -> np.ndarray | None:
    """Integer greyscale of more than 8 bits as float [0, 1] (None for other modes)."""
    if img.mode not in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        return None
    a = np.asarray(img).astype(np.float64)
    # 'I' holds 16-bit PNGs too; only values above 65535 mean a genuinely 32-bit image
    top = 65535.0 if a.max(initial=0) <= 65535 else float(2**32 - 1)
    return np.clip(a / top, 0.0, 1.0)


def pil_to_array(img: Image.Image, keep_16bit: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """(RGB array (H,W,3), alpha (H,W) uint8 or None). RGB is uint8, or uint16 for >8-bit
    greyscale inputs when ``keep_16bit`` (so that inference keeps their precision)."""
    high = _high_bit_depth(img)
    if high is not None:
        if keep_16bit:
            grey = np.round(high * 65535).astype(np.uint16)
        else:
            grey = np.round(high * 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2), None
    if img.mode == "F":
        grey = np.round(np.clip(np.asarray(img), 0, 1) * 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2), None
    alpha = None
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    if has_alpha:
        img = img.convert("RGBA")
        arr = np.asarray(img)
        return np.ascontiguousarray(arr[..., :3]), np.ascontiguousarray(arr[..., 3])
    return np.asarray(img.convert("RGB")), alpha


def load_image_keep_alpha(path: str | Path) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """For inference: (RGB uint8 or uint16 (H,W,3), alpha uint8 (H,W) or None, info).

    ``info``: ``mode`` (PIL's original mode), ``bits`` (8 or 16), ``size`` (W, H after EXIF rotation).
    """
    img = open_image(path)
    try:
        rgb, alpha = pil_to_array(img, keep_16bit=True)
    except (OSError, ValueError) as exc:
        raise BadImageError(path, f"cannot convert mode {img.mode} to RGB: {exc}") from None
    info = {"mode": img.mode, "bits": 16 if rgb.dtype == np.uint16 else 8, "size": img.size}
    return rgb, alpha, info


def composite_on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Training sees no alpha: transparent pixels become white, as a viewer shows them, rather than
    whatever colour the encoder left under them."""
    a = alpha.astype(np.float32)[..., None] / 255.0
    return np.round(rgb.astype(np.float32) * a + 255.0 * (1 - a)).astype(np.uint8)


def load_rgb(path: str | Path) -> np.ndarray:
    """For training and evaluation: uint8 RGB (H,W,3); alpha is composited on white."""
    img = open_image(path)
    try:
        rgb, alpha = pil_to_array(img)
    except (OSError, ValueError) as exc:
        raise BadImageError(path, f"cannot convert mode {img.mode} to RGB: {exc}") from None
    if alpha is not None:
        rgb = composite_on_white(rgb, alpha)
    if rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise BadImageError(path, "empty image")
    return rgb


def chroma_level(rgb: np.ndarray, max_side: int = 128) -> float:
    """How much colour an image carries: the 99th percentile of per-pixel chroma sqrt(a^2 + b^2)
    (Lab units) on a copy downsampled to ``max_side``. Greyscale files give ~0 (JPEG chroma noise
    stays below ~2); a low-saturation colour photo with a few coloured details still scores high,
    where a standard deviation over the whole image would call it greyscale."""
    import torch

    from gan_colorize.color.lab import rgb_to_lab

    img = Image.fromarray(rgb)
    if max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    x = torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 255.0
    chroma = rgb_to_lab(x)[0, 1:].norm(dim=0).flatten()
    return float(torch.quantile(chroma, 0.99))
