"""Studies: several runs trained, evaluated on the same images and reported side by side.

A study file (``experiments/*.yaml``) is data, like a config::

    name: demo
    out: runs/demo                  # default: runs/<name>; each run trains into <out>/<run name>
    set: [train.seed=0]             # overrides for every run (optional)
    runs:
      - {name: classification, config: configs/tiny/classification.yaml}
      - name: unet_zhang_gan
        config: configs/tiny/unet_zhang_gan.yaml
        set: ["model.init_from={out}/classification"]   # {out}: the study's out folder
    eval:
      sets: [skimage_holdout]       # eval/sets/<name>.yaml; or  data: builtin:skimage  and  size: 64
      metrics: [colorfulness, psnr, ssim]
    report: {grid: 6, title: "..."}

Runs are trained in file order (so a run can start from an earlier one), each resumed where it
stopped (a finished run returns at once), then evaluated; the report goes to ``<out>/report/``.
Paths in a study file are relative to the current directory (run from the repository root), like
the paths inside configs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gan_colorize.config import Config, ConfigError, load_config, read_yaml
from gan_colorize.registry import closest
from gan_colorize.rundir import RunDir

log = logging.getLogger(__name__)

# the report was written, but some metric could not be computed: weights missing or unreadable,
# fewer than 2 images (Frechet distances), images under 31 px (LPIPS)
EXIT_PARTIAL = 3


class StudyError(ValueError):
    """A study file that does not fit the schema (names the file, the key and the problem)."""


@dataclass
class StudyRun:
    name: str
    config: str
    set: list[str] = field(default_factory=list)


@dataclass
class EvalSpec:
    sets: list[str] = field(default_factory=list)  # eval set names (eval/sets/<name>.yaml)
    data: str | None = None  # or an image folder / builtin:skimage ...
    size: int | None = None  # ... at this size
    metrics: list[str] | None = None  # None: the evaluation's defaults


@dataclass
class ReportSpec:
    grid: int = 6
    title: str | None = None


@dataclass
class Study:
    name: str
    runs: list[StudyRun]
    out: str | None = None
    set: list[str] = field(default_factory=list)
    eval: EvalSpec = field(default_factory=EvalSpec)
    report: ReportSpec = field(default_factory=ReportSpec)
    description: str = ""
    path: Path | None = None  # the study file

    @property
    def out_dir(self) -> Path:
        return Path(self.out or Path("runs") / self.name)

    def run_dir(self, run: StudyRun) -> Path:
        return self.out_dir / run.name

    @property
    def report_dir(self) -> Path:
        return self.out_dir / "report"


# ---------------------------------------------------------------- parsing
def _check_keys(data: Any, cls: type, where: str) -> dict:
    if not isinstance(data, dict):
        raise StudyError(f"{where}: expected a mapping, got {data!r}")
    names = [f.name for f in dataclasses.fields(cls) if f.name != "path"]
    for key in data:
        if key not in names:
            raise StudyError(
                f"{where}: unknown key {key!r}{closest(str(key), names)}; valid: {', '.join(names)}"
            )
    return data


def _str_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise StudyError(f"{where}: expected a list of strings, got {value!r}")
    return list(value)


def _parse_runs(value: Any, where: str) -> list[StudyRun]:
    if not isinstance(value, list) or not value:
        raise StudyError(f"{where}: 'runs' must be a non-empty list of {{name, config, set}}")
    runs, seen = [], set()
    for i, item in enumerate(value):
        at = f"{where}: runs[{i}]"
        _check_keys(item, StudyRun, at)
        for key in ("name", "config"):
            if not isinstance(item.get(key), str) or not item[key]:
                raise StudyError(f"{at}: needs {key!r} (a string)")
        name = item["name"]
        if "/" in name or name in (".", "..", "report"):
            raise StudyError(f"{at}: name {name!r} must be a plain folder name other than 'report'")
        if name in seen:
            raise StudyError(f"{at}: run name {name!r} is used twice")
        seen.add(name)
        runs.append(StudyRun(name, item["config"], _str_list(item.get("set"), f"{at}.set")))
    return runs


def parse_study(data: Any, where: str = "study") -> Study:
    """A study from the dict a YAML file holds; unknown keys are errors with a suggestion."""
    _check_keys(data, Study, where)
    if not isinstance(data.get("name"), str) or not data["name"]:
        raise StudyError(f"{where}: needs 'name' (a string)")
    eval_data = _check_keys(data.get("eval") or {}, EvalSpec, f"{where}: eval")
    report_data = _check_keys(data.get("report") or {}, ReportSpec, f"{where}: report")
    eval_spec = EvalSpec(
        sets=_str_list(eval_data.get("sets"), f"{where}: eval.sets"),
        data=eval_data.get("data"),
        size=eval_data.get("size"),
        metrics=_str_list(eval_data["metrics"], f"{where}: eval.metrics") if "metrics" in eval_data else None,
    )
    if eval_spec.sets and eval_spec.data:
        raise StudyError(f"{where}: eval: give either 'sets' or 'data' (with 'size'), not both")
    if eval_spec.size is not None and (not isinstance(eval_spec.size, int) or eval_spec.size < 8):
        raise StudyError(f"{where}: eval.size must be an integer >= 8, got {eval_spec.size!r}")
    grid = report_data.get("grid", ReportSpec.grid)
    if not isinstance(grid, int) or grid < 0:
        raise StudyError(f"{where}: report.grid must be an integer >= 0, got {grid!r}")
    return Study(
        name=data["name"],
        runs=_parse_runs(data.get("runs"), where),
        out=data.get("out"),
        set=_str_list(data.get("set"), f"{where}: set"),
        eval=eval_spec,
        report=ReportSpec(grid=grid, title=report_data.get("title")),
        description=data.get("description") or "",
    )


def load_study(path: str | Path) -> Study:
    path = Path(path)
    try:
        data = read_yaml(path)
    except ConfigError as exc:
        raise StudyError(str(exc).replace("config file", "study file")) from None
    study = parse_study(data, str(path))
    study.path = path
    return study


# ---------------------------------------------------------------- plan
@dataclass
class PlannedRun:
    run: StudyRun
    config: Config
    dir: Path


def run_overrides(study: Study, run: StudyRun, extra: list[str] | None = None) -> list[str]:
    """Study-wide ``set``, the run's ``set``, then the command line's; the run folder last (fixed)."""
    expand = lambda text: text.replace("{out}", str(study.out_dir))  # noqa: E731
    overrides = [expand(s) for s in study.set + run.set + list(extra or [])]
    return overrides + [f"run.dir={study.run_dir(run)}", f"run.name={run.name}"]


def plan_study(
    study: Study, only: list[str] | None = None, overrides: list[str] | None = None
) -> list[PlannedRun]:
    """Every selected run's resolved config, all loaded before anything trains (a typo fails at once)."""
    names = [r.name for r in study.runs]
    for name in only or []:
        if name not in names:
            raise StudyError(
                f"{study.path or study.name}: no run {name!r}{closest(name, names)}; runs: {', '.join(names)}"
            )
    planned = []
    for run in study.runs:
        if only and run.name not in only:
            continue
        if not Path(run.config).is_file():
            raise StudyError(
                f"{study.path or study.name}: run {run.name!r}: config file {run.config} does not exist "
                f"(paths are relative to the current directory, {Path.cwd()})"
            )
        try:
            config = load_config(run.config, run_overrides(study, run, overrides))
        except ConfigError as exc:
            raise StudyError(f"{study.path or study.name}: run {run.name!r}: {exc}") from None
        planned.append(PlannedRun(run, config, study.run_dir(run)))
    return planned


