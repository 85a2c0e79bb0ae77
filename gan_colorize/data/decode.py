"""Decoding image files robustly: every file becomes RGB (plus alpha when asked), or a
:class:`BadImageError` that names the file and the reason. Nothing here kills a run.

Handled: EXIF orientation (applied), CMYK (PIL's ICC-less CMYK -> RGB), 16-bit and 32-bit
integer greyscale (scaled, not clipped: 65535 -> 255, 32768 -> 128; int32 values within 0-255
are 8-bit), palette (expanded), one transparent colour in any mode (PNG tRNS: it becomes alpha),
greyscale (replicated to RGB), alpha (composited on white for training, kept for inference). A
truncated file is detected: the whole file is decoded inside a ``try`` and PIL's global
``ImageFile.LOAD_TRUNCATED_IMAGES`` is never set.

JPEGs can be decoded at 1/2, 1/4 or 1/8 scale straight from the DCT coefficients (PIL's
``draft``), several times faster than a full decode; the training crops and the greyscale screen
use that when they need fewer pixels than the file holds (:class:`ImageReader`).
"""

from __future__ import annotations

import io
import math
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

# EXIF orientations 5-8 store the picture lying on its side: width and height swap when upright.
_SIDEWAYS_ORIENTATIONS = (5, 6, 7, 8)
_HIGH_BIT_GREY_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
# modes that hold no colour at all: the header alone says such a file is greyscale
GREY_MODES = ("1", "L", "LA", "La", "F", *_HIGH_BIT_GREY_MODES)
PREVIEW_SIDE = 128  # the greyscale screen looks at a copy whose longer side is this (pixels)


class BadImageError(ValueError):
    """A file that cannot be used as an image: ``path`` and a human-readable ``reason``."""

    def __init__(self, path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def decode_failure(exc: BaseException) -> str:
    """A human-readable reason for an exception raised while opening or decoding an image."""
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, IsADirectoryError):
        return "is a folder, not a file"
    if isinstance(exc, UnidentifiedImageError):
        return "not an image file PIL can identify (corrupt or unsupported format)"
    if isinstance(exc, Image.DecompressionBombError):
        return f"too many pixels ({exc})"
    text = str(exc)
    if "truncated" in text.lower():  # "image file is truncated" (JPEG), "Truncated File Read" (PNG)
        return f"truncated file ({text})"
    return f"cannot decode ({type(exc).__name__}: {text})"


def _open_failure(path: Path, exc: BaseException) -> str:
    """``decode_failure``, told more exactly where the file system can say more."""
    if isinstance(exc, FileNotFoundError) and path.is_symlink():
        return f"broken symbolic link (to {os.readlink(path)}, which does not exist)"
    if isinstance(exc, UnidentifiedImageError) and path.is_file() and path.stat().st_size == 0:
        return "empty file (0 bytes)"
    return decode_failure(exc)


