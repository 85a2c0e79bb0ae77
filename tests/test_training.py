import json
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate.state import AcceleratorState
from PIL import Image
from torch.utils._python_dispatch import TorchDispatchMode

from gan_colorize.config import ConfigError, load_config
from gan_colorize.models.io import load_generator, read_generator_file
from gan_colorize.rundir import RunDir
from gan_colorize.training import NonFiniteLossError, train
from gan_colorize.training import loop as loop_module
from gan_colorize.training.loop import LossWindow, Trainer

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny"

FAST = [
    "data.size=32",
    "data.batch_size=4",
    "data.workers=0",
    "data.crops_per_epoch=16",
    "train.log_every=1",
    "train.sample_every=1000",
    "train.checkpoint_every=1000",
    "train.deterministic=true",
    "run.trackers=[]",
    "train.eval_every=0",
    "train.warmup_l1_steps=0",  # the tiny GAN's warm-up of 100 steps would outlast these short runs
]


def free_port() -> str:
    """A port no other test run on this machine is using now (a fixed one collides when two suites run)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def tiny(name: str, tmp_path: Path, *overrides: str):
    return load_config(TINY / f"{name}.yaml", [*FAST, f"run.dir={tmp_path / name}", *overrides])


def state(path: Path) -> dict:
    return read_generator_file(path)["state_dict"]


@pytest.mark.parametrize("name", ["regression", "classification", "unet_l1", "unet_gan"])
def test_each_objective_writes_the_run_folder(name, tmp_path):
    # one warm-up step (reconstruction only), then adversarial steps
    run = train(tiny(name, tmp_path, "train.steps=3", "train.sample_every=3", "train.warmup_l1_steps=1"))
    assert run.config.is_file()
    rows = run.read_metrics()
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert all(np.isfinite(v) for r in rows for k, v in r.items() if k.startswith("loss/"))
    assert rows[-1]["images_per_s"] > 0
    ((step, ckpt),) = run.list_checkpoints()
    assert step == 3
    loaded = load_generator(run.root)
    assert loaded.step == 3 and loaded.ema
    assert Image.open(run.sample_path(3)).size[0] == 3 * 32  # L | prediction | ground truth
    if name == "classification":
        prior = np.load(run.prior)
        assert prior.shape == (313,) and abs(prior.sum() - 1) < 1e-6
    if name == "unet_gan":
        assert "loss/d" not in rows[0] and {"loss/d", "loss/g_adv", "loss/l1"} <= set(rows[-1])


def test_finished_run_returns_at_once_and_fresh_run_refuses_to_overwrite(tmp_path):
    cfg = tiny("unet_l1", tmp_path, "train.steps=2")
    run = train(cfg)
    before = run.metrics.read_text()
    train(cfg, resume="latest")
    assert run.metrics.read_text() == before
    with pytest.raises(ConfigError, match="already has checkpoints"):
        train(cfg)


def test_single_crop_overfit_loss_falls(tmp_path):
    folder = tmp_path / "one"
    folder.mkdir()
    from skimage import data

    Image.fromarray(data.astronaut()[100:164, 180:244]).save(folder / "crop.png")
    cfg = tiny(
        "unet_l1",
        tmp_path,
        f"data.train={folder}",
        "data.eval=builtin:skimage",
        "data.crop=random",
        "data.hflip=false",
        "data.size=64",
        "data.min_chroma=0",
        "train.steps=150",
        "train.lr_g=2e-3",
        "train.log_every=10",
        "data.eval_fraction=0",
    )
    run = train(cfg)
    losses = [r["loss/l1"] for r in run.read_metrics()]
    assert losses[-1] < 0.25 * losses[0], losses


def _interrupt_at(monkeypatch, at_step: int):
    original = loop_module.LossWindow.add

    def add(self, terms, step):
        original(self, terms, step)
        if step == at_step:
            os.kill(os.getpid(), signal.SIGINT)  # the real handler: checkpoint at the end of this step

    monkeypatch.setattr(loop_module.LossWindow, "add", add)


def test_a_second_ctrl_c_stops_at_once_with_one_line_and_the_run_resumes(tmp_path, monkeypatch, capsys):
    from gan_colorize.cli import main

    original = loop_module.LossWindow.add

    def add(self, terms, step):
        original(self, terms, step)
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)  # the first: checkpoint at the end of this step ...
            os.kill(os.getpid(), signal.SIGINT)  # ... the second: stop now

    monkeypatch.setattr(loop_module.LossWindow, "add", add)
    run_dir = tmp_path / "run"
    argv = ["train", "--config", str(TINY / "unet_l1.yaml"), "--run-dir", str(run_dir)]
    overrides = ["--set", *FAST, "train.steps=4", "train.checkpoint_every=1"]
    assert main([*argv, *overrides]) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "interrupted: a second signal stopped training at once, without writing a checkpoint" in err
    monkeypatch.setattr(loop_module.LossWindow, "add", original)
    assert main([*argv, *overrides, "--resume", "latest"]) == 0
    assert RunDir(run_dir).latest_checkpoint().name.endswith("4")
    # the console commands die of the signal, as Python does on Ctrl-C: a shell loop stops too
    code = "from gan_colorize.cli import run_handler\ndef stop(args):\n    raise KeyboardInterrupt('now')\n"
    code += "run_handler(stop, None, die_of_signal=True)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGINT and proc.stderr.strip() == "interrupted: now"


@pytest.mark.parametrize(
    "extra",
    [
        [],
        # a lazy regularizer phase and two D phases per step: resume must land on the same phases
        ["loss.regularizers=[{type: r1, gamma: 1.0, interval: 2}]", "train.d_steps_per_g_step=2"],
    ],
)
def test_interrupted_gan_run_resumes_to_identical_weights(extra, tmp_path, monkeypatch):
    overrides = ["train.steps=6", "train.checkpoint_every=100", *extra]
    straight = train(tiny("unet_gan", tmp_path / "a", *overrides))

    _interrupt_at(monkeypatch, 3)
    cfg = tiny("unet_gan", tmp_path / "b", *overrides)
    run = train(cfg)
    assert [s for s, _ in run.list_checkpoints()] == [3]
    monkeypatch.undo()
    resumed = train(cfg, resume="latest")

    a, b = straight.latest_checkpoint(), resumed.latest_checkpoint()
    assert a.name == b.name == "step_00000006"
    for ga, gb in zip(state(a / "generator.pt").values(), state(b / "generator.pt").values()):
        assert torch.equal(ga, gb)
    sa, sb = (torch.load(c / "training_state.pt", weights_only=True) for c in (a, b))
    assert set(sa["networks"]) == {"G", "D"}
    for name in ("G", "D"):  # both networks, and both optimizers' moments
        na, nb = sa["networks"][name], sb["networks"][name]
        assert na.keys() == nb.keys() and all(torch.equal(na[k], nb[k]) for k in na)
        ma, mb = sa["optimizers"][name]["state"], sb["optimizers"][name]["state"]
        assert all(torch.equal(ma[i]["exp_avg"], mb[i]["exp_avg"]) for i in ma)
    assert [r["step"] for r in resumed.read_metrics()] == [1, 2, 3, 4, 5, 6]


def test_non_finite_loss_stops_with_step_and_term(tmp_path, monkeypatch):
    from gan_colorize.training import objectives

    original = objectives.RegressionObjective.generator_terms

    def poisoned(self, out, batch, step):
        terms = original(self, out, batch, step)
        if step == 4:
            terms["l1"] = terms["l1"] * float("nan")
        return terms

    monkeypatch.setattr(objectives.RegressionObjective, "generator_terms", poisoned)
    cfg = tiny("unet_l1", tmp_path, "train.steps=8", "train.checkpoint_every=2", "train.log_every=3")
    # the update at loop index 4 is step 5 in checkpoint numbering; step_00000004 is the last good one
    with pytest.raises(NonFiniteLossError, match=r"'l1' became non-finite at step 5.*step_00000004"):
        train(cfg)
    run = RunDir(cfg.run.dir)
    assert [s for s, _ in run.list_checkpoints()] == [2, 4]  # nothing written after the bad step
    assert all(torch.isfinite(t).all() for t in state(run.latest_checkpoint() / "generator.pt").values())


def test_gradient_accumulation_is_rejected_for_gan(tmp_path):
    with pytest.raises(ConfigError, match="grad_accum"):
        train(tiny("unet_gan", tmp_path, "train.grad_accum=2"))


def test_gradient_accumulation_runs_for_regression(tmp_path):
    run = train(tiny("unet_l1", tmp_path, "train.steps=2", "train.grad_accum=2"))
    assert run.read_metrics()[-1]["step"] == 2


def test_missing_perceptual_weights_fail_before_any_step(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    from gan_colorize.weights import MissingWeightsError

    cfg = tiny("unet_gan", tmp_path, "loss.lambda_perc=1.0", "loss.perceptual={type: vgg16}", "train.steps=2")
    with pytest.raises(MissingWeightsError, match="vgg16-397923af.pth"):
        train(cfg)
    assert not RunDir(cfg.run.dir).metrics.exists()


def test_crash_and_resume_logs_every_step_once(tmp_path, monkeypatch):
    original = loop_module.LossWindow.add

    def crash(self, terms, step):
        original(self, terms, step)
        if step == 5:
            raise RuntimeError("simulated crash")

    monkeypatch.setattr(loop_module.LossWindow, "add", crash)
    cfg = tiny("unet_l1", tmp_path, "train.steps=6", "train.checkpoint_every=3")
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg)
    monkeypatch.undo()
    run = train(cfg, resume="latest")
    assert [r["step"] for r in run.read_metrics()] == [1, 2, 3, 4, 5, 6]  # row 4 was redone, not repeated


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, extra",
    [
        ("unet_gan", []),
        # a lazy R1 phase (double backward through DDP) and two D updates per G update
        (
            "unet_gan",
            ["loss.regularizers=[{type: r1, gamma: 1.0, interval: 2}]", "train.d_steps_per_g_step=2"],
        ),
        # the copied encoder frozen for 2 steps: an lr-0 group, no requires_grad change under DDP
        ("unet_zhang_gan", ["model.init_from=null", "model.freeze_encoder_steps=2"]),
    ],
)
def test_two_process_gan_run_keeps_replicas_identical(name, extra, tmp_path):
    run_dir = tmp_path / "ddp"
    overrides = FAST + ["train.steps=4", "train.checkpoint_every=2", *extra]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    cmd += ["--master_port", free_port()]
    cmd += [str(REPO / "train.py"), "--config", str(TINY / f"{name}.yaml"), "--run-dir", str(run_dir)]
    cmd += sum((["--set", o] for o in overrides), [])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = RunDir(run_dir)
    for _, ckpt in run.list_checkpoints():
        replicas = json.loads((ckpt / "replicas.json").read_text())
        assert len(replicas) == 2 and replicas[0] == replicas[1], replicas
    assert run.read_metrics()[-1]["step"] == 4


@pytest.mark.slow
def test_compiled_gan_run_checkpoints_plain_keys_and_resumes_uncompiled(tmp_path):
    # step 0 reconstruction only, step 1 adversarial: D compiled, called with and without gradients
    cfg = tiny("unet_gan", tmp_path, "train.steps=2", "train.warmup_l1_steps=1", "train.compile=true")
    run = train(cfg)
    assert set(run.read_metrics()[-1]) >= {"loss/d", "loss/g_adv", "loss/l1"}
    networks = torch.load(run.latest_checkpoint() / "training_state.pt", weights_only=True)["networks"]
    for name in ("G", "D"):
        keys = networks[name].keys()
        assert keys and not any(k.startswith("_orig_mod.") for k in keys)
    resumed = train(tiny("unet_gan", tmp_path, "train.steps=3", "train.compile=false"), resume="latest")
    assert [r["step"] for r in resumed.read_metrics()] == [1, 2, 3]


class HostTraffic(TorchDispatchMode):
    """Records ops that, on a GPU, would make the host wait for the device: a tensor built from
    Python numbers (a blocking host-to-device copy) and ``.item()``. The CPU optimizer's own step
    counters are left out: with the fused Adam the loop uses on CUDA they live on the device."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in (torch.ops.aten.lift_fresh.default, torch.ops.aten._local_scalar_dense.default):
            stack = traceback.extract_stack()[:-1]
            if not any("torch/optim/" in frame.filename.replace("\\", "/") for frame in stack):
                ours = [f"{Path(f.filename).name}:{f.lineno}" for f in stack if "gan_colorize" in f.filename]
                self.seen.append((str(func), ours[-3:]))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("name", ["regression", "classification", "unet_gan", "unet_gan_perceptual"])
