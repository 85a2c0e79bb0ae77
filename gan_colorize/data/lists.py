"""File lists: a ``.txt`` file naming one image a line, relative to the list's folder (absolute
paths stay absolute). A trailing whole-number field (a class label, as in ImageNet's
``train_cls.txt`` or Places365's ``places365_train_standard.txt``) and anything after a tab are
ignored, so the usual split files work as they are; blank lines and ``#`` comments are skipped.
A path that names no file is reported by screening as unreadable, like a broken file in a folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from gan_colorize.rundir import absent

LIST_SUFFIX = ".txt"
# "path 123" or "path\t...": the path is what comes before; a path may hold spaces otherwise
_LABEL = re.compile(r"\s+-?\d+\s*$")


def is_file_list(spec: str | Path) -> bool:
    return str(spec).lower().endswith(LIST_SUFFIX)


def list_root(spec: str | Path) -> Path:
    """The folder the list's relative paths start from."""
    return Path(spec).resolve().parent


def list_line_path(line: str) -> str | None:
    """The path a line names, or None for a blank or comment line."""
    text = line.split("\t", 1)[0].strip()
    if not text or text.startswith("#"):
        return None
    return _LABEL.sub("", text) or None


def read_file_list(spec: str | Path) -> list[Path]:
    """The files a list names, in its order (a path listed twice counts once)."""
    spec = Path(spec)
    if not spec.is_file():
        raise FileNotFoundError(f"file list {spec} {absent(spec)}")
    root = list_root(spec)
    seen: set[Path] = set()
    files = []
    with open(spec, encoding="utf-8") as f:
        for line in f:
            name = list_line_path(line)
            if name is not None:
                path = Path(os.path.normpath(root / name))  # an absolute name replaces root
                if path not in seen:
                    seen.add(path)
                    files.append(path)
    return files
