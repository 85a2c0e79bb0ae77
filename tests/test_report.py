"""The report: table contents and best-value marking, n/a texts, self-contained HTML, SVG curves."""

from __future__ import annotations

import base64
import html
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from markdown_it import MarkdownIt
from PIL import Image, JpegImagePlugin

from gan_colorize.commands import report as report_command
from gan_colorize.report import ReportError, build_report, collect_results
from gan_colorize.report.curves import (
    MAX_POINTS,
    Series,
    curves_svg,
    downsample,
    nice_ticks,
    read_loss_series,
)
from gan_colorize.rundir import RunDir

NAMES = [f"img_{i:02d}.png" for i in range(8)]
LPIPS_REASON = "missing alexnet-owt-7be5be79.pth, see README"
LPIPS_MISSING = f"n/a ({LPIPS_REASON})"
PROTOCOL = {"size": 32, "resize": "shorter side, centre crop", "colour space": "Lab"}

# Constructed so that each column's best approach is known:
#   ΔCF closest to 0: B; FID lowest: B; LPIPS lowest: A; PSNR, SSIM highest: B; AuC highest: C.
# The reference rows beat every approach on PSNR/SSIM/AuC and must still not be marked.
APPROACHES = {
    "A": {"cf": 30.0, "cf_gt": 35.0, "delta_cf": -5.0, "fid": 50.0, "fid_n": 8, "lpips": 0.20,
          "psnr": 22.0, "psnr_n_capped": 0, "ssim": 0.80, "auc": 90.0, "efficientnet_fd": 4.0,
          "efficientnet_fd_n": 8},
    "B": {"cf": 37.0, "cf_gt": 35.0, "delta_cf": 2.0, "fid": 40.0, "fid_n": 8, "lpips": 0.25,
          "psnr": 23.5, "ssim": 0.85, "auc": 88.0, "efficientnet_fd": 3.0},
    "C": {"cf": 50.0, "cf_gt": 35.0, "delta_cf": 15.0, "fid": 60.0, "fid_n": 8,
          "psnr": 21.0, "ssim": 0.70, "auc": 95.0, "efficientnet_fd": 5.0},
}  # fmt: skip
REFERENCES = {
    "ground truth": {"cf": 35.0, "delta_cf": 0.0, "fid": -3e-9, "fid_n": 8, "lpips": 0.0,
                     "psnr": float("inf"),
                     "ssim": 1.0, "auc": 100.0},
    "greyscale input": {"cf": 0.0, "delta_cf": -35.0, "fid": 90.0, "fid_n": 8, "lpips": 0.3, "psnr": 24.0,
                        "ssim": 0.95, "auc": 97.0},
}  # fmt: skip