def test_a_training_step_makes_the_host_wait_for_nothing(name, tmp_path):
    # "no per-step host synchronisation except for logging": the step after the first two (which
    # may build constants and caches) must queue its work without reading anything back
    trainer = Trainer(tiny(name, tmp_path, "train.steps=10", "train.warmup_l1_steps=0"))
    try:
        window = LossWindow()
        batch = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
        for step in range(2):
            window.add(trainer.train_step([batch], step), step + 1)
        with HostTraffic() as traffic:
            window.add(trainer.train_step([batch], 2), 3)
        assert trainer.step == 3
        assert traffic.seen == []
    finally:
        AcceleratorState._reset_state()


def first_conv(module: torch.nn.Module) -> torch.nn.Module:
    return next(m for m in module.modules() if isinstance(m, torch.nn.Conv2d))


def test_bf16_reaches_generator_discriminator_and_feature_network(tmp_path):
    # accelerate autocasts the prepared G and D; the perceptual network is the objective's to cast
    trainer = Trainer(
        tiny("unet_gan_perceptual", tmp_path, "train.mixed_precision=bf16", "train.warmup_l1_steps=0")
    )
    try:
        dtypes = {}
        nets = {"G": trainer.G_raw, "D": trainer.raw["D"], "features": trainer.objective.perceptual}
        for name, net in nets.items():

            def record(module, inputs, out, name=name):
                dtypes.setdefault(name, out.dtype)

            first_conv(net).register_forward_hook(record)
        batch = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
        terms = trainer.train_step([batch], 0)
        assert dtypes == {"G": torch.bfloat16, "D": torch.bfloat16, "features": torch.bfloat16}
        assert set(terms) == {"d", "l1", "perceptual", "g_adv"}
        assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in terms.values())
        assert all(p.dtype == torch.float32 for p in trainer.G_raw.parameters())
    finally:
        AcceleratorState._reset_state()


