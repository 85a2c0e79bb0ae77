"""The results table of one evaluation set: columns, cells, best values, footnotes, warnings.

Columns come from the metrics' own display facts (``Metric.display``, a
:class:`gan_colorize.metrics.Display` per number): a newly registered metric gets its column, label,
digits, ranking and footnote without this module being edited. The table is built once
(:class:`Section`) and rendered by ``markdown.py``, ``html.py`` and ``terminal.py``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from gan_colorize.evaluation.results import REFERENCE_APPROACHES, ResultRow
from gan_colorize.registry import METRICS, RegistryError
from gan_colorize.report.configs import differs_by, read_run_config

MISSING_VALUE = "—"  # a metric that was not requested for this row (a missing file says why instead)
SELF_SCORED_MARK = " †"
SUPERSCRIPTS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")
UNREGISTERED_ORDER = 1000  # columns of metrics this installation does not know: last


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
    order: int = 100
    axis: str | None = None  # "distortion" | "perception": an axis of the perception-distortion plot
    axis_rank: int = 9
    show_n: bool = False

    @property
    def header(self) -> str:
        arrow = {"higher": " ↑", "lower": " ↓", "zero": " →0"}.get(self.better or "", "")
        return self.label + ("*" if not self.standard else "") + arrow

    @property
    def footnote(self) -> str:
        if self.standard:
            return self.note
        # a registered metric's description may say "non-standard" itself
        text = (
            self.note
            if self.note.lower().startswith("non-standard")
            else f"non-standard metric ({self.note})"
        )
        return f"{self.label}*: {text}"


def registered_columns() -> list[Column]:
    """Every registered metric's displayed numbers, as columns."""
    columns = []
    for name in METRICS.names():
        try:
            metric = METRICS.get(name)
        except (RegistryError, ImportError):
            continue
        displays = metric.displays() if hasattr(metric, "displays") else ()
        standard = bool(getattr(metric, "standard", True))
        for d in displays:
            columns.append(
                Column(
                    d.key,
                    d.label,
                    d.better,
                    d.digits,
                    name,
                    standard=standard,
                    note=d.note,
                    order=d.order,
                    axis=d.axis,
                    axis_rank=d.axis_rank,
                    show_n=d.show_n,
                )  # fmt: skip
            )
    return columns


def unregistered_column(key: str) -> Column:
    return Column(
        key, key, None, 3, key, standard=False, note=f"{key}: not a registered metric, not ranked",
        order=UNREGISTERED_ORDER,
    )  # fmt: skip


def select_columns(rows: list[ResultRow]) -> list[Column]:
    """The columns some row has (a value, or its metric is n/a), in the metrics' order; numbers
    about another number (``fid_n``, ``cf_gt``, ``psnr_n_capped``) are not columns."""
    present = set()
    for row in rows:
        present |= {k for k, v in row.metrics.items() if isinstance(v, int | float) or v is None}
        present |= set(row.missing)
    known = registered_columns()
    columns = [c for c in known if c.key in present or c.metric in present]
    claimed = {c.key for c in known} | {c.metric for c in known}
    extra = sorted(k for k in present - claimed if not _qualifies(k, present | claimed))
    columns += [unregistered_column(k) for k in extra]
    return sorted(columns, key=lambda c: (c.order, c.key))


def _qualifies(key: str, keys: set[str]) -> bool:
    return any(key.startswith(other + "_") for other in keys if other != key)


# ---------------------------------------------------------------- cells
@dataclass
class Cell:
    text: str
    best: bool = False
    missing: bool = False  # an n/a: the metric could not be computed (the footnote says why)
    footnote: int | None = None  # the n/a's footnote number
    # scored by a network the model trained with (perceptual loss or encoder): marked, never ranked
    self_scored: bool = False


@dataclass
class TableRow:
    row: ResultRow
    cells: list[Cell]
    differs: str = ""  # its config's difference from the base row's

    @property
    def label(self) -> str:
        return self.row.label or self.row.approach


@dataclass
class Section:
    dataset: str
    n_images: int | None
    protocol: dict
    columns: list[Column]
    rows: list[TableRow]  # approaches first, then the reference rows
    warnings: list[str]
    footnotes: list[str] = field(default_factory=list)  # n/a reasons: footnote k is footnotes[k - 1]
    grid: object | None = None  # grid.Grid, set by build_report
    tradeoff: object | None = None  # tradeoff.Tradeoff, set by build_report
    tradeoff_file: str | None = None  # its SVG beside report.md

    @property
    def footnote_lines(self) -> list[str]:
        """'¹ missing alexnet-owt-7be5be79.pth, see README': one line per n/a reason."""
        return [f"{superscript(k)} {reason}" for k, reason in enumerate(self.footnotes, start=1)]

    @property
    def notes(self) -> list[str]:
        """What is said once below the table: each column's footnote, then the general notes."""
        return [c.footnote for c in self.columns if c.footnote] + list(GENERAL_NOTES)


def value_of(row: ResultRow, column: Column) -> float | None:
    return row.value(column.key)


def missing_text(row: ResultRow, column: Column) -> str | None:
    return row.missing.get(column.key) or row.missing.get(column.metric)


