"""The evaluation result record and its files: the one place that knows their names and fields.

Written by evaluation (``evaluate.py``), checked for currency by studies (``experiment.py``), read by
the report. An evaluation folder (``RUN/eval/<dataset>/``, ``RunDir.eval_dir``) holds::

    metrics.json       one row: the run's (schema of :func:`result_record`)
    references.json    {"dataset": ..., "rows": [ground-truth row, greyscale-input row]}

An outside method scored with ``evaluate --pred/--gt`` writes one row of the same schema where it is
told (default ``<pred parent>/metrics_<pred name>.json``). Folders in a row are relative to the json's
own folder, so an evaluation folder can be moved or copied.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from gan_colorize.rundir import atomic_write_text

METRICS_FILE = "metrics.json"
REFERENCES_FILE = "references.json"
GROUND_TRUTH = "ground truth"
GREYSCALE_INPUT = "greyscale input"
REFERENCE_APPROACHES = (GROUND_TRUTH, GREYSCALE_INPUT)  # their order in a report
# fields every result row has (result_record writes them): what tells a metrics file from others
RESULT_KEYS = frozenset(
    {"approach", "run", "dataset", "protocol", "metrics", "gt_sha256", "pred_dir", "gt_dir"}
)
# metrics.json fields that must equal what evaluation would record now (beside checkpoint and metrics)
SAME_EVALUATION_KEYS = ("step", "dataset", "protocol", "data_path", "eval_fraction")


class ResultsFileError(ValueError):
    """A results file that cannot be read as one (names the file and the problem)."""


# ---------------------------------------------------------------- writing
def _relative(path: Path, start: Path) -> str:
    return os.path.relpath(Path(path).resolve(), Path(start).resolve())


def result_record(
    *,
    approach: str,
    dataset: str,
    protocol: dict,
    n_images: int,
    results: dict,
    missing: dict,
    details: dict,
    folder: Path,
    pred_dir: Path,
    gt_dir: Path,
    input_dir: Path | None,
    gt_sha256: str,
    data: str | None = None,
    data_path: str | None = None,
    eval_fraction: float | None = None,
    run: str | None = None,
    config: str | None = None,
    checkpoint: str | None = None,
    step: int | None = None,
    ema: bool | None = None,
) -> dict:
    """One row in the metrics.json schema; folders relative to ``folder`` (where the json goes).

    ``missing``: each metric that could not be computed with its report cell ("n/a (missing FILE,
    see README)"), ``details`` the full message; either makes the row ``partial``."""
    return {
        "approach": approach,
        "run": run,
        "config": config,
        "checkpoint": checkpoint,
        "step": step,
        "ema": ema,
        "dataset": dataset,
        "data": data,
        "data_path": data_path,
        "eval_fraction": eval_fraction,
        "gt_sha256": gt_sha256,
        "protocol": protocol,
        "n_images": n_images,
        "metrics": results,
        "missing": missing,
        "missing_detail": details,
        "partial": bool(missing),
        "pred_dir": _relative(pred_dir, folder),
        "gt_dir": _relative(gt_dir, folder),
        "input_dir": _relative(input_dir, folder) if input_dir else None,
    }


def write_json(path: Path, data: dict) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def write_evaluation(folder: Path, record: dict, references: list[dict]) -> tuple[Path, Path]:
    """``folder/references.json`` then ``folder/metrics.json`` (the row last: its presence says the
    evaluation is complete); returns both paths."""
    refs = write_json(folder / REFERENCES_FILE, {"dataset": record["dataset"], "rows": references})
    return write_json(folder / METRICS_FILE, record), refs


def remove_evaluation(folder: Path) -> None:
    """The result files of an evaluation folder (before it is redone)."""
    for name in (METRICS_FILE, REFERENCES_FILE):
        (folder / name).unlink(missing_ok=True)


# ---------------------------------------------------------------- reading
@dataclass
class ResultRow:
    """One metrics.json (or one row of references.json)."""

    approach: str
    dataset: str
    n_images: int | None
    metrics: dict
    missing: dict
    protocol: dict
    source: Path
    run: str | None = None
    config: str | None = None
    checkpoint: str | None = None
    step: int | None = None
    ema: bool | None = None
    partial: bool = False
    pred_dir: Path | None = None
    gt_dir: Path | None = None
    input_dir: Path | None = None
    reference: bool = False
    label: str = ""
    gt_sha256: str | None = None  # the ground-truth images' digest; None in files written before it

    def value(self, key: str) -> float | None:
        value = self.metrics.get(key)
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    @property
    def run_folder(self) -> Path | None:
        """RUN for RUN/eval/<dataset>/metrics.json (also a study's outside method's folder)."""
        if self.source.name == METRICS_FILE and self.source.parent.parent.name == "eval":
            return self.source.parent.parent.parent
        return None


def _resolve_dir(value, base: Path) -> Path | None:
    if not value:
        return None
    path = Path(value)
    return path if path.is_absolute() else base / path


