"""The study report: a metrics table per evaluation set, image grids and training curves.

Reads what evaluation writes (``RUN/eval/<dataset>/metrics.json`` and ``references.json``, schema in
``gan_colorize.evaluation``) and writes ``DIR/report.md`` and a self-contained ``DIR/report.html``
(inline CSS, images as data URIs, curves as inline SVG: it opens offline and can be mailed).

The table is built once (:class:`Report`) and rendered three ways: markdown here, HTML in
``html.py``, and a rich table in the terminal (:func:`print_summary`).
"""

from __future__ import annotations

import base64
import datetime as _dt
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from PIL import Image

from gan_colorize.registry import METRICS, RegistryError
from gan_colorize.report import curves as _curves
from gan_colorize.rundir import RunDir, atomic_write_text

METRICS_FILE = "metrics.json"
REFERENCES_FILE = "references.json"
REFERENCE_APPROACHES = ("ground truth", "greyscale input")
DEFAULT_GRID = 6
DEFAULT_THUMB = 128  # longest side of a grid thumbnail, pixels
THUMB_JPEG_QUALITY = 92  # thumbnails are for looking at colours, not for measuring them
# 4:4:4: PIL's default 4:2:0 would halve the colour resolution, the very thing the grid compares
THUMB_JPEG_SUBSAMPLING = 0
DEFAULT_COMMAND = "gan-colorize report"  # what report.md and report.html say wrote them
MISSING_VALUE = "—"  # a metric that was not requested for this row (a missing file says why instead)


class ReportError(ValueError):
    """Results that cannot be read or reported (names the file and the problem)."""


# ---------------------------------------------------------------- columns
@dataclass(frozen=True)
class Column:
    key: str  # the key in metrics.json "metrics"
    label: str
    better: str | None  # "higher" | "lower" | "zero" (closest to 0) | None (not ranked)
    digits: int
    metric: str  # the metric's registry name: the key of "missing"
    standard: bool = True
    note: str = ""

    @property
    def header(self) -> str:
        arrow = {"higher": " ↑", "lower": " ↓", "zero": " →0"}.get(self.better or "", "")
        return self.label + ("*" if not self.standard else "") + arrow


STANDARD_COLUMNS = (
    # CF alone is not ranked: more colour is not better, closeness to the ground truth's is (ΔCF)
    Column("cf", "CF", None, 1, "colorfulness"),
    Column("delta_cf", "ΔCF", "zero", 1, "colorfulness"),
    Column("fid", "FID", "lower", 1, "fid"),
    Column("lpips", "LPIPS", "lower", 3, "lpips"),
    Column("psnr", "PSNR", "higher", 2, "psnr"),
    Column("ssim", "SSIM", "higher", 3, "ssim"),
    Column("auc", "AuC (%)", "higher", 2, "auc"),  # Zhang et al. 2016's raw accuracy, in % as in the paper
)
# short labels for the non-standard metrics we know; others show their key
SHORT_LABELS = {"efficientnet_fd": "EffNet-FD", "efficientnet_lite2_fd": "EffNet-L2-FD"}


def nonstandard_column(key: str) -> Column:
    """A column for a metric outside the standard set, described by its registered class."""
    label = SHORT_LABELS.get(key, key)
    try:
        metric = METRICS.get(key)
    except (RegistryError, ImportError):
        return Column(
            key, label, None, 3, key, standard=False, note=f"{key}: not a registered metric, not ranked"
        )
    higher = getattr(metric, "higher_is_better", None)
    better = None if higher is None else ("higher" if higher else "lower")
    description = getattr(metric, "description", "") or key
    return Column(
        key, label, better, 2, key, standard=bool(getattr(metric, "standard", False)), note=description
    )


# ---------------------------------------------------------------- results
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

    def value(self, column: Column) -> float | None:
        value = self.metrics.get(column.key)
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    def missing_text(self, column: Column) -> str | None:
        return self.missing.get(column.key) or self.missing.get(column.metric)


def _resolve_dir(value, base: Path) -> Path | None:
    if not value:
        return None
    path = Path(value)
    return path if path.is_absolute() else base / path


