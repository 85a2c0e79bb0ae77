"""Files from elsewhere never run code: every file of a real run folder, replaced in turn by a pickle
that runs code when loaded, fed to every command that reads run folders.

    python tests/untrusted_files.py                 # exit 0: nothing ran, every failure was clean
    python tests/untrusted_files.py --commands colorize evaluate

A tiny classification run (prior.npy, EMA, one checkpoint, samples, metrics.jsonl) is trained once
and evaluated once (so it has an ``eval/`` folder, as a shared run folder would). Then, for each
file in it, a copy of the folder gets that file replaced by a pickle whose ``__reduce__`` opens a
marker file for writing (``builtins.open``: resolvable by any unpickler that allows it), and
``generator.pt`` also gets two variants whose config names ``os:system`` and ``subprocess:Popen``
with a command that creates the marker. Each command runs in this process through
``gan_colorize.cli.main`` on each case; it may fail, but the marker must never appear and nothing
may end in a Python traceback (an exception out of ``main`` or a logged one). Exit 1 lists what did.

The README section "Files from elsewhere" states the rules this checks.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import shutil
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere: the checkout's gan_colorize
    sys.path.insert(0, str(REPO))

from gan_colorize.cli import main  # noqa: E402
from gan_colorize.rundir import GENERATOR_FILE  # noqa: E402

SIZE = 32
STEPS = 2
CONFIG = {
    "data": {"train": "builtin:skimage", "size": SIZE, "batch_size": 2, "workers": 0, "crops_per_epoch": 8},
    "model": {"generator": {"type": "zhang_eccv16", "trunk_width": 4}},
    "loss": {"objective": "classification", "prior": "train", "prior_samples": 4},
    "train": {
        "steps": STEPS, "ema_decay": 0.9, "log_every": 1, "sample_every": STEPS, "checkpoint_every": STEPS,
    },
}  # fmt: skip
EVAL = ["--data", "builtin:skimage", "--size", str(SIZE), "--metrics", "psnr", "--device", "cpu"]
COMMANDS = ("train", "experiment", "colorize", "evaluate", "export")
# the eval/<dataset>/ image folders hold one kind of file each: the first of each stands for the rest
IMAGE_FOLDERS = ("predictions", "gt", "input")


class RunsCode:
    """Unpickling this opens ``marker`` for writing, i.e. creates it: proof that a load ran code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@dataclass
class Case:
    name: str  # what was replaced, relative to the run folder
    file: str
    write: object  # (path, marker) -> None: writes the replacement


def pickle_with_code(path: Path, marker: Path) -> None:
    buffer = io.BytesIO()  # torch's zip container, as .pt/.bin/.pkl files are (via a buffer: torch
    torch.save({"state": RunsCode(marker)}, buffer)  # derives a name from the path, "" for ".lock")
    path.write_bytes(buffer.getvalue())


def generator_naming(code: str):
    def write(path: Path, marker: Path) -> None:
        # a real generator file of the run (its latest checkpoint's when ``path`` is a new file)
        source = path if path.exists() else max(path.parent.glob(f"checkpoints/step_*/{GENERATOR_FILE}"))
        payload = torch.load(source, map_location="cpu", weights_only=True)
        if code == "os:system":
            payload["config"]["model"]["generator"] = {"type": code, "command": f"touch {marker}"}
        else:
            payload["config"]["model"]["generator"] = {"type": code, "args": ["touch", str(marker)]}
        torch.save(payload, path)

    return write