def test_what_a_killed_checkpoint_write_leaves_is_swept_and_resume_still_works(tmp_path):
    run = train(tiny("regression", tmp_path, "train.steps=2", "train.checkpoint_every=1"))
    ckpts = run.checkpoints
    # killed between the two renames of a re-written step 2: only the replaced copy has the data
    (ckpts / "step_00000002").rename(ckpts / ".replaced_step_00000002")
    # killed while pruning step 1, while writing step 3, and inside an atomic file write
    (ckpts / "step_00000001").rename(ckpts / ".pruned_step_00000001")
    (ckpts / ".tmp_step_00000003").mkdir()
    (ckpts / ".tmp_step_00000003" / "model.safetensors").write_bytes(b"half")
    (ckpts / ".generator.pt.x1y2.tmp").write_bytes(b"half")
    assert run.latest_checkpoint() is None  # nothing complete is visible before the sweep

    resumed = train(
        tiny("regression", tmp_path, "train.steps=3", "train.checkpoint_every=1"), resume="latest"
    )
    assert [r["step"] for r in resumed.read_metrics()] == [1, 2, 3]  # resumed at 2, not restarted
    assert sorted(p.name for p in ckpts.iterdir()) == ["step_00000002", "step_00000003"]


def test_pruning_hides_a_checkpoint_before_deleting_it(tmp_path, monkeypatch):
    run = train(tiny("regression", tmp_path, "train.steps=2", "train.checkpoint_every=1"))
    seen = []

    def killed_midway(path, ignore_errors=False):
        seen.append(path.name)
        raise KeyboardInterrupt  # the kill, before anything is deleted

    monkeypatch.setattr("gan_colorize.rundir.shutil.rmtree", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        run.prune_checkpoints(keep=1)
    assert seen == [".pruned_step_00000001"]
    assert [step for step, _ in run.list_checkpoints()] == [2]


def test_generator_step_sees_the_discriminator_as_its_own_step_trained_it(tmp_path):
    # a BatchNorm D normalises over its input batch: G's step must feed it the same real+fake
    # batch as D's step, or the logits G learns from are not those D was trained to give
    trainer = Trainer(tiny("unet_gan", tmp_path, "train.warmup_l1_steps=0", "train.lr_d=0"))
    try:
        calls = []
        trainer.raw["D"].register_forward_hook(lambda m, args, out: calls.append(out.detach().clone()))
        batch = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
        trainer.train_step([batch], 0)
        d_step, g_step = calls  # lr_d = 0: D's weights are the same in both calls
        assert d_step.shape == g_step.shape and d_step.shape[0] == 8
        torch.testing.assert_close(g_step[4:], d_step[4:])  # the fake half: same logits
    finally:
        AcceleratorState._reset_state()


def test_config_yaml_stays_the_one_the_weights_were_trained_with(tmp_path, caplog):
    train(tiny("regression", tmp_path, "train.steps=2", "train.lr_g=0.001"))
    path = tmp_path / "regression" / "config.yaml"
    # a finished run re-run with another learning rate trains nothing: its config is kept
    with caplog.at_level("WARNING"):
        train(tiny("regression", tmp_path, "train.steps=2", "train.lr_g=0.5"), resume="latest")
    assert load_config(path).train.lr_g == 0.001
    assert "run" in caplog.text and "finished" in caplog.text and "train.lr_g: 0.001 -> 0.5" in caplog.text
    # continued with changed settings: the new config is written, the old one kept beside it
    kept = path.with_name("config_until_step_00000002.yaml")
    loop_module.Trainer(
        tiny("regression", tmp_path, "train.steps=3", "train.lr_g=0.5"), resume="latest"
    ).close()
    AcceleratorState._reset_state()  # a resume that crashed before its first checkpoint
    train(tiny("regression", tmp_path, "train.steps=3", "train.lr_g=0.7"), resume="latest")
    assert load_config(path).train.lr_g == 0.7
    assert load_config(kept).train.lr_g == 0.001  # still the config that trained steps 1-2


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="process groups are POSIX")
def test_sigterm_to_the_process_group_still_writes_the_checkpoint(tmp_path):
    # a scheduler's SIGTERM reaches the loader workers too: they must leave it to the trainer
    run_dir = tmp_path / "run"
    cmd = [
        sys.executable,
        str(REPO / "train.py"),
        "--config",
        str(TINY / "unet_l1.yaml"),
        "--run-dir",
        str(run_dir),
    ]
    for override in FAST + ["train.steps=100000", "data.workers=2", "train.deterministic=false"]:
        cmd += ["--set", override]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 120
        while len(RunDir(run_dir).read_metrics()) < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
        os.killpg(proc.pid, signal.SIGTERM)
        out = proc.communicate(timeout=120)[0].decode()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == -signal.SIGTERM, out[-3000:]  # dies of it: a shell loop stops too
    ((step, _),) = RunDir(run_dir).list_checkpoints()
    assert json.loads(RunDir(run_dir).provenance.read_text())["launches"][-1]["ended"]["reason"] == "SIGTERM"
    assert step >= 3 and not list((run_dir / "checkpoints").glob(".tmp_*"))