def _row_from_dict(data: dict, source: Path, reference: bool) -> ResultRow:
    where = f"{source}" + (" (a references row)" if reference else "")
    if not isinstance(data, dict):
        raise ReportError(f"{where}: expected a JSON object, got {type(data).__name__}")
    for key in ("approach", "dataset", "metrics"):
        if key not in data:
            raise ReportError(f"{where}: has no {key!r} key (is it a gan-colorize evaluation result?)")
    if not isinstance(data["metrics"], dict):
        raise ReportError(f"{where}: 'metrics' must be an object, got {data['metrics']!r}")
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
        raise ReportError(f"{path}: not valid JSON: {exc}") from exc


def read_metrics_file(path: str | Path) -> ResultRow:
    path = Path(path)
    return _row_from_dict(_read_json(path), path, reference=False)


def read_references_file(path: str | Path) -> list[ResultRow]:
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise ReportError(f"{path}: expected {{'dataset': ..., 'rows': [...]}}")
    return [_row_from_dict(row, path, reference=True) for row in data["rows"]]


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
    """(metrics.json files, run folders) that a RESULTS argument stands for."""
    if path.is_file():
        return [path], []
    if not path.is_dir():
        raise ReportError(f"{path} does not exist")
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


def _run_of_metrics_file(path: Path) -> Path | None:
    """RUN for RUN/eval/<dataset>/metrics.json."""
    if path.parent.parent.name == "eval":
        return path.parent.parent.parent
    return None


def collect_results(paths: list[str | Path]) -> Results:
    """Read the metrics.json files (and their references.json) that ``paths`` stand for."""
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
                rows = read_references_file(file)
                for row in rows:
                    results.references.setdefault(row.dataset, []).append(row)
                continue
            row = read_metrics_file(file)
            results.rows.append(row)
            run = _run_of_metrics_file(file)
            if run is not None:
                add_run(run)
            if row.dataset not in results.references:
                # beside the json, or (an outside method scored against an evaluation's gt/) beside gt/
                for folder in (file.parent, row.gt_dir.parent if row.gt_dir else None):
                    if folder is not None and (folder / REFERENCES_FILE).is_file():
                        results.references[row.dataset] = read_references_file(folder / REFERENCES_FILE)
                        break
    if not results.rows and not results.references:
        raise ReportError(f"no evaluation results found in {', '.join(map(str, paths))}")
    _label_rows(results.rows)
    for rows in results.references.values():
        _label_rows(rows)
    return results


def _label_rows(rows: list[ResultRow]) -> None:
    """Row labels unique per dataset: the approach, plus the run folder when two rows share it."""
    counts: dict[tuple[str, str], int] = {}
    for row in rows:
        counts[(row.dataset, row.approach)] = counts.get((row.dataset, row.approach), 0) + 1
    for row in rows:
        if counts[(row.dataset, row.approach)] == 1:
            row.label = row.approach
        else:
            run = _run_of_metrics_file(row.source)
            row.label = f"{row.approach} [{run.name if run else row.source}]"


# ---------------------------------------------------------------- the table
@dataclass
class Cell:
    text: str
    best: bool = False
    missing: bool = False  # an n/a because a file is missing
    # scored by a network the model trained with (perceptual loss or encoder): marked, never ranked
    self_scored: bool = False


@dataclass
class TableRow:
    row: ResultRow
    cells: list[Cell]

    @property
    def label(self) -> str:
        return self.row.label or self.row.approach


@dataclass
class Thumb:
    file: str  # relative to the report folder (report.md links it)
    data_uri: str  # report.html embeds it
    alt: str


@dataclass
class Grid:
    names: list[str]  # one grid row per eval image
    headers: list[str]  # input | approaches ... | ground truth
    cells: list[list[Thumb | None]]


@dataclass
class Section:
    dataset: str
    n_images: int | None
    protocol: dict
    columns: list[Column]
    rows: list[TableRow]  # approaches first, then the reference rows
    warnings: list[str]
    grid: Grid | None = None


@dataclass
class Curve:
    run: str
    file: str  # relative to the report folder
    svg: str


@dataclass
class Report:
    title: str
    created: str
    sections: list[Section]
    curves: list[Curve]
    out: Path
    thumb: int = DEFAULT_THUMB  # display width of the grid images
    command: str = DEFAULT_COMMAND
    notes: list[str] = field(default_factory=list)  # said at the top: e.g. runs of a study that failed

    @property
    def md_path(self) -> Path:
        return self.out / "report.md"

    @property
    def html_path(self) -> Path:
        return self.out / "report.html"

    @property
    def protocols(self) -> list[dict]:
        unique = {json.dumps(s.protocol, sort_keys=True): s.protocol for s in self.sections}
        return list(unique.values())