def _row_from_dict(data: dict, source: Path, reference: bool) -> ResultRow:
    where = f"{source}" + (" (a references row)" if reference else "")
    if not isinstance(data, dict):
        raise ResultsFileError(f"{where}: expected a JSON object, got {type(data).__name__}")
    for key in ("approach", "dataset", "metrics"):
        if key not in data:
            raise ResultsFileError(f"{where}: has no {key!r} key (is it a gan-colorize evaluation result?)")
    if not isinstance(data["metrics"], dict):
        raise ResultsFileError(f"{where}: 'metrics' must be an object, got {data['metrics']!r}")
    base = source.parent
    return ResultRow(
        approach=str(data["approach"]),
        dataset=str(data["dataset"]),
        n_images=data.get("n_images"),
        metrics=data["metrics"],
        missing=data.get("missing") or {},
        protocol=data.get("protocol") or {},
        source=source,
        run=data.get("run"),
        config=data.get("config"),
        checkpoint=data.get("checkpoint"),
        step=data.get("step"),
        ema=data.get("ema"),
        partial=bool(data.get("partial", False)),
        pred_dir=_resolve_dir(data.get("pred_dir"), base),
        gt_dir=_resolve_dir(data.get("gt_dir"), base),
        input_dir=_resolve_dir(data.get("input_dir"), base),
        reference=reference,
        gt_sha256=data.get("gt_sha256"),
    )


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ResultsFileError(f"{path}: not valid JSON: {exc}") from exc


def read_metrics_file(path: str | Path) -> ResultRow:
    path = Path(path)
    return _row_from_dict(_read_json(path), path, reference=False)


def read_references_file(path: str | Path) -> list[ResultRow]:
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise ResultsFileError(f"{path}: expected {{'dataset': ..., 'rows': [...]}}")
    return [_row_from_dict(row, path, reference=True) for row in data["rows"]]


def read_record(path: Path) -> dict | None:
    """A results file's raw content when it is a JSON object; None when absent or unreadable."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def references_beside(folder: Path) -> Path | None:
    """``folder/references.json`` when there is one."""
    file = folder / REFERENCES_FILE
    return file if file.is_file() else None


def ground_truth_row(gt_dir: Path) -> dict | None:
    """When ``gt_dir`` is an evaluation's gt/ folder: its references.json ground-truth row."""
    references = references_beside(gt_dir.resolve().parent)
    record = read_record(references) if references else None
    rows = record.get("rows") if record else None
    if not isinstance(rows, list):
        return None
    return next((r for r in rows if isinstance(r, dict) and r.get("approach") == GROUND_TRUTH), None)


# ---------------------------------------------------------------- what a record says
def is_folders_result(path: Path) -> bool:
    """Whether ``path`` is a metrics file as ``evaluate_folders`` writes it: a result row without a run."""
    record = read_record(path)
    return record is not None and set(record) >= RESULT_KEYS and record["run"] is None


def recorded_metrics(record: dict, requested: set[str] | None = None) -> set[str]:
    """The metric names a record holds: computed (their primary key is in ``metrics``) or n/a
    (their name is in ``missing``)."""
    from gan_colorize.registry import METRICS

    values, missing = record.get("metrics"), record.get("missing")
    if not isinstance(values, dict) or not isinstance(missing, dict):
        return set()
    names = set(METRICS.names()) | set(requested or ())
    return {name for name in names if name in METRICS and METRICS.get(name).primary in values} | set(missing)


def _same_path(a: str | Path, b: str | Path) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def current_record(file: Path, now: dict) -> dict | None:
    """The content of ``file`` (a run's metrics.json) when it scored the checkpoint, metrics,
    protocol and data of ``now`` (the fields :data:`SAME_EVALUATION_KEYS`, ``checkpoint`` and the
    metric names as a set) and its references.json is there; None otherwise."""
    record = read_record(file)
    if record is None or references_beside(file.parent) is None:
        return None
    current = (
        isinstance(record.get("checkpoint"), str)
        and _same_path(record["checkpoint"], now["checkpoint"])
        and all(record.get(key) == now[key] for key in SAME_EVALUATION_KEYS)
        and recorded_metrics(record, now["metrics"]) == now["metrics"]
    )
    return record if current else None


def folders_result_current(file: Path, pred_dir: Path, gt_dir: Path, metrics: set[str]) -> bool:
    """Whether ``file`` (an ``evaluate_folders`` result) scored these folders with these metrics and
    is newer than every file in them (the check reads dates, not images)."""
    record = read_record(file)
    if record is None or not set(record) >= RESULT_KEYS:
        return False
    base = Path(file).parent
    same = all(
        isinstance(record.get(key), str) and _same_path(base / record[key], folder)
        for key, folder in (("pred_dir", pred_dir), ("gt_dir", gt_dir))
    )
    if not same or recorded_metrics(record, metrics) != metrics:
        return False
    newest = max((p.stat().st_mtime for d in (pred_dir, gt_dir) for p in d.iterdir()), default=0.0)
    return Path(file).stat().st_mtime >= newest