def run_status(planned: PlannedRun) -> str:
    """'finished', 'at step N of M (resumes)' or 'not trained'."""
    checkpoints = RunDir(planned.dir).list_checkpoints()
    if not checkpoints:
        return "not trained"
    step, total = checkpoints[-1][0], planned.config.train.steps
    return "finished" if step >= total else f"at step {step} of {total} (resumes)"


# ---------------------------------------------------------------- running
def check_eval(study: Study) -> None:
    """Eval sets and metric names checked before anything trains (hours later is too late)."""
    from gan_colorize.evaluation import EvalSetError, load_eval_set
    from gan_colorize.evaluation.evaluate import metric_names
    from gan_colorize.registry import RegistryError

    where = study.path or study.name
    if not study.eval.sets and not study.eval.data:
        raise StudyError(f"{where}: eval needs 'sets' (eval/sets/NAME.yaml) or 'data' (and 'size')")
    for name in study.eval.sets:
        try:
            load_eval_set(name)
        except EvalSetError as exc:
            raise StudyError(f"{where}: eval.sets: {exc}") from None
    if study.eval.metrics is not None:
        try:
            metric_names(study.eval.metrics)
        except RegistryError as exc:
            raise StudyError(f"{where}: eval.metrics: {exc}") from None


def eval_datasets(study: Study, planned: PlannedRun) -> list[str]:
    """The dataset names (``RUN/eval/<name>/``) the study's evaluation writes for a run."""
    from gan_colorize.evaluation import load_eval_set
    from gan_colorize.evaluation.evaluate import default_dataset_name

    if study.eval.sets:
        return [load_eval_set(name).name for name in study.eval.sets]
    size = study.eval.size or planned.config.data.size
    return [default_dataset_name(planned.config, study.eval.data, size)]