def format_number(value: float, digits: int) -> str:
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if math.isnan(value):
        return "nan"
    # + 0.0 turns -0.0 into 0.0: a distance of identical sets at rounding noise prints 0.00, not -0.00
    return f"{round(value, digits) + 0.0:.{digits}f}"


def format_value(row: ResultRow, column: Column) -> Cell:
    value = value_of(row, column)
    if value is None:
        missing = missing_text(row, column)
        return Cell(missing, missing=True) if missing else Cell(MISSING_VALUE)
    text = format_number(value, column.digits)
    count = row.metrics.get(f"{column.key}_n")
    if column.show_n or count is not None:  # a value biased by n: always say how many images
        n = count if count is not None else row.n_images
        text += f" (n={n})" if n is not None else ""
    return Cell(text)


def reason_of(missing: str) -> str:
    """'n/a (missing X, see README)' -> 'missing X, see README' (the footnote's text)."""
    if missing.startswith("n/a (") and missing.endswith(")"):
        return missing[len("n/a (") : -1]
    return missing


def number_missing(table: list[TableRow]) -> list[str]:
    """Each n/a cell becomes ``n/a¹`` (one number per distinct reason, in reading order); returns the
    reasons, footnote k first at k - 1."""
    reasons: list[str] = []
    for trow in table:
        for cell in trow.cells:
            if not cell.missing:
                continue
            reason = reason_of(cell.text)
            if reason not in reasons:
                reasons.append(reason)
            cell.footnote = reasons.index(reason) + 1
            cell.text = "n/a" + superscript(cell.footnote)
    return reasons


def superscript(k: int) -> str:
    return str(k).translate(SUPERSCRIPTS)


def _rank_key(value: float, better: str) -> float:
    return {"higher": -value, "lower": value, "zero": abs(value)}[better]


def mark_best(table: list[TableRow], columns: list[Column]) -> None:
    """Bold the best approach per ranked column (at display precision, so ties tie); references never."""
    for j, column in enumerate(columns):
        if column.better is None:
            continue
        candidates = []
        for trow in table:
            value = value_of(trow.row, column)
            if trow.row.reference or value is None or not math.isfinite(value) or trow.cells[j].self_scored:
                continue
            candidates.append((_rank_key(round(value, column.digits), column.better), trow))
        if not candidates:
            continue
        best = min(key for key, _ in candidates)
        for key, trow in candidates:
            if key == best:
                trow.cells[j].best = True


# ---------------------------------------------------------------- self-scored cells
def trained_networks(row: ResultRow) -> set[str]:
    """The pretrained networks a run trained with: its generator's ``encoder`` and, when its weight
    is not 0, its perceptual loss's ``type``. Empty when there is no readable config (an outside method)."""
    data = read_run_config(row)
    if data is None:
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
            if not t.row.reference
            and value_of(t.row, column) is not None
            and network in trained_networks(t.row)
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


# ---------------------------------------------------------------- the section
GENERAL_NOTES = (
    "Best approach per column in bold (↑ higher is better, ↓ lower is better, →0 closest to zero); "
    "reference rows are not ranked. n/a with a number: the metric could not be computed, the numbered "
    "note says why; —: the metric was not requested for that row.",
)


def build_section(dataset: str, rows: list[ResultRow], references: list[ResultRow]) -> Section:
    ordered_refs = sorted(
        references,
        key=lambda r: REFERENCE_APPROACHES.index(r.approach) if r.approach in REFERENCE_APPROACHES else 99,
    )
    all_rows = rows + ordered_refs
    columns = select_columns(all_rows)
    table = [TableRow(r, [format_value(r, c) for c in columns]) for r in all_rows]
    for trow, text in zip(table, differs_by(rows)):
        trow.differs = text
    footnotes = number_missing(table)
    warnings = mark_self_scored(table, columns)
    mark_best(table, columns)
    warnings += comparability_warnings(rows, all_rows)
    counts = sorted({r.n_images for r in all_rows if r.n_images is not None})
    protocols = {json.dumps(r.protocol, sort_keys=True): r.protocol for r in all_rows if r.protocol}
    return Section(
        dataset=dataset,
        n_images=counts[-1] if counts else None,
        protocol=next(iter(protocols.values()), {}),
        columns=columns,
        rows=table,
        warnings=warnings,
        footnotes=footnotes,
    )


def comparability_warnings(rows: list[ResultRow], all_rows: list[ResultRow]) -> list[str]:
    """Other images, protocols or image counts among the rows; partial rows."""
    warnings = []
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
    return warnings


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


def count_text(n: int | None) -> str:
    return f"{n} images" if n is not None else "image count not recorded"


PROVENANCE_HEADERS = ("config", "checkpoint", "step", "weights", "partial")


def provenance(row: ResultRow) -> list[str]:
    """config, checkpoint, step, EMA, partial: where a row came from."""
    ema = "—" if row.ema is None else ("EMA" if row.ema else "raw")
    step = "—" if row.step is None else str(row.step)
    return [row.config or "—", row.checkpoint or "—", step, ema, "yes" if row.partial else "no"]
