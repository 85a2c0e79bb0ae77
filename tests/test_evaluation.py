"""The evaluation protocol and ``gan-colorize evaluate``: runs, outside folders, missing weights."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import rgb2lab

from gan_colorize.commands import evaluate as evaluate_command
from gan_colorize.config import DataConfig, from_dict, save_config
from gan_colorize.data import build_datasets
from gan_colorize.evaluation import (
    EvalSetError,
    EvaluationError,
    colorize_batch,
    describe_protocol,
    evaluate_folders,
    evaluate_run,
    greyscale_batch,
    load_eval_set,
)
from gan_colorize.evaluation.protocol import available_eval_sets
from gan_colorize.models import save_generator
from gan_colorize.registry import GENERATORS
from gan_colorize.rundir import RunDir

CHEAP = ["colorfulness", "psnr", "ssim", "auc"]
SIZE = 32
SCHEMA = {
    "approach", "run", "config", "checkpoint", "step", "ema", "dataset", "data", "data_path",
    "eval_fraction", "gt_sha256", "protocol", "n_images", "metrics", "missing", "missing_detail",
    "partial", "pred_dir", "gt_dir", "input_dir",
}  # fmt: skip


def tiny_config(run: Path):
    return from_dict(
        {
            "data": {"train": "builtin:skimage", "size": SIZE, "workers": 0},
            "model": {"generator": {"type": "unet", "depth": 3, "width": 8}},
            "loss": {"objective": "regression"},
            "run": {"dir": str(run), "name": "tiny_unet"},
        }
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A run folder made without training: config.yaml and one checkpoint of a random tiny U-Net."""
    run = tmp_path_factory.mktemp("runs") / "tiny"
    run.mkdir()
    config = tiny_config(run)
    save_config(config, RunDir(run).config)
    torch.manual_seed(0)
    generator = GENERATORS.build(config.model.generator)
    save_generator(RunDir(run).checkpoint_dir(5) / "generator.pt", generator, config, step=5, ema=True)
    return run


@pytest.fixture(scope="module")
def evaluated(run_dir: Path) -> dict:
    return evaluate_run(run_dir, data="builtin:skimage", size=SIZE, metrics=CHEAP, batch_size=4)


