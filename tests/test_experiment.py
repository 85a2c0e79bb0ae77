"""Study files: errors that say what to fix, override order, the shipped studies; end to end (slow)."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import re
from pathlib import Path

import pytest
import yaml
from PIL import Image

from gan_colorize.commands import experiment as experiment_command
from gan_colorize.experiment import (
    EXIT_PARTIAL,
    StudyError,
    check_eval,
    check_run_data,
    load_study,
    parse_study,
    plan_study,
    run_overrides,
)
from gan_colorize.registry import DISCRIMINATORS, GENERATORS, check_arguments

REPO = Path(__file__).resolve().parent.parent
SHIPPED = sorted((REPO / "experiments").glob("*.yaml"))
TINY_CONFIG = {
    "data": {"train": "builtin:skimage", "size": 32, "batch_size": 2, "workers": 0},
    "model": {"generator": {"type": "unet", "depth": 5, "width": 8}},
    "loss": {"objective": "regression"},
    "train": {"steps": 2, "log_every": 1, "sample_every": 2, "checkpoint_every": 2},
}


def _study(**changes) -> dict:
    data = {
        "name": "mini",
        "runs": [
            {"name": "a", "config": "a.yaml"},
            {"name": "b", "config": "b.yaml", "set": ["train.seed=1"]},
        ],
        "eval": {"sets": ["mini_set"], "metrics": ["psnr"]},
    }
    data.update(changes)
    return data


@pytest.fixture
def configs(tmp_path, monkeypatch):
    """a.yaml, b.yaml, eval/sets/mini_set.yaml in the current directory (study paths are relative to it)."""
    monkeypatch.chdir(tmp_path)
    for name in ("a", "b"):
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(TINY_CONFIG))
    (tmp_path / "eval" / "sets").mkdir(parents=True)
    (tmp_path / "eval" / "sets" / "mini_set.yaml").write_text(
        yaml.safe_dump({"data": "builtin:skimage", "size": 32})
    )
    return tmp_path


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"runz": []}, r"unknown key 'runz' \(did you mean 'runs'\?\)"),
        (
            {"runs": [{"name": "a", "confg": "a.yaml"}]},
            r"runs\[0\]: unknown key 'confg' \(did you mean 'config'\?\)",
        ),
        ({"eval": {"metric": ["psnr"]}}, r"eval: unknown key 'metric' \(did you mean 'metrics'\?\)"),
        ({"report": {"gird": 4}}, r"report: unknown key 'gird' \(did you mean 'grid'\?\)"),
        ({"runs": [{"name": "a"}]}, r"runs\[0\]: needs 'config'"),
        ({"runs": [{"name": "a", "config": "x"}, {"name": "a", "config": "y"}]}, "'a' is used twice"),
        ({"runs": [{"name": "report", "config": "x"}]}, "'report' is the study's report folder"),
        # issue #10 item 8: a run trains into <out>/<name>, so a name is one plain folder name
        ({"runs": [{"name": "..", "config": "x"}]}, r"runs\[0\]: name '\.\.' must be one plain folder name"),
        ({"runs": [{"name": "a\\b", "config": "x"}]}, "must be one plain folder name"),
        ({"runs": [{"name": ".hidden", "config": "x"}]}, "must be one plain folder name"),
        ({"name": ".."}, r"s\.yaml: name '\.\.' must be one plain folder name"),  # out: runs/<name>
        ({"runs": []}, "non-empty list"),
        ({"eval": {"sets": ["x"], "data": "builtin:skimage"}}, "either 'sets' or 'data'"),
        ({"report": {"grid": -1}}, "report.grid"),
        # a set fixes its size: a size beside it would be ignored without a word
        ({"eval": {"sets": ["x"], "size": 32}}, "either 'sets' or 'data'"),
        ({"eval": {"data": 5, "size": 32}}, r"s\.yaml: eval\.data: expected a string, got 5"),
        ({"report": {"title": 7}}, r"s\.yaml: report\.title: expected a string, got 7"),
        ({"description": [1, 2]}, r"s\.yaml: description: expected a string, got \[1, 2\]"),
        # an outside method is scored, not trained
        (
            {"runs": [{"name": "a", "config": "a.yaml"}, {"name": "o", "pred": "p", "set": ["x=1"]}]},
            r"runs\[1\]: an outside method \('pred'\) is not trained: remove set",
        ),
        ({"runs": [{"name": "o", "pred": "p"}]}, "needs a run with a config"),
        (
            {"runs": [{"name": "a", "config": "a.yaml"}, {"name": "o", "pred": 3}]},
            r"runs\[1\]: 'pred' must be",
        ),
    ],
)
def test_study_errors_name_the_key_and_suggest(changes, message):
    with pytest.raises(StudyError, match=message):
        parse_study(_study(**changes), "s.yaml")


def test_missing_config_file_is_named(configs):
    study = parse_study(_study(runs=[{"name": "a", "config": "configs/nope.yaml"}]), "s.yaml")
    with pytest.raises(StudyError, match=r"run 'a': config file configs/nope\.yaml does not exist"):
        plan_study(study)


def test_config_errors_name_the_run(configs):
    study = parse_study(_study(set=["train.stepz=3"]), "s.yaml")
    with pytest.raises(
        StudyError, match=r"run 'a': .*unknown config key 'train.stepz' \(did you mean 'steps'\?\)"
    ):
        plan_study(study)


def test_only_unknown_run_suggests(configs):
    with pytest.raises(StudyError, match=r"no run 'bb' \(did you mean 'b'\?\)"):
        plan_study(parse_study(_study(), "s.yaml"), only=["bb"])


def test_overrides_study_then_run_then_command_line_and_fixed_folder(configs):
    study = parse_study(
        _study(
            out="studies/x",
            set=["train.seed=5", "train.steps=7"],
            runs=[
                {"name": "a", "config": "a.yaml"},
                {"name": "b", "config": "b.yaml", "set": ["train.seed=1", "model.init_from={out}/a"]},
            ],
        ),  # fmt: skip
        "s.yaml",
    )
    overrides = run_overrides(study, study.runs[1], ["train.steps=9", "run.dir=elsewhere"])
    assert overrides[-2:] == ["run.dir=studies/x/b", "run.name=b"]  # the study decides where runs go
    _, planned = plan_study(study, overrides=["train.steps=9"])
    assert planned.config.train.seed == 1 and planned.config.train.steps == 9
    assert planned.config.model.init_from == "studies/x/a"
    assert planned.config.run.dir == "studies/x/b" and planned.config.run.name == "b"
    assert planned.dir == Path("studies/x/b")
    assert parse_study(_study(), "s").out_dir == Path("runs/mini")  # the default out folder


def test_only_selects_runs_in_file_order(configs):
    planned = plan_study(parse_study(_study(), "s.yaml"), only=["b", "a"])
    assert [p.run.name for p in planned] == ["a", "b"]


def test_dry_run_prints_the_plan_and_bad_files_exit_2(configs, capsys):
    (configs / "study.yaml").write_text(yaml.safe_dump(_study()))
    parser = argparse.ArgumentParser()
    experiment_command.add_arguments(parser)
    assert experiment_command.run(parser.parse_args(["study.yaml", "--dry-run"])) == 0
    assert "a: a.yaml -> runs/mini/a (not trained)" in capsys.readouterr().out
    assert experiment_command.run(parser.parse_args(["nope.yaml"])) == 2
    assert "study file nope.yaml does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    "eval_spec, message",
    [
        (
            {"sets": ["mini_sett"]},
            r"eval.sets: unknown evaluation set 'mini_sett' \(did you mean 'mini_set'\?\)",
        ),
        (
            {"sets": ["mini_set"], "metrics": ["psnrr"]},
            r"eval.metrics: unknown metric 'psnrr' \(did you mean 'psnr'\?\)",
        ),
        ({"metrics": ["psnr"]}, "eval needs 'sets'"),
        ({"data": "no/such/folder", "size": 32}, r"eval.data: image folder no/such/folder does not exist"),
        ({"data": "builtin:skimge", "size": 32}, r"eval.data: unknown builtin data 'builtin:skimge'"),
    ],
)
def test_eval_errors_before_anything_trains(configs, capsys, eval_spec, message):
    (configs / "study.yaml").write_text(yaml.safe_dump(_study(eval=eval_spec)))
    parser = argparse.ArgumentParser()
    experiment_command.add_arguments(parser)
    assert experiment_command.run(parser.parse_args(["study.yaml"])) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (configs / "runs").exists()


def test_eval_data_that_exists_is_accepted(configs):
    for data in ("builtin:skimage", str(configs / "eval")):
        check_eval(parse_study(_study(eval={"data": data, "size": 32}), "s.yaml"))


def test_init_from_must_exist_or_be_a_run_trained_before(configs):
    def runs(init_a=None, init_b=None):
        return [
            {"name": "a", "config": "a.yaml", "set": [f"model.init_from={init_a}"] if init_a else []},
            {"name": "b", "config": "b.yaml", "set": [f"model.init_from={init_b}"] if init_b else []},
        ]

    plan_study(parse_study(_study(runs=runs(init_b="{out}/a")), "s.yaml"))  # a trains before b
    plan_study(parse_study(_study(runs=runs(init_a=str(configs / "a.yaml"))), "s.yaml"))  # exists
    for study, only, message in [
        (runs(init_b="{out}/nothere"), None, r"run 'b': model.init_from runs/mini/nothere does not exist"),
        (runs(init_a="{out}/b"), None, r"run 'a': model.init_from runs/mini/b does not exist"),  # b: later
        (runs(init_b="{out}/a"), ["b"], r"run 'b': model.init_from runs/mini/a does not exist"),  # a: not run
    ]:
        with pytest.raises(StudyError, match=message):
            plan_study(parse_study(_study(runs=study), "s.yaml"), only=only)


def _run_command(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    experiment_command.add_arguments(parser)
    return experiment_command.run(parser.parse_args(list(argv)))


def test_a_failing_run_is_named_and_the_others_go_on(configs, capsys):
    (configs / "unreadable").mkdir()
    (configs / "unreadable" / "x.jpg").write_bytes(b"not an image")
    runs = [
        {"name": "a", "config": "a.yaml", "set": ["data.train=unreadable"]},  # fails when it trains
        {"name": "zg", "config": "b.yaml", "set": ["model.init_from={out}/a"]},  # starts from a: skipped
        {"name": "b", "config": "b.yaml"},
    ]
    (configs / "study.yaml").write_text(yaml.safe_dump(_study(out="study", runs=runs)))
    assert _run_command("study.yaml", "--device", "cpu") == 1
    captured = capsys.readouterr()
    assert "warning: run 'a' failed: unreadable: 1 of 1 files are unreadable" in captured.err
    assert "warning: run 'zg' skipped: its model.init_from is run 'a'" in captured.err
    assert not (configs / "study" / "zg").exists()
    md = (configs / "study" / "report" / "report.md").read_text()
    assert "| b |" in md and "| a |" not in md
    assert "by `gan-colorize experiment study.yaml`." in md  # what wrote the report
    # the report itself says which runs have no row, and why
    assert "> **Warning:** run 'a' failed: unreadable: 1 of 1 files are unreadable" in md
    assert "run 'zg' skipped" in md
    html = (configs / "study" / "report" / "report.html").read_text()
    assert 'class="warning">Warning: run &#x27;a&#x27; failed' in html
    assert "report: study/report/report.html" in captured.out


@pytest.mark.parametrize(
    "eval_spec", [{"sets": ["mini_set"]}, {"data": "builtin:skimage", "size": 32}], ids=["set", "data"]
)
def test_evaluation_is_kept_while_up_to_date(configs, monkeypatch, caplog, eval_spec):
    """FID on real data takes minutes a run: a finished run's current evaluation is not redone."""
    import gan_colorize.evaluation

    evaluate_run, evaluated = gan_colorize.evaluation.evaluate_run, []

    def counting(run_dir, **kwargs):
        evaluated.append(Path(run_dir).name)
        return evaluate_run(run_dir, **kwargs)

    monkeypatch.setattr(gan_colorize.evaluation, "evaluate_run", counting)
    runs = [{"name": "a", "config": "a.yaml"}]
    study = _study(out="study", runs=runs, eval={**eval_spec, "metrics": ["psnr"]})
    (configs / "study.yaml").write_text(yaml.safe_dump(study))
    args = ["study.yaml", "--device", "cpu"]
    caplog.set_level(logging.INFO, logger="gan_colorize.experiment")
    assert _run_command(*args) == 0 and evaluated == ["a"]
    assert "run a: training into study/a (from step 0)" in caplog.text  # not "resumes" for a new run
    assert _run_command(*args) == 0 and evaluated == ["a"]
    assert re.search(r"run a: evaluation on \w+ is up to date \(step 2", caplog.text)
    assert _run_command(*args, "--reevaluate") == 0 and evaluated == ["a", "a"]
    study["eval"]["metrics"] = ["psnr", "ssim"]  # another metric list
    (configs / "study.yaml").write_text(yaml.safe_dump(study))
    assert _run_command(*args) == 0 and evaluated == ["a"] * 3
    assert _run_command(*args, "--set", "train.steps=4") == 0 and evaluated == ["a"] * 4  # trained on
    assert "run a: training into study/a (resuming at step 2)" in caplog.text
    (metrics,) = (configs / "study" / "a" / "eval").glob("*/metrics.json")
    assert json.loads(metrics.read_text())["step"] == 4