def select_columns(rows: list[ResultRow]) -> list[Column]:
    """The standard columns some row has (a value or a missing file), then the non-standard ones."""
    present = set()
    for row in rows:
        present |= {k for k, v in row.metrics.items() if isinstance(v, int | float) or v is None}
        present |= set(row.missing)
    columns = [c for c in STANDARD_COLUMNS if c.key in present or c.metric in present]
    claimed = {c.key for c in STANDARD_COLUMNS} | {c.metric for c in STANDARD_COLUMNS}
    extra = sorted(k for k in present - claimed if not _qualifies(k, present | claimed))
    return columns + [nonstandard_column(k) for k in extra]


def _qualifies(key: str, keys: set[str]) -> bool:
    """``fid_n``, ``cf_gt``, ``psnr_n_capped``: numbers about another metric, not columns."""
    return any(key.startswith(other + "_") for other in keys if other != key)


def format_value(row: ResultRow, column: Column) -> Cell:
    value = row.value(column)
    if value is None:
        missing = row.missing_text(column)
        return Cell(missing, missing=True) if missing else Cell(MISSING_VALUE)
    if math.isinf(value):
        text = "∞" if value > 0 else "-∞"
    elif math.isnan(value):
        text = "nan"
    else:
        # + 0.0 turns -0.0 into 0.0: a distance of identical sets at rounding noise prints 0.00, not -0.00
        text = f"{round(value, column.digits) + 0.0:.{column.digits}f}"
    count = row.metrics.get(f"{column.key}_n")
    if column.key == "fid" or count is not None:  # FID depends on n: always say how many images
        n = count if count is not None else row.n_images
        text += f" (n={n})" if n is not None else ""
    return Cell(text)


def _rank_key(value: float, better: str) -> float:
    return {"higher": -value, "lower": value, "zero": abs(value)}[better]


def mark_best(table: list[TableRow], columns: list[Column]) -> None:
    """Bold the best approach per ranked column (at display precision, so ties tie); references never."""
    for j, column in enumerate(columns):
        if column.better is None:
            continue
        candidates = []
        for trow in table:
            value = trow.row.value(column)
            if trow.row.reference or value is None or not math.isfinite(value) or trow.cells[j].self_scored:
                continue
            candidates.append((_rank_key(round(value, column.digits), column.better), trow))
        if not candidates:
            continue
        best = min(key for key, _ in candidates)
        for key, trow in candidates:
            if key == best:
                trow.cells[j].best = True


SELF_SCORED_MARK = " †"


def trained_networks(row: ResultRow) -> set[str]:
    """The pretrained networks a run trained with: its generator's ``encoder`` and, when its weight
    is not 0, its perceptual loss's ``type``, read from the run's resolved ``config.yaml`` (plain
    YAML, ``safe_load``: no code). Empty when there is no readable config (an outside method)."""
    run = _run_of_metrics_file(row.source)
    candidates = [run / "config.yaml"] if run is not None else []
    candidates += [Path(row.config)] if row.config else []
    config = next((c for c in candidates if c.is_file()), None)
    try:
        data = yaml.safe_load(config.read_text()) if config else None
    except (OSError, yaml.YAMLError):
        return set()
    if not isinstance(data, dict):
        return set()
    model, loss = data.get("model") or {}, data.get("loss") or {}
    generator = model.get("generator") if isinstance(model, dict) else None
    networks = set()
    if isinstance(generator, dict) and isinstance(generator.get("encoder"), str):
        networks.add(generator["encoder"])
    if isinstance(loss, dict) and (loss.get("lambda_perc") or 0) > 0:
        perceptual = loss.get("perceptual")
        kind = perceptual.get("type") if isinstance(perceptual, dict) else perceptual
        if isinstance(kind, str):
            networks.add(kind)
    return networks