def count_optimizer_steps(trainer: Trainer) -> dict[str, int]:
    counts = dict.fromkeys(trainer.optimizers, 0)
    for name, opt in trainer.optimizers.items():
        inner = getattr(opt, "optimizer", opt)  # accelerate's wrapper

        def hook(optimizer, args, kwargs, name=name):
            counts[name] += 1

        inner.register_step_post_hook(hook)
    return counts


@pytest.mark.parametrize(
    "extra, expected",
    [
        ([], {"G": 4, "D": 4}),
        (["train.d_steps_per_g_step=2"], {"G": 4, "D": 8}),
        # lazy R1 every 2 steps: a Dreg phase of its own at steps 0 and 2
        (["loss.regularizers=[{type: r1, gamma: 1.0, interval: 2}]"], {"G": 4, "D": 6}),
        # R1 at interval 1 rides in D's own phase (one update), as WGAN-GP does
        (["loss.regularizers=[{type: gradient_penalty}]", "loss.adversarial={type: wgan}"], {"G": 4, "D": 4}),
    ],
)
def test_gan_phases_step_each_optimizer_as_configured(extra, expected, tmp_path):
    trainer = Trainer(tiny("unet_gan", tmp_path, "train.steps=4", *extra))
    try:
        counts = count_optimizer_steps(trainer)
        batch = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
        terms = {}
        for step in range(4):
            terms.update(trainer.train_step([batch] * trainer.batches_per_step, step))
        assert counts == expected
        if "interval: 2" in " ".join(extra):
            assert "d_r1" in terms
        if "gradient_penalty" in " ".join(extra):
            assert "d_gradient_penalty" in terms
    finally:
        trainer.close()
        AcceleratorState._reset_state()