def _png(path: Path, rng: np.random.Generator, grey: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 256, size=(32, 32) if grey else (32, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def _metrics_json(approach: str, metrics: dict, run: Path | None, images: Path) -> dict:
    missing = {"lpips": LPIPS_MISSING} if "lpips" not in metrics else {}
    return {
        "approach": approach,
        "run": str(run) if run else None,
        "config": f"configs/{approach}.yaml",
        "checkpoint": f"{run}/checkpoints/step_00000100" if run else None,
        "step": 100 if run else None,
        "ema": True if run else None,
        "dataset": "fake",
        "protocol": PROTOCOL,
        "n_images": len(NAMES),
        "metrics": metrics,
        "missing": missing,
        "partial": bool(missing),
        "pred_dir": "pred" if run else str(images / ("gt" if approach == "ground truth" else "input")),
        # relative to the json's folder, as evaluation writes them
        "gt_dir": str(Path("..", "..", "..", "..", "images", "gt")),
        "input_dir": str(Path("..", "..", "..", "..", "images", "input")),
    }


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """study/{A,B,C}/eval/fake/{metrics.json,references.json,pred/*.png}, images/{gt,input}; A has curves."""
    root = tmp_path_factory.mktemp("report")
    rng = np.random.default_rng(0)
    images = root / "images"
    for name in NAMES:
        _png(images / "gt" / name, rng)
        _png(images / "input" / name, rng, grey=True)
    study = root / "study"
    for approach, metrics in APPROACHES.items():
        run = study / approach
        (run / "config.yaml").parent.mkdir(parents=True, exist_ok=True)
        (run / "config.yaml").write_text("run: {}\n")
        eval_dir = run / "eval" / "fake"
        for name in NAMES:
            _png(eval_dir / "pred" / name, rng)
        (eval_dir / "metrics.json").write_text(json.dumps(_metrics_json(approach, metrics, run, images)))
        rows = [_metrics_json(a, m, None, images) for a, m in REFERENCES.items()]
        (eval_dir / "references.json").write_text(json.dumps({"dataset": "fake", "rows": rows}))
    # A's training log: 1200 rows (more than the plot keeps), L1 from 100 down to 5 (log scale)
    with open(study / "A" / "metrics.jsonl", "w") as f:
        for step in range(1, 1201):
            row = {"step": step, "loss/g_l1": 100.0 * 0.9975**step + 5, "loss/g_adv": 0.7, "loss/d": 0.6}
            f.write(json.dumps(row) + "\n")
        f.write('{"step": 1201, "loss/g_l1": 4')  # a line cut by a kill: skipped, not fatal
    return root


@pytest.fixture(scope="module")
def report(study):
    return build_report([study / "study"], study / "out", grid=4, title="Fake study")


def _md_row(md: str, label: str) -> list[str]:
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] in (label, f"*{label}*"):
            return cells
    raise AssertionError(f"no table row {label!r} in report.md")


def _md_header(md: str) -> list[str]:
    line = next(line for line in md.splitlines() if line.startswith("| approach | CF"))
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_collect_finds_runs_references_and_curves(study):
    results = collect_results([study / "study"])
    assert sorted(r.approach for r in results.rows) == ["A", "B", "C"]
    assert [r.approach for r in results.references["fake"]] == ["ground truth", "greyscale input"]
    assert [run.name for run in results.runs] == ["A"]  # only A has metrics.jsonl
    row = next(r for r in results.rows if r.approach == "A")
    assert row.pred_dir == study / "study" / "A" / "eval" / "fake" / "pred"
    assert (row.gt_dir / NAMES[0]).is_file()  # the relative gt_dir resolves against the json's folder
    # a single metrics.json and a run folder give the same row
    one = collect_results([study / "study" / "A" / "eval" / "fake" / "metrics.json"])
    assert [r.approach for r in one.rows] == ["A"] and one.references["fake"]


def test_table_has_every_approach_and_reference_row(report):
    md = report.md_path.read_text()
    for label in ("A", "B", "C", "ground truth", "greyscale input"):
        _md_row(md, label)
    header = _md_header(md)
    assert header[:8] == ["approach", "CF", "ΔCF →0", "FID ↓", "LPIPS ↓", "PSNR ↑", "SSIM ↑", "AuC (%) ↑"]
    assert header[8] == "EffNet-FD\\* ↓"
    assert header[9] == "differs by" and len(header) == 10  # psnr_n_capped, cf_gt, fid_n: no columns
    assert "EffNet-FD\\*: non-standard" in md
    assert md.count("| *ground truth* |") == 1  # reference rows once per dataset, not once per run


def test_best_values_are_marked_per_column(report):
    md = report.md_path.read_text()
    header = _md_header(md)
    col = {name.split(" ")[0]: i for i, name in enumerate(header)}
    rows = {label: _md_row(md, label) for label in ("A", "B", "C", "ground truth", "greyscale input")}
    expected_best = {"ΔCF": "B", "FID": "B", "LPIPS": "A", "PSNR": "B", "SSIM": "B", "AuC": "C"}
    for column, winner in expected_best.items():
        bold = [label for label, cells in rows.items() if cells[col[column]].startswith("**")]
        assert bold == [winner], f"{column}: bold in {bold}, expected {winner}"
    assert not any(cells[col["CF"]].startswith("**") for cells in rows.values())  # CF itself is not ranked
    assert rows["B"][col["FID"]] == "**40.0 (n=8)**"
    assert rows["ground truth"][col["PSNR"]] == "∞"
    assert rows["ground truth"][col["FID"]] == "0.0 (n=8)"  # sqrtm's rounding noise is no "-0.0"


def test_missing_metric_shows_the_na_text(report):
    md = report.md_path.read_text()
    col = {name.split(" ")[0]: i for i, name in enumerate(_md_header(md))}
    assert _md_row(md, "C")[col["LPIPS"]] == "n/a¹"  # the reason is a numbered footnote, said once
    assert md.count(LPIPS_REASON) == 1 and "¹ " + LPIPS_REASON in md
    assert "partial evaluation" in md and "FID is biased upwards" in md
    assert "configs/A.yaml" in md and "step\\_00000100" in md  # provenance of each row
    assert "colour space=Lab" in md  # the protocol is printed


def test_html_is_self_contained_and_images_decode(report):
    page = report.html_path.read_text()
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page)
    assert "<link" not in page and "<script src" not in page
    sources = re.findall(r'<img [^>]*src="([^"]+)"', page)
    # grid of 4 images x (input + 3 approaches + ground truth)
    assert len(sources) == 4 * 5
    for src in sources:
        header, _, payload = src.partition(",")
        assert header.startswith("data:image/") and header.endswith(";base64")
        with Image.open(io.BytesIO(base64.b64decode(payload))) as image:
            image.load()
            assert image.size == (32, 32)  # smaller than the thumbnail size: never upscaled
    assert len(re.findall(r'<tr class="approach">', page)) == 3
    assert len(re.findall(r'<tr class="reference">', page)) == 2
    assert "<strong>23.50</strong>" in page