def mark_self_scored(table: list[TableRow], columns: list[Column]) -> list[str]:
    """Mark (" †", and out of the ranking) each cell whose metric compares the features of a network
    the row's model trained with (the metric's ``feature_network``: a model optimised against Lite0
    features looks good to a Lite0 Frechet distance); returns the notes that say so."""
    notes = []
    for j, column in enumerate(columns):
        try:
            network = getattr(METRICS.get(column.metric), "feature_network", None)
        except (RegistryError, ImportError):
            continue
        if not network:
            continue
        marked = [
            t
            for t in table
            if not t.row.reference and t.row.value(column) is not None and network in trained_networks(t.row)
        ]
        for trow in marked:
            trow.cells[j].text += SELF_SCORED_MARK
            trow.cells[j].self_scored = True
        if marked:
            labels = ", ".join(t.label for t in marked)
            notes.append(
                f"{column.label}{SELF_SCORED_MARK.strip()}: {column.metric} compares {network} features, and "
                f"{labels} trained with {network} (perceptual loss or encoder): scored by the network it "
                "optimised, so not ranked; compare on a Frechet distance of another network "
                "(efficientnet_lite2_fd)"
            )
    return notes


def build_section(dataset: str, rows: list[ResultRow], references: list[ResultRow]) -> Section:
    ordered_refs = sorted(
        references,
        key=lambda r: REFERENCE_APPROACHES.index(r.approach) if r.approach in REFERENCE_APPROACHES else 99,
    )
    all_rows = rows + ordered_refs
    columns = select_columns(all_rows)
    table = [TableRow(r, [format_value(r, c) for c in columns]) for r in all_rows]
    warnings = mark_self_scored(table, columns)
    mark_best(table, columns)
    different_images = ground_truth_mismatch(all_rows)
    if different_images:
        warnings.append(different_images)
    protocols = {json.dumps(r.protocol, sort_keys=True): r.protocol for r in all_rows if r.protocol}
    if len(protocols) > 1:
        warnings.append(
            "the rows were evaluated under different protocols; they are not comparable: "
            + "; ".join(format_protocol(p) for p in protocols.values())
        )
    counts = sorted({r.n_images for r in all_rows if r.n_images is not None})
    if len(counts) > 1:
        warnings.append(f"the rows were evaluated on different numbers of images: {counts}")
    partial = [r.label or r.approach for r in rows if r.partial]
    if partial:
        warnings.append(f"partial evaluation (some metrics missing) for: {', '.join(partial)}")
    return Section(
        dataset=dataset,
        n_images=counts[-1] if counts else None,
        protocol=next(iter(protocols.values()), {}),
        columns=columns,
        rows=table,
        warnings=warnings,
    )


def ground_truth_mismatch(rows: list[ResultRow]) -> str | None:
    """The warning for rows of one dataset name scored against different ground-truth images (two
    folders of one name, or a folder whose images changed), naming the rows of each; None when all
    recorded digests agree (rows from files older than the digest are not checked)."""
    groups: dict[str, list[str]] = {}
    for row in rows:
        if row.gt_sha256:
            groups.setdefault(row.gt_sha256, []).append(row.label or row.approach)
    if len(groups) < 2:
        return None
    listed = "; ".join(
        f"{', '.join(labels)} (ground truth {digest[:12]})" for digest, labels in groups.items()
    )
    return (
        "NOT COMPARABLE: these rows share the dataset name but were scored against different "
        f"ground-truth images: {listed}. Evaluate every approach on one named set (eval/sets) or one folder."
    )


def format_protocol(protocol: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in protocol.items()) or "(not recorded)"


# ---------------------------------------------------------------- image grids
# what the report writes into its folder besides report.md and report.html; a later report removes
# the ones it did not write again (runs or datasets no longer in it), and nothing else
IMAGES_DIR = "images"  # IMAGES_DIR/<dataset>/<NN>_<column>/<image stem>.jpg
THUMB_SUFFIX = ".jpg"
THUMB_COLUMN_DIR = re.compile(r"\d\d_[A-Za-z0-9_.-]+")
CURVES_PREFIX, CURVES_SUFFIX = "curves_", ".svg"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def _thumbnail(path: Path, size: int) -> bytes:
    with Image.open(path) as image:
        image.load()
        mode = "L" if image.mode in ("L", "I;16", "I") else "RGB"
        image = image.convert(mode)
        if max(image.size) > size:  # never upscale: the page scales small crops up, pixelated
            image.thumbnail((size, size), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=THUMB_JPEG_QUALITY, subsampling=THUMB_JPEG_SUBSAMPLING)
    return buffer.getvalue()