def test_d_steps_per_g_step_draws_a_batch_per_discriminator_update(tmp_path):
    trainer = Trainer(tiny("unet_gan", tmp_path, "train.steps=2", "train.d_steps_per_g_step=3"))
    try:
        seen = []
        trainer.raw["D"].register_forward_hook(lambda m, args, out: seen.append(args[1][:4].clone()))
        batches = [torch.full((4, 3, 32, 32), v, dtype=torch.uint8) for v in (10, 120, 240)]
        batches = [b.clone().index_fill_(1, torch.tensor([0]), v) for b, v in zip(batches, (200, 30, 90))]
        trainer.train_step(batches, 0)
        # D phases on batches 0, 1, 2, then G's phase on batch 2: the real halves show which
        reals = [x.mean().item() for x in seen]
        assert len(reals) == 4 and len({round(r, 4) for r in reals[:3]}) == 3
        assert reals[3] == pytest.approx(reals[2])
    finally:
        trainer.close()
        AcceleratorState._reset_state()


RAGAN_FILE = """
import torch.nn.functional as F


class RaGAN:
    # ESRGAN's relativistic average loss, written outside the package
    def d_loss(self, real, fake):
        return 0.5 * (F.softplus(-(real - fake.mean())).mean() + F.softplus(fake - real.mean()).mean())

    def g_loss(self, real, fake):
        return 0.5 * (F.softplus(real - fake.mean()).mean() + F.softplus(-(fake - real.mean())).mean())
"""


def test_an_adversarial_loss_from_an_outside_file_trains(tmp_path, monkeypatch):
    (tmp_path / "my_losses.py").write_text(RAGAN_FILE)
    monkeypatch.syspath_prepend(str(tmp_path))
    run = train(tiny("unet_gan", tmp_path, "train.steps=2", "loss.adversarial={type: my_losses:RaGAN}"))
    rows = run.read_metrics()
    assert {"loss/d", "loss/g_adv"} <= set(rows[-1])
    assert all(np.isfinite(rows[-1][k]) for k in ("loss/d", "loss/g_adv"))


def test_the_loop_knows_no_gan():
    source = (REPO / "gan_colorize" / "training" / "loop.py").read_text().lower()
    for word in ("discriminator", "adversarial", "d_raw", "opt_d", "gan_step", "warmup_l1"):
        assert word not in source, word


def test_warmup_that_outlasts_the_run_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="discriminator would never train"):
        load_config(TINY / "unet_gan.yaml", ["train.steps=100"])  # the tiny GAN warms up for 100 steps


# --------------------------------------------------------------------------- files from elsewhere