def test_an_interrupted_run_stops_the_study(configs, monkeypatch, capsys):
    """train() returns normally after Ctrl-C; the study must not evaluate it and go on to the next run."""
    import gan_colorize.evaluation
    import gan_colorize.training

    trained = []
    monkeypatch.setattr(
        gan_colorize.training, "train", lambda config, resume=None: trained.append(config.run.name)
    )
    monkeypatch.setattr(gan_colorize.evaluation, "evaluate_run", lambda *a, **k: pytest.fail("evaluated"))
    (configs / "study.yaml").write_text(yaml.safe_dump(_study()))
    parser = argparse.ArgumentParser()
    experiment_command.add_arguments(parser)
    assert experiment_command.run(parser.parse_args(["study.yaml"])) == 130
    assert trained == ["a"]
    assert "run 'a' stopped at step 0 of 2" in capsys.readouterr().err


@pytest.fixture
def user_clone(tmp_path, monkeypatch):
    """The current directory as a user's clone: the repository's configs, eval sets and studies,
    and photos at data/train, where the shipped configs and eval sets look for them."""
    for folder in ("configs", "eval", "experiments"):
        (tmp_path / folder).symlink_to(REPO / folder)
    photos = tmp_path / "data" / "train"
    photos.mkdir(parents=True)
    from PIL import Image
    from skimage import data

    Image.fromarray(data.coffee()[::8, ::8]).save(photos / "coffee.png")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_studies_parse_and_their_configs_load(path, user_clone):
    study = load_study(path.relative_to(REPO))
    planned = plan_study(study)
    assert [p.run.name for p in planned] == [r.name for r in study.runs]
    names = [r.name for r in study.runs]
    for item in planned:  # a run initialised from another one must come after it
        init = item.config.model.init_from
        if init and init.startswith(str(study.out_dir) + "/"):
            source = Path(init).name
            assert names.index(source) < names.index(item.run.name), f"{item.run.name} trains before {source}"
    check_eval(study)  # the eval sets and their data exist, the metric names are registered
    check_run_data(study, planned)
    for item in planned:  # the components the overrides name take the arguments given
        for registry, spec in (
            (GENERATORS, item.config.model.generator),
            (DISCRIMINATORS, item.config.model.discriminator),
        ):
            if spec:
                kwargs = {k: v for k, v in spec.items() if k != "type"}
                check_arguments(registry.get(spec["type"]), kwargs, f"{item.run.name}: {spec['type']}")