def read_u8(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def namespace(**kwargs) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    evaluate_command.add_arguments(parser)
    args = parser.parse_args([])
    for key, value in kwargs.items():
        setattr(args, key, value)
    return args


# ---------------------------------------------------------------- the protocol
def test_colorize_batch_keeps_the_ground_truth_lightness():
    class Reddish(torch.nn.Module):  # a constant ab: any generator output must go back with L_gt
        output_kind = "ab"

        def forward(self, L_norm):
            return torch.stack((torch.full_like(L_norm[:, 0], 0.1), torch.full_like(L_norm[:, 0], 0.05)), 1)

    gt = torch.randint(40, 220, (2, 3, 16, 16), dtype=torch.uint8)
    pred = colorize_batch(Reddish(), gt)
    assert pred.dtype == torch.uint8 and pred.shape == gt.shape
    lab_pred = rgb2lab(pred.permute(0, 2, 3, 1).numpy())
    lab_gt = rgb2lab(gt.permute(0, 2, 3, 1).numpy())
    assert np.abs(lab_pred[..., 0] - lab_gt[..., 0]).max() < 1.0
    # the predicted ab = (0.1, 0.05) * 110 = (11, 5.5) (within the gamut here), not the gt's colours
    assert np.abs(lab_pred[..., 1] - 11).max() < 1.5 and np.abs(lab_pred[..., 2] - 5.5).max() < 1.5


def test_greyscale_batch_is_neutral_with_the_same_lightness():
    gt = torch.randint(0, 256, (3, 3, 24, 24), dtype=torch.uint8)
    grey = greyscale_batch(gt)
    assert torch.equal(grey[:, 0], grey[:, 1]) and torch.equal(grey[:, 1], grey[:, 2])
    lab_grey = rgb2lab(grey.permute(0, 2, 3, 1).numpy())
    lab_gt = rgb2lab(gt.permute(0, 2, 3, 1).numpy())
    assert np.abs(lab_grey[..., 0] - lab_gt[..., 0]).max() < 1.0


def test_protocol_states_size_and_temperature():
    protocol = describe_protocol(64, 0.38)
    assert protocol["size"] == 64 and protocol["bins_temperature"] == 0.38
    assert protocol == describe_protocol(64)  # comparable results have equal dicts


def test_eval_sets_load_and_reject_unknown_keys(tmp_path):
    assert {"skimage_holdout", "photos_holdout"} <= set(available_eval_sets())
    demo = load_eval_set("skimage_holdout")
    assert demo.name == "skimage_holdout" and demo.data == "builtin:skimage" and demo.size == 64
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ndata: builtin:skimage\nszie: 64\n")
    with pytest.raises(EvalSetError, match="did you mean 'size'"):
        load_eval_set(bad)
    with pytest.raises(EvalSetError, match="skimage_holdout"):
        load_eval_set("skimage_holdot")


# ---------------------------------------------------------------- a run
def test_evaluate_run_writes_metrics_json_with_the_schema(evaluated, run_dir):
    folder = RunDir(run_dir).eval_dir("builtin:skimage_32px")
    data = json.loads((folder / "metrics.json").read_text())
    assert set(data) >= SCHEMA
    assert data["approach"] == "tiny_unet" and data["step"] == 5 and data["ema"] is True
    assert data["partial"] is False and data["missing"] == {}
    assert data["protocol"]["size"] == SIZE and "grid of 32x32 crops" in data["protocol"]["resize"]
    assert data["n_images"] == 24  # chelsea at a shorter side of 4 x 32 = 128: 6 x 4 crops
    for key in ("cf", "cf_gt", "delta_cf", "psnr", "ssim", "auc"):
        assert np.isfinite(data["metrics"][key]), key
    assert data["pred_dir"] == "predictions" and data["gt_dir"] == "gt" and data["input_dir"] == "input"
    assert Path(evaluated["metrics_file"]) == folder / "metrics.json"


def test_predictions_keep_the_ground_truth_L(evaluated, run_dir):
    folder = Path(evaluated["metrics_file"]).parent
    names = sorted(p.name for p in (folder / "gt").glob("*.png"))
    assert len(names) == evaluated["n_images"]
    assert names == sorted(p.name for p in (folder / "predictions").glob("*.png"))
    for name in names:
        pred, gt = read_u8(folder / "predictions" / name), read_u8(folder / "gt" / name)
        assert pred.shape == gt.shape == (SIZE, SIZE, 3)
        assert np.abs(rgb2lab(pred)[..., 0] - rgb2lab(gt)[..., 0]).max() < 1.0
        assert not np.array_equal(pred, gt)  # a random generator does not reproduce the colours


def test_references_rows(evaluated):
    folder = Path(evaluated["metrics_file"]).parent
    references = json.loads((folder / "references.json").read_text())
    rows = {row["approach"]: row for row in references["rows"]}
    truth, grey = rows["ground truth"], rows["greyscale input"]
    assert truth["metrics"]["psnr"] >= 100 or truth["metrics"]["psnr"] == float("inf")
    assert truth["metrics"]["delta_cf"] == 0 and truth["metrics"]["ssim"] == pytest.approx(1.0)
    assert truth["metrics"]["auc"] == pytest.approx(100.0)
    assert abs(grey["metrics"]["cf"]) < 1e-6
    assert grey["metrics"]["cf_gt"] == pytest.approx(evaluated["metrics"]["cf_gt"])
    assert grey["protocol"] == evaluated["protocol"] and grey["pred_dir"] == "input"


def test_evaluate_run_on_a_named_set_uses_its_name(run_dir, tmp_path):
    custom = tmp_path / "tiny_set.yaml"
    custom.write_text(
        f"name: tiny_set\ndata: builtin:skimage\nsize: {SIZE}\nmetrics: [psnr]\nbatch_size: 8\n"
    )
    result = evaluate_run(run_dir, eval_set=custom)
    assert Path(result["metrics_file"]) == RunDir(run_dir).eval_dir("tiny_set") / "metrics.json"
    assert set(result["metrics"]) == {"psnr", "psnr_n_capped"} and result["dataset"] == "tiny_set"
    with pytest.raises(EvaluationError, match="not both"):
        evaluate_run(run_dir, eval_set=custom, size=64)


def test_a_folder_sets_held_out_share_is_what_training_holds_out(run_dir, tmp_path):
    photos = tmp_path / "photos"
    write_images(photos, [f"p{i:02d}.png" for i in range(24)], seed=3, size=(24, 20))
    custom = tmp_path / "held.yaml"
    custom.write_text(f"data: {photos}\neval_fraction: 0.25\nsize: 16\nmetrics: [psnr]\n")
    result = evaluate_run(run_dir, eval_set=custom)
    _, held_out = build_datasets(DataConfig(train=str(photos), size=16, eval_fraction=0.25))
    expected = sorted(held_out[i]["name"] + ".png" for i in range(len(held_out)))
    written = sorted(p.name for p in (Path(result["metrics_file"]).parent / "gt").iterdir())
    assert written == expected and 0 < len(expected) < 24
    assert result["dataset"] == "held" and "eval_fraction=0.25" in result["data"]
    assert result["data_path"] == str(photos.resolve()) and result["eval_fraction"] == 0.25


def gt_digest(folder: Path) -> str:
    """sha256 over the folder's images' names and decoded pixels in name order, as metrics.json
    records it."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        pixels = np.asarray(Image.open(path))
        digest.update(f"{path.name}\n{pixels.dtype}\n{pixels.shape}\n".encode() + pixels.tobytes())
    return digest.hexdigest()


def test_the_ground_truth_digest_is_of_pixels_not_of_the_png_encoding(tmp_path):
    from gan_colorize.evaluation.evaluate import ground_truth_digest

    rgb = np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    for level, folder in ((0, tmp_path / "fast"), (9, tmp_path / "small")):
        folder.mkdir()
        Image.fromarray(rgb).save(folder / "a.png", compress_level=level)
    assert (tmp_path / "fast" / "a.png").read_bytes() != (tmp_path / "small" / "a.png").read_bytes()
    fast, small = (ground_truth_digest((tmp_path / f).iterdir()) for f in ("fast", "small"))
    assert fast == small == gt_digest(tmp_path / "fast")
    rgb[0, 0, 0] ^= 1  # one level of one pixel
    Image.fromarray(rgb).save(tmp_path / "small" / "a.png")
    assert ground_truth_digest((tmp_path / "small").iterdir()) != fast


def test_two_folders_of_one_name_are_two_datasets_with_their_own_digest(run_dir, tmp_path, monkeypatch):
    """/a/photos and /b/photos: different images, so different dataset names and ground-truth digests."""
    for parent, seed in (("a", 1), ("b", 2)):
        write_images(tmp_path / parent / "photos", ["x.png", "y.png"], seed=seed, size=(20, 20))
    a = evaluate_run(run_dir, data=str(tmp_path / "a" / "photos"), size=16, metrics=["psnr"])
    b = evaluate_run(run_dir, data=str(tmp_path / "b" / "photos"), size=16, metrics=["psnr"])
    assert a["dataset"] != b["dataset"]
    assert a["dataset"].startswith("photos_") and a["dataset"].endswith("_16px")
    assert a["data_path"] == str((tmp_path / "a" / "photos").resolve()) and a["eval_fraction"] is None
    for result in (a, b):
        folder = Path(result["metrics_file"]).parent
        assert result["gt_sha256"] == gt_digest(folder / "gt")
        references = json.loads((folder / "references.json").read_text())["rows"]
        assert {row["gt_sha256"] for row in references} == {result["gt_sha256"]}
    assert a["gt_sha256"] != b["gt_sha256"]
    # the same folder given relative to the current directory: the same dataset, the same images
    monkeypatch.chdir(tmp_path / "a")
    again = evaluate_run(run_dir, data="photos", size=16, metrics=["psnr"])
    assert again["dataset"] == a["dataset"] and again["gt_sha256"] == a["gt_sha256"]
    assert again["data_path"] == a["data_path"] and again["data"] == "photos"
    # an outside method scored against a's gt/ is on a's images
    gt = Path(a["metrics_file"]).parent / "gt"
    outside = evaluate_folders(gt, gt, ["psnr"], out=tmp_path / "outside.json")
    assert outside["gt_sha256"] == a["gt_sha256"] and outside["data_path"] == a["data_path"]


def test_a_relative_data_path_that_is_not_there_says_where_it_was_read_from(run_dir, tmp_path, monkeypatch):
    custom = tmp_path / "sets" / "rel.yaml"
    custom.parent.mkdir()
    custom.write_text("data: ../shared/data/nowhere\nsize: 16\nmetrics: [psnr]\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(EvaluationError, match=r"read from the current directory.*repository root") as info:
        evaluate_run(run_dir, eval_set=custom)
    assert "../shared/data/nowhere" in str(info.value) and str(tmp_path) in str(info.value)
    assert "put the images there or name another folder" in str(info.value)
    args = namespace(runs=[str(run_dir)], eval_sets=[str(custom)])
    assert evaluate_command.run(args) == 2


def test_missing_fid_weights_make_a_partial_result(run_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    # no data: the run's own evaluation data (builtin:skimage's held-out photo), here at 16 px
    result = evaluate_run(run_dir, size=16, metrics=["psnr", "fid"])
    assert result["dataset"] == "builtin_skimage_16px" and result["data"] == "builtin:skimage"
    assert result["partial"] is True
    assert result["missing"] == {"fid": "n/a (missing pt_inception-2015-12-05-6726825d.pth, see README)"}
    assert np.isfinite(result["metrics"]["psnr"]) and "fid" not in result["metrics"]

    assert "does not exist" in result["missing_detail"]["fid"]  # the full message: where it was looked for
    args = namespace(runs=[str(run_dir)], size=16, metrics="psnr,fid")
    assert evaluate_command.run(args) == 3
    assert "pt_inception-2015-12-05-6726825d.pth" in capsys.readouterr().out


def test_one_image_gives_a_partial_result_not_a_failure(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GAN_COLORIZE_CACHE", str(tmp_path / "cache"))
    write_images(tmp_path / "gt", ["a.png"], seed=1, size=(32, 32))
    write_images(tmp_path / "pred", ["a.png"], seed=2, size=(32, 32))
    out = tmp_path / "one.json"
    args = namespace(pred=str(tmp_path / "pred"), gt=str(tmp_path / "gt"), out=str(out))
    args.metrics = "psnr,colorfulness,efficientnet_fd"
    assert evaluate_command.run(args) == 3
    written = json.loads(out.read_text())
    assert written["partial"] is True and written["n_images"] == 1
    assert written["missing"] == {"efficientnet_fd": "n/a (needs >= 2 images)"}
    assert "got 1" in written["missing_detail"]["efficientnet_fd"]
    assert np.isfinite(written["metrics"]["psnr"]) and "delta_cf" in written["metrics"]
    assert "efficientnet_fd n/a (needs >= 2 images)" in capsys.readouterr().out


# ---------------------------------------------------------------- an outside method's folders
def write_images(folder: Path, names: list[str], seed: int, size=(20, 16)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in names:
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(folder / name)


def test_evaluate_folders_scores_by_name(tmp_path):
    write_images(tmp_path / "gt", ["a.png", "b.png"], seed=1)
    write_images(tmp_path / "same", ["a.png", "b.png"], seed=1)
    result = evaluate_folders(tmp_path / "same", tmp_path / "gt", ["psnr", "colorfulness"])
    assert result["metrics"]["psnr"] >= 100 and result["metrics"]["psnr_n_capped"] == 2
    assert result["metrics"]["delta_cf"] == 0 and result["n_images"] == 2
    written = json.loads(Path(result["metrics_file"]).read_text())
    assert written["approach"] == "same" and Path(result["metrics_file"]) == tmp_path / "metrics_same.json"

    write_images(tmp_path / "other", ["a.png", "b.png"], seed=2)
    other = evaluate_folders(tmp_path / "other", tmp_path / "gt", ["psnr"], out=tmp_path / "o.json")
    assert other["metrics"]["psnr"] < 20 and (tmp_path / "o.json").is_file()


def test_evaluate_folders_against_a_runs_ground_truth_takes_its_dataset(evaluated, tmp_path):
    gt = Path(evaluated["metrics_file"]).parent / "gt"
    result = evaluate_folders(gt, gt, ["psnr"], out=tmp_path / "copy.json")
    assert result["dataset"] == evaluated["dataset"] and result["protocol"] == evaluated["protocol"]


def test_mismatched_names_are_listed(tmp_path, capsys):
    write_images(tmp_path / "gt", ["a.png", "b.png", "c.png"], seed=1)
    write_images(tmp_path / "pred", ["a.jpg", "b.png", "zz.png"], seed=1)
    with pytest.raises(EvaluationError, match=r"1 missing from the predictions: c.*1 extra .*: zz"):
        evaluate_folders(tmp_path / "pred", tmp_path / "gt", ["psnr"])
    args = namespace(pred=str(tmp_path / "pred"), gt=str(tmp_path / "gt"), metrics="psnr")
    assert evaluate_command.run(args) == 2
    err = capsys.readouterr().err
    assert "c" in err and "zz" in err and "Traceback" not in err


def test_a_prediction_of_another_size_is_an_error(tmp_path):
    write_images(tmp_path / "gt", ["a.png"], seed=1, size=(20, 16))
    write_images(tmp_path / "pred", ["a.png"], seed=1, size=(16, 16))
    with pytest.raises(EvaluationError, match=r"a.png: 16x16 .* 20x16"):
        evaluate_folders(tmp_path / "pred", tmp_path / "gt", ["psnr"])


def test_cli_usage_errors_exit_2(tmp_path, capsys):
    assert evaluate_command.run(namespace()) == 2
    assert evaluate_command.run(namespace(runs=["x"], pred="p", gt="g")) == 2
    assert evaluate_command.run(namespace(runs=[str(tmp_path)], metrics="psnrr")) == 2
    err = capsys.readouterr().err
    assert "did you mean 'psnr'" in err and "Traceback" not in err


# ---------------------------------------------------------------- files from elsewhere (issue #10)
def test_an_eval_set_name_is_one_plain_folder_name(run_dir, tmp_path):
    """Item 8: a set named '..' wrote predictions/ gt/ input/ metrics.json into the run root (and a
    rerun would clear them)."""
    for name in ("..", ".", "a/b", ".hidden"):
        bad = tmp_path / "bad.yaml"
        bad.write_text(yaml_text({"name": name, "data": "builtin:skimage", "size": SIZE}))
        with pytest.raises(EvalSetError, match="must be one plain folder name"):
            load_eval_set(bad)
    (tmp_path / "..yaml").write_text(yaml_text({"data": "builtin:skimage", "size": SIZE}))  # name: "."
    with pytest.raises(EvalSetError, match="must be one plain folder name"):
        load_eval_set(tmp_path / "..yaml")
    # a set made in code is checked too, before anything is written or cleared
    from gan_colorize.evaluation import EvalSet

    with pytest.raises(EvaluationError, match="must be one plain folder name"):
        evaluate_run(
            run_dir, eval_set=EvalSet(name="..", data="builtin:skimage", size=SIZE, metrics=["psnr"])
        )
    assert not (run_dir / "metrics.json").exists() and not (run_dir / "predictions").exists()
    assert RunDir(run_dir).eval_dir("..").parent == run_dir / "eval"


def yaml_text(data: dict) -> str:
    import yaml

    return yaml.safe_dump(data)


def test_out_never_replaces_an_image_or_another_file(tmp_path, capsys):
    """Item 3: --out G/img0.png overwrote a ground-truth image with the metrics JSON."""
    write_images(tmp_path / "gt", ["a.png", "b.png"], seed=1)
    write_images(tmp_path / "pred", ["a.png", "b.png"], seed=2)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*.png")}
    (tmp_path / "notes.json").write_text('{"mine": 1}\n')
    for out in ("gt/a.png", "pred/b.png", "gt/new.json", "pred", "notes.json"):
        args = namespace(
            pred=str(tmp_path / "pred"), gt=str(tmp_path / "gt"), metrics="psnr", out=str(tmp_path / out)
        )
        assert evaluate_command.run(args) == 2, out
        assert "--out" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*.png")} == before
    assert not (tmp_path / "gt" / "new.json").exists()
    assert (tmp_path / "notes.json").read_text() == '{"mine": 1}\n'
    with pytest.raises(EvaluationError, match="approach '../x' must be one plain folder name"):
        evaluate_folders(
            tmp_path / "pred", tmp_path / "gt", ["psnr"], out=tmp_path / "m.json", approach="../x"
        )
    # an earlier result of the same kind is replaced: a rerun updates its own file
    out = tmp_path / "m.json"
    for _ in range(2):
        assert evaluate_folders(tmp_path / "pred", tmp_path / "gt", ["psnr"], out=out)["n_images"] == 2


def test_out_refuses_a_runs_metrics_file(evaluated, tmp_path):
    """A run's metrics.json is not a result of the same kind as an outside method's."""
    write_images(tmp_path / "gt", ["a.png"], seed=1)
    run_metrics = Path(evaluated["metrics_file"])
    before = run_metrics.read_text()
    with pytest.raises(EvaluationError, match="not a metrics file of an earlier"):
        evaluate_folders(tmp_path / "gt", tmp_path / "gt", ["psnr"], out=run_metrics)
    assert run_metrics.read_text() == before


class HugeWeights(torch.nn.Module):
    """What a 'last good' checkpoint of a diverged run computes: finite weights (1e30), NaN output."""

    output_kind = "ab"

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 1)
        torch.nn.init.constant_(self.conv.weight, 1e30)

    def forward(self, L_norm):
        x = self.conv(self.conv.weight.sum() * L_norm)
        return torch.tanh(x - x)  # inf - inf = NaN


def test_evaluation_refuses_non_finite_predictions(run_dir, monkeypatch):
    """Item 10: a checkpoint whose generator predicts NaN was scored as all-black predictions."""
    import gan_colorize.models

    real = gan_colorize.models.load_generator

    def huge(path, device="cpu", trust_code=False):
        loaded = real(path, device, trust_code)
        loaded.module = HugeWeights()
        return loaded

    monkeypatch.setattr(gan_colorize.models, "load_generator", huge)
    from gan_colorize.evaluation.protocol import NonFiniteOutputError

    with pytest.raises(
        NonFiniteOutputError, match=r"generator\.pt: the generator predicts non-finite colours"
    ):
        evaluate_run(run_dir, data="builtin:skimage", size=SIZE, metrics=["psnr"])
    folder = RunDir(run_dir).eval_dir("builtin:skimage_32px")
    assert not (folder / "predictions").exists() or not any((folder / "predictions").iterdir())
    gt = torch.randint(0, 256, (1, 3, 8, 8), dtype=torch.uint8)
    assert colorize_batch(HugeWeights(), gt).shape == gt.shape  # training samples: no source, no check


def test_an_outside_method_gets_the_metrics_of_the_evaluation_behind_its_gt(
    run_dir, tmp_path, hub_checkpoints
):
    """Issue #14: scored against a run's gt/ without --metrics, an outside method lost efficientnet_fd
    (the defaults lack it): it takes the metrics that evaluation computed or found n/a."""
    from gan_colorize.evaluation.results import recorded_metrics

    names = ["psnr", "colorfulness", "efficientnet_fd"]
    evaluated = evaluate_run(run_dir, data="builtin:skimage", size=SIZE, metrics=names, batch_size=4)
    gt = Path(evaluated["metrics_file"]).parent / "gt"
    outside = tmp_path / "outside"
    outside.mkdir()
    for png in gt.glob("*.png"):
        Image.open(png).save(outside / f"{png.stem}.jpg")
    result = evaluate_folders(outside, gt, out=tmp_path / "outside.json")
    assert recorded_metrics(result) == set(names)  # computed or n/a, as in the run's evaluation
    assert result["dataset"] == evaluated["dataset"]
    # an explicit list still wins
    assert recorded_metrics(evaluate_folders(outside, gt, ["psnr"], out=tmp_path / "o2.json")) == {"psnr"}


@pytest.mark.parametrize("linked", ["set", "predictions"])
def test_evaluation_never_clears_through_a_link_the_run_folder_carries(linked, run_dir, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    custom = tmp_path / "linked_set.yaml"
    custom.write_text(f"name: linked_set\ndata: builtin:skimage\nsize: {SIZE}\nmetrics: [psnr]\n")
    victim = tmp_path / "victim"
    (victim / "predictions").mkdir(parents=True)
    (victim / "predictions" / "precious.txt").write_text("keep me")
    folder = RunDir(run).eval_dir("linked_set")
    folder.parent.mkdir(parents=True, exist_ok=True)
    if linked == "set":
        folder.symlink_to(victim)
    else:
        folder.mkdir()
        (folder / "predictions").symlink_to(victim / "predictions")
    with pytest.raises(EvaluationError, match="symbolic link or not a folder"):
        evaluate_run(run, eval_set=custom)
    assert (victim / "predictions" / "precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in victim.rglob("*")) == ["precious.txt", "predictions"]