def _first_dir(rows: list[ResultRow], attr: str) -> Path | None:
    for row in rows:
        path = getattr(row, attr)
        if path is not None and path.is_dir():
            return path
    return None


def build_grid(section: Section, out: Path, n: int, thumb: int) -> Grid | None:
    """input | each approach | ground truth for the first ``n`` eval images (sorted by name)."""
    rows = [t.row for t in section.rows]
    approaches = [r for r in rows if not r.reference]
    gt_dir = _first_dir(rows, "gt_dir")
    if n <= 0 or gt_dir is None:
        return None
    names = sorted(p.name for p in gt_dir.iterdir() if p.suffix.lower() == ".png")[:n]
    if not names:
        return None
    input_dir = _first_dir(rows, "input_dir")
    sources = [("input", input_dir)] + [(r.label or r.approach, r.pred_dir) for r in approaches]
    sources.append(("ground truth", gt_dir))
    folder = Path(IMAGES_DIR) / _safe(section.dataset)
    cells = []
    for name in names:
        line = []
        for j, (header, directory) in enumerate(sources):
            path = directory / name if directory is not None else None
            if path is None or not path.is_file():
                line.append(None)
                continue
            data = _thumbnail(path, thumb)
            file = folder / f"{j:02d}_{_safe(header)}" / f"{Path(name).stem}{THUMB_SUFFIX}"
            (out / file).parent.mkdir(parents=True, exist_ok=True)
            (out / file).write_bytes(data)
            uri = "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")
            line.append(Thumb(file.as_posix(), uri, f"{header}: {name}"))
        cells.append(line)
    return Grid(names, [h for h, _ in sources], cells)


# ---------------------------------------------------------------- curves
def build_curves(runs: list[RunDir], out: Path) -> list[Curve]:
    found = []
    used: set[str] = set()
    for run in runs:
        series = _curves.read_loss_series(run)
        if not series:
            continue
        name = _safe(run.name)
        stem, k = name, 2
        while name in used:
            name, k = f"{stem}_{k}", k + 1
        used.add(name)
        svg = _curves.curves_svg(f"{run.name}: training losses", series)
        file = f"{CURVES_PREFIX}{name}{CURVES_SUFFIX}"
        atomic_write_text(out / file, svg)
        found.append(Curve(run.name, file, svg))
    return found


# ---------------------------------------------------------------- stale outputs
def _outputs_of_earlier_reports(out: Path) -> list[Path]:
    """The files in ``out`` named as this module names its thumbnails and curves."""
    thumbs = [
        path for path in out.glob(f"{IMAGES_DIR}/*/*/*{THUMB_SUFFIX}") if _is_thumb_column_dir(path.parent)
    ]
    return [p for p in thumbs + list(out.glob(f"{CURVES_PREFIX}*{CURVES_SUFFIX}")) if _no_link_below(p, out)]


def _no_link_below(path: Path, out: Path) -> bool:
    """No symbolic link between ``out`` and ``path``: glob follows them, and what they point at (a
    folder of someone's images linked in) was never the report's to delete."""
    return path.resolve() == out.resolve() / path.relative_to(out)


def remove_stale_outputs(report: Report) -> None:
    """Delete thumbnails and curves that an earlier report wrote into this folder and this one did not
    (a run or a dataset no longer in it, a smaller grid), then the thumbnail folders left empty."""
    written = {report.out / curve.file for curve in report.curves}
    for section in report.sections:
        if section.grid is not None:
            written |= {report.out / t.file for line in section.grid.cells for t in line if t is not None}
    for path in _outputs_of_earlier_reports(report.out):
        if path not in written and path.is_file():
            path.unlink()
    for column_dir in report.out.glob(f"{IMAGES_DIR}/*/*/"):
        if _is_thumb_column_dir(column_dir) and _is_empty_own_dir(column_dir, report.out):
            column_dir.rmdir()
    for dataset_dir in report.out.glob(f"{IMAGES_DIR}/*/"):
        if _safe(dataset_dir.name) == dataset_dir.name and _is_empty_own_dir(dataset_dir, report.out):
            dataset_dir.rmdir()


def _is_empty_own_dir(path: Path, out: Path) -> bool:
    return _no_link_below(path, out) and not any(path.iterdir())