class Planted:
    """A pickle that, when unpickled, creates a marker file: "code ran"."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_resume_runs_no_code_from_any_checkpoint_file(tmp_path):
    cfg = tiny("unet_gan", tmp_path, "train.steps=2", "train.checkpoint_every=1", "train.keep_checkpoints=0")
    run = train(cfg)
    marker = tmp_path / "code_ran"
    files = sorted(p.name for p in run.checkpoint_dir(2).iterdir())
    assert files == ["generator.pt", "replicas.json", "rng_state_0.pt", "training_state.pt"]
    keep_all = ["train.checkpoint_every=1", "train.keep_checkpoints=0"]
    longer = tiny("unet_gan", tmp_path, "train.steps=3", *keep_all)
    for name in files:
        target = run.checkpoint_dir(2) / name
        saved = target.read_bytes()
        torch.save({"format": "gan-colorize-training-state/1", "x": Planted(marker)}, target)
        try:
            train(longer, resume="latest")
        except ValueError as exc:  # refused, naming the file
            assert name in str(exc) and "pickled object" in str(exc), exc
        else:  # a file resume does not read (the inference generator, the digests)
            assert name in ("generator.pt", "replicas.json")
            shutil.rmtree(run.checkpoint_dir(3))
        assert not marker.exists(), f"unpickling {name} ran code"
        target.write_bytes(saved)


def test_a_checkpoint_in_accelerates_pickled_layout_is_refused_unread(tmp_path):
    run = train(tiny("regression", tmp_path, "train.steps=1"))
    ckpt = run.latest_checkpoint()
    (ckpt / "training_state.pt").unlink()
    marker = tmp_path / "code_ran"
    torch.save(Planted(marker), ckpt / "custom_checkpoint_0.pkl")
    with pytest.raises(ValueError, match=r"custom_checkpoint_0.pkl: accelerate's pickled layout"):
        train(tiny("regression", tmp_path, "train.steps=2"), resume="latest")
    assert not marker.exists()


def test_a_held_run_folder_is_refused_and_not_swept(tmp_path):
    from gan_colorize.rundir import RunLockedError

    cfg = tiny("regression", tmp_path, "train.steps=1")
    run = RunDir(cfg.run.dir)
    lock = run.lock()  # another training process holds the folder
    staging = run.checkpoints / ".tmp_step_00000001"
    staging.mkdir(parents=True)  # what that process is writing
    try:
        with pytest.raises(RunLockedError, match=rf"being trained by pid {os.getpid()} on host"):
            train(cfg)
        assert staging.is_dir()  # its checkpoint write was left alone
    finally:
        lock.release()
    train(cfg)  # released (or its holder died): the folder is free again
    assert run.latest_checkpoint().name == "step_00000001" and not staging.exists()


def test_a_stale_lock_file_from_a_dead_process_does_not_block(tmp_path):
    cfg = tiny("regression", tmp_path, "train.steps=1")
    RunDir(cfg.run.dir).lock_file.parent.mkdir(parents=True)
    RunDir(cfg.run.dir).lock_file.write_text("pid 999999 on host elsewhere since 2026-01-01 00:00:00")
    assert train(cfg).latest_checkpoint() is not None


def test_resumed_run_trains_with_the_changed_learning_rate_and_betas(tmp_path):
    base = ["train.steps=4", "train.checkpoint_every=2", "train.lr_g=0.001"]
    train(tiny("regression", tmp_path / "a", *base[:1], "train.steps=2", *base[1:]))
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    same = train(tiny("regression", tmp_path / "a", *base), resume="latest")
    changed = tiny("regression", tmp_path / "b", *base, "train.lr_g=0.05", "train.betas=[0.9, 0.99]")
    trainer = Trainer(changed, resume="latest")
    try:
        group = trainer.optimizers["G"].param_groups[0]
        assert group["lr"] == pytest.approx(0.05) and group["betas"] == (0.9, 0.99)
        trainer.fit()
    finally:
        trainer.close()
        AcceleratorState._reset_state()
    rows = RunDir(tmp_path / "b" / "regression").read_metrics()
    assert [r["lr/g"] for r in rows] == pytest.approx([0.001, 0.001, 0.05, 0.05])
    a = state(same.latest_checkpoint() / "generator.pt")
    b = state(RunDir(tmp_path / "b" / "regression").latest_checkpoint() / "generator.pt")
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the change reached the weights


def test_resume_refuses_a_different_network(tmp_path):
    train(tiny("unet_gan", tmp_path, "train.steps=1"))
    with pytest.raises(ConfigError, match="different model.discriminator"):
        other_d = tiny("unet_gan", tmp_path, "train.steps=2", "model.discriminator={type: pixelgan}")
        train(other_d, resume="latest")


@pytest.mark.parametrize("interrupt_at", [1, 2, 3])  # N - 1, N, N + 1 for an encoder frozen N = 2 steps
def test_unfreezing_the_encoder_happens_once_also_across_a_resume(interrupt_at, tmp_path, monkeypatch):
    overrides = [
        "model.init_from=null", "model.freeze_encoder_steps=2", "model.encoder_lr_scale=0.1",
        "train.steps=4", "train.checkpoint_every=100", "train.lr_schedule=constant",
    ]  # fmt: skip
    straight = train(tiny("unet_zhang_gan", tmp_path / "a", *overrides))
    rows = straight.read_metrics()
    assert [r["lr/g_encoder"] for r in rows] == pytest.approx([0.0, 1e-4, 1e-4, 1e-4])  # one change, at N
    assert all(r["lr/g"] == pytest.approx(1e-3) for r in rows)

    _interrupt_at(monkeypatch, interrupt_at)
    cfg = tiny("unet_zhang_gan", tmp_path / "b", *overrides)
    train(cfg)
    monkeypatch.undo()
    resumed = train(cfg, resume="latest")
    assert [r["lr/g_encoder"] for r in resumed.read_metrics()] == pytest.approx([0.0, 1e-4, 1e-4, 1e-4])
    a = state(straight.latest_checkpoint() / "generator.pt")
    b = state(resumed.latest_checkpoint() / "generator.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_resume_names_the_encoder_settings_that_switch_the_optimizer_layout(tmp_path):
    """Hostile review of #13: freeze_encoder_steps 0 -> 6 on resume failed with torch's 'different
    number of parameter groups'. Within one layout (2 -> 6) the new schedule takes effect."""
    base = ["model.init_from=null", "train.checkpoint_every=100", "train.lr_schedule=constant"]
    train(tiny("unet_zhang_gan", tmp_path / "a", *base, "train.steps=1", "model.freeze_encoder_steps=0"))
    switched = tiny("unet_zhang_gan", tmp_path / "a", *base, "train.steps=2", "model.freeze_encoder_steps=6")
    with pytest.raises(ConfigError, match=r"model.freeze_encoder_steps: 0 -> 6.*group of its own"):
        train(switched, resume="latest")
    train(tiny("unet_zhang_gan", tmp_path / "b", *base, "train.steps=1", "model.freeze_encoder_steps=2"))
    later = tiny("unet_zhang_gan", tmp_path / "b", *base, "train.steps=3", "model.freeze_encoder_steps=3")
    rows = train(later, resume="latest").read_metrics()
    assert [r["lr/g_encoder"] for r in rows] == pytest.approx([0.0, 0.0, 1e-3])  # frozen until 3 now