@contextlib.contextmanager
def training_device(device: str | None):
    """``cpu`` keeps training on the CPU even with a GPU (accelerate reads ACCELERATE_USE_CPU)."""
    saved = os.environ.get("ACCELERATE_USE_CPU")
    if device == "cpu":
        os.environ["ACCELERATE_USE_CPU"] = "true"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("ACCELERATE_USE_CPU", None)
        else:
            os.environ["ACCELERATE_USE_CPU"] = saved


class StudyInterruptedError(RuntimeError):
    """A run stopped before ``train.steps`` (Ctrl-C, SIGTERM): the study stops too."""


def train_run(planned: PlannedRun, device: str | None) -> None:
    """Train (or resume, or find finished) one run; raises StudyInterruptedError if it stopped early."""
    from gan_colorize.training import train

    log.info("run %s: training into %s (resumes where it stopped)", planned.run.name, planned.dir)
    with training_device(device):
        train(planned.config, resume="latest")
    # train() returns normally after a Ctrl-C (it writes a checkpoint and stops): evaluating that
    # half-trained run and starting the next one would ignore the request to stop
    checkpoints = RunDir(planned.dir).list_checkpoints()
    step = checkpoints[-1][0] if checkpoints else 0
    if step < planned.config.train.steps:
        raise StudyInterruptedError(
            f"run {planned.run.name!r} stopped at step {step} of {planned.config.train.steps}; "
            f"run the same command again to resume it and go on with the study"
        )


def evaluate_planned(study: Study, planned: PlannedRun, device: str | None) -> list[dict]:
    """Evaluate one run on each of the study's eval sets (or its data/size); the metrics.json rows."""
    from gan_colorize.evaluation import evaluate_run

    spec = study.eval
    # the study's own config named the generator and this process just trained it: trusted
    common = {"metrics": spec.metrics, "device": device, "trust_code": True}
    if spec.sets:
        return [evaluate_run(planned.dir, eval_set=s, **common) for s in spec.sets]
    return [evaluate_run(planned.dir, data=spec.data, size=spec.size, **common)]


def run_study(
    study: Study,
    only: list[str] | None = None,
    overrides: list[str] | None = None,
    device: str | None = None,
) -> tuple[Path, bool]:
    """Train, evaluate and report; returns (report.html, whether some evaluation was partial)."""
    from gan_colorize.report import build_report

    planned = plan_study(study, None, overrides)  # every run: the report covers them all
    selected = plan_study(study, only, overrides) if only else planned
    check_eval(study)
    for item in selected:
        train_run(item, device)
        evaluate_planned(study, item, device)  # None: a GPU when there is one
    # every run of the study with results on the study's eval data, also runs not selected this time;
    # results on other data in the same run folders (an earlier study file) are left out
    files = []
    for item in planned:
        for dataset in eval_datasets(study, item):
            file = RunDir(item.dir).eval_dir(dataset) / "metrics.json"
            if file.is_file():
                files.append(file)
    if not files:
        raise StudyError(f"{study.path or study.name}: no run of the study has evaluation results yet")
    report = build_report(
        files, study.report_dir, grid=study.report.grid, title=study.report.title or study.name
    )
    partial = any(trow.row.partial for section in report.sections for trow in section.rows)
    return report.html_path, partial