def test_curves_are_inline_svg_and_linked_from_markdown(report):
    assert [c.run for c in report.curves] == ["A"]
    svg_file = report.out / "curves_A.svg"
    assert svg_file.is_file() and "(curves_A.svg)" in report.md_path.read_text()
    svg = svg_file.read_text()
    # one panel per loss term, each with its own y axis: L1 at ~100 does not flatten g_adv at 0.7
    assert svg.startswith("<svg") and svg.count("<polyline") == 3 * 2  # 3 panels: a curve and the axes
    panels = re.findall(r"<svg [^>]*>\s*<title>([^<]+)</title>", svg)
    assert panels[1:] == ["loss: d", "loss: g_adv", "loss: g_l1"]
    longest = max(len(p.split()) for p in re.findall(r'<polyline points="([^"]+)"', svg))
    assert longest <= MAX_POINTS
    assert svg in report.html_path.read_text()


def test_downsample_keeps_ends_and_ticks_are_round():
    series = Series("x", list(range(2000)), [float(i) for i in range(2000)])
    small = downsample(series, 100)
    assert len(small.steps) == 100 and small.steps[0] == 0 and small.steps[-1] == 1999
    assert nice_ticks(0.0, 1.0) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert nice_ticks(3.0, 97.0) == [25.0, 50.0, 75.0]
    assert nice_ticks(-0.3, 0.3) == [-0.2, 0.0, 0.2]
    assert nice_ticks(0.55, 0.65) == [0.55, 0.575, 0.6, 0.625, 0.65]
    with pytest.raises(ValueError, match="no loss values"):
        curves_svg("empty", [])


def test_unreadable_results_are_errors_that_name_the_file(tmp_path):
    with pytest.raises(ReportError, match="does not exist"):
        collect_results([tmp_path / "nope"])
    bad = tmp_path / "metrics.json"
    bad.write_text(json.dumps({"approach": "x", "metrics": {}}))
    with pytest.raises(ReportError, match=r"metrics\.json.*'dataset'"):
        collect_results([bad])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match="neither a run folder"):
        collect_results([tmp_path / "empty"])


def test_command_prints_where_the_report_is(study, tmp_path, capsys):
    parser = __import__("argparse").ArgumentParser()
    report_command.add_arguments(parser)
    args = parser.parse_args([str(study / "study"), "--out", str(tmp_path / "r"), "--grid", "2"])
    assert report_command.run(args) == 0
    out = capsys.readouterr().out
    assert (
        str(tmp_path / "r" / "report.html") in out
        and "greyscale input" in out
        and "n/a¹" in out
        and out.count(LPIPS_REASON) == 1
    )
    args = parser.parse_args([str(tmp_path / "missing"), "--out", str(tmp_path / "r2")])
    assert report_command.run(args) == 2


BROWSER_CHECK = Path(__file__).with_name("browser_check.py")
needs_chromium = pytest.mark.skipif(
    not Path("/usr/bin/chromium").is_file(),
    reason="/usr/bin/chromium is not installed (apt-get install chromium)",
)


