"""Colorize files and folders: the engine of ``gan-colorize colorize``.

* Inputs are files and folders (searched recursively); each output keeps its name relative to
  the folder it was found in (or its file name), under ``out_dir``, with the chosen extension.
* Inputs are never overwritten: a plan whose output would be one of the inputs is refused before
  anything runs (``InputOverwriteError``), ``overwrite`` or not.
* Existing outputs are skipped unless ``overwrite``; outputs are written atomically, so an
  interrupted batch leaves whole files only and a rerun carries on where it stopped.
* One bad file fails alone: its reason is kept for the summary and the batch goes on. A
  generator that predicts NaN or inf stops the batch (``NonFiniteOutputError``, naming the
  checkpoint): no black image is written.
* Two threads decode and prepare the next files (full-resolution L) while the network runs;
  consecutive images whose working-resolution shapes agree go through the network together.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from gan_colorize.data.decode import BadImageError, composite_on_white
from gan_colorize.data.files import list_image_files
from gan_colorize.evaluation.protocol import NonFiniteOutputError
from gan_colorize.inference.colorizer import Colorizer, PreparedImage
from gan_colorize.rundir import atomic_write

OUTPUT_FORMATS = {"png": ".png", "jpg": ".jpg"}
JPEG_QUALITY = 95
DECODE_THREADS = 2


class InputOverwriteError(ValueError):
    """An output path that is one of the input files."""


@dataclass
class Job:
    source: Path
    output: Path


@dataclass
class Outcome:
    source: Path
    output: Path | None
    status: str  # done | skipped | failed
    reason: str = ""


@dataclass
class BatchSummary:
    outcomes: list[Outcome] = field(default_factory=list)

    def with_status(self, status: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == status]

    @property
    def done(self) -> list[Outcome]:
        return self.with_status("done")

    @property
    def skipped(self) -> list[Outcome]:
        return self.with_status("skipped")

    @property
    def failed(self) -> list[Outcome]:
        return self.with_status("failed")

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


# ---------------------------------------------------------------- planning
def _is_strictly_inside(path: Path, folder: Path) -> bool:
    return path != folder and folder in path.parents


def plan_jobs(
    inputs: Sequence[str | Path], out_dir: str | Path, fmt: str = "png"
) -> tuple[list[Job], list[Outcome]]:
    """Jobs for every image under ``inputs``, and the inputs that failed already (a missing path,
    a folder without images, two sources that would write the same output).

    Raises ``InputOverwriteError`` when an output would replace an input file.
    """
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"output format {fmt!r} is not one of {tuple(OUTPUT_FORMATS)}")
    out_dir = Path(out_dir)
    out_resolved = out_dir.resolve()
    jobs: list[Job] = []
    failed: list[Outcome] = []
    for item in map(Path, inputs):
        if item.is_dir():
            sources = list_image_files(item)
            if _is_strictly_inside(out_resolved, item.resolve()):
                # an output folder inside the input folder must not feed earlier outputs back in
                sources = [p for p in sources if out_resolved not in p.resolve().parents]
            if not sources:
                failed.append(Outcome(item, None, "failed", "no image files found in this folder"))
            jobs += [Job(p, out_dir / p.relative_to(item).with_suffix(OUTPUT_FORMATS[fmt])) for p in sources]
        elif item.is_file():
            jobs.append(Job(item, out_dir / Path(item.name).with_suffix(OUTPUT_FORMATS[fmt])))
        else:
            failed.append(Outcome(item, None, "failed", "no such file or folder"))
    jobs = _drop_duplicate_sources(jobs)
    _refuse_input_overwrites(jobs)
    return _drop_duplicate_outputs(jobs, failed)


def _drop_duplicate_sources(jobs: list[Job]) -> list[Job]:
    """One job per source file: the same file given twice, or a folder and a file in it, is
    colorized once (into the output of its first mention)."""
    seen: set[Path] = set()
    kept = []
    for job in jobs:
        source = job.source.resolve()
        if source not in seen:
            seen.add(source)
            kept.append(job)
    return kept


def _file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode), or None for a path that names no file (a dangling symbolic link): such a
    source fails alone when it is read, with the decoder's reason, instead of stopping the batch."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _refuse_input_overwrites(jobs: list[Job]) -> None:
    sources = {job.source.resolve() for job in jobs}
    # what os.path.samefile compares: on a case-insensitive file system out/a.PNG is in/a.png
    # under another name (and a hard link is the same file), which resolved paths do not show
    identities = {_file_identity(job.source) for job in jobs} - {None}
    clashes = [
        job
        for job in jobs
        if job.output.resolve() in sources
        or (job.output.exists() and _file_identity(job.output) in identities)
    ]
    if clashes:
        listed = ", ".join(str(job.output) for job in clashes[:5]) + (" ..." if len(clashes) > 5 else "")
        raise InputOverwriteError(
            f"{len(clashes)} output(s) would overwrite input files ({listed}); "
            "choose an --out folder outside the inputs or another --format"
        )


def _drop_duplicate_outputs(jobs: list[Job], failed: list[Outcome]) -> tuple[list[Job], list[Outcome]]:
    """``a.jpg`` and ``a.png`` in one folder both map to ``a.png``: the first (in listing order)
    keeps it, the others fail with a reason naming the first."""
    first: dict[Path, Job] = {}
    kept = []
    for job in jobs:
        key = job.output.resolve()
        if key in first:
            reason = f"output {job.output} is already written from {first[key].source}; rename one of them"
            failed.append(Outcome(job.source, job.output, "failed", reason))
        else:
            first[key] = job
            kept.append(job)
    return kept, failed


# ---------------------------------------------------------------- writing
def write_image(path: Path, image: np.ndarray, fmt: str) -> str:
    """Write atomically; returns a note for the summary ("" when nothing to say)."""
    from PIL import Image

    note = ""
    if fmt == "jpg" and image.shape[2] == 4:
        # the colours under transparent pixels are arbitrary: show them as viewers do, on white
        image = composite_on_white(image[..., :3], image[..., 3])
        note = "transparency composited on white (JPEG has no alpha channel)"
    pil = Image.fromarray(image, mode="RGBA" if image.shape[2] == 4 else "RGB")
    options = {"format": "JPEG", "quality": JPEG_QUALITY} if fmt == "jpg" else {"format": "PNG"}
    atomic_write(path, lambda tmp: pil.save(tmp, **options))
    return note


def _reason(exc: BaseException) -> str:
    if isinstance(exc, BadImageError):  # its message repeats the path the summary line names
        return exc.reason
    text = str(exc) or type(exc).__name__
    return text if type(exc).__name__ in text else f"{type(exc).__name__}: {text}"


# ---------------------------------------------------------------- running
class _Runner:
    def __init__(self, colorizer: Colorizer, fmt: str, batch_size: int, summary: BatchSummary, advance):
        self.colorizer = colorizer
        self.fmt = fmt
        self.batch_size = max(1, batch_size)
        self.summary = summary
        self.advance = advance
        self.pending: list[tuple[Job, PreparedImage]] = []

    def load(self, job: Job) -> PreparedImage:
        from gan_colorize.data.decode import load_image_keep_alpha

        rgb, alpha, _ = load_image_keep_alpha(job.source)
        return self.colorizer.prepare(rgb, alpha)

    def fail(self, job: Job, exc: BaseException) -> None:
        self.summary.outcomes.append(Outcome(job.source, job.output, "failed", _reason(exc)))
        self.advance()

    def add(self, job: Job, prepared: PreparedImage) -> None:
        if self.pending and self.pending[0][1].L_work.shape != prepared.L_work.shape:
            self.flush()
        self.pending.append((job, prepared))
        if len(self.pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        batch, self.pending = self.pending, []
        if not batch:
            return
        try:
            ab = self.colorizer.predict(torch.stack([prepared.L_work for _, prepared in batch]))
        except NonFiniteOutputError:
            raise  # the checkpoint, not an image, is at fault: every image would fail the same way
        except Exception as exc:
            if len(batch) == 1:
                self.fail(batch[0][0], exc)
                return
            # e.g. out of memory for the whole batch: each image alone still has its chance
            for item in batch:
                self.pending = [item]
                self.flush()
            return
        for (job, prepared), ab_one in zip(batch, ab):
            self.finish(job, prepared, ab_one)

    def finish(self, job: Job, prepared: PreparedImage, ab: torch.Tensor) -> None:
        try:
            note = write_image(job.output, self.colorizer.finish(prepared, ab), self.fmt)
        except Exception as exc:
            self.fail(job, exc)
            return
        self.summary.outcomes.append(Outcome(job.source, job.output, "done", note))
        self.advance()


def colorize_jobs(
    colorizer: Colorizer,
    jobs: Iterable[Job],
    fmt: str = "png",
    overwrite: bool = False,
    batch_size: int = 1,
    progress: bool = True,
) -> BatchSummary:
    """Run ``jobs``; existing outputs are skipped unless ``overwrite``."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    jobs = list(jobs)
    summary = BatchSummary()
    todo = []
    for job in jobs:
        if job.output.exists() and not overwrite:
            summary.outcomes.append(Outcome(job.source, job.output, "skipped", "output exists"))
        else:
            todo.append(job)
    columns = (TextColumn("colorizing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(file=sys.stderr), disable=not progress) as bar:
        task = bar.add_task("colorize", total=len(todo))
        runner = _Runner(colorizer, fmt, batch_size, summary, lambda: bar.advance(task))
        _run_overlapped(runner, todo)
    return summary


def _run_overlapped(runner: _Runner, todo: list[Job]) -> None:
    """Decode ahead in ``DECODE_THREADS`` threads, at most a few batches ahead (bounded memory)."""
    lookahead = runner.batch_size + DECODE_THREADS
    queue: deque[tuple[Job, Future]] = deque()
    with ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="decode") as pool:
        remaining = iter(todo)
        for job in remaining:
            queue.append((job, pool.submit(runner.load, job)))
            if len(queue) >= lookahead:
                break
        while queue:
            job, future = queue.popleft()
            next_job = next(remaining, None)
            if next_job is not None:
                queue.append((next_job, pool.submit(runner.load, next_job)))
            try:
                prepared = future.result()
            except Exception as exc:
                runner.fail(job, exc)
                continue
            runner.add(job, prepared)
        runner.flush()


# ---------------------------------------------------------------- the summary
def format_summary(summary: BatchSummary) -> str:
    done, skipped, failed = len(summary.done), len(summary.skipped), len(summary.failed)
    lines = [f"done {done}, skipped {skipped} (output exists), failed {failed}"]
    lines += [f"  failed: {o.source}: {o.reason}" for o in summary.failed]
    lines += [f"  note: {o.source}: {o.reason}" for o in summary.done if o.reason]
    return "\n".join(lines)