def _is_thumb_column_dir(path: Path) -> bool:
    """IMAGES_DIR/<dataset>/<NN>_<column>, named as build_grid names it."""
    return THUMB_COLUMN_DIR.fullmatch(path.name) is not None and _safe(path.parent.name) == path.parent.name


# ---------------------------------------------------------------- markdown
# backslash escapes for markdown's own syntax; &, <, > as entities (a renderer takes '<b>' as HTML and
# '&lt;' as the character) since some renderers show a backslash before them
_MD_ENTITIES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"))
_MD_SPECIAL = re.compile(r"([\\|*_`\[\]])")


def _md_escape(text: str) -> str:
    """Table cells and notes: '|' would end the cell; '*', '_', '`', '[' ']' start emphasis, code or
    links; '<' '>' '&' HTML (a label 'a<b>' would make the rest bold)."""
    text = _MD_SPECIAL.sub(r"\\\1", text)
    for char, entity in _MD_ENTITIES:
        text = text.replace(char, entity)
    return text


def _md_cell(cell: Cell) -> str:
    text = _md_escape(cell.text)
    return f"**{text}**" if cell.best else text


def column_footnotes(columns: list[Column]) -> list[str]:
    notes = []
    for c in columns:
        if not c.standard:  # a registered metric's description may say "non-standard" itself
            text = c.note if c.note.lower().startswith("non-standard") else f"non-standard metric ({c.note})"
            notes.append(f"{c.label}*: {text}")
    return notes


GENERAL_NOTES = (
    "Best approach per column in bold (↑ higher is better, ↓ lower is better, →0 closest to zero); "
    "reference rows are not ranked. CF is the colourfulness of Hasler & Süsstrunk (2003) and is not ranked "
    "itself: ΔCF, its difference to the ground truth's, is.",
    "FID is biased upwards on few images (Chong & Forsyth, CVPR 2020, 'Effectively Unbiased FID'): "
    "compare FID only between rows with the same n, and read FID on fewer than a few thousand images "
    "as indicative.",
    "'n/a (missing FILE, see README)': the pretrained weights that metric needs are not on this machine; "
    "'n/a (unreadable FILE, see README)': the file is there but cannot be loaded (metrics.json's "
    "missing_detail says why); 'n/a (needs ...)': the images do not allow that metric (a Fréchet "
    "distance needs >= 2 images, LPIPS images of >= 31 px).",
)


def provenance(row: ResultRow) -> list[str]:
    """config, checkpoint, step, EMA, partial: where a row came from."""
    ema = "—" if row.ema is None else ("EMA" if row.ema else "raw")
    step = "—" if row.step is None else str(row.step)
    return [
        row.config or "—",
        row.checkpoint or "—",
        step,
        ema,
        "yes" if row.partial else "no",
    ]


PROVENANCE_HEADERS = ("config", "checkpoint", "step", "weights", "partial")


def render_markdown(report: Report) -> str:
    lines = [f"# {report.title}", "", f"Generated {report.created} by `{report.command}`.", ""]
    lines += [line for note in report.notes for line in (f"> **Warning:** {_md_escape(note)}", "")]
    lines += ["## Protocol", ""]
    for section in report.sections:
        lines.append(
            f"- **{_md_escape(section.dataset)}** ({count_text(section.n_images)}): "
            f"{_md_escape(format_protocol(section.protocol))}"
        )
    lines.append("")
    for section in report.sections:
        lines += [f"## Results: {_md_escape(section.dataset)} ({count_text(section.n_images)})", ""]
        for warning in section.warnings:
            lines += [f"> **Warning:** {_md_escape(warning)}", ""]
        headers = ["approach"] + [_md_escape(c.header) for c in section.columns]
        lines.append("| " + " | ".join(headers) + " |")
        lines.append("|" + "---|" + "".join("---:|" for _ in section.columns))
        for trow in section.rows:
            label = f"*{_md_escape(trow.label)}*" if trow.row.reference else _md_escape(trow.label)
            lines.append("| " + " | ".join([label] + [_md_cell(c) for c in trow.cells]) + " |")
        lines.append("")
        for note in column_footnotes(section.columns) + list(GENERAL_NOTES):
            lines.append(f"- {_md_escape(note)}")
        lines.append("")
        lines += ["Where each row came from:", ""]
        lines.append("| approach | " + " | ".join(PROVENANCE_HEADERS) + " |")
        lines.append("|---|" + "---|" * len(PROVENANCE_HEADERS))
        for trow in section.rows:
            if not trow.row.reference:
                cells = [_md_escape(v) for v in provenance(trow.row)]
                lines.append(f"| {_md_escape(trow.label)} | " + " | ".join(cells) + " |")
        lines.append("")
        if section.grid is not None:
            lines += _markdown_grid(section)
    if report.curves:
        lines += ["## Training curves", ""]
        for curve in report.curves:
            run = _md_escape(curve.run)
            lines += [f"### {run}", "", f"![{run} training losses]({curve.file})", ""]
    return "\n".join(lines)


