"""Colorizing real photographs: Colorizer, the folder runner, the colorize and export commands."""

import argparse
import hashlib
import os
import stat
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata
from skimage.color import rgb2lab
from torch import nn

from gan_colorize.color.bins import load_bin_centers
from gan_colorize.color.lab import uint8_to_lab_norm
from gan_colorize.commands import colorize as colorize_command
from gan_colorize.commands import export as export_command
from gan_colorize.config import Config
from gan_colorize.inference import Colorizer, export_generator
from gan_colorize.inference import colorizer as colorizer_module
from gan_colorize.inference.batch import InputOverwriteError, colorize_jobs, plan_jobs
from gan_colorize.inference.colorizer import lab_to_rgb_keep_lightness, working_shape
from gan_colorize.models import load_generator, save_generator
from gan_colorize.models.io import read_generator_file
from gan_colorize.registry import GENERATORS

ODD_SIZE = (667, 1001)  # H, W: odd, not a multiple of the generator's 8, not the working aspect


# ---------------------------------------------------------------- fixtures
def tiny_config() -> Config:
    config = Config()
    config.model.generator = {"type": "unet", "depth": 3, "width": 8}
    config.data.size = 32
    config.loss.objective = "regression"
    return config.validate()


def train_a_little(generator: nn.Module, steps: int = 12) -> None:
    """L1 on ab for a few steps on astronaut crops, so that the weights predict some colour."""
    photo = torch.from_numpy(skdata.astronaut()).permute(2, 0, 1)
    gen = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(generator.parameters(), lr=2e-3)
    generator.train()
    for _ in range(steps):
        tops = torch.randint(0, 512 - 32, (8,), generator=gen)
        lefts = torch.randint(0, 512 - 32, (8,), generator=gen)
        crops = torch.stack([photo[:, t : t + 32, x : x + 32] for t, x in zip(tops, lefts)])
        L_norm, ab_norm = uint8_to_lab_norm(crops)
        loss = (generator(L_norm) - ab_norm).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    generator.eval()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    config = tiny_config()
    generator = GENERATORS.build(config.model.generator)
    train_a_little(generator)
    return save_generator(
        tmp_path_factory.mktemp("ckpt") / "generator.pt", generator, config, step=12, ema=False
    )


@pytest.fixture(scope="module")
def colorizer(checkpoint):
    return Colorizer.from_checkpoint(checkpoint, device="cpu")


@pytest.fixture(scope="module")
def photo():
    """A real photograph at an odd size (H, W) = ODD_SIZE."""
    return np.asarray(Image.fromarray(skdata.coffee()).resize(ODD_SIZE[::-1], Image.BICUBIC))


def lightness(rgb_u8: np.ndarray) -> np.ndarray:
    return rgb2lab(rgb_u8[..., :3])[..., 0]


def chroma(rgb_u8: np.ndarray) -> np.ndarray:
    return np.hypot(*np.moveaxis(rgb2lab(rgb_u8[..., :3])[..., 1:], -1, 0))


