"""The run folder: the unit of work. Its layout is defined here and nowhere else.

RUN/
  config.yaml            resolved config (reproduces the run)
  prior.npy              classification runs: the training-set prior over the 313 bins
  metrics.jsonl          one JSON object per logged step (losses, images/s, learning rates)
  samples/step_XXXXXXXX.png   L | prediction | ground truth grids
  checkpoints/step_XXXXXXXX/  training_state.pt, rng_state_<rank>.pt (gan_colorize.training.checkpoint),
                              generator.pt (inference export), replicas.json
  .lock                  held by the process training the folder (RunLock)
  logs/                  tracker files (run.trackers: tensorboard ...)
  provenance.json        every launch: effective precision, world size, devices, versions, command, commit
  eval/<dataset>/        predictions/*.png and metrics.json
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

_STEP_DIR = re.compile(r"^step_(\d{8})$")
_REPLACED, _PRUNED = ".replaced_", ".pruned_"  # hidden names of checkpoints on their way out
_STAGING = ".tmp_"  # hidden name of a checkpoint being written
# read once, at import: the umask can only be read by setting it, and setting it is process-wide
_UMASK = os.umask(0)
os.umask(_UMASK)


def absent(path: str | Path, want: str = "file") -> str:
    """Why ``path`` cannot be used as a ``want`` ("file" or "folder"), in words that follow its name:
    "does not exist", "is a folder, not a file", or for a symbolic link that it loops or points at
    nothing (``exists()`` is False for both, and "does not exist" would mislead)."""
    path = Path(path)
    try:
        target = path.resolve(strict=True)
    except RuntimeError:  # before Python 3.13 a loop raises this; since, an OSError (ELOOP)
        return "is a symbolic link in a loop"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symbolic link in a loop"
        if exc.errno != errno.ENOENT:
            return f"cannot be reached ({exc.strerror})"
        if not path.is_symlink():
            return "does not exist"
        hop = os.readlink(path)
        end = "which leads nowhere" if (path.parent / hop).is_symlink() else "which does not exist"
        return f"is a symbolic link to {hop}, {end}"
    if want == "file" and target.is_dir():
        return "is a folder, not a file"
    if want == "folder" and not target.is_dir():
        return "is not a folder"
    return "is not a regular file" if want == "file" else "cannot be used"


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then rename onto ``path``: readers never see half a file.

    The result has the permissions of a normally created file (0o666 minus the umask), not the
    0o600 that ``mkstemp`` gives its temporary files.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_UMASK)
        with open(tmp, "rb") as f:  # on disk before the rename: a power cut leaves old or new, not empty
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


class RunLockedError(RuntimeError):
    """A run folder held by another training process."""


class RunLock:
    """Who trains a run folder: ``RUN/.lock``, held with ``flock`` for the life of the process and
    naming its holder (pid, host, start time). The kernel drops the lock when the holder dies (also
    on kill -9), so a stale file is simply re-taken; flock works on local disks and NFSv4."""

    def __init__(self, path: Path):
        self.path = path
        # the outermost folder this start makes (mkdir parents=True): a failed start takes it away
        missing = [folder for folder in (path.parent, *path.parent.parents) if not folder.exists()]
        self.made_root = missing[-1] if missing else None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):  # a file, or a link to nothing, in the way
            raise RunLockedError(f"run folder {path.parent} {absent(path.parent, want='folder')}") from None
        except OSError as exc:
            raise RunLockedError(f"run folder {path.parent} cannot be made ({exc.strerror})") from None
        try:  # O_NOFOLLOW: a link planted as .lock must not make us write through it
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666 & ~_UMASK)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.EISDIR):  # not a link or folder planted there
                raise RunLockedError(f"run folder {path.parent} cannot be written ({exc.strerror})") from None
            raise RunLockedError(
                f"{path} is not a regular file ({exc.strerror}): a run folder's lock file is written "
                "by training itself; remove it if the folder is yours"
            ) from None
        self._file = os.fdopen(fd, "r+")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._file.seek(0)
            holder = self._file.read().strip() or "another process"
            self._file.close()
            raise RunLockedError(
                f"run folder {path.parent} is being trained by {holder}; wait for it to end or choose "
                "another --run-dir"
            ) from None
        if _unlinked(self._file, path):
            # its holder was a failed start that removed it: a new .lock (or folder) may exist now
            self._file.close()
            raise RunLockedError(f"run folder {path.parent} was being set up by another process; try again")
        self._file.seek(0)
        self._file.truncate()
        self._file.write(
            f"pid {os.getpid()} on host {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}"
        )
        self._file.flush()

    def release(self, discard_unused_folder: bool = False) -> None:
        """Let go of the folder. ``discard_unused_folder``: a start that failed before writing
        anything leaves no .lock behind, nor the folder if it made it."""
        if self._file.closed:
            return
        try:
            if discard_unused_folder and os.listdir(self.path.parent) == [self.path.name]:
                # unlinked while still held: a process waiting on this file sees it gone (__init__)
                self.path.unlink()
                folder = self.path.parent
                while self.made_root is not None and folder.is_relative_to(self.made_root):
                    folder.rmdir()  # up to the outermost folder made; one now holding files stays
                    folder = folder.parent
        except OSError:  # someone wrote into the folder meanwhile: it stays; the start's error matters
            pass
        finally:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()


def _unlinked(file, path: Path) -> bool:
    """Whether the open ``file`` is no longer the one named ``path``."""
    try:
        return os.fstat(file.fileno()).st_ino != os.stat(path, follow_symlinks=False).st_ino
    except FileNotFoundError:
        return True


class RunDir:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    # files
    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def prior(self) -> Path:
        return self.root / "prior.npy"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def provenance(self) -> Path:
        return self.root / "provenance.json"

    @property
    def samples(self) -> Path:
        return self.root / "samples"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

    def lock(self) -> RunLock:
        """Hold the folder for one training process (raises RunLockedError naming the holder)."""
        return RunLock(self.lock_file)

    def eval_dir(self, dataset: str) -> Path:
        return self.root / "eval" / safe_name(dataset)

    def sample_path(self, step: int) -> Path:
        return self.samples / f"step_{step:08d}.png"

    # checkpoints
    def checkpoint_dir(self, step: int) -> Path:
        return self.checkpoints / f"step_{step:08d}"

    def staging_dir(self, step: int) -> Path:
        """Where the checkpoint of ``step`` is written before :meth:`install_checkpoint` names it."""
        final = self.checkpoint_dir(step)
        return final.with_name(f"{_STAGING}{final.name}")

    def list_checkpoints(self) -> list[tuple[int, Path]]:
        """Complete checkpoints (a half-written one is a hidden temporary folder), oldest first."""
        if not self.checkpoints.is_dir():
            return []
        found = []
        for child in self.checkpoints.iterdir():
            match = _STEP_DIR.match(child.name)
            if match and child.is_dir() and (child / "generator.pt").is_file():
                found.append((int(match.group(1)), child))
        return sorted(found)

    def latest_checkpoint(self) -> Path | None:
        ckpts = self.list_checkpoints()
        return ckpts[-1][1] if ckpts else None

    def prune_checkpoints(self, keep: int) -> None:
        if keep <= 0:
            return
        for _, path in self.list_checkpoints()[:-keep]:
            # hidden first, deleted after: a kill in the middle of rmtree must not leave a
            # half-deleted folder that still looks like a checkpoint
            trash = path.with_name(f"{_PRUNED}{path.name}")
            path.rename(trash)
            shutil.rmtree(trash, ignore_errors=True)

    def install_checkpoint(self, tmp: Path, final: Path) -> None:
        """Move the complete folder ``tmp`` to ``final``, replacing a checkpoint of the same step
        (from an earlier, interrupted attempt) by renames only: at any kill, one of the two is
        complete under its name or under a name :meth:`sweep_checkpoints` restores."""
        replaced = final.with_name(f"{_REPLACED}{final.name}")
        if final.exists():
            if replaced.exists():
                shutil.rmtree(replaced)
            final.rename(replaced)
        tmp.rename(final)
        shutil.rmtree(replaced, ignore_errors=True)

    def sweep_checkpoints(self) -> None:
        """Clear what a killed checkpoint write leaves (call before a run starts, on one process):
        staging folders (incomplete), pruned folders, temporary files of atomic writes; a
        replaced checkpoint whose successor never got its name is restored."""
        if not self.checkpoints.is_dir():
            return
        for child in self.checkpoints.iterdir():
            name = child.name
            if name.startswith(_REPLACED) and not (child.parent / name[len(_REPLACED) :]).exists():
                child.rename(child.parent / name[len(_REPLACED) :])
            elif name.startswith((_REPLACED, _PRUNED, _STAGING)):
                shutil.rmtree(child, ignore_errors=True)
            elif name.startswith(".") and name.endswith(".tmp") and child.is_file():
                child.unlink(missing_ok=True)

    def is_run(self) -> bool:
        return self.config.is_file()

    def read_metrics(self) -> list[dict]:
        if not self.metrics.is_file():
            return []
        rows = []
        # errors="replace": a file from elsewhere may hold anything; its undecodable lines are skipped
        for line in self.metrics.read_text(errors="replace").splitlines():
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a kill: the rest is still good
                    continue
                if isinstance(row, dict):
                    rows.append(row)
        return rows

    @property
    def name(self) -> str:
        return self.root.name


GENERATOR_FILE = "generator.pt"


def safe_name(text: str) -> str:
    """A dataset spec such as ``builtin:skimage`` or ``/data/photos`` as a folder name: one path
    component that is never ``.`` or ``..`` (leading dots go: no hidden or parent folders)."""
    text = text.rstrip("/").replace("builtin:", "builtin_")
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(text).name)
    return base.lstrip(".") or "data"


class UnsafeNameError(ValueError):
    """A name that becomes a folder or file name but is not one plain path component."""


def check_name(name: object, what: str) -> str:
    """``name`` when it is one plain path component: a run, an evaluation set or an approach is
    written to ``<folder>/<name>``, and a name such as ``..`` or ``a/b`` would write (and, on a
    rerun, clear) outside that folder. Checked where a name is read, with ``what`` naming it."""
    if not isinstance(name, str) or not name.strip():
        raise UnsafeNameError(f"{what} must be a non-empty string, got {name!r}")
    unsafe = name.startswith(".") or any(c in name for c in "/\\") or not name.isprintable()
    if unsafe:
        raise UnsafeNameError(
            f"{what} {name!r} must be one plain folder name: no '/' or '\\', no leading '.', "
            "no control characters"
        )
    return name