class ImageReader:
    """An image file opened lazily: ``size`` (upright, after EXIF orientation), ``mode`` and
    ``bits`` come from the header; :meth:`decode` reads the pixels. Every failure is a
    :class:`BadImageError`. Use as a context manager (the file is closed on exit)::

        with ImageReader(path) as reader:
            img = reader.decode(min_size=(w, h))  # a JPEG may come back smaller, never below (w, h)
    """

    def __init__(self, path: str | Path, data: bytes | None = None):
        """``data``: the file's bytes, already read (a shard member); ``path`` then only names it."""
        self.path = Path(path)
        self._file = None
        self.scale = 1.0  # decoded pixels per stored pixel: 1/2, 1/4, 1/8 after JPEG DCT scaling
        try:
            # We open the file ourselves so that closing it never touches the decoded pixels
            # (PIL's Image.close() frees them too).
            self._file = io.BytesIO(data) if data is not None else open(self.path, "rb")  # noqa: SIM115
            # PIL warns above Image.MAX_IMAGE_PIXELS (89 MP) and raises above twice that; big scans
            # under the error limit are legitimate, so the warning is not repeated at every decode.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                self._img = Image.open(self._file)
            self.mode = self._img.mode  # the file's own mode, before any conversion
            self.format = self._img.format  # JPEG, PNG, ...
            self.bits = _source_bits(self._img)
            self.orientation = _orientation(self._img)
        except Exception as exc:  # a damaged header can raise nearly anything; none may escape
            self.close()
            raise BadImageError(self.path, _open_failure(self.path, exc)) from None
        w, h = self._img.size
        self.size = (h, w) if self.orientation in _SIDEWAYS_ORIENTATIONS else (w, h)

    def decode(self, min_size: tuple[int, int] | None = None) -> Image.Image:
        """All pixels, upright. ``min_size`` (W, H): a JPEG is decoded at the coarsest DCT scale
        (1, 1/2, 1/4, 1/8) that still gives at least this size; other formats ignore it."""
        try:
            if min_size is not None:
                w, h = (max(1, int(v)) for v in min_size)
                stored_w = self._img.width
                drafted = self._img.draft(
                    None, (h, w) if self.orientation in _SIDEWAYS_ORIENTATIONS else (w, h)
                )
                if drafted is not None:  # (mode, (0, 0, W / s, H / s)) for a JPEG decoded at 1/s
                    self.scale = drafted[1][2] / stored_w
            self._img.load()  # the whole file is read here, so truncation raises here
            ImageOps.exif_transpose(self._img, in_place=True)
        except Exception as exc:
            raise BadImageError(self.path, decode_failure(exc)) from None
        finally:
            self.close()
        if self._img.width < 1 or self._img.height < 1:
            raise BadImageError(self.path, "empty image (0 pixels)")
        self._check_upright_size()
        return self._img

    def _check_upright_size(self) -> None:
        # the crop was planned on the header's upright size: pixels that disagree with it (an
        # orientation read differently) must fail here, naming the file, not deep inside a crop
        expected = [v * self.scale for v in self.size]
        if any(abs(got - want) > 1 for got, want in zip(self._img.size, expected)):
            raise BadImageError(
                self.path,
                f"decoded size {self._img.size} differs from the header's {self.size} "
                f"(scale {self.scale:g}, EXIF orientation {self.orientation})",
            )

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> ImageReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# the orientations PIL's exif_transpose acts on (it looks the tag up in a dict of these keys)
_TRANSPOSED_ORIENTATIONS = frozenset(range(2, 9))


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation exactly as ``exif_transpose`` will apply it: 2-8, else 1. A malformed
    tag (text "6", a rational 13/2) is left alone by exif_transpose, so the size we report from the
    header must ignore it too."""
    try:
        value = img.getexif().get(ExifTags.Base.Orientation, 1)
        return int(value) if value in _TRANSPOSED_ORIENTATIONS else 1
    except Exception:  # an unhashable or unreadable tag: no rotation, as for exif_transpose
        return 1


def _source_bits(img: Image.Image) -> int:
    """Bits per sample in the file: 16 for 16-bit PNG/TIFF, even where PIL decodes them to 8-bit
    RGB; 32 for 32-bit integer or float greyscale."""
    args = img.tile[0][3] if img.tile else ""
    rawmode = args if isinstance(args, str) else str(args[0]) if isinstance(args, tuple) and args else ""
    if ";16" in rawmode or img.mode.startswith("I;16"):
        return 16
    if img.mode in ("I", "F"):
        return 32
    return 8


def open_image(path: str | Path) -> Image.Image:
    """Open and fully decode a file, with EXIF orientation applied."""
    with ImageReader(path) as reader:
        return reader.decode()


# ---------------------------------------------------------------- PIL image -> arrays
def _high_bit_grey(img: Image.Image, path) -> np.ndarray | None:
    """Integer greyscale of more than 8 bits as float64 in [0, 1]; None for other modes."""
    if img.mode not in _HIGH_BIT_GREY_MODES:
        return None
    a = np.asarray(img).astype(np.float64)
    return np.clip(a / _integer_white(img.mode, a), 0.0, 1.0)


def _integer_white(mode: str, values: np.ndarray) -> float:
    """The value of white: 65535 for 'I;16*'. PIL's 'I' (int32) says nothing of the depth it came
    from (some 16-bit files open as 'I', 8-bit data converted to it keeps 0-255), so the values
    decide: up to 255 is 8-bit, up to 65535 16-bit, above that genuinely 32-bit. A 16-bit 'I' file
    darker than 255/65535 everywhere would be read as 8 bit; such a file is black in any viewer."""
    if mode != "I":
        return 65535.0
    top = values.max(initial=0)
    return 255.0 if top <= 255 else 65535.0 if top <= 65535 else float(2**31 - 1)


def _has_alpha(img: Image.Image) -> bool:
    # "transparency": one colour made transparent (PNG tRNS), in any mode, not only palette images
    return img.mode in _ALPHA_MODES or "transparency" in img.info


def _rgba(img: Image.Image) -> np.ndarray:
    # PIL has no La -> RGBA conversion; La -> LA also undoes the premultiplication
    return np.asarray((img.convert("LA") if img.mode == "La" else img).convert("RGBA"))


def _float_grey(img: Image.Image, path) -> np.ndarray:
    a = np.asarray(img, dtype=np.float64)
    if not np.isfinite(a).all() or a.min(initial=0) < 0 or a.max(initial=0) > 1:
        # a float image's white could be 1, 255 or 65535: guessing would silently change it
        raise BadImageError(path, "32-bit float image with values outside [0, 1]; save it as 8 or 16 bit")
    return a


def pil_to_array(
    img: Image.Image, keep_16bit: bool = False, path=None
) -> tuple[np.ndarray, np.ndarray | None]:
    """(RGB (H, W, 3), alpha uint8 (H, W) or None) from a decoded PIL image of any mode.

    RGB is uint8, or uint16 for more-than-8-bit greyscale when ``keep_16bit`` (inference keeps
    that precision). 16-bit values are scaled, not clipped: v * 255 / 65535, rounded.
    """
    path = path or getattr(img, "filename", "") or "<image>"
    high = _high_bit_grey(img, path)
    if high is None and img.mode == "F":
        high = _float_grey(img, path)
    if high is not None:
        if keep_16bit:
            grey = np.round(high * 65535).astype(np.uint16)
        else:
            grey = np.round(high * 255).astype(np.uint8)
        alpha = None
        if "transparency" in img.info:  # the grey level made transparent, compared at full depth
            alpha = np.where(np.asarray(img) == img.info["transparency"], 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2), alpha
    try:
        if _has_alpha(img):
            rgba = _rgba(img)
            return np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3])
        return np.array(img if img.mode == "RGB" else img.convert("RGB")), None  # writable
    except (OSError, ValueError) as exc:  # e.g. a mode PIL cannot convert to RGB (LAB, HSV)
        raise BadImageError(path, f"cannot convert mode {img.mode} to RGB ({exc})") from None


def composite_on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Training and evaluation see no alpha. Transparent pixels become white, as image viewers and
    browsers show them; the colour an encoder leaves under alpha = 0 is arbitrary (often black),
    and a model should not learn it."""
    a = alpha.astype(np.float32)[..., None] / 255.0
    return np.round(rgb.astype(np.float32) * a + 255.0 * (1.0 - a)).astype(np.uint8)


