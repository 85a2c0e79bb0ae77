"""Score a run (or an outside method's images) under the evaluation protocol (``protocol.py``).

A run's evaluation on one dataset writes, under ``RUN/eval/<dataset>/`` (``RunDir.eval_dir``)::

    predictions/<name>.png   the colorization (Lab(L_gt, ab_pred) -> sRGB uint8)
    gt/<name>.png            the ground truth, resized and centre-cropped by the protocol
    input/<name>.png         what the model saw: L only, as a neutral grey image
    metrics.json, references.json   the result rows (``results.py`` owns their names and fields)

Which images are scored is resolved once, by :func:`resolve_images`.

The metrics are always computed from the PNG files (lossless), by the same code that scores an
outside method's folder (:func:`evaluate_folders`), so the two are measured identically.

In a result row (``results.result_record``), ``data_path`` is the evaluated folder as an absolute
path (``builtin:skimage`` as it is) and ``gt_sha256`` a digest of the ground-truth images
themselves (:func:`ground_truth_digest`): two
results with one dataset name are on the same images only when their digests are equal, which the
report checks. A metric that could not be computed (its pretrained weights are missing or
unreadable, or the images do not allow it: one image for FID, images under 31 px for LPIPS) is
listed in ``missing`` with its report cell and in ``missing_detail`` with the full message (the
others are computed), and makes the result ``partial``.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gan_colorize.data.files import missing_folder_message
from gan_colorize.evaluation.protocol import (
    DEFAULT_BATCH_SIZE,
    EvalSet,
    NonFiniteOutputError,
    colorize_batch,
    describe_protocol,
    greyscale_batch,
    load_eval_set,
)
from gan_colorize.evaluation.results import (
    GREYSCALE_INPUT,
    GROUND_TRUTH,
    ground_truth_row,
    is_folders_result,
    recorded_metrics,
    remove_evaluation,
    result_record,
    write_evaluation,
    write_json,
)
from gan_colorize.rundir import RunDir, UnsafeNameError, absent, check_name, safe_name

log = logging.getLogger(__name__)

PRED_SUBDIR = "predictions"
GT_SUBDIR = "gt"
INPUT_SUBDIR = "input"
LIST_AT_MOST = 10  # names listed in a mismatch error
ORIENTATION_TAG = 0x0112  # EXIF Orientation; values 5-8 swap width and height (EXIF 2.3, table 6)
ROTATED_ORIENTATIONS = (5, 6, 7, 8)


class EvaluationError(ValueError):
    """Evaluation inputs that cannot be scored (names the folder, file or option and the problem)."""


# ---------------------------------------------------------------- metric names
def metric_names(metrics: str | Iterable[str] | None) -> list[str]:
    """``None`` (the defaults), ``"a,b"`` or a list -> checked registered names, in order, once each."""
    from gan_colorize.metrics import DEFAULT_METRICS
    from gan_colorize.registry import METRICS

    if metrics is None:
        return list(DEFAULT_METRICS)
    if isinstance(metrics, str):
        metrics = metrics.split(",")
    names = list(dict.fromkeys(m.strip() for m in metrics if m and m.strip()))
    if not names:
        raise EvaluationError("no metrics given")
    for name in names:
        METRICS.get(name)  # RegistryError: unknown metric, with the closest name
    return names


# ---------------------------------------------------------------- image files
def list_images(folder: str | Path) -> dict[str, Path]:
    """The images directly in ``folder`` by file stem (the data sets' image extensions; hidden skipped)."""
    from gan_colorize.data.files import IMAGE_EXTENSIONS, is_image_name

    folder = Path(folder)
    if not folder.is_dir():
        raise EvaluationError(f"{folder} is not a folder")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not is_image_name(path) or not path.is_file():
            continue
        if path.stem in found:
            raise EvaluationError(
                f"{folder}: two images named {path.stem!r}: {found[path.stem].name} and {path.name}"
            )
        found[path.stem] = path
    if not found:
        raise EvaluationError(f"{folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return found


def png_stem(name: str, taken: set[str]) -> str:
    """An evaluation image's name (EvalImages: relative path, no extension) as a unique, file-safe stem."""
    stem = name.strip("/").replace("/", "__")
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).lstrip(".") or "image"
    unique, k = stem, 2
    while unique in taken:  # x.jpg and x.png in one folder
        unique, k = f"{stem}_{k}", k + 1
    taken.add(unique)
    return unique


def save_png(path: Path, rgb_u8: torch.Tensor) -> None:
    """A uint8 (3, H, W) tensor as an RGB PNG (lossless: the metrics read these files back)."""
    Image.fromarray(rgb_u8.permute(1, 2, 0).contiguous().numpy(), mode="RGB").save(path)


def read_rgb(path: Path) -> torch.Tensor:
    """An image file -> uint8 (3, H, W), decoded as the data sets decode (EXIF, greyscale -> RGB)."""
    from gan_colorize.data.decode import load_rgb

    return torch.from_numpy(np.array(load_rgb(path))).permute(2, 0, 1).contiguous()  # a writable copy


def pair_batches(
    pairs: list[tuple[Path, Path]], batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(prediction, ground truth) uint8 batches read from files; a batch ends where the size changes."""
    preds: list[torch.Tensor] = []
    gts: list[torch.Tensor] = []
    for pred_path, gt_path in pairs:
        pred, gt = read_rgb(pred_path), read_rgb(gt_path)
        if pred.shape != gt.shape:
            raise EvaluationError(
                f"{pred_path}: {pred.shape[2]}x{pred.shape[1]} (WxH) but its ground truth {gt_path} is "
                f"{gt.shape[2]}x{gt.shape[1]}; the protocol fixes the size, so predictions are not resized: "
                f"produce them at the ground truth's size"
            )
        if preds and (gt.shape != gts[-1].shape or len(preds) == batch_size):
            yield torch.stack(preds), torch.stack(gts)
            preds, gts = [], []
        preds.append(pred)
        gts.append(gt)
    if preds:
        yield torch.stack(preds), torch.stack(gts)


def score_pairs(
    pairs: list[tuple[Path, Path]], metrics: list[str], device: str, batch_size: int
) -> tuple[dict, dict, dict]:
    """compute_metrics over files, in the order given (sorted names: cached ground-truth features hit)."""
    from gan_colorize.metrics import compute_metrics

    return compute_metrics(metrics, pair_batches(pairs, batch_size), device)


def ground_truth_digest(files: Iterable[Path]) -> str:
    """sha256 over the ground-truth images' names and decoded pixels, in name order: what a result
    was scored against. Equal digests, same images; a dataset name alone (a folder's base name)
    does not say. Pixels, not file bytes: another PNG encoder (a Pillow upgrade) writes other bytes
    for the same image."""
    digest = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.name):
        with Image.open(path) as img:
            pixels = np.asarray(img)
        # name, dtype and shape first: they keep the stream unambiguous
        digest.update(f"{path.name}\n{pixels.dtype}\n{pixels.shape}\n".encode())
        digest.update(np.ascontiguousarray(pixels).tobytes())
    return digest.hexdigest()


def plain_name(name: object, what: str) -> str:
    """``name`` checked to be one plain path component (``rundir.check_name``): approaches and
    datasets name folders (``RUN/eval/<dataset>``) and may come from files made elsewhere."""
    try:
        return check_name(name, what)
    except UnsafeNameError as exc:
        raise EvaluationError(str(exc)) from None


# ---------------------------------------------------------------- runs
def check_device(device: str | None) -> str:
    """``device`` checked, or a GPU when there is one (None)."""
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise EvaluationError(
            f"device {device!r} requested but CUDA is not available here (use --device cpu)"
        )
    return str(device)


@dataclass(frozen=True)
class ImageSource:
    """Which images an evaluation scores, resolved once (:func:`resolve_images`) for opening them,
    naming the dataset, describing the protocol and checking that a result is current."""

    data: str  # what is read: a folder, an image file or builtin:skimage
    eval_fraction: float | None  # the share of ``data`` held out (None: every image; builtin: its photo)
    split: object | None  # the DataConfig whose hash split holds the share out (None: every image)
    own_holdout: bool = False  # the run's own held-out images (of its data.train)

    @property
    def description(self) -> str:
        """What was evaluated, for metrics.json's ``data``."""
        if self.eval_fraction is not None:
            return f"{self.data} (held-out share, eval_fraction={self.eval_fraction:g})"
        return self.data


def resolve_images(config, data: str | None = None, eval_fraction: float | None = None) -> ImageSource:
    """``data`` (its held-out share when ``eval_fraction``), else the run's evaluation data:
    ``data.eval`` when set, else the held-out share of ``data.train``."""
    from gan_colorize.config import DataConfig
    from gan_colorize.data import BUILTIN

    if data is not None:
        split = DataConfig(train=data, eval_fraction=eval_fraction) if eval_fraction is not None else None
        own = False
    elif config.data.eval is not None:
        data, split, own = config.data.eval, None, False
    else:
        data, eval_fraction, split, own = config.data.train, config.data.eval_fraction, config.data, True
    if data == BUILTIN:  # always its own held-out photo, whatever the fraction
        eval_fraction = None
    return ImageSource(data, eval_fraction, split, own)


def open_images(source: ImageSource, size: int):
    """The protocol's images of ``source`` at ``size``."""
    from gan_colorize.data import EvalImages

    if source.split is not None:
        return holdout_images(source.split, size)
    return EvalImages(source.data, size)


def holdout_images(data_cfg, size: int):
    """The images that training on the folder ``data_cfg.train`` holds out, under the protocol.

    The same images as ``build_datasets``' evaluation set (the hash split of
    ``gan_colorize.data.files.split_files`` commutes with screening), but only the held-out files
    are decoded, so a run trained on a large tree is evaluated without reading all of it.
    """
    from gan_colorize.data import BUILTIN, EvalImages, build_datasets, list_image_files
    from gan_colorize.data.files import split_files

    if data_cfg.train != BUILTIN:
        root = Path(data_cfg.train)
        _, held_out = split_files(root, list_image_files(root), data_cfg.eval_fraction)
        if held_out:
            return EvalImages(
                str(root), size, files=held_out,
                min_chroma=data_cfg.min_chroma, max_bad_fraction=data_cfg.max_bad_fraction,
            )  # fmt: skip
    # builtin:skimage, or a folder too small to hold a file out (training then shows it one)
    return build_datasets(replace(data_cfg, size=size))[1]


def resolve_data(data: str) -> str:
    """An image folder (or file) as an absolute path, for metrics.json's ``data_path``; builtin data
    as it is. A path that does not exist is an error that says where it was looked for and what
    to do."""
    if data.startswith("builtin:"):
        return data
    path = Path(data).expanduser()
    if not path.exists():
        raise EvaluationError(missing_folder_message(data))
    return str(path.resolve())


def path_hash(data: str) -> str:
    """8 hex digits of the sha256 of the data's absolute path: /a/photos and /b/photos differ."""
    return hashlib.sha256(str(Path(data).expanduser().resolve()).encode()).hexdigest()[:8]


def default_dataset_name(source: ImageSource, size: int) -> str:
    """The name of an ad-hoc evaluation (not a named set): the data's folder name, a hash of its
    absolute path (two folders of one name are two datasets), and the size."""
    if source.data.startswith("builtin:"):  # builtin:skimage's held-out part is its held-out photo
        return f"{safe_name(source.data)}_{size}px"
    holdout = "_holdout" if source.own_holdout else ""
    return f"{safe_name(source.data)}{holdout}_{path_hash(source.data)}_{size}px"


def check_own_folder(folder: Path, root: Path) -> None:
    """``folder`` (RUN/eval/<dataset>) and what evaluation clears in it are real folders inside the
    run, not links: a run folder from elsewhere could link them anywhere, and clearing follows."""
    parts = [root / "eval", folder] + [folder / sub for sub in (PRED_SUBDIR, GT_SUBDIR, INPUT_SUBDIR)]
    for path in parts:
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            raise EvaluationError(
                f"{path} is a symbolic link or not a folder: evaluation writes and clears only folders "
                "of the run's own (remove it if the run folder is yours)"
            )


def clear_eval_dir(folder: Path) -> None:
    """Remove what a previous evaluation wrote here (and only that), result files first."""
    remove_evaluation(folder)
    for sub in (PRED_SUBDIR, GT_SUBDIR, INPUT_SUBDIR):
        shutil.rmtree(folder / sub, ignore_errors=True)


def iter_items(images) -> Iterator[dict]:
    """Items of a map-style data set (``len`` and indexing, in index order) or of an iterable."""
    if hasattr(images, "__len__") and hasattr(images, "__getitem__"):
        for i in range(len(images)):
            yield images[i]
    else:
        yield from images


def write_eval_images(
    generator, images, folder: Path, batch_size: int, temperature: float, source: str | Path
) -> list[str]:
    """Colorize every image; write predictions/, gt/, input/ PNGs; return the PNG names, sorted.
    ``source``: the generator's checkpoint, named if its predictions are not finite."""
    dirs = [folder / PRED_SUBDIR, folder / GT_SUBDIR, folder / INPUT_SUBDIR]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    names: list[str] = []

    def flush(batch: list[dict]) -> None:
        gt = torch.stack([item["rgb"] for item in batch])
        outputs = (colorize_batch(generator, gt, temperature, source), gt, greyscale_batch(gt))
        for i, item in enumerate(batch):
            file = png_stem(str(item["name"]), taken) + ".png"
            for d, images_u8 in zip(dirs, outputs):
                save_png(d / file, images_u8[i])
            names.append(file)

    batch: list[dict] = []
    for item in iter_items(images):
        if batch and (len(batch) == batch_size or item["rgb"].shape != batch[0]["rgb"].shape):
            flush(batch)
            batch = []
        batch.append(item)
    if batch:
        flush(batch)
    if not names:
        raise EvaluationError("the evaluation data yielded no images")
    return sorted(names)


@dataclass
class EvalTarget:
    """What an evaluation of a run with ``config`` scores: resolved once, here, for evaluate_run
    and for a study's check that a run's metrics.json is still current."""

    source: ImageSource
    size: int
    dataset: str  # the eval/<dataset> folder name
    metrics: list[str]
    batch_size: int | None  # the set's, when it names one
    protocol: dict
    data_path: str  # source.data as an absolute path (builtin data as it is): it exists


def resolve_target(
    config,
    data: str | None = None,
    size: int | None = None,
    metrics: str | Iterable[str] | None = None,
    eval_set: str | Path | EvalSet | None = None,
) -> EvalTarget:
    """An evaluation set fixes data, size, the default metrics and the batch size; otherwise
    ``data`` defaults to the run's evaluation data and ``size`` to its ``data.size``. Data that
    does not exist is an error here, before anything is evaluated or removed."""
    eval_fraction = batch_size = dataset = None
    if eval_set is not None:
        es = eval_set if isinstance(eval_set, EvalSet) else load_eval_set(eval_set)
        data, size, dataset, eval_fraction = es.data, es.size, es.name, es.eval_fraction
        metrics = metrics if metrics is not None else es.metrics
        batch_size = es.batch_size
    size = size or config.data.size
    source = resolve_images(config, data, eval_fraction)
    dataset = dataset or default_dataset_name(source, size)
    plain_name(dataset, "evaluation set name")  # an EvalSet made in code is not checked on reading
    return EvalTarget(
        source=source, size=size, dataset=dataset, metrics=metric_names(metrics), batch_size=batch_size,
        protocol=describe_protocol(size, config.loss.temperature, source.data),
        data_path=resolve_data(source.data),
    )  # fmt: skip


def evaluate_run(
    run_dir: str | Path,
    data: str | None = None,
    size: int | None = None,
    metrics: str | Iterable[str] | None = None,
    device: str | None = None,
    eval_set: str | Path | EvalSet | None = None,
    batch_size: int | None = None,
    trust_code: bool = False,
) -> dict:
    """Evaluate a run's generator (the EMA weights when the run keeps them) on one dataset.

    ``eval_set`` (a name in eval/sets, a .yaml path or an EvalSet) fixes data, size and the default
    metrics and batch size; otherwise ``data`` defaults to the run's evaluation data and ``size`` to
    its ``data.size``. ``trust_code``: build an unregistered ``module:Class`` generator named by the
    run's config (see :func:`gan_colorize.models.io.load_generator`). Returns the metrics.json
    content plus ``metrics_file`` and ``references_file`` (the paths written).
    """
    from gan_colorize.models import load_generator

    run = RunDir(run_dir)
    if not run.root.is_dir():
        raise EvaluationError(f"run folder {run.root} {absent(run.root, want='folder')}")
    device = check_device(device)
    if eval_set is not None and (data is not None or size is not None):
        raise EvaluationError(
            "give an evaluation set or data/size, not both (the set fixes its data and size)"
        )
    metric_names(metrics)  # an unknown metric fails before any loading
    loaded = load_generator(run.root, device, trust_code=trust_code)
    config = loaded.config
    approach = plain_name(config.run.name or run.name, f"{loaded.path}: run.name")
    target = resolve_target(config, data, size, metrics, eval_set)  # data errors before anything is removed
    batch_size = batch_size or target.batch_size or DEFAULT_BATCH_SIZE
    temperature = config.loss.temperature  # used by "bins" generators only
    folder = run.eval_dir(target.dataset)
    log.info("evaluating %s on %s (%d px) into %s", run.root, target.dataset, target.size, folder)

    images = open_images(target.source, target.size)
    check_own_folder(folder, run.root)
    clear_eval_dir(folder)
    try:
        files = write_eval_images(loaded.module, images, folder, batch_size, temperature, loaded.path)
    except NonFiniteOutputError:
        clear_eval_dir(folder)  # no half-written predictions of a broken checkpoint left behind
        raise
    pred_dir, gt_dir, input_dir = folder / PRED_SUBDIR, folder / GT_SUBDIR, folder / INPUT_SUBDIR
    gt_sha256 = ground_truth_digest(gt_dir / f for f in files)

    def row(approach: str, source: Path, **provenance) -> dict:
        pairs = [(source / f, gt_dir / f) for f in files]
        results, missing, details = score_pairs(pairs, target.metrics, device, batch_size)
        return result_record(
            approach=approach, dataset=target.dataset, protocol=target.protocol, n_images=len(files),
            results=results, missing=missing, details=details, folder=folder, pred_dir=source, gt_dir=gt_dir,
            input_dir=input_dir, gt_sha256=gt_sha256, data=target.source.description,
            data_path=target.data_path, eval_fraction=target.source.eval_fraction, **provenance,
        )  # fmt: skip

    record = row(
        approach,
        pred_dir,
        run=str(run.root),
        config=str(run.config) if run.config.is_file() else None,
        checkpoint=str(loaded.path),
        step=int(loaded.step),
        ema=bool(loaded.ema),
    )
    references = [row(GROUND_TRUTH, gt_dir), row(GREYSCALE_INPUT, input_dir)]
    metrics_file, references_file = write_evaluation(folder, record, references)
    return {**record, "metrics_file": str(metrics_file), "references_file": str(references_file)}


# ---------------------------------------------------------------- outside methods
def match_names(pred: dict[str, Path], gt: dict[str, Path], pred_dir: Path, gt_dir: Path) -> list[str]:
    """The common stems; an error listing the missing and extra ones when the sets differ."""
    missing = sorted(set(gt) - set(pred))
    extra = sorted(set(pred) - set(gt))
    if missing or extra:
        parts = [
            f"the file names in {pred_dir} do not match those in {gt_dir} (matched by name, any extension)"
        ]
        if missing:
            parts.append(f"{len(missing)} missing from the predictions: {_first(missing)}")
        if extra:
            parts.append(f"{len(extra)} extra predictions without ground truth: {_first(extra)}")
        raise EvaluationError("; ".join(parts))
    return sorted(gt)


def _first(names: list[str]) -> str:
    shown = ", ".join(names[:LIST_AT_MOST])
    return shown + (f", ... ({len(names) - LIST_AT_MOST} more)" if len(names) > LIST_AT_MOST else "")


def image_size(path: Path) -> tuple[int, int]:
    """(W, H) from the file's header, after EXIF rotation as load_rgb applies it."""
    try:
        with Image.open(path) as image:
            orientation = image.getexif().get(ORIENTATION_TAG, 1)
            w, h = image.size
    except (OSError, SyntaxError, ValueError) as exc:
        raise EvaluationError(f"{path}: not an image PIL can read ({type(exc).__name__}: {exc})") from None
    return (h, w) if orientation in ROTATED_ORIENTATIONS else (w, h)


def check_sizes(pairs: list[tuple[Path, Path]]) -> None:
    """Fail before any metric runs when a prediction's size differs from its ground truth's."""
    for pred_path, gt_path in pairs:
        p, g = image_size(pred_path), image_size(gt_path)
        if p != g:
            raise EvaluationError(
                f"{pred_path}: {p[0]}x{p[1]} (WxH) but its ground truth {gt_path} is {g[0]}x{g[1]}; "
                f"the protocol fixes the size, so predictions are not resized: produce them at the "
                f"ground truth's size"
            )


def default_folders_output(pred_dir: Path) -> Path:
    """``<parent>/metrics_<pred folder name>.json``: beside the predictions, not inside them."""
    return pred_dir.resolve().parent / f"metrics_{safe_name(pred_dir.resolve().name)}.json"


def check_folders_output(out: Path, pred_dir: Path, gt_dir: Path) -> None:
    """Refuse an ``out`` that would replace anything but an earlier result of the same kind: a
    path inside the evaluated folders (it would overwrite an image, or be scored as one next
    time), a folder, or an existing file that is not such a metrics file."""
    target = out.resolve()
    for folder in (pred_dir, gt_dir):
        if target == folder.resolve() or folder.resolve() in target.parents:
            raise EvaluationError(
                f"--out {out} is inside the evaluated folder {folder}; write the metrics file elsewhere"
            )
    if out.is_dir():
        raise EvaluationError(
            f"--out {out} is a folder; give the metrics file to write, e.g. {out / 'metrics.json'}"
        )
    if out.exists() and not is_folders_result(out):
        raise EvaluationError(
            f"--out {out} exists and is not a metrics file of an earlier 'evaluate --pred/--gt'; "
            "it is never replaced: choose another path"
        )


def gt_folder_origin(gt_dir: Path) -> dict | None:
    """When ``gt_dir`` is an evaluation's gt/ folder: its references.json ground-truth row."""
    return ground_truth_row(gt_dir) if gt_dir.resolve().name == GT_SUBDIR else None


def origin_metrics(origin: dict | None) -> list[str] | None:
    """The metrics the evaluation behind a gt/ folder computed (or found n/a): an outside method
    scored against it gets the same columns (efficientnet_fd too) without repeating --metrics."""
    if origin is None:
        return None
    return sorted(recorded_metrics(origin)) or None


def evaluate_folders(
    pred_dir: str | Path,
    gt_dir: str | Path,
    metrics: str | Iterable[str] | None = None,
    device: str | None = None,
    out: str | Path | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    approach: str | None = None,
) -> dict:
    """Score any folder of outputs against ground truth, matched by file name (stem).

    Images must have their ground truth's size (the protocol is fixed: nothing is resized). When
    ``gt_dir`` is the gt/ folder of a gan-colorize evaluation, the result takes that evaluation's
    dataset name, protocol and (``metrics`` None) metrics, so the report puts the outside method
    beside the runs with the same columns. Writes
    ``out`` (default :func:`default_folders_output`); returns its content plus ``metrics_file``.
    """
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    approach = plain_name(approach or pred_dir.resolve().name, "approach")
    device = check_device(device)
    origin = gt_folder_origin(gt_dir)
    names = metric_names(metrics if metrics is not None else origin_metrics(origin))
    out = Path(out) if out else default_folders_output(pred_dir)
    check_folders_output(out, pred_dir, gt_dir)  # before minutes of scoring
    pred_files, gt_files = list_images(pred_dir), list_images(gt_dir)
    stems = match_names(pred_files, gt_files, pred_dir, gt_dir)
    pairs = [(pred_files[s], gt_files[s]) for s in stems]
    check_sizes(pairs)
    results, missing, details = score_pairs(pairs, names, device, batch_size)
    input_dir = gt_dir.resolve().parent / INPUT_SUBDIR if origin else None
    ad_hoc_name = f"{safe_name(gt_dir.resolve().name)}_{path_hash(str(gt_dir))}"  # /a/gt and /b/gt differ
    record = result_record(
        approach=approach,
        dataset=origin["dataset"] if origin else ad_hoc_name,
        protocol=origin.get("protocol", {}) if origin else {"images": "as given (not resized or cropped)"},
        n_images=len(pairs), results=results, missing=missing, details=details, folder=out.resolve().parent,
        pred_dir=pred_dir, gt_dir=gt_dir, input_dir=input_dir if input_dir and input_dir.is_dir() else None,
        gt_sha256=ground_truth_digest(gt for _, gt in pairs),
        data=origin.get("data") if origin else str(gt_dir),
        data_path=origin.get("data_path") if origin else str(gt_dir.resolve()),
        eval_fraction=origin.get("eval_fraction") if origin else None,
    )  # fmt: skip
    write_json(out, record)
    return {**record, "metrics_file": str(out)}