def _has(module: str, attr: str) -> bool:
    try:
        return hasattr(importlib.import_module(module), attr)
    except ImportError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(
    not all(
        _has(module, attr)
        for module, attr in [
            ("gan_colorize.training", "train"),
            ("gan_colorize.evaluation.evaluate", "evaluate_run"),
            ("gan_colorize.data", "build_datasets"),
        ]
    ),
    reason="needs gan_colorize.training.train, gan_colorize.data.build_datasets and evaluation.evaluate_run",
)
def test_mini_study_trains_evaluates_reports_and_resumes(configs, capsys):
    study = _study(out="study", eval={"sets": ["mini_set"], "metrics": ["colorfulness", "psnr", "ssim"]})
    study["report"] = {"grid": 2}
    (configs / "study.yaml").write_text(yaml.safe_dump(study))
    parser = argparse.ArgumentParser()
    experiment_command.add_arguments(parser)
    args = parser.parse_args(["study.yaml", "--device", "cpu", "--set", "train.steps=2"])
    code = experiment_command.run(args)
    out = capsys.readouterr().out
    assert code in (0, EXIT_PARTIAL)
    assert re.search(r"mini_set \(\d+ images\)", out)  # the results table, as gan-colorize report prints it
    assert re.search(r"│ a +│ +\d", out) and re.search(r"│ b +│ +\d", out)
    html = configs / "study" / "report" / "report.html"
    assert f"report: {html.relative_to(configs)}" in out or f"report: {html}" in out
    md = (configs / "study" / "report" / "report.md").read_text()
    assert "| a |" in md and "| b |" in md and "*ground truth*" in md
    for name in ("a", "b"):
        (metrics,) = (configs / "study" / name / "eval").glob("*/metrics.json")
        assert json.loads(metrics.read_text())["step"] == 2
    # a second call trains nothing more: the runs are finished
    checkpoints = sorted((configs / "study" / "a" / "checkpoints").iterdir())
    assert experiment_command.run(args) == code
    assert sorted((configs / "study" / "a" / "checkpoints").iterdir()) == checkpoints
    capsys.readouterr()
    assert experiment_command.run(parser.parse_args(["study.yaml", "--dry-run"])) == 0
    assert "b: b.yaml -> study/b (finished)" in capsys.readouterr().out


