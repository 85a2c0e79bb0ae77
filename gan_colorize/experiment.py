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
      - {name: ddcolor, pred: outside/ddcolor}      # an outside method: its images, scored beside the runs
    eval:
      sets: [skimage_holdout]       # eval/sets/<name>.yaml; or  data: builtin:skimage  and  size: 64
      metrics: [colorfulness, psnr, ssim]
    report: {grid: 6, title: "..."}

Runs are trained in file order (so a run can start from an earlier one), each resumed where it
stopped (a finished run is left as it is), then evaluated; the report goes to ``<out>/report/``.
An outside method (``pred:`` a folder of its colorizations, named as the set's ground truth, any
image extension; ``pred/<dataset>/`` when there are several sets) is scored against the ground truth
a run's evaluation wrote (``RUN/eval/<dataset>/gt``), with the same metrics (the set's default list,
efficientnet_fd included), into ``<out>/<name>/eval/<dataset>/metrics.json``.
A run folder already in ``out`` is a file from elsewhere like any other: its checkpoint may name
an unregistered ``module:Class`` generator, which is imported (its code run) only when this call
trained that checkpoint or with ``--trust-code`` (README, "Files from elsewhere").
Paths in a study file are relative to the current directory (run from the repository root), like
the paths inside configs.

Everything that can be checked before training is (configs, the training data of each run that
will train, eval sets and their data, metric names, and that each ``model.init_from`` exists or
is the folder of a run trained before it): hours later is too late. A run that fails while
training or being evaluated is reported ("run 'x' failed: ...") and the study goes on without it
(a run that starts from it is skipped); the report shows the runs that have results and the
failures are listed. Ctrl-C stops the whole study.

