"""Training and evaluation datasets. Workers decode and crop; items are uint8 RGB tensors
(3, S, S), and the conversion to Lab happens batched on the training device.

Training items are addressed by ``(epoch, index)``: the crop and the flip are drawn from
``np.random.default_rng([seed, epoch, index])``, so an item is the same in any worker and any
process, which is what makes a resumed run identical to an uninterrupted one.

The evaluation protocol (also in ``eval/README.md``): resize the shorter side to S (bicubic, with
PIL's antialiasing), centre-crop S x S. ``builtin:skimage`` holds out one photo (``chelsea``) and
serves a grid of S x S crops of it, resized so that its shorter side is 4 S.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gan_colorize.data.decode import BadImageError, chroma_level, load_rgb
from gan_colorize.data.files import list_image_files, split_files

log = logging.getLogger(__name__)

BUILTIN = "builtin:skimage"
# chelsea is held out: a subject (a cat) and palette that no training photo shares, so the score
# measures generalisation; the two motorcycle views are near duplicates and must stay together.
BUILTIN_TRAIN = ("astronaut", "coffee", "rocket", "motorcycle_left", "motorcycle_right")
BUILTIN_EVAL = ("chelsea",)
EVAL_GRID_SCALE = 4  # the held-out photo's shorter side becomes 4 S: 4 rows of S x S crops


class DatasetError(ValueError):
    """A dataset that cannot be used (too many unreadable files, no usable image)."""


# ---------------------------------------------------------------- transforms
def to_tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def resize_shorter(img: Image.Image, side: int) -> Image.Image:
    w, h = img.size
    scale = side / min(w, h)
    new = (max(side, round(w * scale)), max(side, round(h * scale)))
    return img if new == img.size else img.resize(new, Image.Resampling.BICUBIC, reducing_gap=3.0)


def eval_transform(img: Image.Image, size: int) -> Image.Image:
    """The evaluation protocol: shorter side to ``size``, centre crop ``size`` x ``size``."""
    img = resize_shorter(img, size)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return img.crop((left, top, left + size, top + size))


def random_crop(
    img: Image.Image, size: int, rng: np.random.Generator, mode: str, scale: tuple[float, float], hflip: bool
) -> Image.Image:
    """A training crop. ``random``: a size x size window at native scale; ``random_resized``: a window
    of area fraction U(scale) and aspect ratio log-U(3/4, 4/3) (torchvision's RandomResizedCrop)
    resized to size x size. Images smaller than the crop are upscaled (shorter side to size) first."""
    if min(img.size) < size:
        img = resize_shorter(img, size)
    w, h = img.size
    if mode == "random":
        cw = ch = size
    else:
        area = w * h * rng.uniform(*scale)
        ratio = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        cw = int(round(min(w, max(size // 4, np.sqrt(area * ratio)))))
        ch = int(round(min(h, max(size // 4, np.sqrt(area / ratio)))))
    left = int(rng.integers(0, w - cw + 1))
    top = int(rng.integers(0, h - ch + 1))
    crop = img.crop((left, top, left + cw, top + ch))
    if crop.size != (size, size):
        crop = crop.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)
    if hflip and rng.random() < 0.5:
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return crop


def split_key(key) -> tuple[int, int]:
    if isinstance(key, (tuple, list)):
        return int(key[0]), int(key[1])
    return 0, int(key)


# ---------------------------------------------------------------- screening
@dataclass
class Screening:
    """What a scan of the files found: usable colour images, greyscale ones, unreadable ones."""

    usable: list[Path] = field(default_factory=list)
    greyscale: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.usable) + len(self.greyscale) + len(self.skipped)


def screen(files: list[Path], min_chroma: float, max_bad_fraction: float, where: str) -> Screening:
    """Decode every file once: unreadable files are skipped with a warning naming them; images
    without chroma are left out as greyscale (Zhang et al. removed greyscale ImageNet images);
    more than ``max_bad_fraction`` unreadable stops here, before any training."""
    result = Screening()
    for path in files:
        try:
            rgb = load_rgb(path)
        except BadImageError as exc:
            log.warning("skipping %s", exc)
            result.skipped.append((path, exc.reason))
            continue
        if min_chroma > 0 and chroma_level(rgb) < min_chroma:
            result.greyscale.append(path)
        else:
            result.usable.append(path)
    if result.skipped:
        log.warning("%s: %d of %d files unreadable", where, len(result.skipped), result.total)
    if result.greyscale:
        log.info("%s: %d greyscale images left out of colour training", where, len(result.greyscale))
    if result.total and len(result.skipped) / result.total > max_bad_fraction:
        first = "; ".join(f"{p.name}: {r}" for p, r in result.skipped[:5])
        raise DatasetError(
            f"{where}: {len(result.skipped)} of {result.total} files are unreadable, more than "
            f"data.max_bad_fraction={max_bad_fraction}; first: {first}"
        )
    return result


# ---------------------------------------------------------------- datasets
class _CropSource(torch.utils.data.Dataset):
    """Items ``(epoch, index)`` -> a random crop of image ``index``; subclasses load the image."""

    def __init__(self, size: int, crop: str, scale, hflip: bool, seed: int):
        self.size, self.crop, self.scale, self.hflip, self.seed = size, crop, tuple(scale), hflip, seed

    def image(self, index: int) -> Image.Image:
        raise NotImplementedError

    def __getitem__(self, key) -> torch.Tensor:
        epoch, index = split_key(key)
        rng = np.random.default_rng([self.seed, epoch, index])
        img = self.image(index)
        return to_tensor(random_crop(img, self.size, rng, self.crop, self.scale, self.hflip))


class ImageFolderDataset(_CropSource):
    """Random training crops from a folder tree of images (screened at construction)."""

    def __init__(
        self,
        root: str | Path,
        size: int,
        crop: str = "random_resized",
        scale=(0.35, 1.0),
        hflip: bool = True,
        seed: int = 0,
        files: list[Path] | None = None,
        min_chroma: float = 4.0,
        max_bad_fraction: float = 0.05,
        screening: Screening | None = None,
    ):
        super().__init__(size, crop, scale, hflip, seed)
        self.root = Path(root)
        if screening is None:
            files = list_image_files(self.root) if files is None else files
            screening = screen(files, min_chroma, max_bad_fraction, str(self.root))
        self.screening = screening
        self.files = list(screening.usable)
        if not self.files:
            raise DatasetError(f"{self.root}: no usable colour image ({screening.total} files looked at)")
        self._warned: set[int] = set()

    @property
    def skipped(self) -> list[tuple[Path, str]]:
        return self.screening.skipped

    @property
    def greyscale(self) -> list[Path]:
        return self.screening.greyscale

    def __len__(self) -> int:
        return len(self.files)

    def image(self, index: int) -> Image.Image:
        for attempt in range(len(self.files)):
            i = (index + attempt) % len(self.files)
            try:
                return Image.fromarray(load_rgb(self.files[i]))
            except BadImageError as exc:  # the file changed after screening: use the next one
                if i not in self._warned:
                    self._warned.add(i)
                    log.warning("using another image instead of %s", exc)
        raise DatasetError(f"{self.root}: no image can be read any more")


def _skimage_photo(name: str) -> np.ndarray:
    from skimage import data

    if name.startswith("motorcycle_"):
        left, right, _ = data.stereo_motorcycle()
        return left if name.endswith("left") else right
    return getattr(data, name)()


class BuiltinSkimage(_CropSource):
    """``builtin:skimage``: the six colour photographs inside the scikit-image wheel (no download).

    ``split="train"``: ``crops_per_epoch`` random crops per epoch over five photos;
    ``split="eval"``: the grid of crops of the held-out photo (see the module docstring).
    """

    def __init__(
        self,
        split: str,
        size: int,
        crops_per_epoch: int = 1024,
        crop: str = "random_resized",
        scale=(0.35, 1.0),
        hflip: bool = True,
        seed: int = 0,
    ):
        super().__init__(size, crop, scale, hflip, seed)
        if split not in ("train", "eval"):
            raise ValueError(f"split must be train or eval, got {split!r}")
        self.split = split
        self.names = BUILTIN_TRAIN if split == "train" else BUILTIN_EVAL
        self.photos = [Image.fromarray(_skimage_photo(n)) for n in self.names]
        self.crops_per_epoch = crops_per_epoch
        self.grid = self._eval_grid() if split == "eval" else []

    def _eval_grid(self) -> list[tuple[str, Image.Image]]:
        crops = []
        for name, photo in zip(self.names, self.photos):
            big = resize_shorter(photo, EVAL_GRID_SCALE * self.size)
            w, h = big.size
            cols, rows = w // self.size, h // self.size
            x0, y0 = (w - cols * self.size) // 2, (h - rows * self.size) // 2
            for r in range(rows):
                for c in range(cols):
                    box = (
                        x0 + c * self.size,
                        y0 + r * self.size,
                        x0 + (c + 1) * self.size,
                        y0 + (r + 1) * self.size,
                    )
                    crops.append((f"{name}_r{r}c{c}", big.crop(box)))
        return crops

    def __len__(self) -> int:
        return self.crops_per_epoch if self.split == "train" else len(self.grid)

    def image(self, index: int) -> Image.Image:
        return self.photos[index % len(self.photos)]

    def __getitem__(self, key):
        if self.split == "train":
            return super().__getitem__(key)
        name, img = self.grid[split_key(key)[1]]
        return {"name": name, "rgb": to_tensor(img)}


class EvalImages(torch.utils.data.Dataset):
    """Evaluation images under the protocol: items ``{"name": str, "rgb": uint8 (3, S, S)}``.

    ``spec``: ``builtin:skimage`` (the held-out photo's crops) or a folder (every usable image, or
    ``files`` when given); names are the relative paths without extension, ``/`` -> ``__``.
    """

    def __init__(
        self,
        spec: str,
        size: int,
        files: list[Path] | None = None,
        min_chroma: float = 4.0,
        max_bad_fraction: float = 0.05,
    ):
        self.spec, self.size = spec, size
        if spec == BUILTIN:
            self.builtin = BuiltinSkimage("eval", size)
            self.files = []
            return
        self.builtin = None
        root = Path(spec)
        files = list_image_files(root) if files is None else files
        self.files = screen(files, min_chroma, max_bad_fraction, f"{root} (evaluation)").usable
        if not self.files:
            raise DatasetError(f"{root}: no usable colour image for evaluation")
        self.root = root
        self.names = [self._name(f) for f in self.files]

    def _name(self, path: Path) -> str:
        rel = path.relative_to(self.root) if self.root.is_dir() else Path(path.name)
        return rel.with_suffix("").as_posix().replace("/", "__")

    def __len__(self) -> int:
        return len(self.builtin) if self.builtin is not None else len(self.files)

    def __getitem__(self, index) -> dict:
        index = split_key(index)[1]
        if self.builtin is not None:
            return self.builtin[index]
        img = eval_transform(Image.fromarray(load_rgb(self.files[index])), self.size)
        return {"name": self.names[index], "rgb": to_tensor(img)}


def build_datasets(data_cfg, seed: int = 0):
    """(training dataset, evaluation dataset) for a :class:`gan_colorize.config.DataConfig`."""
    size, crop, scale, hflip = data_cfg.size, data_cfg.crop, data_cfg.scale, data_cfg.hflip
    if data_cfg.train == BUILTIN:
        train = BuiltinSkimage("train", size, data_cfg.crops_per_epoch, crop, scale, hflip, seed)
        evaluation = EvalImages(data_cfg.eval or BUILTIN, size)
        return train, evaluation
    root = Path(data_cfg.train)
    cache = None
    if data_cfg.file_list_cache:
        import hashlib

        key = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:16]
        cache = Path.home() / ".cache" / "gan_colorize" / "filelists" / f"{key}.json"
    files = list_image_files(root, cache)
    screening = screen(files, data_cfg.min_chroma, data_cfg.max_bad_fraction, str(root))
    if data_cfg.eval is None:
        train_files, eval_files = split_files(root, screening.usable, data_cfg.eval_fraction)
        if not eval_files:  # a tiny folder: evaluate on what it has rather than on nothing
            eval_files = screening.usable[:1]
        screening = Screening(train_files, screening.greyscale, screening.skipped)
        evaluation = EvalImages(str(root), size, files=eval_files, min_chroma=0.0)
    else:
        evaluation = EvalImages(data_cfg.eval, size, min_chroma=data_cfg.min_chroma)
    train = ImageFolderDataset(root, size, crop, scale, hflip, seed, screening=screening)
    return train, evaluation