def test_a_run_found_in_out_is_not_trusted_unless_trust_code(configs, capsys):
    """Issue #10 item 2: a finished run in the study's folder whose generator.pt names
    ``os:system`` was built with trust_code=True ("this process just trained it"): the command ran.
    Only a checkpoint this call trained is trusted; --trust-code extends it to runs found on disk."""
    import torch

    (configs / "study.yaml").write_text(
        yaml.safe_dump(_study(out="study", runs=[{"name": "a", "config": "a.yaml"}]))
    )
    assert _run_command("study.yaml", "--device", "cpu") == 0  # trained by this call: trusted
    file = configs / "study" / "a" / "checkpoints" / "step_00000002" / "generator.pt"
    payload = torch.load(file, weights_only=True)
    marker = configs / "command_ran"
    payload["config"]["model"]["generator"] = {"type": "os:system", "command": f"touch {marker}"}
    torch.save(payload, file)
    capsys.readouterr()
    assert _run_command("study.yaml", "--device", "cpu", "--reevaluate") == 1
    assert not marker.exists()
    err = capsys.readouterr().err
    assert "warning: run 'a' failed:" in err and "os:system" in err and "--trust-code" in err
    # the flag is the user's word that the folder is trusted: then the file's type is imported
    _run_command("study.yaml", "--device", "cpu", "--reevaluate", "--trust-code")
    assert marker.exists()