def _markdown_grid(section: Section) -> list[str]:
    grid = section.grid
    lines = [f"### Images: {_md_escape(section.dataset)} (first {len(grid.names)} by name)", ""]
    lines.append("| image | " + " | ".join(_md_escape(h) for h in grid.headers) + " |")
    lines.append("|---|" + "---|" * len(grid.headers))
    for name, line in zip(grid.names, grid.cells):
        cells = [f"![{_md_escape(t.alt)}]({t.file})" if t else "missing" for t in line]
        lines.append(f"| {_md_escape(name)} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def count_text(n: int | None) -> str:
    return f"{n} images" if n is not None else "image count not recorded"


# ---------------------------------------------------------------- entry points
def build_report(
    results: Results | list[str | Path],
    out: str | Path,
    grid: int = DEFAULT_GRID,
    title: str | None = None,
    thumb: int = DEFAULT_THUMB,
    command: str = DEFAULT_COMMAND,
    notes: list[str] | None = None,
) -> Report:
    """Write ``out/report.md``, ``out/report.html`` (self-contained) and ``out/curves_<run>.svg``;
    ``command`` is what the report says wrote it ("gan-colorize experiment STUDY" for a study);
    ``notes``, warnings shown above everything (a study's runs that failed and have no row)."""
    from gan_colorize.report.html import render_html  # html.py renders this module's Report

    if not isinstance(results, Results):
        results = collect_results(results)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sections = []
    for dataset in results.datasets:
        rows = [r for r in results.rows if r.dataset == dataset]
        section = build_section(dataset, rows, results.references.get(dataset, []))
        section.grid = build_grid(section, out, grid, thumb)
        sections.append(section)
    report = Report(
        title=title or "gan-colorize report",
        created=_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        sections=sections,
        curves=build_curves(results.runs, out),
        out=out,
        thumb=thumb,
        command=command,
        notes=list(notes or []),
    )
    atomic_write_text(report.md_path, render_markdown(report))
    atomic_write_text(report.html_path, render_html(report))
    remove_stale_outputs(report)  # after the new pages: the old ones link their files until replaced
    return report


def print_summary(report: Report, console=None) -> None:
    """The results tables in the terminal (rich), best values in bold; n/a reasons below each table."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    if console is None:
        console = Console()
        if not console.is_terminal:  # logs and pipes: rich's 80 columns would squeeze the numbers
            console = Console(width=160)
    for section in report.sections:  # report.notes: the caller prints its own (a study's failed runs)
        table = Table(title=f"{section.dataset} ({count_text(section.n_images)})", title_justify="left")
        table.add_column("approach", no_wrap=True)
        for column in section.columns:
            table.add_column(column.header, justify="right", overflow="fold")  # never an ellipsis in a number
        reasons: dict[tuple[str, str], list[str]] = {}  # (column, n/a text) -> rows
        for trow in section.rows:
            # Text, not markup: labels such as "unet_gan [run_a]" must print as they are
            cells = []
            for column, cell in zip(section.columns, trow.cells):
                if cell.missing:  # the full reason would make the column too wide: listed below
                    reasons.setdefault((column.label, cell.text), []).append(trow.label)
                    cells.append(Text("n/a", style="red"))
                else:
                    cells.append(Text(cell.text, style="bold green" if cell.best else ""))
            label = Text(trow.label, style="italic" if trow.row.reference else "")
            table.add_row(label, *cells)
        console.print(table)
        for (label, text), labels in reasons.items():
            which = "all rows" if len(labels) == len(section.rows) else ", ".join(labels)
            console.print(Text(f"{label} {text}: {which}", style="red"))
        for warning in section.warnings:
            console.print(Text("warning: " + warning, style="yellow"))