@needs_chromium
def test_report_renders_in_headless_chromium(report, tmp_path):
    done = subprocess.run(
        [sys.executable, str(BROWSER_CHECK), str(report.html_path), "--rows", "3", "--points", "4"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "20/20 images decoded" in done.stdout
    assert "4 plot points in 1 perception-distortion plots, 1 n/a footnotes" in done.stdout
    # the check can fail: a broken image and a row too many demanded
    page = report.html_path.read_text()
    broken = tmp_path / "broken.html"
    broken.write_text(page.replace('src="data:image/jpeg;base64,', 'src="data:image/jpeg;base64,AAAA', 1))
    done = subprocess.run(
        [sys.executable, str(BROWSER_CHECK), str(broken), "--rows", "4"], capture_output=True, text=True
    )
    assert done.returncode == 1
    assert "1 of 20 images did not decode" in done.stderr and "expected at least 4" in done.stderr
    # a footnote lost, a plot point moved out of the plot
    broken.write_text(
        re.sub(r'<li data-footnote="1">[^<]*</li>', "", page).replace('<circle cx="', '<circle cx="-9', 1)
    )
    done = subprocess.run([sys.executable, str(BROWSER_CHECK), str(broken)], capture_output=True, text=True)
    assert done.returncode == 1
    assert "n/a cells refer to footnotes not listed: ['1']" in done.stderr
    assert "1 plot points are drawn outside their plot" in done.stderr


def test_rows_of_one_dataset_name_on_different_images_are_flagged(study, tmp_path, capsys):
    """Two folders named photos evaluated ad hoc once gave one dataset name: the digests tell them apart."""
    files = []
    for approach, digest in (("A", "a" * 64), ("B", "a" * 64), ("C", "c" * 64)):
        row = _metrics_json(approach, APPROACHES[approach], None, study / "images")
        row["gt_sha256"] = digest
        files.append(tmp_path / f"{approach}.json")
        files[-1].write_text(json.dumps(row))
    report = build_report(files, tmp_path / "out", grid=0)
    warning = next(w for w in report.sections[0].warnings if "NOT COMPARABLE" in w)
    assert "A, B (ground truth aaaaaaaaaaaa)" in warning and "C (ground truth cccccccccccc)" in warning
    assert "> **Warning:** NOT COMPARABLE" in report.md_path.read_text()
    assert '<p class="warning">Warning: NOT COMPARABLE' in report.html_path.read_text()
    # equal digests, or files written before the digest (the study fixture's): no such warning
    same = build_report(files[:2], tmp_path / "same", grid=0)
    old = build_report([study / "study"], tmp_path / "old", grid=0)
    for r in (same, old):
        assert not any("NOT COMPARABLE" in w for s in r.sections for w in s.warnings)


def test_outside_method_finds_references_beside_its_ground_truth(study, tmp_path):
    """evaluate_folders' json lies beside the predictions; its gt/ is an evaluation's, with references."""
    references = study / "study" / "A" / "eval" / "fake" / "references.json"
    (study / "images" / "references.json").write_text(references.read_text())
    outside = _metrics_json("outside", APPROACHES["B"], None, study / "images")
    outside["gt_dir"] = str(study / "images" / "gt")
    (tmp_path / "metrics_outside.json").write_text(json.dumps(outside))
    results = collect_results([tmp_path / "metrics_outside.json"])
    assert [r.approach for r in results.references["fake"]] == ["ground truth", "greyscale input"]


def test_report_names_the_command_that_wrote_it(report, study, tmp_path):
    assert "by `gan-colorize report`." in report.md_path.read_text()  # the default
    command = "gan-colorize experiment studies/a&b.yaml"
    written = build_report([study / "study"], tmp_path / "out", grid=0, title="Study", command=command)
    md, page = written.md_path.read_text(), written.html_path.read_text()
    assert f"by `{command}`." in md and "gan-colorize report" not in md
    assert "by <code>gan-colorize experiment studies/a&amp;b.yaml</code>." in page
    assert "gan-colorize report" not in page


def test_thumbnails_keep_full_colour_resolution(report):
    """4:2:0 chroma subsampling would halve the colour resolution the grid is there to compare."""
    page = report.html_path.read_text()
    colour = 0
    for src in re.findall(r'<img [^>]*src="data:image/jpeg;base64,([^"]+)"', page):
        with Image.open(io.BytesIO(base64.b64decode(src))) as image:
            if image.mode == "RGB":
                colour += 1
                assert JpegImagePlugin.get_sampling(image) == 0  # 4:4:4
    assert colour == 4 * 4  # 3 approaches + ground truth per image; the input is greyscale


def test_a_lone_point_is_drawn_as_a_marker(tmp_path):
    """A polyline of one point renders nothing: a run logged once, or one finite value among NaNs."""
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    rows = [{"step": s, "loss/d": v} for s, v in ((1, float("nan")), (2, 0.5), (3, float("inf")))]
    run.metrics.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (lone,) = read_loss_series(run)
    long = Series("g", [float(s) for s in range(1000)], [1.0 + s % 7 for s in range(1000)])
    svg = curves_svg("lone", [lone, long])
    circles = re.findall(r'<circle cx="([-\d.]+)" cy="([-\d.]+)" r="[\d.]+" fill="(#\w+)"/>', svg)
    assert len(circles) == 1  # the lone point; the long series is a line, not 1000 markers
    x, y, colour = circles[0]
    assert colour == "#4e79a7"  # the first series' colour, as in the legend
    assert 56 <= float(x) <= 560 - 150 and 28 <= float(y) <= 260 - 40  # inside the plot area


def test_a_new_report_removes_what_an_earlier_one_wrote_and_nothing_else(study, tmp_path):
    out = tmp_path / "out"
    build_report([study / "study"], out, grid=4)
    # an earlier report's outputs: a run and a dataset no longer in the report
    stale = [out / "curves_gone.svg", out / "images" / "old_set" / "00_input" / "img_00.jpg"]
    # files the report never writes, also where it writes
    kept = [
        out / "notes.txt",
        out / "curves.svg",
        out / "my_curves_x.svg",
        out / "images" / "readme.txt",
        out / "images" / "fake" / "readme.txt",
        out / "images" / "fake" / "00_input" / "picked.png",
        out / "images" / "old_set" / "selected" / "img_00.jpg",
    ]
    # someone's folder linked into the report folder, named as the report names its thumbnails
    elsewhere = tmp_path / "elsewhere" / "00_input" / "img_00.jpg"
    kept.append(elsewhere)
    for path in stale + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    (out / "images" / "linked").symlink_to(elsewhere.parent.parent, target_is_directory=True)
    report = build_report([study / "study"], out, grid=2)
    assert not any(path.exists() for path in stale)
    assert not (out / "images" / "old_set" / "00_input").exists()  # its emptied folder too
    assert all(path.read_text() == "x" for path in kept)
    written = {t.file for s in report.sections for line in s.grid.cells for t in line}
    on_disk = {p.relative_to(out).as_posix() for p in (out / "images").rglob("*.jpg")}
    on_disk -= {"images/linked/00_input/img_00.jpg"}  # rglob follows the link on some Pythons
    assert on_disk == written | {"images/old_set/selected/img_00.jpg"}  # grid of 4 -> 2: no img_02
    assert sorted(p.name for p in out.glob("curves_*.svg")) == ["curves_A.svg"]


def test_markdown_escapes_labels_that_would_render_as_markup(study, tmp_path):
    label = "a<b>&\"q'|*x_[y](z) `c` _e_ \\* \\# &lt;"
    row = _metrics_json(label, APPROACHES["A"], None, study / "images")
    (tmp_path / "metrics.json").write_text(json.dumps(row))
    report = build_report([tmp_path / "metrics.json"], tmp_path / "out", grid=0)
    rendered = MarkdownIt("commonmark").enable("table").render(report.md_path.read_text())
    first_cells = re.findall(r"<tbody>\s*<tr>\s*<td>(.*?)</td>", rendered)
    assert first_cells and all(html.unescape(cell) == label for cell in first_cells)  # no tags, as written


def test_a_row_scored_by_the_network_it_trained_with_is_marked_and_not_ranked(tmp_path):
    # P trained with a Lite0 perceptual loss, E on a Lite2 encoder, Q with a Lite0 term of weight 0,
    # O has no config: each Frechet column marks only the rows whose model used its network
    rng = np.random.default_rng(0)
    images = tmp_path / "images"
    for name in NAMES:
        _png(images / "gt" / name, rng)
        _png(images / "input" / name, rng, grey=True)
    configs = {
        "P": "model: {generator: {type: unet}}\n"
        "loss: {lambda_perc: 1.0, perceptual: {type: efficientnet_lite0}}\n",
        "E": "model: {generator: {type: unet_backbone, encoder: efficientnet_lite2}}\n"
        "loss: {lambda_perc: 0.0}\n",
        "Q": "loss: {lambda_perc: 0.0, perceptual: {type: efficientnet_lite0}}\n",
        "O": None,
    }
    scores = {"P": (1.0, 9.0), "E": (8.0, 2.0), "Q": (3.0, 4.0), "O": (5.0, 3.0)}
    for approach, config in configs.items():
        run = tmp_path / "study" / approach
        (run / "eval" / "fake").mkdir(parents=True)
        if config is not None:
            (run / "config.yaml").write_text(config)
        lite0, lite2 = scores[approach]
        metrics = {"efficientnet_fd": lite0, "efficientnet_lite2_fd": lite2, "psnr": 20.0}
        row = _metrics_json(approach, metrics, run, images)
        row["config"] = None if config is None else str(run / "config.yaml")
        (run / "eval" / "fake" / "metrics.json").write_text(json.dumps(row))
    md = build_report([tmp_path / "study"], tmp_path / "out", grid=0).md_path.read_text()
    header = next(line for line in md.splitlines() if line.startswith("| approach"))
    fd0 = [c.strip() for c in header.strip("|").split("|")].index("EffNet-FD\\* ↓")
    fd2 = [c.strip() for c in header.strip("|").split("|")].index("EffNet-L2-FD\\* ↓")
    assert _md_row(md, "P")[fd0] == "1.00 †"  # the lowest Lite0 distance, but its own network: not bold
    assert _md_row(md, "Q")[fd0] == "**3.00**"  # weight 0: the Lite0 loss never ran
    assert _md_row(md, "E")[fd2] == "2.00 †" and _md_row(md, "O")[fd2] == "**3.00**"
    assert _md_row(md, "O")[fd0] == "5.00" and _md_row(md, "E")[fd0] == "8.00"
    assert "efficientnet\\_fd compares efficientnet\\_lite0 features, and P trained with" in md
    assert "efficientnet\\_lite2\\_fd compares efficientnet\\_lite2 features, and E trained with" in md


# ---------------------------------------------------------------- report v2 (issue #14)
def _rows_in(folder: Path, rows: dict[str, dict], images: Path, **fields) -> list[Path]:
    """One metrics file per approach in ``folder`` (outside-method rows: no run)."""
    files = []
    for approach, metrics in rows.items():
        row = {**_metrics_json(approach, metrics, None, images), **fields}
        files.append(folder / f"{approach}.json")
        files[-1].parent.mkdir(parents=True, exist_ok=True)
        files[-1].write_text(json.dumps(row))
    return files


def test_an_outside_methods_jpg_predictions_fill_their_grid_cells(study, tmp_path):
    """evaluate --pred matches by stem, any extension: the grid finds x.jpg for the ground truth's x.png."""
    outside = tmp_path / "outside"
    outside.mkdir()
    for i, name in enumerate(NAMES):
        suffix = (".jpg", ".webp", ".JPEG")[i % 3]
        Image.open(study / "images" / "gt" / name).save(outside / (Path(name).stem + suffix))
    row = _metrics_json("ddcolor", APPROACHES["B"], None, study / "images")
    row["pred_dir"], row["gt_dir"] = str(outside), str(study / "images" / "gt")
    (tmp_path / "metrics_ddcolor.json").write_text(json.dumps(row))
    report = build_report([study / "study", tmp_path / "metrics_ddcolor.json"], tmp_path / "out", grid=4)
    grid = report.sections[0].grid
    column = grid.headers.index("ddcolor")
    assert all(line[column] is not None for line in grid.cells)
    assert "missing" not in report.md_path.read_text().split("### Images")[1]


def test_na_reasons_are_numbered_footnotes_said_once(study, tmp_path):
    fid_reason = "missing pt_inception-2015-12-05-6726825d.pth, see README"
    rows = {"P": {"psnr": 20.0, "cf": 1.0, "delta_cf": 1.0}, "Q": {"psnr": 21.0, "cf": 1.0, "delta_cf": 2.0}}
    files = _rows_in(tmp_path / "rows", rows, study / "images")
    for file in files:  # both rows: LPIPS and FID n/a, so four n/a cells for two reasons
        row = json.loads(file.read_text())
        row["missing"] = {"lpips": LPIPS_MISSING, "fid": f"n/a ({fid_reason})"}
        file.write_text(json.dumps(row))
    report = build_report(files, tmp_path / "out", grid=0)
    md, page = report.md_path.read_text(), report.html_path.read_text()
    col = {name.split(" ")[0]: i for i, name in enumerate(_md_header(md))}
    for label in ("P", "Q"):
        assert _md_row(md, label)[col["FID"]] == "n/a¹" and _md_row(md, label)[col["LPIPS"]] == "n/a²"
    md_fid = fid_reason.replace("_", "\\_")  # markdown escapes it
    assert md.count(md_fid) == 1 and md.count(LPIPS_REASON) == 1
    assert page.count(fid_reason) == 1 and page.count(LPIPS_REASON) == 1
    assert "¹ " + md_fid in md and "² " + LPIPS_REASON in md
    assert (
        '<li data-footnote="1">¹ ' + fid_reason in page
        and '<td class="num missing" data-footnote="2">' in page
    )


def _points(svg: str) -> dict[str, tuple[float, float, bool]]:
    import xml.etree.ElementTree as ET

    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    return {
        g.get("data-label"): (
            float(g.get("data-x")),
            float(g.get("data-y")),
            g.get("data-reference") == "true",
        )
        for g in root.iter(f"{ns}g")
        if g.get("class") == "point"
    }


def test_the_tradeoff_plot_has_one_point_per_row_with_its_values(report):
    section = report.sections[0]
    assert (section.tradeoff.x.key, section.tradeoff.y.key) == ("psnr", "fid")  # FID computed: FID
    svg = (report.out / section.tradeoff_file).read_text()
    assert svg in report.html_path.read_text()  # inline in the page, beside report.md as a file
    points = _points(svg)
    expected = {a: (m["psnr"], m["fid"], False) for a, m in APPROACHES.items()}
    expected["greyscale input"] = (REFERENCES["greyscale input"]["psnr"], 90.0, True)
    assert points == expected  # the ground truth's PSNR is infinite: not drawn, and the caption says so
    assert "Not drawn: ground truth (PSNR ∞" in section.tradeoff.caption
    assert "PSNR (→ better)" in svg and "FID (↓ better)" in svg  # the axes say which way is better


def test_the_tradeoff_plot_falls_back_to_an_unmarked_frechet_distance_then_to_delta_cf(study, tmp_path):
    rows = {a: {k: v for k, v in m.items() if k not in ("fid", "fid_n")} for a, m in APPROACHES.items()}
    files = _rows_in(tmp_path / "rows", rows, study / "images")
    section = build_report(files, tmp_path / "out", grid=0).sections[0]
    assert section.tradeoff.y.key == "efficientnet_fd"
    assert _points(section.tradeoff.svg)["A"] == (22.0, 4.0, False)
    # a row trained with Lite0 features marks its EffNet-FD cell †: that distance is not an axis
    run = tmp_path / "study" / "P"
    (run / "eval" / "fake").mkdir(parents=True)
    (run / "config.yaml").write_text("loss: {lambda_perc: 1.0, perceptual: {type: efficientnet_lite0}}\n")
    row = _metrics_json("P", rows["B"], run, study / "images")
    (run / "eval" / "fake" / "metrics.json").write_text(json.dumps(row))
    section = build_report(
        files + [run / "eval" / "fake" / "metrics.json"], tmp_path / "out2", grid=0
    ).sections[0]
    assert section.tradeoff.y.key == "delta_cf" and _points(section.tradeoff.svg)["P"] == (23.5, 2.0, False)


def test_a_newly_registered_metric_renders_with_its_own_display(study, tmp_path):
    from gan_colorize.metrics import Display, Metric
    from gan_colorize.registry import METRICS

    name = "test_report_sharpness"
    if name not in METRICS:

        @METRICS.register(name)
        class Sharpness(Metric):  # noqa: F841 (registered by the decorator)
            primary = "sharp"
            display = (
                Display("sharp", "Sharpness", digits=4, better="higher", order=45, note="Sharpness: a test"),
            )

    rows = {"P": {"psnr": 20.0, "sharp": 0.123456}, "Q": {"psnr": 21.0, "sharp": 0.5}}
    md = build_report(
        _rows_in(tmp_path / "rows", rows, study / "images"), tmp_path / "out", grid=0
    ).md_path.read_text()
    header = _md_header_of(md)
    assert header.index("Sharpness ↑") == header.index("PSNR ↑") + 1  # order 45: after PSNR (40)
    assert _md_row(md, "P")[header.index("Sharpness ↑")] == "0.1235"
    assert _md_row(md, "Q")[header.index("Sharpness ↑")] == "**0.5000**"
    assert "- Sharpness: a test" in md


def _md_header_of(md: str) -> list[str]:
    line = next(line for line in md.splitlines() if line.startswith("| approach |"))
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_each_row_says_how_its_config_differs_from_the_first(study, tmp_path):
    configs = {
        "base": "loss: {lambda_l1: 100.0, lambda_gan: 1.0}\nrun: {name: base, dir: x}\n",
        "noadv": "loss: {lambda_l1: 100.0, lambda_gan: 0.0}\nrun: {name: noadv, dir: y}\n",
        "same": "loss: {lambda_l1: 100.0, lambda_gan: 1.0}\nrun: {name: same, dir: z}\n",
    }
    files = []
    for approach, text in configs.items():
        run = tmp_path / "study" / approach
        (run / "eval" / "fake").mkdir(parents=True)
        (run / "config.yaml").write_text(text)
        files.append(run / "eval" / "fake" / "metrics.json")
        files[-1].write_text(json.dumps(_metrics_json(approach, APPROACHES["A"], run, study / "images")))
    outside = _rows_in(tmp_path / "outside", {"ddcolor": APPROACHES["B"]}, study / "images")
    md = build_report(files + outside, tmp_path / "out", grid=0).md_path.read_text()
    column = _md_header_of(md).index("differs by")
    assert _md_row(md, "base")[column] == "(base)"
    assert _md_row(md, "noadv")[column] == "loss.lambda\\_gan: 0"  # run.dir and run.name differ always
    assert _md_row(md, "same")[column] == "same config"
    assert _md_row(md, "ddcolor")[column].startswith("outside method")


def test_curves_have_a_panel_per_validation_metric_but_not_its_cost(tmp_path):
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    rows = [{"step": s, "loss/g_l1": 10.0 / s, "loss/d": 0.7} for s in range(1, 11)]
    val = {"val/seconds": 1.5, "val/images": 8, "val/cf_gt": 30.0, "val/fid_n": 8}  # costs, counts, constants
    rows += [{"step": s, "val/psnr": 20.0 + s, "val/delta_cf": 3.0 / s, **val} for s in (5, 10)]
    run.metrics.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (curve,) = build_report_curves([run], tmp_path / "out")
    titles = re.findall(r"<svg [^>]*>\s*<title>([^<]+)</title>", curve.svg)
    assert titles[1:] == ["loss: d", "loss: g_l1", "validation: ΔCF →0", "validation: PSNR ↑"]
    assert not any(word in curve.svg for word in ("seconds", "images", "cf_gt", "fid_n"))


def build_report_curves(runs, out):
    from gan_colorize.report.curves import build_curves

    out.mkdir(parents=True, exist_ok=True)
    return build_curves(runs, out)


def test_no_report_module_imports_one_that_imports_it_back():
    import ast

    folder = Path(__file__).resolve().parent.parent / "gan_colorize" / "report"
    imports = {}
    for path in folder.glob("*.py"):
        tree = ast.parse(path.read_text())
        names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imports[path.stem] = {m.rsplit(".", 1)[1] for m in names if m.startswith("gan_colorize.report.")}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(
            m == goal or (m not in seen and reaches(m, goal, seen | {m})) for m in imports.get(start, ())
        )

    circles = [m for m in imports if m != "__init__" and reaches(m, m, {m})]
    assert not circles, f"import circles through {circles}"


def test_the_ground_truth_is_not_drawn_even_at_a_finite_capped_psnr(study, tmp_path):
    """PSNR caps identical images at 100 dB: a ground-truth point there squeezed the approaches together."""
    references = json.loads((study / "study" / "A" / "eval" / "fake" / "references.json").read_text())
    references["rows"][0]["metrics"]["psnr"] = 100.0
    folder = tmp_path / "eval" / "fake"
    folder.mkdir(parents=True)
    (folder / "references.json").write_text(json.dumps(references))
    files = _rows_in(folder.parent, {"A": APPROACHES["A"], "B": APPROACHES["B"]}, study / "images")
    section = build_report(files + [folder / "references.json"], tmp_path / "out", grid=0).sections[0]
    assert set(_points(section.tradeoff.svg)) == {"A", "B", "greyscale input"}
    assert "Not drawn: ground truth (PSNR 100.00, FID 0.0)" in section.tradeoff.caption


def test_a_config_that_is_not_text_leaves_its_row_without_differences(study, tmp_path):
    """A run folder from elsewhere may hold anything as config.yaml: the report is still written."""
    files = []
    for approach, config in (("base", b"loss: {lambda_l1: 1.0}\n"), ("binary", b"\x80\x03pickled")):
        run = tmp_path / "study" / approach
        (run / "eval" / "fake").mkdir(parents=True)
        (run / "config.yaml").write_bytes(config)
        files.append(run / "eval" / "fake" / "metrics.json")
        files[-1].write_text(json.dumps(_metrics_json(approach, APPROACHES["A"], run, study / "images")))
    md = build_report(files, tmp_path / "out", grid=0).md_path.read_text()
    column = _md_header_of(md).index("differs by")
    assert _md_row(md, "base")[column] == "(base)" and _md_row(md, "binary")[column] == "—"