def to_rgb_uint8(img: Image.Image, path=None) -> np.ndarray:
    """A decoded PIL image -> uint8 RGB (H, W, 3), alpha composited on white."""
    rgb, alpha = pil_to_array(img, path=path)
    return composite_on_white(rgb, alpha) if alpha is not None else rgb


def to_rgb_image(img: Image.Image, path=None) -> Image.Image:
    """:func:`to_rgb_uint8` as a PIL image (an RGB image is returned as is)."""
    return img if img.mode == "RGB" and not _has_alpha(img) else Image.fromarray(to_rgb_uint8(img, path))


def load_rgb(path: str | Path, min_size: tuple[int, int] | None = None) -> np.ndarray:
    """For training and evaluation: uint8 RGB (H, W, 3), upright, alpha composited on white.

    ``min_size``: see :meth:`ImageReader.decode` (JPEGs may be decoded smaller, never below it).
    """
    with ImageReader(path) as reader:
        return to_rgb_uint8(reader.decode(min_size), path)


def load_image_keep_alpha(path: str | Path) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """For inference: (RGB (H, W, 3), alpha uint8 (H, W) or None, info).

    RGB is uint8, or uint16 for 16-bit and 32-bit greyscale files (their precision is kept).
    ``info``: ``mode`` (the file's PIL mode), ``bits`` (bits per sample in the file: 8, 16 or 32;
    PIL itself reduces 16-bit RGB PNGs to 8), ``size`` (W, H, upright).
    """
    with ImageReader(path) as reader:
        img = reader.decode()
        rgb, alpha = pil_to_array(img, keep_16bit=True, path=path)
        return rgb, alpha, {"mode": reader.mode, "bits": reader.bits, "size": reader.size}