A run's evaluation on a set is skipped ("up to date") when its ``metrics.json`` records the
checkpoint that is the run's latest now, the same metrics, protocol and data; ``reevaluate``
(``--reevaluate``) redoes it, e.g. after installing the weights of a metric that said n/a or after
the images in an evaluated folder changed (the check reads the folder's path, not its images).
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gan_colorize.config import Config, ConfigError, load_config, read_yaml
from gan_colorize.registry import closest
from gan_colorize.rundir import RunDir, UnsafeNameError, absent, check_name
from gan_colorize.schema import check_keys, coerce, key_names

if TYPE_CHECKING:
    from gan_colorize.report import Report

log = logging.getLogger(__name__)

# the report was written, but some metric could not be computed: weights missing or unreadable,
# fewer than 2 images (Frechet distances), images under 31 px (LPIPS)
EXIT_PARTIAL = 3


class StudyError(ValueError):
    """A study file that does not fit the schema (names the file, the key and the problem)."""


@dataclass
class StudyRun:
    name: str
    config: str | None = None  # a run: trained from this config ...
    set: list[str] = field(default_factory=list)
    pred: str | None = None  # ... or an outside method: its colorizations, scored as they are

    @property
    def outside(self) -> bool:
        return self.pred is not None


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

    @property
    def trained(self) -> list[StudyRun]:
        return [r for r in self.runs if not r.outside]

    @property
    def outside(self) -> list[StudyRun]:
        return [r for r in self.runs if r.outside]


# ---------------------------------------------------------------- parsing
def _check_keys(data: Any, cls: type, where: str) -> dict:
    return check_keys(data, key_names(cls), where, StudyError)


def _str_list(value: Any, where: str) -> list[str]:
    """A list of strings; one string is a list of one, nothing an empty list."""
    if value is None:
        return []
    return coerce([value] if isinstance(value, str) else value, list[str], where, StudyError)


def _optional_str(value: Any, where: str) -> str | None:
    return coerce(value, str | None, where, StudyError)


def _parse_runs(value: Any, where: str) -> list[StudyRun]:
    if not isinstance(value, list) or not value:
        raise StudyError(
            f"{where}: 'runs' must be a non-empty list of {{name, config, set}} or {{name, pred}}"
        )
    runs, seen = [], set()
    for i, item in enumerate(value):
        at = f"{where}: runs[{i}]"
        _check_keys(item, StudyRun, at)
        if not isinstance(item.get("name"), str) or not item["name"]:
            raise StudyError(f"{at}: needs 'name' (a string)")
        if "pred" in item:
            _check_outside(item, at)
        elif not isinstance(item.get("config"), str) or not item["config"]:
            raise StudyError(f"{at}: needs 'config' (a string), or 'pred' (an outside method's images)")
        name = item["name"]
        try:  # each run trains into <out>/<name>
            check_name(name, "name")
        except UnsafeNameError as exc:
            raise StudyError(f"{at}: {exc}") from None
        if name == "report":
            raise StudyError(f"{at}: name 'report' is the study's report folder; choose another")
        if name in seen:
            raise StudyError(f"{at}: run name {name!r} is used twice")
        seen.add(name)
        runs.append(
            StudyRun(name, item.get("config"), _str_list(item.get("set"), f"{at}.set"), item.get("pred"))
        )
    if not any(not r.outside for r in runs):
        raise StudyError(f"{where}: 'runs' needs a run with a config: outside methods are scored against "
                         "the ground truth its evaluation writes")  # fmt: skip
    return runs


def _check_outside(item: dict, at: str) -> None:
    """``{name, pred}``: a folder of images, nothing to train (no config, no overrides)."""
    if not isinstance(item["pred"], str) or not item["pred"]:
        raise StudyError(f"{at}: 'pred' must be a folder of an outside method's images, got {item['pred']!r}")
    extra = sorted(set(item) & {"config", "set"})
    if extra:
        raise StudyError(f"{at}: an outside method ('pred') is not trained: remove {', '.join(extra)}")


def parse_study(data: Any, where: str = "study") -> Study:
    """A study from the dict a YAML file holds; unknown keys are errors with a suggestion."""
    _check_keys(data, Study, where)
    if not isinstance(data.get("name"), str) or not data["name"]:
        raise StudyError(f"{where}: needs 'name' (a string)")
    try:  # the default out folder is runs/<name>
        check_name(data["name"], "name")
    except UnsafeNameError as exc:
        raise StudyError(f"{where}: {exc}") from None
    eval_data = _check_keys(data.get("eval") or {}, EvalSpec, f"{where}: eval")
    report_data = _check_keys(data.get("report") or {}, ReportSpec, f"{where}: report")
    eval_spec = EvalSpec(
        sets=_str_list(eval_data.get("sets"), f"{where}: eval.sets"),
        data=_optional_str(eval_data.get("data"), f"{where}: eval.data"),
        size=eval_data.get("size"),
        metrics=_str_list(eval_data["metrics"], f"{where}: eval.metrics") if "metrics" in eval_data else None,
    )
    if eval_spec.sets and (eval_spec.data is not None or eval_spec.size is not None):
        # a set fixes its own data and size: a size beside it would be ignored without a word
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
        report=ReportSpec(grid=grid, title=_optional_str(report_data.get("title"), f"{where}: report.title")),
        description=_optional_str(data.get("description"), f"{where}: description") or "",
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
    names = [r.name for r in study.trained]
    for name in only or []:
        if name not in names:
            raise StudyError(
                f"{study.path or study.name}: no run {name!r}{closest(name, names)}; runs: {', '.join(names)}"
            )
    planned = []
    for run in study.trained:
        if only and run.name not in only:
            continue
        if not Path(run.config).is_file():
            raise StudyError(
                f"{study.path or study.name}: run {run.name!r}: config file {run.config} "
                f"{absent(run.config)} "
                f"(paths are relative to the current directory, {Path.cwd()})"
            )
        try:
            config = load_config(run.config, run_overrides(study, run, overrides))
        except ConfigError as exc:
            raise StudyError(f"{study.path or study.name}: run {run.name!r}: {exc}") from None
        item = PlannedRun(run, config, study.run_dir(run))
        check_init_from(study, item, earlier=planned)
        planned.append(item)
    return planned


def _same_path(a: str | Path, b: str | Path) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def starts_from(item: PlannedRun) -> str | None:
    """The weights a run is initialised from, when it will read them: a resumed run loads its own."""
    if RunDir(item.dir).list_checkpoints():
        return None
    return item.config.model.init_from or None


def check_init_from(study: Study, item: PlannedRun, earlier: list[PlannedRun]) -> None:
    """``model.init_from`` exists, or is the folder of a run trained before this one (it will exist
    when this run's turn comes); otherwise the run would fail after the runs before it trained."""
    source = starts_from(item)
    if source is None or Path(source).exists() or any(_same_path(source, e.dir) for e in earlier):
        return
    raise StudyError(
        f"{study.path or study.name}: run {item.run.name!r}: model.init_from {source} {absent(source)} and "
        f"is not the folder of a run trained before it"
    )


def check_run_data(study: Study, selected: list[PlannedRun]) -> None:
    """The images each selected run will train on exist (a finished run reads none): a study
    that trained for an hour must not fail at the run whose folder was never there."""
    for item in selected:
        if run_status(item) == "finished":
            continue
        for key in ("train", "eval"):
            value = getattr(item.config.data, key)
            if value:
                check_data(value, f"{study.path or study.name}: run {item.run.name!r}: data.{key}")


def run_status(planned: PlannedRun) -> str:
    """'finished', 'at step N of M (resumes)' or 'not trained'."""
    checkpoints = RunDir(planned.dir).list_checkpoints()
    if not checkpoints:
        return "not trained"
    step, total = checkpoints[-1][0], planned.config.train.steps
    if step < total and is_finished(planned, step):
        return f"finished at its time budget (step {step} of {total})"
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
            eval_set = load_eval_set(name)
        except EvalSetError as exc:
            raise StudyError(f"{where}: eval.sets: {exc}") from None
        check_data(eval_set.data, f"{where}: eval set {name!r} ({eval_set.path}): data")
    if study.eval.data:
        check_data(study.eval.data, f"{where}: eval.data")
    if study.eval.metrics is not None:
        try:
            metric_names(study.eval.metrics)
        except RegistryError as exc:
            raise StudyError(f"{where}: eval.metrics: {exc}") from None


def check_data(data: str, where: str) -> None:
    """builtin:skimage or an image path that exists (what training or evaluation would find
    missing only after the runs before it trained); ``where`` names the setting."""
    from gan_colorize.data import BUILTIN
    from gan_colorize.evaluation import EvaluationError
    from gan_colorize.evaluation.evaluate import resolve_data

    if data.startswith("builtin:") and data != BUILTIN:
        raise StudyError(f"{where}: unknown builtin data {data!r}; the builtin data is {BUILTIN}")
    try:
        resolve_data(data)  # the error says where a relative path was looked for, and what to do
    except EvaluationError as exc:
        raise StudyError(f"{where}: {exc}") from None


def eval_datasets(study: Study, planned: PlannedRun) -> list[str]:
    """The dataset names (``RUN/eval/<name>/``) the study's evaluation writes for a run."""
    from gan_colorize.evaluation import load_eval_set
    from gan_colorize.evaluation.evaluate import default_dataset_name, resolve_images

    if study.eval.sets:
        return [load_eval_set(name).name for name in study.eval.sets]
    size = study.eval.size or planned.config.data.size
    return [default_dataset_name(resolve_images(planned.config, study.eval.data), size)]


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


def latest_step(run_dir: Path) -> int | None:
    """The step of the run's latest complete checkpoint; None when it has none."""
    checkpoints = RunDir(run_dir).list_checkpoints()
    return checkpoints[-1][0] if checkpoints else None


def is_finished(planned: PlannedRun, step: int) -> bool:
    """At ``train.steps``, or stopped at its time budget (``train.max_minutes``) at ``step``."""
    from gan_colorize.training.tracking import ended_by_budget

    return step >= planned.config.train.steps or ended_by_budget(RunDir(planned.dir).provenance, step)


def train_run(planned: PlannedRun, device: str | None) -> bool:
    """Train (or resume) one run; a finished run is left as it is, without building anything.
    Returns whether this call wrote the run's latest checkpoint: only then are its weights, and
    the generator type its file names, this process's own (see :func:`evaluate_planned`). Raises
    StudyInterruptedError if the run stopped early."""
    from gan_colorize.training import train

    before = latest_step(planned.dir)
    if before is not None and is_finished(planned, before):
        log.info("run %s: finished (step %d)", planned.run.name, before)
        return False
    where = f"resuming at step {before}" if before is not None else "from step 0"
    log.info("run %s: training into %s (%s)", planned.run.name, planned.dir, where)
    with training_device(device):
        train(planned.config, resume="latest")
    # train() returns normally after a Ctrl-C (it writes a checkpoint and stops): evaluating that
    # half-trained run and starting the next one would ignore the request to stop
    step = latest_step(planned.dir) or 0
    if not is_finished(planned, step):
        raise StudyInterruptedError(
            f"run {planned.run.name!r} stopped at step {step} of {planned.config.train.steps}; "
            f"run the same command again to resume it and go on with the study"
        )
    return before is None or step > before


def eval_requests(study: Study) -> list[dict]:
    """evaluate_run's arguments for each of the study's eval sets, or for its data and size."""
    if study.eval.sets:
        return [{"eval_set": name} for name in study.eval.sets]
    return [{"data": study.eval.data, "size": study.eval.size}]


def evaluation_now(study: Study, planned: PlannedRun, request: dict) -> dict | None:
    """The metrics.json fields that say what was evaluated, as evaluate_run would write them now
    (resolved as it resolves them: a set fixes data, size and default metrics); None when the run
    has no checkpoint in its checkpoints/ folder to evaluate."""
    from gan_colorize.evaluation.evaluate import resolve_target
    from gan_colorize.models.io import resolve_generator_file

    checkpoints = RunDir(planned.dir).list_checkpoints()
    checkpoint = resolve_generator_file(planned.dir) if checkpoints else None
    if checkpoint is None or checkpoint.parent != checkpoints[-1][1]:
        return None
    if "eval_set" in request:
        target = resolve_target(planned.config, metrics=study.eval.metrics, eval_set=request["eval_set"])
    else:
        target = resolve_target(planned.config, request["data"], request["size"], study.eval.metrics)
    return {
        "checkpoint": checkpoint,
        "step": checkpoints[-1][0],
        "dataset": target.dataset,
        "protocol": target.protocol,
        "data_path": target.data_path,
        "eval_fraction": target.source.eval_fraction,
        "metrics": set(target.metrics),
    }


def evaluate_planned(
    study: Study,
    planned: PlannedRun,
    device: str | None,
    reevaluate: bool = False,
    trust_code: bool = False,
) -> list[dict]:
    """Evaluate one run on each of the study's eval sets (or its data/size); the metrics.json rows.
    An evaluation that is current (``results.current_record``) is kept unless ``reevaluate``:
    Frechet distances on real data take minutes per run. ``trust_code``: build an unregistered
    ``module:Class`` generator that the run's checkpoint names; give it only for weights this
    process trained now (or with ``--trust-code``): a run folder found in ``out`` may come from
    anywhere, and its file may name any code."""
    from gan_colorize.evaluation import evaluate_run
    from gan_colorize.evaluation.results import METRICS_FILE, current_record

    common = {"metrics": study.eval.metrics, "device": device, "trust_code": trust_code}
    rows = []
    for request in eval_requests(study):
        now = evaluation_now(study, planned, request)
        kept = None
        if now is not None and not reevaluate:
            kept = current_record(RunDir(planned.dir).eval_dir(now["dataset"]) / METRICS_FILE, now)
        if kept is not None:
            log.info(
                "run %s: evaluation on %s is up to date (step %d; --reevaluate redoes it)",
                planned.run.name, now["dataset"], now["step"],
            )  # fmt: skip
            rows.append(kept)
        else:
            rows.append(evaluate_run(planned.dir, **request, **common))
    return rows


def run_errors() -> tuple[type[Exception], ...]:
    """What stops one run but not the study: its config, data, weights, a diverged loss, a bad file."""
    from gan_colorize.data import DatasetError
    from gan_colorize.training import NonFiniteLossError
    from gan_colorize.weights import MissingWeightsError

    return (
        ConfigError, DatasetError, MissingWeightsError, FileNotFoundError, NonFiniteLossError,
        ValueError, RuntimeError,
    )  # fmt: skip


@dataclass
class StudyResult:
    report: Report | None  # None: no run has evaluation results (every one failed)
    # run name -> "failed: <the error>" or "skipped: <why>"
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def partial(self) -> bool:
        """Some evaluation could not compute some metric (its report cell says n/a)."""
        sections = self.report.sections if self.report else []
        return any(trow.row.partial for section in sections for trow in section.rows)


def skip_reason(item: PlannedRun, failed: list[PlannedRun]) -> str | None:
    """Why a run cannot start: it is initialised from a run that failed (or was skipped) here."""
    source = starts_from(item)
    if source is None:
        return None
    for earlier in failed:
        if _same_path(source, earlier.dir):
            return f"skipped: its model.init_from is run {earlier.run.name!r}, which did not finish"
    return None


def train_and_evaluate(
    study: Study, selected: list[PlannedRun], device: str | None, reevaluate: bool, trust_code: bool = False
) -> dict[str, str]:
    """Each selected run in turn; one that fails is logged and left out, the others go on.
    Returns the runs that failed or were skipped ("failed: ...", "skipped: ..."). Ctrl-C stops
    everything at once. A run's generator type is trusted (``module:Class`` imported) when this
    call trained its latest checkpoint, or with ``trust_code``."""
    failed: dict[str, str] = {}
    failed_runs: list[PlannedRun] = []
    for item in selected:
        reason = skip_reason(item, failed_runs)
        if reason is None:
            try:
                trained_now = train_run(item, device)
                # None: a GPU when there is one
                evaluate_planned(study, item, device, reevaluate, trust_code=trust_code or trained_now)
                continue
            except StudyInterruptedError:
                raise
            except run_errors() as exc:
                reason = f"failed: {exc}"
        failed[item.run.name] = reason
        failed_runs.append(item)
        log.error("run %r %s", item.run.name, reason)
    return failed


def check_outside(study: Study) -> None:
    """Each outside method's folder exists (before anything trains)."""
    for run in study.outside:
        if not Path(run.pred).is_dir():
            raise StudyError(
                f"{study.path or study.name}: outside method {run.name!r}: pred folder {run.pred} does not "
                f"exist (paths are relative to the current directory, {Path.cwd()})"
            )


def outside_pred_dir(run: StudyRun, dataset: str) -> Path:
    """``pred/<dataset>`` when there is one (a method colorized several sets), else ``pred``."""
    base = Path(run.pred)
    return base / dataset if (base / dataset).is_dir() else base


def ground_truth_dir(planned: list[PlannedRun], dataset: str) -> Path | None:
    """The gt/ folder of the first run evaluated on ``dataset``: what outside methods are scored against."""
    from gan_colorize.evaluation.evaluate import GT_SUBDIR
    from gan_colorize.evaluation.results import METRICS_FILE

    for item in planned:
        folder = RunDir(item.dir).eval_dir(dataset)
        if (folder / METRICS_FILE).is_file() and (folder / GT_SUBDIR).is_dir():
            return folder / GT_SUBDIR
    return None


def evaluate_outside(
    study: Study, run: StudyRun, planned: list[PlannedRun], device: str | None, reevaluate: bool
) -> list[Path]:
    """Score an outside method on each of the study's datasets, against a run's ground truth, with
    the metrics that run's evaluation used (a result newer than the folders is kept); its metrics files."""
    from gan_colorize.evaluation.evaluate import (
        evaluate_folders,
        gt_folder_origin,
        metric_names,
        origin_metrics,
    )
    from gan_colorize.evaluation.results import METRICS_FILE, folders_result_current

    files = []
    for dataset in dict.fromkeys(d for item in planned for d in eval_datasets(study, item)):
        gt = ground_truth_dir(planned, dataset)
        if gt is None:
            raise StudyError(
                f"no run of the study has been evaluated on {dataset}: nothing to score it against"
            )
        out = RunDir(study.out_dir / run.name).eval_dir(dataset) / METRICS_FILE
        pred = outside_pred_dir(run, dataset)
        names = metric_names(study.eval.metrics or origin_metrics(gt_folder_origin(gt)))
        if reevaluate or not folders_result_current(out, pred, gt, set(names)):
            out.parent.mkdir(parents=True, exist_ok=True)
            evaluate_folders(pred, gt, names, device, out=out, approach=run.name)
        else:
            log.info("outside method %s: evaluation on %s is up to date", run.name, dataset)
        files.append(out)
    return files


def run_study(
    study: Study,
    only: list[str] | None = None,
    overrides: list[str] | None = None,
    device: str | None = None,
    reevaluate: bool = False,
    trust_code: bool = False,
) -> StudyResult:
    """Train, evaluate and report; the report (printed with ``print_summary``) and the failed runs.
    ``trust_code``: also build unregistered generator types named by runs this call did not train
    (``--trust-code``)."""
    from gan_colorize.report import build_report

    planned = plan_study(study, None, overrides)  # every run: the report covers them all
    selected = plan_study(study, only, overrides) if only else planned
    check_eval(study)
    check_run_data(study, selected)
    check_outside(study)
    failed = train_and_evaluate(study, selected, device, reevaluate, trust_code)
    # every run of the study with results on the study's eval data, also runs not selected this time;
    # results on other data in the same run folders (an earlier study file) are left out
    from gan_colorize.evaluation.results import METRICS_FILE

    files = []
    for item in planned:
        for dataset in eval_datasets(study, item):
            file = RunDir(item.dir).eval_dir(dataset) / METRICS_FILE
            if file.is_file():
                files.append(file)
    for run in study.outside:
        try:
            files += evaluate_outside(study, run, planned, device, reevaluate)
        except (StudyError, *run_errors()) as exc:
            failed[run.name] = f"failed: {exc}"
            log.error("outside method %r failed: %s", run.name, exc)
    if not files:
        if failed:
            return StudyResult(None, failed)
        raise StudyError(f"{study.path or study.name}: no run of the study has evaluation results yet")
    report = build_report(
        files,
        study.report_dir,
        grid=study.report.grid,
        title=study.report.title or study.name,
        command=f"gan-colorize experiment {study.path or study.name}",
        notes=[f"run {name!r} {reason}; it has no row here" for name, reason in failed.items()],
    )
    return StudyResult(report, failed)
