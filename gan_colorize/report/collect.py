"""Which results a report shows: RESULTS arguments (metrics files, run folders, folders of runs) ->
the rows, their reference rows and the run folders whose training curves are drawn. The files are
read by ``gan_colorize.evaluation.results``, which owns their names and fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gan_colorize.evaluation.results import (
    METRICS_FILE,
    REFERENCES_FILE,
    ResultRow,
    ResultsFileError,
    read_metrics_file,
    read_references_file,
    references_beside,
)
from gan_colorize.rundir import RunDir, absent


class ReportError(ValueError):
    """Results that cannot be read or reported (names the file and the problem)."""


@dataclass
class Results:
    rows: list[ResultRow] = field(default_factory=list)  # approaches, in the order found
    references: dict[str, list[ResultRow]] = field(default_factory=dict)  # per dataset, read once
    runs: list[RunDir] = field(default_factory=list)  # run folders (for training curves)

    @property
    def datasets(self) -> list[str]:
        return list(dict.fromkeys([r.dataset for r in self.rows] + list(self.references)))


def _metrics_files_of_run(run: Path) -> list[Path]:
    return sorted((run / "eval").glob(f"*/{METRICS_FILE}"))


def _is_run_folder(path: Path) -> bool:
    return (path / "eval").is_dir() or RunDir(path).is_run() or RunDir(path).metrics.is_file()


def _expand(path: Path) -> tuple[list[Path], list[Path]]:
    """(metrics files, run folders) that a RESULTS argument stands for."""
    if path.is_file():
        return [path], []
    if not path.is_dir():
        raise ReportError(f"{path} {absent(path)}")
    if (path / METRICS_FILE).is_file():  # an eval/<dataset> folder
        return [path / METRICS_FILE], []
    if _is_run_folder(path):
        return _metrics_files_of_run(path), [path]
    runs = [child for child in sorted(path.iterdir()) if child.is_dir() and _is_run_folder(child)]
    if not runs:
        raise ReportError(
            f"{path}: neither a run folder (RUN/eval/*/{METRICS_FILE}) nor a folder of runs; "
            f"give metrics.json files, run folders or a folder containing runs"
        )
    return [f for run in runs for f in _metrics_files_of_run(run)], runs


def _read(reader, path: Path):
    try:
        return reader(path)
    except ResultsFileError as exc:
        raise ReportError(str(exc)) from None


def collect_results(paths: list[str | Path]) -> Results:
    """Read the metrics files (and their references.json) that ``paths`` stand for."""
    results = Results()
    seen_files: set[Path] = set()
    seen_runs: set[Path] = set()

    def add_run(run: Path) -> None:
        if run.resolve() not in seen_runs and RunDir(run).metrics.is_file():
            seen_runs.add(run.resolve())
            results.runs.append(RunDir(run))

    for raw in paths:
        files, runs = _expand(Path(raw))
        for run in runs:
            add_run(run)
        for file in files:
            if file.resolve() in seen_files:
                continue
            seen_files.add(file.resolve())
            if file.name == REFERENCES_FILE:
                for row in _read(read_references_file, file):
                    results.references.setdefault(row.dataset, []).append(row)
                continue
            row = _read(read_metrics_file, file)
            results.rows.append(row)
            if row.run_folder is not None:
                add_run(row.run_folder)
            if row.dataset not in results.references:
                _add_references(results, row)
    if not results.rows and not results.references:
        raise ReportError(f"no evaluation results found in {', '.join(map(str, paths))}")
    label_rows(results.rows)
    for rows in results.references.values():
        label_rows(rows)
    return results


def _add_references(results: Results, row: ResultRow) -> None:
    """Beside the json, or (an outside method scored against an evaluation's gt/) beside gt/."""
    for folder in (row.source.parent, row.gt_dir.parent if row.gt_dir else None):
        file = references_beside(folder) if folder is not None else None
        if file is not None:
            results.references[row.dataset] = _read(read_references_file, file)
            return


def label_rows(rows: list[ResultRow]) -> None:
    """Row labels unique per dataset: the approach, plus the run folder when two rows share it."""
    counts: dict[tuple[str, str], int] = {}
    for row in rows:
        counts[(row.dataset, row.approach)] = counts.get((row.dataset, row.approach), 0) + 1
    for row in rows:
        if counts[(row.dataset, row.approach)] == 1:
            row.label = row.approach
        else:
            run = row.run_folder
            row.label = f"{row.approach} [{run.name if run else row.source}]"