# ---------------------------------------------------------------- how much colour
@contextmanager
def _one_torch_thread():
    """Run small tensor work on one thread: for a 128-pixel image, waking torch's thread pool costs
    more than the work, and on a busy machine its spinning workers slowed the greyscale screen
    of 208 photos from 0.9 s to 11 s (2 cores)."""
    import torch

    threads = torch.get_num_threads()
    if threads > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if threads > 1:
            torch.set_num_threads(threads)


def _preview(rgb: np.ndarray | Image.Image, max_side: int = PREVIEW_SIDE) -> np.ndarray:
    """A uint8 RGB copy of ``rgb`` downsampled to at most ``max_side`` pixels on its longer side."""
    img = rgb.copy() if isinstance(rgb, Image.Image) else Image.fromarray(rgb)
    if max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    return np.asarray(img)


def _preview_ab(rgb: np.ndarray | Image.Image, max_side: int = PREVIEW_SIDE):
    """The a and b channels (Lab units, ``gan_colorize.color.lab``) of :func:`_preview`:
    (2, N) float32 tensor."""
    import torch

    from gan_colorize.color.lab import rgb_to_lab

    with _one_torch_thread():
        x = torch.from_numpy(_preview(rgb, max_side).copy()).permute(2, 0, 1)[None].float() / 255.0
        return rgb_to_lab(x)[0, 1:].reshape(2, -1)


def _p99_chroma(ab) -> float:
    import torch

    with _one_torch_thread():
        return float(torch.quantile(ab.norm(dim=0), 0.99))


def _ab_spread(ab) -> float:
    with _one_torch_thread():
        return float(ab.double().var(dim=1, unbiased=False).sum().sqrt())


def chroma_level(rgb: np.ndarray, max_side: int = PREVIEW_SIDE) -> float:
    """THE greyscale test's statistic: the 99th percentile of per-pixel chroma sqrt(a^2 + b^2)
    (Lab units) on a copy downsampled to ``max_side``. Greyscale files give < 0.1 (JPEG chroma
    noise included); colour photos of grey subjects with a few coloured details still score 7 or
    more (the 207 colour photos of ../shared/data/photos: 7.2 to 80; its greyscale one: 0.005).
    """
    return _p99_chroma(_preview_ab(rgb, max_side))