def test_an_encoder_schedule_needs_an_encoder_and_a_longer_one_is_said(tmp_path, caplog):
    """Hostile review of #13: freeze settings on a generator without an encoder were accepted in
    silence. Now the config is refused when it is read, naming the generators that have one."""
    refused = r"model.freeze_encoder_steps=2, model.encoder_lr_scale=0.1: generator 'unet' has no pretrained"
    with pytest.raises(ConfigError, match=refused + r" encoder to schedule \(.*unet_backbone"):
        tiny("unet_l1", tmp_path, "model.freeze_encoder_steps=2", "model.encoder_lr_scale=0.1")
    # a schedule longer than the run is allowed (a first stage may keep the encoder fixed) and said
    with caplog.at_level("WARNING", logger="gan_colorize.train"):
        train(
            tiny(
                "unet_zhang_gan",
                tmp_path,
                "model.init_from=null",
                "train.steps=1",
                "model.freeze_encoder_steps=5",
            )
        )
    assert "the encoder stays frozen for the whole run" in caplog.text


def test_a_failed_start_leaves_no_lock_and_no_folder_it_made(tmp_path):
    """Hostile review of #13: an init_from error left a run folder holding only .lock."""
    missing = "model.init_from=" + str(tmp_path / "no_such_run")
    made = tiny("unet_zhang_gan", tmp_path, missing, "train.steps=1")
    with pytest.raises(FileNotFoundError, match="model.init_from"):
        train(made)
    assert not Path(made.run.dir).exists()
    nested = tiny("unet_zhang_gan", tmp_path, missing, f"run.dir={tmp_path / 'deep' / 'a' / 'b'}")
    with pytest.raises(FileNotFoundError):
        train(nested)
    assert not (tmp_path / "deep").exists()  # every level it made, not just the last
    existing = tmp_path / "mine"
    existing.mkdir()  # a folder the user made stays, without the .lock
    with pytest.raises(FileNotFoundError):
        train(tiny("unet_zhang_gan", tmp_path, missing, f"run.dir={existing}", "train.steps=1"))
    assert existing.is_dir() and not any(existing.iterdir())
    (existing / "notes.txt").write_text("mine")  # a folder holding anything else keeps its .lock too
    with pytest.raises(FileNotFoundError):
        train(tiny("unet_zhang_gan", tmp_path, missing, f"run.dir={existing}", "train.steps=1"))
    assert sorted(p.name for p in existing.iterdir()) == [".lock", "notes.txt"]
    train(tiny("unet_zhang_gan", tmp_path, "model.init_from=null", f"run.dir={existing}", "train.steps=1"))


def test_a_run_dir_or_config_that_cannot_be_used_is_one_error_line(tmp_path, capsys):
    """Hostile review: a --run-dir that is a file, or under one, and a --config that is a link in
    a loop gave tracebacks."""
    from gan_colorize.cli import main

    config = str(TINY / "unet_l1.yaml")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    loop = tmp_path / "loop.yaml"
    loop.symlink_to(loop)
    cases = [
        (["--config", config, "--run-dir", str(a_file)], f"run folder {a_file} is not a folder"),
        (["--config", config, "--run-dir", str(a_file / "run")], f"run folder {a_file / 'run'} "),
        (["--config", str(loop)], f"config file {loop} is a symbolic link in a loop"),
    ]
    for argv, expected in cases:
        assert main(["train", *argv, "--set", *FAST, "train.steps=1"]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and f"error: {expected}" in err, err
    assert a_file.read_text() == "mine"


def test_a_start_that_waited_on_a_removed_lock_file_does_not_take_the_folder(tmp_path, monkeypatch):
    """The race the removal opens: B opens .lock, A's failed start removes it and unlocks, B's flock
    succeeds on a file that has no name any more (a third start could create and lock a new one)."""
    import fcntl

    from gan_colorize import rundir

    run = RunDir(tmp_path / "run")
    first = run.lock()
    original_flock = fcntl.flock

    def flock_after_the_failed_start(file, operation):
        if operation & fcntl.LOCK_EX and not first._file.closed:
            first.release(discard_unused_folder=True)  # between B's open and B's flock
        return original_flock(file, operation)

    monkeypatch.setattr(rundir.fcntl, "flock", flock_after_the_failed_start)
    with pytest.raises(rundir.RunLockedError, match="was being set up by another process; try again"):
        run.lock()
    monkeypatch.undo()
    run.lock().release()  # the next attempt takes it


def test_a_frozen_encoder_keeps_its_weights_and_batchnorm_statistics(tmp_path):
    overrides = ["model.init_from=null", "model.freeze_encoder_steps=3", "train.steps=3", "train.ema_decay=0"]
    trainer = Trainer(tiny("unet_zhang_gan", tmp_path, *overrides))
    try:
        encoder = trainer.G_raw.encoder
        before = {k: v.clone() for k, v in encoder.state_dict().items()}
        batch = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
        for step in range(3):
            trainer.train_step([batch], step)
        after = encoder.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before)  # weights and running statistics
        trainer.train_step([batch], 3)  # step N: released
        assert any(not torch.equal(before[k], encoder.state_dict()[k]) for k in before)
    finally:
        trainer.close()
        AcceleratorState._reset_state()