@pytest.mark.parametrize("missing", ["eval set", "training data"])
def test_data_a_study_needs_is_checked_before_anything_trains(user_clone, capsys, missing):
    """Issue #10 item 6: three runs trained for 45 minutes, then every evaluation failed because
    the eval set named a folder that did not exist. Every path is checked before the first step,
    and a missing data/train (the shipped default) says what to do."""
    import shutil

    shutil.rmtree(user_clone / "data")  # a clone without data/train
    if missing == "eval set":  # training on builtin:skimage, evaluating on data/train's holdout
        config, evaluation = "configs/tiny/regression.yaml", {"sets": ["photos_holdout"]}
    else:  # training on data/train, evaluating on builtin:skimage
        config, evaluation = "configs/unet_l1.yaml", {"data": "builtin:skimage", "size": 32}
    runs = [{"name": "a", "config": config}]
    study = {"name": "s", "out": "study", "runs": runs, "eval": {**evaluation, "metrics": ["psnr"]}}
    (user_clone / "study.yaml").write_text(yaml.safe_dump(study))
    assert _run_command("study.yaml", "--device", "cpu", "--set", "train.steps=1") == 2
    err = capsys.readouterr().err
    where = "eval set 'photos_holdout'" if missing == "eval set" else "run 'a': data.train"
    assert where in err and "image folder data/train does not exist" in err
    assert "put them there" in err and "--set data.train=PATH" in err
    assert not (user_clone / "study").exists()  # nothing trained