# The least Lab chroma per unit of RGB spread (largest minus smallest channel, 0-255) over all
# 2^24 8-bit sRGB colours: 0.1707 (gan_colorize.color.lab on the whole cube), rounded down. A
# pointwise bound carries over to order statistics, so p99(chroma) >= this * p99(spread).
CHROMA_PER_RGB_SPREAD = 0.17


def has_colour(rgb: np.ndarray | Image.Image, level: float, max_side: int = PREVIEW_SIDE) -> bool:
    """``chroma_level(rgb) >= level``, but for most colour photos decided from the RGB spread of
    a box-reduced copy alone (numpy, ~0.1 ms): :func:`chroma_level` runs only for images whose
    spread cannot prove their colour, i.e. greyscale or nearly so. For the loader's check."""
    img = rgb if isinstance(rgb, Image.Image) else Image.fromarray(rgb)
    factor = math.ceil(max(img.size) / max_side)
    preview = np.asarray(img.reduce(factor) if factor > 1 else img)
    r, g, b = (preview[..., i] for i in range(3))
    spread = np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)  # uint8, no overflow
    # p99 (linear interpolation, as torch.quantile) >= T when both order statistics around
    # position 0.99 (n - 1) are: when at least n - floor(0.99 (n - 1)) pixels reach T
    n = spread.size
    if np.count_nonzero(spread >= level / CHROMA_PER_RGB_SPREAD) >= n - math.floor(0.99 * (n - 1)):
        return True
    return chroma_level(np.asarray(img), max_side) >= level


def chroma_std(rgb: np.ndarray, max_side: int = PREVIEW_SIDE) -> float:
    """Spread of colour: sqrt(var(a) + var(b)) over the pixels (Lab units), same downsampled copy.

    Reported by ``data inspect`` but not used to call an image greyscale: a colour photo of a grey
    subject has a small spread (four of the shared photos, a wrench, pliers, a tape measure and
    white swans, score 1.8 to 2.9), while its few coloured pixels are what :func:`chroma_level` sees.
    """
    return _ab_spread(_preview_ab(rgb, max_side))


@dataclass
class ImageProbe:
    """What one decode of a file tells: its size (W, H, upright), mode, bits and colour level."""

    size: tuple[int, int]
    mode: str
    bits: int
    chroma: float  # chroma_level
    chroma_std: float


def probe_file(path: str | Path, max_side: int = PREVIEW_SIDE) -> ImageProbe:
    """Decode a file once, as small as its format allows (JPEG DCT scaling), and measure its
    colour. Raises :class:`BadImageError` for an unreadable file (the whole file is decoded)."""
    with ImageReader(path) as reader:
        w, h = reader.size
        scale = max_side / max(w, h)
        preview = (math.ceil(w * scale), math.ceil(h * scale)) if scale < 1 else None
        probe = probe_array(to_rgb_uint8(reader.decode(preview), path), max_side)
        return ImageProbe(reader.size, reader.mode, reader.bits, probe.chroma, probe.chroma_std)


def probe_array(rgb: np.ndarray, max_side: int = PREVIEW_SIDE) -> ImageProbe:
    """:class:`ImageProbe` of a uint8 RGB array (mode RGB, 8 bits; size from the array)."""
    ab = _preview_ab(rgb, max_side)
    return ImageProbe((rgb.shape[1], rgb.shape[0]), "RGB", 8, _p99_chroma(ab), _ab_spread(ab))


@dataclass
class HeaderProbe:
    """What a file's header tells without decoding: its size (W, H, upright) and mode."""

    size: tuple[int, int]
    mode: str

    @property
    def greyscale(self) -> bool:
        return self.mode in GREY_MODES


def probe_header(path: str | Path) -> HeaderProbe:
    """Size and mode from the header (no pixels decoded: about 0.1 ms for a JPEG). A file damaged
    past its header passes here; the loader finds it (``BadImageError``) and uses another."""
    with ImageReader(path) as reader:
        return HeaderProbe(reader.size, reader.mode)