def test_a_time_budget_stops_the_run_as_finished(tmp_path):
    from gan_colorize.cli import main
    from gan_colorize.experiment import PlannedRun, StudyRun, is_finished, run_status

    argv = ["train", "--config", str(TINY / "regression.yaml"), "--run-dir", str(tmp_path / "budget")]
    argv += ["--set", *FAST, "train.steps=50", "train.max_minutes=0.00001"]  # spent after the first step
    try:
        assert main(argv) == 0  # a budget is an end, not an interruption
    finally:
        AcceleratorState._reset_state()
    run = RunDir(tmp_path / "budget")
    assert [s for s, _ in run.list_checkpoints()] == [1]
    launch = json.loads(run.provenance.read_text())["launches"][-1]
    assert launch["ended"] == {"step": 1, "reason": "max_minutes"}
    planned = PlannedRun(StudyRun("budget", "x.yaml"), load_config(run.config), run.root)
    assert is_finished(planned, 1) and "time budget" in run_status(planned)
    # resumed by hand it trains on (a new launch, a new budget); then it is no longer "ended"
    cfg = tiny("regression", tmp_path, "train.steps=2", f"run.dir={run.root}")
    train(cfg, resume="latest")
    assert not is_finished(planned, 1) and [s for s, _ in run.list_checkpoints()] == [1, 2]


def test_missing_encoder_weights_stop_the_run_before_the_data_is_read(tmp_path, hub_checkpoints, monkeypatch):
    from gan_colorize import data as data_module
    from gan_colorize.weights import MissingWeightsError

    def no_data(*args, **kwargs):
        raise AssertionError("the data was read before the weights were checked")

    monkeypatch.setattr(data_module, "build_datasets", no_data)
    cfg = tiny("unet_backbone_gan", tmp_path, "model.generator={type: unet_backbone, encoder: resnet18}")
    with pytest.raises(MissingWeightsError, match=r"resnet18-f37072fd.pth"):
        train(cfg)
    assert not RunDir(cfg.run.dir).list_checkpoints()


def test_a_run_folder_is_read_through_its_latest_checkpoint_never_a_planted_root_file(tmp_path):
    from gan_colorize.models.io import resolve_generator_file

    run = train(tiny("regression", tmp_path, "train.steps=1"))
    (run.root / "generator.pt").write_bytes(b"planted")  # no training writes one there
    assert resolve_generator_file(run.root) == run.latest_checkpoint() / "generator.pt"
    empty = tmp_path / "empty_run"
    (empty / "checkpoints").mkdir(parents=True)
    (empty / "generator.pt").write_bytes(b"planted")
    with pytest.raises(FileNotFoundError, match="a run folder with no complete checkpoint"):
        resolve_generator_file(empty)


@pytest.mark.parametrize("kind", ["link", "folder"])
def test_a_lock_file_that_is_no_regular_file_is_refused_untouched(kind, tmp_path):
    from gan_colorize.rundir import RunLockedError

    cfg = tiny("regression", tmp_path, "train.steps=1")
    lock = RunDir(cfg.run.dir).lock_file
    lock.parent.mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    lock.symlink_to(victim) if kind == "link" else lock.mkdir()
    with pytest.raises(RunLockedError, match="is not a regular file"):
        train(cfg)
    assert victim.read_text() == "precious"


def test_a_config_yaml_that_is_no_mapping_is_reported_unreadable_on_resume(tmp_path, caplog):
    cfg = tiny("regression", tmp_path, "train.steps=1")
    run = train(cfg)
    run.config.write_text("hello\n")
    cfg.train.steps = 2
    with caplog.at_level("WARNING"):
        train(cfg, resume="latest")
    assert "config.yaml is unreadable (not a config)" in caplog.text


@pytest.mark.parametrize(
    "content, message",
    [
        (bytes(range(175, 256)) * 20, "not a torch file of tensors"),
        (b"\x80\x02random bytes that are no torch file", "not a gan-colorize checkpoint file"),
        (dict(format="gan-colorize-training-state/1", step=-7, networks={}, optimizers={}, schedulers={}),
         "step -7 is negative"),
        (dict(format="gan-colorize-training-state/1", step=True, networks={}, optimizers={}, schedulers={}),
         "'step' is missing or not a int"),
        # hostile review: NaN in an optimizer's state resumed and stopped at step 1 blaming the lr
        (dict(format="gan-colorize-training-state/1", step=1, networks={}, schedulers={},
              optimizers={"G": {"state": {0: {"exp_avg": torch.tensor([0.0, float("nan")])}}}}),
         r"tensor optimizers\.G\.state\.0\.exp_avg holds NaN or infinite values"),
    ],
)  # fmt: skip
def test_a_damaged_training_state_is_refused_naming_the_file(content, message, tmp_path):
    run = train(tiny("regression", tmp_path, "train.steps=1"))
    state_file = run.latest_checkpoint() / "training_state.pt"
    if isinstance(content, bytes):
        state_file.write_bytes(content)
    else:
        torch.save(content, state_file)
    with pytest.raises(ValueError, match=rf"training_state.pt: .*{message}") as refused:
        train(tiny("regression", tmp_path, "train.steps=2"), resume="latest")
    assert "pickled object" not in str(refused.value)  # it holds none: the message must not say so


def test_an_out_of_range_regularizer_names_its_key():
    with pytest.raises(ConfigError, match=r"loss.regularizers\[0\]: r1: .*interval >= 1"):
        load_config(
            TINY / "unet_gan.yaml", ["train.warmup_l1_steps=0", "loss.regularizers=[{type: r1, interval: 0}]"]
        )