# ---------------------------------------------------------------- the run folder
def write_config(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return path


def build_run(folder: Path) -> tuple[Path, Path]:
    """A trained, evaluated run folder and its config file."""
    config, run = write_config(folder), folder / "run"
    for argv in (
        ["train", "--config", str(config), "--run-dir", str(run)],
        ["evaluate", "--run", str(run), *EVAL],
    ):
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
            code = main(argv)
        if code not in (0, 3):
            raise RuntimeError(
                f"setting up the run folder: {' '.join(argv)} exited {code}:\n{err.getvalue()}"
            )
    return run, config


def cases(run: Path) -> list[Case]:
    found = []
    for path in sorted(p for p in run.rglob("*") if p.is_file()):
        rel = path.relative_to(run)
        if rel.parent.name in IMAGE_FOLDERS and path != min(path.parent.iterdir()):
            continue
        found.append(Case(f"{rel} (pickle with code)", str(rel), pickle_with_code))
        if path.name == GENERATOR_FILE:
            for code in ("os:system", "subprocess:Popen"):
                found.append(Case(f"{rel} (config names {code})", str(rel), generator_naming(code)))
    # files no training writes, which a run folder from elsewhere may carry: a generator.pt at the
    # root of the run (commands take a run folder through its latest checkpoint, never this one)
    for code in ("os:system", "subprocess:Popen"):
        found.append(
            Case(
                f"{GENERATOR_FILE} at the run's root (config names {code})",
                GENERATOR_FILE,
                generator_naming(code),
            )
        )
    return found


# ---------------------------------------------------------------- the commands
def command_argv(command: str, run: Path, config: Path, work: Path) -> list[str]:
    if command == "train":
        return ["train", "--config", str(config), "--run-dir", str(run), "--resume", "latest",
                "--set", f"train.steps={STEPS + 1}"]  # fmt: skip
    if command == "experiment":
        study = work / "study.yaml"
        study.write_text(
            yaml.safe_dump(
                {
                    "name": "untrusted",
                    "out": str(run.parent),
                    "runs": [{"name": run.name, "config": str(config)}],
                    "eval": {"data": "builtin:skimage", "size": SIZE, "metrics": ["psnr"]},
                    "report": {"grid": 2},
                }
            )
        )
        return ["experiment", str(study), "--device", "cpu"]
    if command == "colorize":
        from PIL import Image
        from skimage import data

        photo = work / "photo.png"
        Image.fromarray(data.coffee()[::8, ::8]).save(photo)
        return ["colorize", str(photo), "--checkpoint", str(run), "--out", str(work / "out"), "--no-progress",
                "--device", "cpu"]  # fmt: skip
    if command == "evaluate":
        return ["evaluate", "--run", str(run), *EVAL]
    if command == "export":
        return ["export", str(run), "--out", str(work / "exported.pt"), "--half"]
    raise ValueError(f"unknown command {command!r}; commands: {', '.join(COMMANDS)}")


class TracebackLog(logging.Handler):
    """Remembers log records that carry a traceback (a logged exception is a traceback too)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.tracebacks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.tracebacks.append(self.format(record))


def run_case(command: str, case: Case, base: Path, config: Path, scratch: Path) -> str | None:
    """What went wrong (None: nothing ran and any failure was a clean error)."""
    work = Path(tempfile.mkdtemp(dir=scratch))
    run, marker = work / "runs" / "r", work / "MARKER"
    shutil.copytree(base, run)
    case.write(run / case.file, marker)
    argv = command_argv(command, run, config, work)
    handler = TracebackLog()
    logging.getLogger().addHandler(handler)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    except BaseException as exc:  # noqa: BLE001 - anything escaping main is a traceback for the user
        code, err_text = None, "".join(traceback.format_exception(exc))
    else:
        err_text = err.getvalue()
    finally:
        logging.getLogger().removeHandler(handler)
    problem = None
    if marker.exists():
        problem = "CODE RAN (the marker file was created)"
    elif code is None or "Traceback (most recent call last)" in err_text or handler.tracebacks:
        shown = (err_text if code is None or "Traceback" in err_text else handler.tracebacks[0]).strip()
        problem = "a traceback instead of a clean error:\n      " + "\n      ".join(shown.splitlines()[-6:])
    shutil.rmtree(work, ignore_errors=True)
    return None if problem is None else f"{command} on {case.name}: {problem}"


def check_command(command: str, base: Path, config: Path, scratch: Path) -> list[str]:
    return [p for case in cases(base) if (p := run_case(command, case, base, config, scratch))]


def main_check(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", nargs="+", choices=COMMANDS, default=list(COMMANDS))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # tiny tensors: threads cost more than they give
    with tempfile.TemporaryDirectory(prefix="untrusted_files_") as tmp:
        tmp = Path(tmp)
        os.environ["TORCH_HOME"] = str(tmp / "torch_home")  # no pretrained weights: nothing to fetch
        base, config = build_run(tmp / "base")
        print(f"{len(cases(base))} cases: {', '.join(c.name for c in cases(base))}")
        problems = []
        for command in args.commands:
            found = check_command(command, base, config, tmp)
            print(f"{command}: {'ok' if not found else f'{len(found)} problem(s)'}")
            problems += found
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main_check())
