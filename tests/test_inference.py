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
from gan_colorize.data.decode import (
    BadImageError,
    decode_failure,
    load_image_keep_alpha,
    load_rgb,
    pil_to_array,
)
from gan_colorize.inference import Colorizer, export_generator
from gan_colorize.inference import colorizer as colorizer_module
from gan_colorize.inference.batch import InputOverwriteError, colorize_jobs, plan_jobs
from gan_colorize.inference.colorizer import lab_to_rgb_keep_lightness, working_shape
from gan_colorize.models import load_generator, save_generator
from gan_colorize.models.io import FORMAT, read_generator_file
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


def test_working_shape_caps_the_longer_side_at_eight_times_the_size():
    assert working_shape(1000, 8000, 256) == (256, 2048)  # 8:1 still keeps the shorter side
    assert working_shape(2, 4000, 256) == (1, 2048)  # not 256 x 512000
    assert working_shape(4000, 2, 256) == (2048, 1)


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


def test_pil_call_on_a_truncated_file_names_the_file(colorizer, photo, tmp_path):
    Image.fromarray(photo[:99, :151]).save(tmp_path / "photo.jpg")
    data = (tmp_path / "photo.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: data.index(b"\xff\xda") + 100])  # 100 bytes of pixels
    with pytest.raises(BadImageError, match="cut.jpg: truncated file"):
        colorizer(Image.open(tmp_path / "cut.jpg"))


def test_decode_failure_recognises_truncation_in_any_case():
    assert decode_failure(OSError("Truncated File Read")).startswith("truncated file")
    assert decode_failure(OSError("image file is truncated (3 bytes not processed)")).startswith("truncated")


def test_readme_python_example(checkpoint, photo, tmp_path):
    from gan_colorize import Colorizer as ReadmeColorizer  # as the README writes it

    Image.fromarray(photo[:99, :151]).save(tmp_path / "photo.jpg")
    colorizer = ReadmeColorizer.from_checkpoint(checkpoint)
    colorizer(Image.open(tmp_path / "photo.jpg")).save(tmp_path / "photo_color.png")
    assert Image.open(tmp_path / "photo_color.png").size == (151, 99)


# ---------------------------------------------------------------- decoding for inference
def grey_ramp(dtype=np.uint8, top=255) -> np.ndarray:
    return np.linspace(0, top, 8 * 12).round().astype(dtype).reshape(8, 12)


@pytest.mark.parametrize(
    "make",
    [
        lambda: (Image.fromarray(grey_ramp()), 40),  # L with tRNS
        lambda: (Image.fromarray(grey_ramp()).convert("RGB"), (40, 40, 40)),  # RGB with tRNS
        lambda: (Image.fromarray(grey_ramp(np.uint16, 65535)), int(grey_ramp(np.uint16, 65535)[2, 3])),
    ],
    ids=["L", "RGB", "I;16"],
)
def test_one_transparent_colour_becomes_alpha_in_any_mode(tmp_path, make):
    image, transparent = make()
    image.save(tmp_path / "t.png", transparency=transparent)
    pixels = np.asarray(Image.open(tmp_path / "t.png"))
    hidden = (pixels == transparent).all(axis=-1) if pixels.ndim == 3 else pixels == transparent
    assert 0 < hidden.sum() < hidden.size
    _, alpha, _ = load_image_keep_alpha(tmp_path / "t.png")
    assert alpha is not None and np.array_equal(alpha == 0, hidden) and (alpha[~hidden] == 255).all()
    assert (load_rgb(tmp_path / "t.png")[hidden] == 255).all()  # training: composited on white


def test_int32_images_with_8_bit_values_keep_their_brightness():
    values = np.array([[0, 100], [200, 255]], dtype=np.int32)
    rgb, _ = pil_to_array(Image.fromarray(values))
    assert np.array_equal(rgb[..., 0], values)
    rgb16, _ = pil_to_array(Image.fromarray(values), keep_16bit=True)
    assert np.array_equal(rgb16[..., 0], values * 257)
    rgb, _ = pil_to_array(Image.fromarray(values * 257))  # 16-bit values in an 'I' image
    assert np.array_equal(rgb[..., 0], values)


def test_premultiplied_grey_with_alpha_is_read():
    la = np.array([[[200, 255], [200, 128]], [[50, 255], [0, 0]]], dtype=np.uint8)
    rgb, alpha = pil_to_array(Image.fromarray(la, "LA").convert("La"))
    assert np.array_equal(alpha, la[..., 1])
    assert abs(int(rgb[0, 1, 0]) - 200) <= 2 and rgb[0, 0, 0] == 200  # un-premultiplied


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
    [failure] = [line for line in report.splitlines() if "failed:" in line]
    assert failure.count("corrupt.jpg") == 1 and "BadImageError" not in failure
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


def test_jpeg_output_of_a_transparent_input_is_composited_on_white(checkpoint, photo, tmp_path, capsys):
    rgba = np.dstack([photo[:40, :60] // 4, np.full((40, 60), 255, np.uint8)])  # dark colours
    rgba[:, :30, 3] = 0  # the left half transparent
    Image.fromarray(rgba).save(tmp_path / "a.png")
    out = tmp_path / "out"
    assert run_colorize(tmp_path / "a.png", "--checkpoint", checkpoint, "--out", out, "--format", "jpg") == 0
    assert "composited on white" in capsys.readouterr().out
    written = Image.open(out / "a.jpg")
    assert written.mode == "RGB"
    pixels = np.asarray(written)
    assert pixels[:, :26].min() >= 245  # white where transparent (JPEG's ringing aside)
    assert pixels[:, 34:].mean() < 128  # the opaque half is the photo's


def test_an_out_that_is_a_file_is_a_usage_error(checkpoint, photo, tmp_path, capsys):
    Image.fromarray(photo[:40, :60]).save(tmp_path / "a.png")
    (tmp_path / "out").write_bytes(b"a file")
    assert run_colorize(tmp_path / "a.png", "--checkpoint", checkpoint, "--out", tmp_path / "out") == 2
    assert "is a file" in capsys.readouterr().err
    assert (tmp_path / "out").read_bytes() == b"a file"


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


def test_an_output_that_is_an_input_under_another_name_is_refused(tmp_path, photo):
    """As on a case-insensitive file system (out/a.png is in/a.PNG): the same file, another path."""
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    Image.fromarray(photo[:40, :60]).save(tmp_path / "in" / "a.png")
    os.link(tmp_path / "in" / "a.png", tmp_path / "out" / "a.png")
    with pytest.raises(InputOverwriteError, match="a.png"):
        plan_jobs([tmp_path / "in"], tmp_path / "out", "png")


def test_a_source_given_twice_is_colorized_once(tmp_path, photo):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    Image.fromarray(photo[:40, :60]).save(tmp_path / "in" / "a.png")
    Image.fromarray(photo[:40, :60]).save(tmp_path / "in" / "sub" / "b.png")
    inputs = [
        tmp_path / "in" / "a.png",
        tmp_path / "in",
        tmp_path / "in" / "a.png",
        tmp_path / "in/sub/b.png",
    ]
    jobs, failed = plan_jobs(inputs, tmp_path / "out", "png")
    assert not failed
    assert sorted(job.output.relative_to(tmp_path / "out").as_posix() for job in jobs) == [
        "a.png",
        "sub/b.png",
    ]


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
    with pytest.raises(ValueError, match="evil.pt: not a readable gan-colorize generator file") as err:
        Colorizer.from_checkpoint(tmp_path / "evil.pt", device="cpu")
    assert "NotATensor" in str(err.value)
    assert "weights_only" not in str(err.value)  # never the advice to load it with weights_only=False
    (tmp_path / "evil.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}garbage")
    with pytest.raises(ValueError, match="evil.safetensors"):
        Colorizer.from_checkpoint(tmp_path / "evil.safetensors", device="cpu")


def test_export_refuses_a_folder_and_an_existing_file_unless_overwrite(checkpoint, tmp_path, capsys):
    (tmp_path / "exp").mkdir()
    assert run_export(checkpoint, "--out", f"{tmp_path / 'exp'}/") == 2
    assert "is a folder" in capsys.readouterr().err
    (tmp_path / "exp" / "model.safetensors").write_bytes(b"an earlier export")
    # --out model.pt --format safetensors writes model.safetensors: the file that exists
    assert run_export(checkpoint, "--out", tmp_path / "exp" / "model.pt", "--format", "safetensors") == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "exp" / "model.safetensors").read_bytes() == b"an earlier export"
    assert (
        run_export(
            checkpoint, "--out", tmp_path / "exp" / "model.pt", "--format", "safetensors", "--overwrite"
        )
        == 0
    )
    assert read_generator_file(tmp_path / "exp" / "model.safetensors")["step"] == 12


# ---------------------------------------------------------------- code named by a file
GENERATOR_MODULE = """
import pathlib

import torch

pathlib.Path(__file__).with_name("imported.flag").write_text("this module's code ran")


class TinyGenerator(torch.nn.Module):
    output_kind = "ab"

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, L_norm):
        return torch.tanh(self.conv(L_norm))
"""


@pytest.fixture
def outside_generator(tmp_path, monkeypatch):
    """A generator file whose config names ``module:Class`` of a module that is not imported yet
    (importing it writes ``imported.flag``): (the file, the module's name, the flag)."""
    name = f"outside_generators_{tmp_path.name}"
    (tmp_path / f"{name}.py").write_text(GENERATOR_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)  # removed again after the test
    config = tiny_config()
    config.model.generator = {"type": f"{name}:TinyGenerator"}
    state = nn.Conv2d(1, 2, 3, padding=1).state_dict()
    payload = {"format": FORMAT, "config": config.to_dict(), "step": 3, "ema": False}
    payload["state_dict"] = {f"conv.{key}": value for key, value in state.items()}
    torch.save(payload, tmp_path / "generator.pt")
    yield tmp_path / "generator.pt", name, tmp_path / "imported.flag"
    sys.modules.pop(name, None)


def test_a_file_naming_unregistered_code_is_refused_unless_trusted(outside_generator):
    path, name, flag = outside_generator
    with pytest.raises(ValueError, match=r"generator\.pt: generator .* is not registered") as err:
        load_generator(path)
    assert "trust_code=True (--trust-code" in str(err.value)
    assert not flag.exists() and name not in sys.modules  # nothing was imported
    loaded = load_generator(path, trust_code=True)
    assert flag.exists() and type(loaded.module).__name__ == "TinyGenerator" and loaded.step == 3


def test_a_class_registered_by_importing_its_module_needs_no_trust(outside_generator, monkeypatch):
    path, name, _ = outside_generator
    monkeypatch.setattr(GENERATORS, "_entries", dict(GENERATORS._entries))  # registered for this test only
    module = __import__(name)
    GENERATORS.register("tiny_outside")(module.TinyGenerator)
    assert type(load_generator(path).module) is module.TinyGenerator


def test_colorize_and_export_take_trust_code(outside_generator, photo, tmp_path, capsys):
    path, _, flag = outside_generator
    Image.fromarray(photo[:40, :60]).save(tmp_path / "a.png")
    assert run_colorize(tmp_path / "a.png", "--checkpoint", path, "--out", tmp_path / "out") == 2
    assert "--trust-code" in capsys.readouterr().err
    assert run_export(path, "--out", tmp_path / "half.pt", "--half") == 2  # --half builds the generator
    assert not flag.exists()
    assert run_export(path, "--out", tmp_path / "half.pt", "--half", "--trust-code") == 0
    assert (
        run_colorize(
            tmp_path / "a.png",
            "--checkpoint",
            tmp_path / "half.pt",
            "--out",
            tmp_path / "out",
            "--trust-code",
        )
        == 0
    )
    assert Image.open(tmp_path / "out" / "a.png").size == (60, 40)


def test_evaluate_takes_trust_code(outside_generator, tmp_path, capsys):
    from gan_colorize.cli import main
    from gan_colorize.config import save_config

    path, _, flag = outside_generator
    run = tmp_path / "run"
    (run / "checkpoints" / "step_00000003").mkdir(parents=True)
    (run / "checkpoints" / "step_00000003" / "generator.pt").write_bytes(path.read_bytes())
    save_config(tiny_config(), run / "config.yaml")
    argv = ["evaluate", "--run", str(run), "--data", "builtin:skimage", "--size", "32", "--metrics", "psnr"]
    assert main(argv) == 2
    assert "--trust-code" in capsys.readouterr().err and not flag.exists()
    assert main([*argv, "--trust-code"]) == 0
    assert flag.exists() and (run / "eval").is_dir()


def test_what_a_file_builds_must_be_a_torch_module(tmp_path):
    config = tiny_config().to_dict()
    config["model"]["generator"] = {"type": "collections:OrderedDict"}
    torch.save(
        {"format": FORMAT, "config": config, "state_dict": {}, "step": 0, "ema": False}, tmp_path / "g.pt"
    )
    with pytest.raises(ValueError, match="g.pt: .*not a torch module"):
        load_generator(tmp_path / "g.pt", trust_code=True)


def test_a_file_without_a_config_is_a_clear_error(tmp_path):
    torch.save({"format": FORMAT, "state_dict": {}, "step": 0, "ema": False}, tmp_path / "g.pt")
    with pytest.raises(ValueError, match=r"g.pt: an incomplete gan-colorize generator file \(no config\)"):
        load_generator(tmp_path / "g.pt")


def test_a_dangling_symbolic_link_fails_alone(checkpoint, photo, tmp_path, capsys):
    """Issue #10 item 7: a broken link in an input folder stopped the whole batch (exit 2)."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(photo[:40, :60]).save(inputs / "a.png")
    (inputs / "gone.jpg").symlink_to(tmp_path / "moved_away.jpg")
    out = tmp_path / "out"
    assert run_colorize(inputs, "--checkpoint", checkpoint, "--out", out) == 1
    report = capsys.readouterr().out
    assert "done 1, skipped 0 (output exists), failed 1" in report
    [failure] = [line for line in report.splitlines() if "failed:" in line]
    assert "gone.jpg" in failure and "broken symbolic link" in failure
    assert (out / "a.png").is_file()


def test_a_checkpoint_that_predicts_nan_is_refused_naming_it(photo, tmp_path, capsys):
    """Issue #10 item 10: the "last good" checkpoint of a diverged run held weights of 1e30 (finite)
    and colorize wrote an all-black image with exit 0."""
    config = tiny_config()
    generator = GENERATORS.build(config.model.generator)
    with torch.no_grad():  # +-1e30: finite weights whose products overflow to inf - inf = NaN
        for parameter in generator.parameters():
            signs = torch.arange(parameter.numel()).reshape(parameter.shape) % 2 * 2 - 1
            parameter.copy_(1e30 * signs.float())
    checkpoint = save_generator(tmp_path / "diverged" / "generator.pt", generator, config, step=7, ema=False)
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(photo[:40, :60]).save(inputs / name)
    assert run_colorize(inputs, "--checkpoint", checkpoint, "--out", out, "--batch-size", "2") == 2
    err = capsys.readouterr().err
    assert f"{checkpoint}: the generator predicts non-finite colours" in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())  # no black image written
    with pytest.raises(ValueError, match="non-finite"):
        Colorizer.from_checkpoint(checkpoint)(Image.fromarray(photo[:40, :60]))


def test_a_generator_file_holding_nan_is_refused_before_any_image(photo, tmp_path, capsys):
    config = tiny_config()
    generator = GENERATORS.build(config.model.generator)
    name, tensor = next((k, v) for k, v in generator.state_dict().items() if v.is_floating_point())
    with torch.no_grad():
        tensor.view(-1)[0] = float("nan")
    checkpoint = save_generator(tmp_path / "damaged" / "generator.pt", generator, config, step=7, ema=False)
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    Image.fromarray(photo[:40, :60]).save(inputs / "a.png")
    assert run_colorize(inputs, "--checkpoint", checkpoint, "--out", out) == 2
    err = capsys.readouterr().err
    assert f"{checkpoint}: tensor {name} holds NaN or infinite values" in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


def test_colorize_writes_a_sheet_of_before_and_after_pairs(checkpoint, photo, tmp_path, capsys):
    sources = tmp_path / "photos"
    sources.mkdir()
    Image.fromarray(photo).save(sources / "a.png")
    Image.fromarray(photo[:30, :50]).save(sources / "b.jpg")
    sheet = tmp_path / "sheet.png"
    assert run_colorize(sources, "--checkpoint", checkpoint, "--out", tmp_path / "out", "--sheet", sheet) == 0
    image = np.asarray(Image.open(sheet).convert("RGB"))
    # two rows of [grey input | colorized], each 256 px high under an 18 px caption, 8 px apart
    assert image.shape[0] == 2 * (256 + 18) + 8
    row = image[18 : 18 + 256]
    width = round(photo.shape[1] * 256 / photo.shape[0])
    grey, colour = row[:, :width], row[:, width + 8 : 2 * width + 8]
    assert np.abs(grey[..., 0].astype(int) - grey[..., 2]).max() <= 1  # R = G = B: the grey input
    assert chroma(colour).mean() > 2  # the colorized output
    # the sheet is an output: never an input, never replaced without --overwrite
    assert run_colorize(sources, "--checkpoint", checkpoint, "--out", tmp_path / "o2", "--sheet", sheet) == 2
    assert "exists" in capsys.readouterr().err
    before = file_hash(sources / "a.png")
    assert (
        run_colorize(
            sources, "--checkpoint", checkpoint, "--out", tmp_path / "o3", "--sheet", sources / "a.png"
        )
        == 2
    )
    assert file_hash(sources / "a.png") == before
    # nor one of the colorized images this call writes (it replaced one, exit 0)
    out = tmp_path / "o4"
    assert run_colorize(sources, "--checkpoint", checkpoint, "--out", out, "--sheet", out / "a.png") == 2
    assert "colorized outputs" in capsys.readouterr().err and not out.exists()


def test_a_panorama_row_of_the_sheet_is_capped_in_width(tmp_path):
    from gan_colorize.inference.sheet import MAX_PANEL_WIDTH, write_sheet

    strip, square = tmp_path / "strip.png", tmp_path / "square.png"
    Image.new("RGB", (4000, 40), (90, 90, 90)).save(strip)
    Image.new("RGB", (300, 300), (90, 90, 90)).save(square)
    sheet = Image.open(write_sheet([(strip, strip), (square, square)], tmp_path / "sheet.png"))
    # the strip's panels: 1024 x 10 (not 25,600 x 256); the square's: 256 x 256 as before
    assert sheet.size == (2 * MAX_PANEL_WIDTH + 8, (10 + 18) + 8 + (256 + 18))