def test_a_study_scores_and_reports_an_outside_method(configs, capsys):
    """{name, pred} beside the runs: scored against a run's ground truth with the set's metrics (its
    default list: none given in the study), shown in the grid whatever its image extension."""
    (configs / "eval" / "sets" / "mini_set.yaml").write_text(
        yaml.safe_dump({"data": "builtin:skimage", "size": 32, "metrics": ["colorfulness", "psnr", "auc"]})
    )
    study = _study(out="study", runs=[{"name": "a", "config": "a.yaml"}], eval={"sets": ["mini_set"]})
    (configs / "study.yaml").write_text(yaml.safe_dump(study))
    assert _run_command("study.yaml", "--device", "cpu") == 0
    gt = configs / "study" / "a" / "eval" / "mini_set" / "gt"
    (configs / "outside").mkdir()
    for png in gt.glob("*.png"):  # an outside method's colorizations, as JPEG
        Image.open(png).save(configs / "outside" / f"{png.stem}.jpg", quality=95)
    study["runs"].append({"name": "ddcolor", "pred": "outside"})
    (configs / "study.yaml").write_text(yaml.safe_dump(study))
    capsys.readouterr()
    assert _run_command("study.yaml", "--device", "cpu") == 0
    record = json.loads((configs / "study" / "ddcolor" / "eval" / "mini_set" / "metrics.json").read_text())
    assert record["approach"] == "ddcolor" and record["dataset"] == "mini_set"
    assert {"cf", "delta_cf", "psnr", "auc"} <= set(record["metrics"]) and "ssim" not in record["metrics"]
    assert record["metrics"]["psnr"] > 30  # JPEG of the ground truth itself
    md = (configs / "study" / "report" / "report.md").read_text()
    assert "| ddcolor |" in md and "outside method: outside" in md
    grid = md.split("### Images")[1]
    assert "ddcolor: " in grid and "| missing" not in grid
    assert re.search(r"│ ddcolor +│ +\d", capsys.readouterr().out)
    assert _run_command("study.yaml", "--dry-run") == 0
    assert "ddcolor: outside method, images in outside" in capsys.readouterr().out
