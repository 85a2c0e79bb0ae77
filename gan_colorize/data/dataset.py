"""Training and evaluation datasets. Workers decode and crop; items are uint8 RGB tensors
(3, S, S), and the conversion to Lab happens batched on the training device
(``gan_colorize.color.lab.uint8_to_lab_norm``). Equal-sized uint8 items need no custom collate.

Training items are addressed by ``(epoch, index)`` (a plain ``index`` means epoch 0): the crop and
the flip are drawn from ``np.random.default_rng([seed, epoch, index])``, so an item is the same in
any worker and any process, which is what makes a resumed run identical to an uninterrupted one
(``gan_colorize.training.stream``).

The evaluation protocol (also in ``eval/README.md`` and ``gan_colorize.evaluation.protocol``):
resize the shorter side to S with PIL's bicubic filter (antialiased: its support widens with the
downscale factor; the longer side is rounded to the nearest pixel), then crop the centre S x S
(offset ``(W - S) // 2``, ``(H - S) // 2``). ``builtin:skimage`` instead holds out one photo
(``chelsea``) and serves the grid of S x S crops of it resized to a shorter side of 4 S.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gan_colorize.config import DataConfig
from gan_colorize.data.decode import BadImageError, ImageReader, has_colour, to_rgb_image
from gan_colorize.data.files import default_cache_path, list_image_files, relative_name, split_files
from gan_colorize.data.index import DatasetError, Screening, require_usable, screen
from gan_colorize.data.lists import is_file_list, list_root, read_file_list

log = logging.getLogger(__name__)

BUILTIN = "builtin:skimage"
# chelsea is held out: a subject (a cat) and a palette that no training photo shares, so its score
# measures generalisation; the two motorcycle views are near duplicates and must stay together.
BUILTIN_TRAIN = ("astronaut", "coffee", "rocket", "motorcycle_left", "motorcycle_right")
BUILTIN_EVAL = ("chelsea",)
EVAL_GRID_SCALE = 4  # the held-out photo's shorter side becomes 4 S: 4 rows of S x S crops
CROP_MODES = ("random_resized", "random")
# RandomResizedCrop's aspect-ratio range (torchvision's default, from Szegedy et al. 2015's
# Inception training) and its number of tries before the centre-crop fallback.
ASPECT_RANGE = (3 / 4, 4 / 3)
CROP_TRIES = 10
# Pillow's reducing_gap: shrink by an integer factor with a box filter first when the scale
# factor exceeds 3; its docs call the result indistinguishable from exact resampling, and it is
# several times faster for large photos. Training crops only: the evaluation transform is exact.
TRAIN_REDUCING_GAP = 3.0


# ---------------------------------------------------------------- transforms
def to_tensor(img: Image.Image | np.ndarray) -> torch.Tensor:
    """RGB (H, W, 3) -> uint8 tensor (3, H, W), contiguous and writable.

    The transpose is numpy's copy, not torch's ``permute().contiguous()``: torch runs that copy on
    its intra-op thread pool, which on a busy 2-core machine cost 8 ms per 256 px crop against
    0.1 ms here (benchmarks/data_throughput.py; loader workers use one thread, the main process not).
    """
    return torch.from_numpy(np.array(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1), order="C"))


def shorter_side_size(size: tuple[int, int], side: int) -> tuple[int, int]:
    """(W, H) scaled so that the shorter side is ``side``; the longer one rounded to nearest."""
    w, h = size
    scale = side / min(w, h)
    return max(side, round(w * scale)), max(side, round(h * scale))


def resize_shorter(img: Image.Image, side: int) -> Image.Image:
    """Shorter side to ``side`` (bicubic, antialiased); exact (no reducing_gap)."""
    new = shorter_side_size(img.size, side)
    return img if new == img.size else img.resize(new, Image.Resampling.BICUBIC)


def eval_transform(img: Image.Image, size: int) -> Image.Image:
    """The evaluation protocol: shorter side to ``size``, centre crop ``size`` x ``size``."""
    img = resize_shorter(img, size)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return img.crop((left, top, left + size, top + size))


@dataclass(frozen=True)
class CropPlan:
    """A training crop of an image of ``full`` = (W, H) pixels: the region ``box`` = (left, top,
    right, bottom) in those pixels (fractional when the image is upscaled), resized to ``size``
    square, then mirrored when ``flip``."""

    full: tuple[int, int]
    box: tuple[float, float, float, float]
    size: int
    flip: bool

    def decode_size(self) -> tuple[int, int] | None:
        """The smallest decode of the image that keeps the crop at >= ``size`` pixels, for
        JPEG DCT scaling (None: no saving possible)."""
        left, top, right, bottom = self.box
        shrink = min(right - left, bottom - top) / self.size
        if shrink < 2:  # DCT scaling halves at least
            return None
        w, h = self.full
        return math.ceil(w / shrink), math.ceil(h / shrink)

    def apply(self, img: Image.Image, scale: float | None = None) -> Image.Image:
        """Crop, resize and flip ``img``: the image, or the image decoded at ``scale`` (JPEG DCT
        scaling maps pixel x to x * scale exactly; by default the ratio of the sizes)."""
        sx, sy = (scale, scale) if scale else (img.width / self.full[0], img.height / self.full[1])
        box = (self.box[0] * sx, self.box[1] * sy, self.box[2] * sx, self.box[3] * sy)
        if box[2] - box[0] == self.size == box[3] - box[1] and all(float(v).is_integer() for v in box):
            out = img.crop(tuple(int(v) for v in box))  # a native-scale window: no resampling
        else:
            out = img.resize(
                (self.size, self.size), Image.Resampling.BICUBIC, box=box, reducing_gap=TRAIN_REDUCING_GAP
            )
        return out.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if self.flip else out


def _random_resized_window(w: int, h: int, rng: np.random.Generator, scale) -> tuple[int, int, int, int]:
    """(left, top, width, height): RandomResizedCrop's sampling (area fraction ~ U(scale), aspect
    ~ log-U(3/4, 4/3), up to 10 tries, then the largest centred window of allowed aspect)."""
    log_lo, log_hi = math.log(ASPECT_RANGE[0]), math.log(ASPECT_RANGE[1])
    for _ in range(CROP_TRIES):
        area = w * h * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        cw, ch = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            return int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1)), cw, ch
    if w / h < ASPECT_RANGE[0]:
        cw, ch = w, round(w / ASPECT_RANGE[0])
    elif w / h > ASPECT_RANGE[1]:
        cw, ch = round(h * ASPECT_RANGE[1]), h
    else:
        cw, ch = w, h
    return (w - cw) // 2, (h - ch) // 2, cw, ch


def draw_crop(
    full: tuple[int, int], size: int, rng: np.random.Generator, mode: str, scale, hflip: bool
) -> CropPlan:
    """A training crop of an image of ``full`` = (W, H) pixels, drawn from ``rng``.

    ``random``: a ``size`` x ``size`` window at native scale; ``random_resized``: see
    :func:`_random_resized_window`, resized to ``size``. An image whose shorter side is below
    ``size`` is first (virtually) upscaled to a shorter side of ``size``; the window is drawn in
    that frame and mapped back, so the pixels are resampled once.
    """
    w, h = full
    vw, vh = shorter_side_size(full, size) if min(full) < size else full
    if mode == "random":
        left, top = int(rng.integers(0, vw - size + 1)), int(rng.integers(0, vh - size + 1))
        cw = ch = size
    elif mode == "random_resized":
        left, top, cw, ch = _random_resized_window(vw, vh, rng, scale)
    else:
        raise ValueError(f"crop mode {mode!r} is not one of {CROP_MODES}")
    flip = bool(hflip and rng.random() < 0.5)
    sx, sy = w / vw, h / vh
    if (sx, sy) == (1.0, 1.0):
        return CropPlan(full, (left, top, left + cw, top + ch), size, flip)
    return CropPlan(full, (left * sx, top * sy, (left + cw) * sx, (top + ch) * sy), size, flip)


def split_key(key) -> tuple[int, int]:
    """``(epoch, index)`` or ``index`` (epoch 0) -> (epoch, index)."""
    if isinstance(key, (tuple, list)):
        epoch, index = key
        return int(epoch), int(index)
    return 0, int(key)


def _check_crop_args(size: int, crop: str, scale) -> tuple[float, float]:
    if crop not in CROP_MODES:
        raise ValueError(f"crop {crop!r} is not one of {CROP_MODES}")
    lo, hi = (float(v) for v in scale)
    if not 0 < lo <= hi <= 1:
        raise ValueError(f"scale must satisfy 0 < lo <= hi <= 1, got {tuple(scale)}")
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    return lo, hi


# ---------------------------------------------------------------- training datasets
class GreyscaleImageError(Exception):
    """An image found greyscale when loaded (``data.screening: headers``): replaced, not an error."""


@dataclass(frozen=True)
class TrainCrop:
    """Decode and crop one training image: ``crop``, ``scale``, ``hflip`` as in :func:`draw_crop`,
    with JPEG DCT scaling when the crop needs fewer pixels. ``min_chroma`` set: an image below it
    raises :class:`GreyscaleImageError` (the index read headers only, so this is where it is seen)."""

    size: int
    crop: str
    scale: tuple[float, float]
    hflip: bool
    min_chroma: float | None = None

    def __call__(self, reader: ImageReader, rng: np.random.Generator) -> torch.Tensor:
        plan = draw_crop(reader.size, self.size, rng, self.crop, self.scale, self.hflip)
        img = to_rgb_image(reader.decode(plan.decode_size()), reader.path)
        if self.min_chroma is not None and not has_colour(img, self.min_chroma):
            raise GreyscaleImageError(reader.path)
        return to_tensor(plan.apply(img, reader.scale))

    def attempt(self, path, open_and_crop, *args) -> tuple[torch.Tensor | None, Exception | None]:
        """(``open_and_crop(*args)``, None), or (None, why this image cannot be used: a
        :class:`BadImageError` naming ``path`` whatever a decoder raised, so that a loader worker
        never dies, or :class:`GreyscaleImageError`)."""
        try:
            return open_and_crop(*args), None
        except (BadImageError, GreyscaleImageError) as exc:
            return None, exc
        except Exception as exc:
            return None, BadImageError(path, f"cannot crop ({type(exc).__name__}: {exc})")


class ImageFolderDataset(torch.utils.data.Dataset):
    """Random training crops from a folder tree or file list of images, screened at construction.

    ``.files``: the usable colour images (sorted); ``.skipped``: (path, reason) of unreadable
    files; ``.greyscale``: paths left out as greyscale. ``len()`` is the epoch length. With a
    screening of headers only, a file found greyscale or unreadable when loaded is replaced
    (:meth:`__getitem__`).
    """

    def __init__(
        self,
        root: str | Path,
        size: int,
        crop: str = DataConfig.crop,
        scale=(0.35, 1.0),  # DataConfig.scale's default
        hflip: bool = DataConfig.hflip,
        seed: int = 0,
        files: list[Path] | None = None,
        min_chroma: float = DataConfig.min_chroma,
        max_bad_fraction: float = DataConfig.max_bad_fraction,
        screening: Screening | None = None,
    ):
        self.scale = _check_crop_args(size, crop, scale)
        self.root, self.size, self.crop, self.hflip, self.seed = Path(root), size, crop, hflip, seed
        if screening is None:
            files = list_image_files(self.root) if files is None else list(files)
            if not files:
                raise DatasetError(f"{self.root}: no image files (looked for {', '.join(_extensions())})")
            screening = screen(files, min_chroma, max_bad_fraction, str(self.root))
        self.screening = screening
        self.files = list(screening.usable)
        require_usable(screening, str(self.root))
        at_load = min_chroma if screening.mode == "headers" else None
        self.cropper = TrainCrop(size, crop, self.scale, hflip, at_load)
        self._warned: set[Path] = set()

    @property
    def skipped(self) -> list[tuple[Path, str]]:
        return self.screening.skipped

    @property
    def greyscale(self) -> list[Path]:
        return self.screening.greyscale

    def __len__(self) -> int:
        return len(self.files)

    def _crop_file(self, path: Path, rng: np.random.Generator) -> torch.Tensor:
        with ImageReader(path) as reader:
            return self.cropper(reader, rng)

    def __getitem__(self, key) -> torch.Tensor:
        epoch, index = split_key(key)
        n = len(self.files)
        for attempt in range(n):
            # a file that is unreadable (since screening, or past its header) or greyscale is
            # replaced by the next one, with its own deterministic draw: (epoch, index) still gives
            # the same item everywhere, so resume stays exact
            path = self.files[(index + attempt) % n]
            rng = np.random.default_rng([self.seed, epoch, index] + ([attempt] if attempt else []))
            crop, problem = self.cropper.attempt(path, self._crop_file, path, rng)
            if crop is not None:
                return crop
            if path not in self._warned:
                self._warned.add(path)
                _log_replaced(problem)
        raise DatasetError(f"{self.root}: none of the {n} screened images is a readable colour image")


def _log_replaced(problem: Exception) -> None:
    if isinstance(problem, GreyscaleImageError):
        log.info("greyscale image, another one used instead: %s", problem)
    else:
        log.warning("image unreadable, another one used instead: %s", problem)


def _extensions() -> tuple[str, ...]:
    from gan_colorize.data.files import IMAGE_EXTENSIONS

    return IMAGE_EXTENSIONS


def _skimage_photo(name: str) -> np.ndarray:
    """A colour photograph shipped inside the scikit-image wheel (skimage/data/*.png|jpg): no
    download, unlike skimage.data's pooch-fetched extras."""
    from skimage import data

    if name.startswith("motorcycle_"):
        left, right, _ = data.stereo_motorcycle()
        return left if name.endswith("left") else right
    return getattr(data, name)()


class BuiltinSkimage(torch.utils.data.Dataset):
    """``builtin:skimage``: the six colour photographs inside the scikit-image wheel.

    ``split="train"``: ``crops_per_epoch`` random crops per epoch over the five training photos
    (item ``index`` crops photo ``index % 5``; ``(epoch, index)`` as for image folders).
    ``split="eval"``: the held-out photo, as ``{"name", "rgb"}`` items: ``eval_view="grid"`` (the
    default, the demo's protocol) the row-major grid of non-overlapping ``size`` crops of it resized
    to a shorter side of ``EVAL_GRID_SCALE * size`` (named ``chelsea_r{row}c{col}``);
    ``eval_view="protocol"`` the single image of the folder protocol (:func:`eval_transform`).
    """

    def __init__(
        self,
        split: str,
        size: int,
        crops_per_epoch: int = DataConfig.crops_per_epoch,
        crop: str = DataConfig.crop,
        scale=(0.35, 1.0),  # DataConfig.scale's default
        hflip: bool = DataConfig.hflip,
        seed: int = 0,
        eval_view: str = "grid",
    ):
        if split not in ("train", "eval"):
            raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
        if eval_view not in ("grid", "protocol"):
            raise ValueError(f"eval_view must be 'grid' or 'protocol', got {eval_view!r}")
        self.scale = _check_crop_args(size, crop, scale)
        self.split, self.size, self.crop, self.hflip, self.seed = split, size, crop, hflip, seed
        self.names = BUILTIN_TRAIN if split == "train" else BUILTIN_EVAL
        self.photos = [Image.fromarray(_skimage_photo(n)) for n in self.names]
        self.crops_per_epoch = crops_per_epoch
        self.items: list[tuple[str, Image.Image]] = []
        if split == "eval":
            self.items = self._eval_grid() if eval_view == "grid" else self._eval_protocol()

    def _eval_protocol(self) -> list[tuple[str, Image.Image]]:
        return [(name, eval_transform(photo, self.size)) for name, photo in zip(self.names, self.photos)]

    def _eval_grid(self) -> list[tuple[str, Image.Image]]:
        s = self.size
        crops = []
        for name, photo in zip(self.names, self.photos):
            big = resize_shorter(photo, EVAL_GRID_SCALE * s)
            cols, rows = big.width // s, big.height // s
            x0, y0 = (big.width - cols * s) // 2, (big.height - rows * s) // 2  # grid centred
            for r in range(rows):
                for c in range(cols):
                    box = (x0 + c * s, y0 + r * s, x0 + (c + 1) * s, y0 + (r + 1) * s)
                    crops.append((f"{name}_r{r}c{c}", big.crop(box)))
        return crops

    def __len__(self) -> int:
        return self.crops_per_epoch if self.split == "train" else len(self.items)

    def __getitem__(self, key):
        epoch, index = split_key(key)
        if self.split == "eval":
            name, img = self.items[index]
            return {"name": name, "rgb": to_tensor(img)}
        photo = self.photos[index % len(self.photos)]
        rng = np.random.default_rng([self.seed, epoch, index])
        return to_tensor(
            draw_crop(photo.size, self.size, rng, self.crop, self.scale, self.hflip).apply(photo)
        )


# ---------------------------------------------------------------- evaluation images
def _unique_names(root: Path, files: list[Path]) -> list[str]:
    """Relative path without extension, ``/`` -> ``__``; where two files would share a name
    (``x.jpg`` and ``x.png``) both keep their extension (``x_jpg``, ``x_png``), and where that is
    not enough (``x.jpg`` and ``x.JPG``, ``a/b.jpg`` and ``a__b.jpg``) a hash of the path is added.
    Evaluation writes predictions and ground truth under these names: a repeat would overwrite."""
    relative = [relative_name(f, root) for f in files]
    stems = [r.rsplit(".", 1)[0].replace("/", "__") for r in relative]
    names = _disambiguate(stems, [f"{s}_{f.suffix.lstrip('.').lower()}" for s, f in zip(stems, files)])
    path_hashes = [hashlib.sha1(r.encode()).hexdigest()[:8] for r in relative]
    names = _disambiguate(names, [f"{n}_{h}" for n, h in zip(names, path_hashes)])
    if len(set(names)) != len(names):
        raise DatasetError(f"{root}: cannot give its evaluation images distinct names")
    return names


def _disambiguate(names: list[str], longer: list[str]) -> list[str]:
    counts = collections.Counter(names)
    return [name if counts[name] == 1 else alternative for name, alternative in zip(names, longer)]


class EvalImages(torch.utils.data.Dataset):
    """Evaluation images under the protocol (module docstring): ``{"name": str, "rgb": uint8
    (3, S, S)}``, names unique.

    ``spec``: ``builtin:skimage`` (the held-out photo's grid of crops), a folder / single image
    file / file list (every usable image, or ``files`` when given, or ``screening.usable`` when the
    caller screened them already), screened in full whatever ``data.screening`` says (a metric
    cannot drop an image half-way): unreadable files skipped with a warning, greyscale ones left
    out, ``DatasetError`` above ``max_bad_fraction``; ``cache`` and ``workers`` as for
    :func:`~gan_colorize.data.index.screen`. A file that fails after screening raises
    :class:`BadImageError`: the evaluation set is never silently changed.
    """

    def __init__(
        self,
        spec: str,
        size: int,
        files: list[Path] | None = None,
        min_chroma: float = DataConfig.min_chroma,
        max_bad_fraction: float = DataConfig.max_bad_fraction,
        screening: Screening | None = None,
        cache: str | Path | None = None,
        workers: int = 0,
    ):
        self.spec, self.size = str(spec), size
        self.builtin: BuiltinSkimage | None = None
        self.files: list[Path] = []
        self.names: list[str] = []
        if self.spec == BUILTIN:
            self.builtin = BuiltinSkimage("eval", size)
            self.names = [name for name, _ in self.builtin.items]
            return
        self.root = list_root(spec) if is_file_list(spec) else Path(spec)
        if screening is None:
            files = source_files(spec) if files is None else list(files)
            where = f"{spec} (evaluation)"
            screening = screen(files, min_chroma, max_bad_fraction, where, cache, "full", workers)
        self.screening = screening
        self.files = list(screening.usable)
        require_usable(screening, f"{self.root} (evaluation)")
        self.names = _unique_names(self.root, self.files)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index) -> dict:
        index = split_key(index)[1]
        if self.builtin is not None:
            return self.builtin[index]
        with ImageReader(self.files[index]) as reader:
            img = to_rgb_image(reader.decode(), self.files[index])
        return {"name": self.names[index], "rgb": to_tensor(eval_transform(img, self.size))}


# ---------------------------------------------------------------- from the config
def source_files(spec: str | Path, cache: str | Path | None = None) -> list[Path]:
    """The image files of a folder (recursive; ``cache``: its cached listing, see
    ``gan_colorize.data.files.list_image_files``), a single image file, or a file list."""
    return read_file_list(spec) if is_file_list(spec) else list_image_files(spec, cache)


def _cache(data_cfg: DataConfig, spec: str | Path, kind: str) -> Path | None:
    if not data_cfg.file_list_cache:
        return None
    return default_cache_path(spec, kind, data_cfg.index_dir)


def _train_from_files(data_cfg: DataConfig, seed: int):
    """A folder or a file list: the index (built once, cached), the held-out split, the datasets."""
    spec = data_cfg.train
    root = list_root(spec) if is_file_list(spec) else Path(spec)
    listing = _cache(data_cfg, spec, "filelists") if Path(spec).is_dir() else None
    files = source_files(spec, listing)
    if not files:
        raise DatasetError(f"{spec}: no image files (looked for {', '.join(_extensions())})")
    index, workers = _cache(data_cfg, spec, "index"), data_cfg.index_workers
    screening = screen(
        files, data_cfg.min_chroma, data_cfg.max_bad_fraction, spec, index, data_cfg.screening, workers
    )
    require_usable(screening, spec)  # before the split, which would hide the counts
    if data_cfg.eval is None:
        train_files, eval_files = split_files(root, screening.usable, data_cfg.eval_fraction)
        if screening.usable and not (train_files and eval_files):
            # a folder too small for the split: rather than no training or no evaluation at all,
            # the missing side borrows (evaluation: the first file), and says so
            log.warning(
                "%s: data.eval_fraction=%s puts %d of %d usable files on the evaluation side; "
                "training and evaluation share images",
                spec, data_cfg.eval_fraction, len(eval_files), len(screening.usable),
            )  # fmt: skip
            train_files = train_files or screening.usable
            eval_files = eval_files or screening.usable[:1]
        # screened in full already, or (headers) decoded in full now: 5 % of the files
        screened = Screening(eval_files) if screening.mode == "full" else None
        evaluation = EvalImages(
            spec, data_cfg.size, eval_files, data_cfg.min_chroma, data_cfg.max_bad_fraction,
            screened, index, workers,
        )  # fmt: skip
        screening = Screening(train_files, screening.greyscale, screening.skipped, screening.mode)
    else:
        evaluation = _eval_from_spec(data_cfg.eval, data_cfg)
    train = ImageFolderDataset(
        root, data_cfg.size, data_cfg.crop, data_cfg.scale, data_cfg.hflip, seed,
        min_chroma=data_cfg.min_chroma, screening=screening,
    )  # fmt: skip
    return train, evaluation


def _train_builtin(data_cfg: DataConfig, seed: int):
    d = data_cfg
    train = BuiltinSkimage("train", d.size, d.crops_per_epoch, d.crop, d.scale, d.hflip, seed)
    return train, _eval_from_spec(d.eval or BUILTIN, d)


def _train_shards(data_cfg: DataConfig, seed: int):
    from gan_colorize.data.shards import ShardDataset

    if data_cfg.eval is None:
        raise DatasetError(
            f"{data_cfg.train}: shards have no held-out part; set data.eval to a folder or file list"
        )
    d = data_cfg
    train = ShardDataset(d.train, d.size, d.crop, d.scale, d.hflip, seed, d.min_chroma, d.shard_index)
    return train, _eval_from_spec(d.eval, d)


def source_kind(spec: str) -> str:
    """Which of :data:`TRAIN_SOURCES` a ``data.train`` value names."""
    from gan_colorize.data.shards import is_shard_spec

    if spec == BUILTIN:
        return "builtin"
    return "shards" if is_shard_spec(spec) else "files"


# data.train's kinds of source -> (data_cfg, seed) -> (training set, evaluation set)
TRAIN_SOURCES = {"builtin": _train_builtin, "files": _train_from_files, "shards": _train_shards}


def build_datasets(data_cfg: DataConfig, seed: int = 0):
    """(training dataset, evaluation dataset) for a :class:`gan_colorize.config.DataConfig`.

    ``data_cfg.train``: ``builtin:skimage``, a folder, a file list or shards (:func:`source_kind`).
    ``data_cfg.eval`` None: the held-out part of ``train`` (builtin: the held-out photo; a folder
    or list: the stable hash split of ``data_cfg.eval_fraction``, see
    ``gan_colorize.data.files.split_files``; shards: an error). Called on the main process first
    in a distributed run: it writes the index, which the other ranks then read.
    """
    return TRAIN_SOURCES[source_kind(data_cfg.train)](data_cfg, seed)


def _eval_from_spec(spec: str, data_cfg: DataConfig) -> EvalImages:
    cache = _cache(data_cfg, spec, "index") if spec != BUILTIN else None
    return EvalImages(
        spec, data_cfg.size, min_chroma=data_cfg.min_chroma, max_bad_fraction=data_cfg.max_bad_fraction,
        cache=cache, workers=data_cfg.index_workers,
    )  # fmt: skip