def file_hash(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class ConstantAB(nn.Module):
    """Predicts one strongly saturated ab everywhere: most of it is outside the sRGB gamut."""

    output_kind = "ab"

    def __init__(self, ab_norm=(0.9, -0.9)):
        super().__init__()
        self.register_buffer("ab", torch.tensor(ab_norm).view(1, 2, 1, 1))

    def forward(self, L_norm):
        return self.ab.expand(L_norm.shape[0], 2, *L_norm.shape[2:])


class OneLikelyBin(nn.Module):
    """A "bins" generator at 1/4 resolution whose logits favour one saturated bin by 2 (over 0)."""

    output_kind = "bins"
    input_multiple = 4

    def __init__(self):
        super().__init__()
        centers = torch.from_numpy(load_bin_centers()).float()
        self.favourite = int(centers.norm(dim=1).argmax())

    def forward(self, L_norm):
        n, _, h, w = L_norm.shape
        logits = torch.zeros(n, 313, h // 4, w // 4)
        logits[:, self.favourite] = 2.0
        return logits


# ---------------------------------------------------------------- Colorizer
def test_working_shape_sets_the_shorter_side_and_keeps_the_aspect():
    assert working_shape(3000, 4000, 256) == (256, 341)
    assert working_shape(4000, 3000, 256) == (341, 256)
    assert working_shape(100, 100, 256) == (256, 256)  # small photos are scaled up to the working size


def test_size_and_temperature_default_to_the_runs(tmp_path):
    config = tiny_config()
    config.loss.temperature = 0.2
    path = save_generator(
        tmp_path / "generator.pt", GENERATORS.build(config.model.generator), config, 0, False
    )
    colorizer = Colorizer.from_checkpoint(path, device="cpu")
    assert (colorizer.size, colorizer.temperature) == (32, 0.2)
    colorizer = Colorizer.from_checkpoint(path, device="cpu", size=48, temperature=1.0)
    assert (colorizer.size, colorizer.temperature) == (48, 1.0)


def test_temperature_reaches_the_annealed_mean(photo):
    crop = photo[:101, :151]
    sharp = Colorizer(OneLikelyBin(), size=32, temperature=0.38, device="cpu").colorize_array(crop)
    mean = Colorizer(OneLikelyBin(), size=32, temperature=1.0, device="cpu").colorize_array(crop)
    # T = 1: the favourite bin has 2 % of the mass, the mean is near the bins' centroid;
    # T = 0.38: 38 %, the annealed mean moves towards it (Zhang et al. 2016, sec. 3.3)
    assert chroma(sharp).mean() > 2 * chroma(mean).mean()
    assert np.abs(lightness(sharp) - lightness(crop)).max() < 1.0


def test_output_has_the_input_size_and_lightness(colorizer, photo):
    out = colorizer.colorize_array(photo)
    assert out.shape == (*ODD_SIZE, 3) and out.dtype == np.uint8
    assert np.abs(lightness(out) - lightness(photo)).max() < 1.0
    assert chroma(out).mean() > 2.0  # the trained weights colour it: not a grey copy of the input


def test_lightness_is_kept_for_out_of_gamut_predictions(photo):
    """Clipping R, G, B would change L by tens of units here; chroma reduction keeps it."""
    crop = photo[:201, :303]
    out = Colorizer(ConstantAB(), size=32, device="cpu").colorize_array(crop)
    assert np.abs(lightness(out) - lightness(crop)).max() < 1.0
    assert chroma(out).mean() > 20.0


def test_gamut_mapping_keeps_hue_and_never_adds_chroma():
    from gan_colorize.color.lab import rgb_to_lab

    gen = torch.Generator().manual_seed(0)
    L = torch.rand(1, 1, 40, 50, generator=gen) * 100
    ab = (torch.rand(1, 2, 40, 50, generator=gen) * 2 - 1) * 100
    back = rgb_to_lab(lab_to_rgb_keep_lightness(L, ab))
    assert (back[:, :1] - L).abs().max() < 1e-2
    c_in, c_out = ab.norm(dim=1), back[:, 1:].norm(dim=1)
    assert (c_out <= c_in * 1.001 + 1e-3).all()
    coloured = c_out > 1
    cosine = (back[:, 1:] * ab).sum(1)[coloured] / (c_in * c_out)[coloured]
    assert cosine.min() > 0.999


def test_strips_give_the_same_result_as_one_piece(colorizer, photo, monkeypatch):
    crop = photo[:201, :303]
    whole = colorizer.colorize_array(crop)
    monkeypatch.setattr(colorizer_module, "STRIP_PIXELS", 7919)  # 26 rows a strip, a short last one
    assert len(list(colorizer_module.strips(201, 303))) == 8
    assert np.array_equal(colorizer.colorize_array(crop), whole)


def test_greyscale_input(colorizer, photo):
    grey = np.asarray(Image.fromarray(photo[:201, :303]).convert("L"))
    out = colorizer.colorize_array(grey)
    assert out.shape == (201, 303, 3)
    # the grey level g is the sRGB colour (g, g, g)
    assert np.abs(lightness(out) - lightness(np.repeat(grey[..., None], 3, axis=2))).max() < 1.0
    # the same L as the colour photo converted to grey: a colour input is reduced to L first
    assert np.array_equal(colorizer.colorize_array(np.repeat(grey[..., None], 3, axis=2)), out)


def test_16_bit_input_keeps_full_precision(colorizer):
    ramp = np.linspace(0, 65535, 97 * 3, dtype=np.float64).round().astype(np.uint16).reshape(97, 3)
    prepared = colorizer.prepare(ramp)
    as_float = np.repeat((ramp / 65535.0)[..., None], 3, axis=2)
    expected = rgb2lab(as_float)[..., 0]
    assert np.abs(prepared.L.numpy() - expected).max() < 1e-3
    eight_bit = rgb2lab(np.round(as_float * 255) / 255)[..., 0]
    assert np.abs(expected - eight_bit).max() > 0.05  # the test could tell 8-bit rounding apart


def test_alpha_is_kept(colorizer, photo):
    crop = photo[:201, :303]
    alpha = np.tile(np.arange(303) % 256, (201, 1)).astype(np.uint8)
    out = colorizer.colorize_array(np.dstack([crop, alpha]))
    assert out.shape == (201, 303, 4)
    assert np.array_equal(out[..., 3], alpha)
    assert np.array_equal(out[..., :3], colorizer.colorize_array(crop))


def test_importing_the_package_does_not_import_torch():
    code = (
        "import sys, gan_colorize; assert 'torch' not in sys.modules, 'torch imported'; "
        "from gan_colorize import Colorizer; assert 'torch' in sys.modules; print(Colorizer.__name__)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Colorizer"


def test_pil_call_returns_an_image_of_the_same_size_and_mode(colorizer, photo):
    image = Image.fromarray(photo[:201, :303])
    out = colorizer(image.convert("RGBA"))
    assert out.size == image.size and out.mode == "RGBA"
    assert colorizer(image).mode == "RGB"


def test_readme_python_example(checkpoint, photo, tmp_path):
    from gan_colorize import Colorizer as ReadmeColorizer  # as the README writes it

    Image.fromarray(photo[:99, :151]).save(tmp_path / "photo.jpg")
    colorizer = ReadmeColorizer.from_checkpoint(checkpoint)
    colorizer(Image.open(tmp_path / "photo.jpg")).save(tmp_path / "photo_color.png")
    assert Image.open(tmp_path / "photo_color.png").size == (151, 99)


# ---------------------------------------------------------------- files and folders
def write_inputs(folder, photo):
    """A folder of awkward inputs: RGBA PNG, 16-bit grey PNG, CMYK JPEG, an EXIF-rotated JPEG, a
    greyscale PNG in a subfolder, and one corrupt file."""
    folder.mkdir(parents=True, exist_ok=True)
    small = Image.fromarray(photo).resize((101, 67))
    rgba = small.convert("RGBA")
    rgba.putalpha(Image.fromarray(np.tile(np.arange(101, dtype=np.uint8) * 2, (67, 1))))
    rgba.save(folder / "rgba.png")
    grey16 = (np.asarray(small.convert("L"), dtype=np.uint16) * 257 + 100).astype(np.uint16)
    Image.fromarray(grey16).save(folder / "grey16.png")
    small.convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    small.save(folder / "rotated.jpg", exif=exif, quality=95)
    (folder / "sub").mkdir(exist_ok=True)
    small.convert("L").save(folder / "sub" / "grey.png")
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")


def run_colorize(*argv) -> int:
    parser = argparse.ArgumentParser()
    colorize_command.add_arguments(parser)
    return colorize_command.run(parser.parse_args([*map(str, argv), "--no-progress"]))


def test_folder_run_handles_every_kind_of_input_and_reports_the_bad_one(checkpoint, photo, tmp_path, capsys):
    inputs = tmp_path / "in"
    write_inputs(inputs, photo)
    before = {p: file_hash(p) for p in inputs.rglob("*") if p.is_file()}
    out = tmp_path / "out"
    assert run_colorize(inputs, "--checkpoint", checkpoint, "--out", out, "--device", "cpu") == 1
    report = capsys.readouterr().out
    assert "done 5, skipped 0 (output exists), failed 1" in report
    assert "corrupt.jpg" in report
    assert {p: file_hash(p) for p in inputs.rglob("*") if p.is_file()} == before  # inputs untouched
    written = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert written == {"rgba.png", "grey16.png", "cmyk.png", "rotated.png", "sub/grey.png"}
    rgba = np.asarray(Image.open(out / "rgba.png"))
    assert rgba.shape == (67, 101, 4)
    assert np.array_equal(rgba[..., 3], np.asarray(Image.open(inputs / "rgba.png"))[..., 3])
    assert Image.open(out / "rotated.png").size == (67, 101)  # EXIF orientation applied
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((out / "cmyk.png").stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0o600
    assert Image.open(out / "grey16.png").size == (101, 67)
    cmyk_in = np.asarray(Image.open(inputs / "cmyk.jpg").convert("RGB"))
    assert np.abs(lightness(np.asarray(Image.open(out / "cmyk.png"))) - lightness(cmyk_in)).max() < 1.0


def test_existing_outputs_are_skipped_unless_overwrite(checkpoint, photo, tmp_path, capsys):
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    Image.fromarray(photo[:40, :60]).save(inputs / "a.png")
    Image.fromarray(photo[40:80, :60]).save(inputs / "b.png")
    out.mkdir()
    (out / "a.png").write_bytes(b"keep me")
    assert run_colorize(inputs, "--checkpoint", checkpoint, "--out", out) == 0
    assert (out / "a.png").read_bytes() == b"keep me"
    assert "done 1, skipped 1" in capsys.readouterr().out
    assert run_colorize(inputs, "--checkpoint", checkpoint, "--out", out, "--overwrite") == 0
    assert np.asarray(Image.open(out / "a.png")).shape == (40, 60, 3)


def test_jpeg_output_of_a_transparent_input_notes_the_dropped_alpha(checkpoint, photo, tmp_path, capsys):
    Image.fromarray(photo[:40, :60]).convert("RGBA").save(tmp_path / "a.png")
    out = tmp_path / "out"
    assert run_colorize(tmp_path / "a.png", "--checkpoint", checkpoint, "--out", out, "--format", "jpg") == 0
    assert "alpha dropped" in capsys.readouterr().out
    assert Image.open(out / "a.jpg").mode == "RGB"


def test_outputs_that_would_replace_inputs_are_refused(checkpoint, photo, tmp_path, capsys):
    Image.fromarray(photo[:40, :60]).save(tmp_path / "a.png")
    Image.fromarray(photo[:40, :60]).save(tmp_path / "b.jpg")
    before = file_hash(tmp_path / "a.png")
    with pytest.raises(InputOverwriteError, match="a.png"):
        plan_jobs([tmp_path], tmp_path, "png")
    assert run_colorize(tmp_path, "--checkpoint", checkpoint, "--out", tmp_path, "--overwrite") == 2
    assert "overwrite input" in capsys.readouterr().err
    assert file_hash(tmp_path / "a.png") == before
    # no collision (jpg -> png next to it) is allowed
    jobs, failed = plan_jobs([tmp_path / "b.jpg"], tmp_path, "png")
    assert [job.output for job in jobs] == [tmp_path / "b.png"] and not failed


def test_an_output_folder_inside_the_input_folder_is_not_read_back(tmp_path, photo):
    Image.fromarray(photo[:40, :60]).save(tmp_path / "a.jpg")
    (tmp_path / "colorized").mkdir()
    Image.fromarray(photo[:40, :60]).save(tmp_path / "colorized" / "a.png")  # an earlier run's output
    jobs, failed = plan_jobs([tmp_path], tmp_path / "colorized", "png")
    assert [(job.source.name, job.output) for job in jobs] == [("a.jpg", tmp_path / "colorized" / "a.png")]
    assert not failed


def test_two_sources_for_one_output_fail_the_second(tmp_path, photo):
    Image.fromarray(photo[:40, :60]).save(tmp_path / "a.jpg")
    Image.fromarray(photo[:40, :60]).save(tmp_path / "a.png")
    jobs, failed = plan_jobs([tmp_path], tmp_path / "out", "png")
    assert len(jobs) == 1 and len(failed) == 1
    assert "already written from" in failed[0].reason


def test_batches_give_the_same_pixels_as_one_by_one(colorizer, photo, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(5):  # four of one shape, one of another: two batches
        crop = photo[i * 50 : i * 50 + 48, :64] if i < 4 else photo[:64, :48]
        Image.fromarray(crop).save(inputs / f"{i}.png")
    outputs = {}
    for batch_size in (1, 3):
        jobs, _ = plan_jobs([inputs], tmp_path / f"out{batch_size}", "png")
        summary = colorize_jobs(colorizer, jobs, batch_size=batch_size, progress=False)
        assert len(summary.done) == 5 and summary.exit_code == 0
        outputs[batch_size] = [np.asarray(Image.open(job.output)) for job in jobs]
    for one, batched in zip(outputs[1], outputs[3]):
        assert np.abs(one.astype(int) - batched.astype(int)).max() <= 1


# ---------------------------------------------------------------- export
def run_export(*argv) -> int:
    parser = argparse.ArgumentParser()
    export_command.add_arguments(parser)
    return export_command.run(parser.parse_args(list(map(str, argv))))


def test_export_round_trip(checkpoint, photo, tmp_path):
    expected = Colorizer.from_checkpoint(checkpoint, device="cpu").colorize_array(photo[:100, :150])
    assert run_export(checkpoint, "--out", tmp_path / "model.pt") == 0
    assert run_export(checkpoint, "--out", tmp_path / "model.pt", "--format", "safetensors") == 0
    assert run_export(checkpoint, "--out", tmp_path / "half.safetensors", "--half") == 0
    for name in ("model.pt", "model.safetensors"):
        got = Colorizer.from_checkpoint(tmp_path / name, device="cpu").colorize_array(photo[:100, :150])
        assert np.array_equal(got, expected), name
    half = Colorizer.from_checkpoint(tmp_path / "half.safetensors", device="cpu").colorize_array(
        photo[:100, :150]
    )
    assert np.abs(half.astype(int) - expected.astype(int)).max() <= 3
    assert (tmp_path / "half.safetensors").stat().st_size < 0.6 * (
        tmp_path / "model.safetensors"
    ).stat().st_size


def test_export_from_a_run_folder_picks_the_step(tmp_path):
    config = tiny_config()
    generator = GENERATORS.build(config.model.generator)
    for step in (10, 20):
        save_generator(
            tmp_path / "run" / "checkpoints" / f"step_{step:08d}" / "generator.pt",
            generator,
            config,
            step,
            True,
        )
    export_generator(tmp_path / "run", tmp_path / "latest.pt")
    export_generator(tmp_path / "run", tmp_path / "first.safetensors", step=10)
    assert read_generator_file(tmp_path / "latest.pt")["step"] == 20
    first = read_generator_file(tmp_path / "first.safetensors")
    assert first["step"] == 10 and first["ema"] is True and first["config"] == config.to_dict()
    assert run_export(tmp_path / "run", "--out", tmp_path / "x.pt", "--checkpoint", 15) == 2


def test_load_generator_reads_safetensors_exports(checkpoint, tmp_path):
    export_generator(checkpoint, tmp_path / "model.safetensors", half=True)
    loaded = load_generator(tmp_path / "model.safetensors")
    original = load_generator(checkpoint)
    assert (loaded.step, loaded.ema, loaded.path) == (12, False, tmp_path / "model.safetensors")
    for key, value in original.module.state_dict().items():
        got = loaded.module.state_dict()[key]
        assert got.dtype == value.dtype  # half parameters come back as the module's float32
        assert torch.allclose(got, value, rtol=1e-3, atol=1e-4), key


def test_outputs_are_readable_by_group_and_others_under_umask_022(checkpoint, photo, tmp_path, monkeypatch):
    """``atomic_write``'s temporary is mkstemp's 0o600; the result must be 0o644 under umask 022."""
    from gan_colorize import rundir

    monkeypatch.setattr(rundir, "_UMASK", 0o022)  # the umask is read once, at import
    Image.fromarray(photo[:40, :60]).save(tmp_path / "a.png")
    assert run_colorize(tmp_path / "a.png", "--checkpoint", checkpoint, "--out", tmp_path / "out") == 0
    export_generator(checkpoint, tmp_path / "model.safetensors")
    for path in (tmp_path / "out" / "a.png", tmp_path / "model.safetensors"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


class NotATensor:
    pass


def test_pickled_objects_are_refused(tmp_path):
    torch.save({"format": "gan-colorize-generator/1", "payload": NotATensor()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="evil.pt: not a readable gan-colorize generator file"):
        Colorizer.from_checkpoint(tmp_path / "evil.pt", device="cpu")
    (tmp_path / "evil.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}garbage")
    with pytest.raises(ValueError, match="evil.safetensors"):
        Colorizer.from_checkpoint(tmp_path / "evil.safetensors", device="cpu")
