"""Discriminators (gan_colorize/models/discriminators.py), the drop-in contract check
(gan_colorize/models/contract.py), the template and ``gan-colorize check-discriminator``."""

from __future__ import annotations

import argparse
import sys
import textwrap

import pytest
import torch
from rich.console import Console
from torch import nn
from torch.nn.utils import parametrize

from gan_colorize.commands import check_discriminator as command
from gan_colorize.models import discriminators as D
from gan_colorize.models.contract import (
    ContractError,
    DiscriminatorBuildError,
    ReceptiveField,
    check_discriminator,
    measure_receptive_field,
)
from gan_colorize.registry import DISCRIMINATORS

TEMPLATE = "gan_colorize.models.template_discriminator:MyDiscriminator"
FAST = {"sizes": (64, 96), "batch": 2, "repeats": 1}  # one timed pass: the check, not the timing


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def inputs(size: int, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 1, size, size, generator=gen) * 2 - 1, torch.rand(
        batch, 2, size, size, generator=gen
    ) - 0.5


# ---------------------------------------------------------------- the registered networks
def test_patchgan_has_pix2pix_parameter_count():
    # pix2pix's NLayerDiscriminator(input_nc=3, ndf=64, n_layers=3, norm_layer=BatchNorm2d)
    assert n_params(DISCRIMINATORS.build("patchgan")) == 2_765_633
    assert n_params(
        DISCRIMINATORS.build({"type": "patchgan", "n_layers": 3, "width": 64, "norm": "batch"})
    ) == (2_765_633)
    # PixelDiscriminator(ndf=64) is 8,832 in pix2pix; we keep the output conv's bias (+1)
    assert n_params(DISCRIMINATORS.build("pixelgan")) == 8_833
    # two scales: two PatchGANs with separate weights, no parameter in the pooling
    assert n_params(DISCRIMINATORS.build("multiscale")) == 2 * 2_765_633


@pytest.mark.parametrize(("n_layers", "rf"), [(1, 16), (2, 34), (3, 70), (4, 142)])
def test_patchgan_receptive_field_is_declared_and_measured(n_layers, rf):
    disc = D.PatchGAN(n_layers=n_layers, width=4, norm="none")
    assert disc.receptive_field == rf
    # the gradient of one interior logit reaches exactly rf x rf input pixels
    assert measure_receptive_field(disc, size=2 * rf + 32) == [ReceptiveField(rf, rf, 2 * rf + 32)]


def test_pixelgan_and_multiscale_receptive_fields():
    pixel = D.PixelGAN(width=4, norm="none")
    assert pixel.receptive_field == 1
    assert measure_receptive_field(pixel, size=16) == [ReceptiveField(1, 1, 16)]
    # the coarsest scale sees a 3x3 stride-2 pooling of the input: (70 - 1) * 2 + 3
    assert D.MultiScale(num_scales=2, width=4).receptive_field == 141
    assert D.MultiScale(num_scales=1, width=4).receptive_field == 70


def test_receptive_field_helper_refuses_what_it_cannot_walk():
    assert D.receptive_field(nn.Sequential(nn.Conv2d(3, 4, 3, dilation=2), nn.ReLU()).modules()) == 5
    assert (
        D.receptive_field(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4, 1)).modules()) is None
    )


@pytest.mark.parametrize(
    ("spec", "shapes"),
    [
        ({"type": "patchgan"}, {64: [(2, 1, 6, 6)], 96: [(2, 1, 10, 10)]}),
        ({"type": "patchgan", "n_layers": 2}, {64: [(2, 1, 14, 14)], 96: [(2, 1, 22, 22)]}),
        ({"type": "pixelgan"}, {64: [(2, 1, 64, 64)], 96: [(2, 1, 96, 96)]}),
        ({"type": "multiscale"}, {64: [(2, 1, 6, 6), (2, 1, 2, 2)], 96: [(2, 1, 10, 10), (2, 1, 4, 4)]}),
    ],
)
def test_output_shapes(spec, shapes):
    disc = DISCRIMINATORS.build({**spec, "width": 8})
    for size, expected in shapes.items():
        out = disc(*inputs(size))
        got = [tuple(t.shape) for t in out] if isinstance(out, list) else [tuple(out.shape)]
        assert got == expected, (spec, size)


@pytest.mark.parametrize("name", ["patchgan", "pixelgan", "multiscale"])
@pytest.mark.parametrize("norm", D.NORMS)
def test_every_norm_builds_and_runs(name, norm):
    disc = DISCRIMINATORS.build({"type": name, "width": 8, "norm": norm})
    out = disc(*inputs(64))
    assert all(torch.isfinite(t).all() for t in (out if isinstance(out, list) else [out]))
    convs = [m for m in disc.modules() if isinstance(m, nn.Conv2d)]
    assert all(parametrize.is_parametrized(c, "weight") == (norm == "spectral") for c in convs)
    assert any(isinstance(m, nn.BatchNorm2d) for m in disc.modules()) == (norm == "batch")
    assert any(isinstance(m, nn.InstanceNorm2d) for m in disc.modules()) == (norm == "instance")


def test_no_bias_before_a_mean_subtracting_norm():
    # BatchNorm and InstanceNorm cancel a bias exactly; spectral and none keep it
    hidden_biases = {
        norm: [m.bias is not None for m in D.PatchGAN(width=8, norm=norm).net if isinstance(m, nn.Conv2d)][
            1:-1
        ]
        for norm in D.NORMS
    }
    assert hidden_biases == {
        "batch": [False] * 3,
        "instance": [False] * 3,
        "spectral": [True] * 3,
        "none": [True] * 3,
    }


def test_pix2pix_init_is_applied():
    torch.manual_seed(0)
    disc = D.PatchGAN()
    first = disc.net[0]
    assert first.weight.std().item() == pytest.approx(0.02, rel=0.05)  # N(0, 0.02), 3,072 samples
    assert not first.bias.any()
    bn = next(m for m in disc.modules() if isinstance(m, nn.BatchNorm2d))
    assert bn.weight.mean().item() == pytest.approx(1.0, abs=0.01)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="norm must be one of"):
        D.PatchGAN(norm="layer")
    with pytest.raises(ValueError, match="n_layers"):
        D.PatchGAN(n_layers=0)
    with pytest.raises(ValueError, match="num_scales"):
        D.MultiScale(num_scales=0)


# ---------------------------------------------------------------- the contract
@pytest.mark.parametrize("name", DISCRIMINATORS.names())
def test_every_registered_discriminator_passes_the_contract(name):
    report = check_discriminator({"type": name, "width": 8}, **FAST)
    assert report.passed and not report.notes and not report.warnings  # declared RFs are the measured
    assert [(p.size, p.precision, p.status) for p in report.passes] == [
        (64, "float32", "ok"),
        (64, "bfloat16", "ok"),
        (96, "float32", "ok"),
        (96, "bfloat16", "ok"),
    ]
    assert all(p.ms is not None and p.ms > 0 for p in report.passes)
    assert report.parameters == n_params(DISCRIMINATORS.build({"type": name, "width": 8}))


@pytest.mark.parametrize("norm", ["instance", "spectral", "none"])
def test_patchgan_passes_with_every_norm(norm):
    report = check_discriminator({"type": "patchgan", "width": 8, "norm": norm}, **FAST)
    assert report.passed and not report.notes and not report.warnings  # no dead bias before InstanceNorm
    assert str(report.receptive_fields[0]) == "70 x 70 px"  # InstanceNorm's image mean is not counted


def test_template_passes_and_is_not_registered():
    report = check_discriminator(TEMPLATE, **FAST)
    assert report.passed and not report.notes and not report.warnings
    assert report.receptive_fields == [ReceptiveField(38, 38, 96)]  # the numbers its docstring gives
    assert report.declared_receptive_field == 38 and report.parameters == 166_561
    assert "MyDiscriminator" not in {
        getattr(DISCRIMINATORS.get(n), "__name__", "") for n in DISCRIMINATORS.names()
    }
    assert check_discriminator({"type": TEMPLATE, "widths": [8, 16]}, **FAST).passed


EXTERNAL = textwrap.dedent(
    """
    import torch
    from torch import nn


    class Disc(nn.Module):
        receptive_field = None  # global pooling: one logit per image

        def __init__(self, width=8, skip_L=False, spare=False):
            super().__init__()
            self.skip_L = skip_L
            self.conv = nn.Conv2d(3, width, 3, padding=1)
            self.head = nn.Linear(width, 1)
            if spare:  # a layer forward never uses
                self.spare = nn.Conv2d(width, width, 1)

        def forward(self, L_norm, ab_norm):
            L = torch.zeros_like(L_norm) if self.skip_L else L_norm
            h = torch.relu(self.conv(torch.cat([L, ab_norm], 1)))
            return self.head(h.mean((2, 3)))  # (N, 1)


    class NoBF16(Disc):
        def forward(self, L_norm, ab_norm):
            out = super().forward(L_norm, ab_norm)
            if out.dtype == torch.bfloat16:  # what torch says for an op without a bf16 kernel
                raise RuntimeError('"my_op" not implemented for \\'BFloat16\\'')
            return out


    class BrokenUnderBF16(Disc):
        def forward(self, L_norm, ab_norm):
            out = super().forward(L_norm, ab_norm)
            if out.dtype == torch.bfloat16:  # a bug, not a dtype limitation
                raise IndexError("list index out of range")
            return out


    class BiasBeforeNorm(nn.Module):
        receptive_field = 3

        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(
                nn.Conv2d(3, 8, 3, padding=1), nn.InstanceNorm2d(8), nn.LeakyReLU(0.2), nn.Conv2d(8, 1, 1)
            )

        def forward(self, L_norm, ab_norm):
            return self.net(torch.cat([L_norm, ab_norm], 1))
    """
)


@pytest.fixture
def tmpmod(tmp_path, monkeypatch):
    """A discriminator module outside the package, importable as ``tmpmod`` (as a user's file is)."""
    (tmp_path / "tmpmod.py").write_text(EXTERNAL)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "tmpmod", raising=False)
    yield "tmpmod"
    sys.modules.pop("tmpmod", None)


def test_external_discriminator_passes_and_builds_from_a_config(tmpmod):
    disc = DISCRIMINATORS.build({"type": "tmpmod:Disc", "width": 4})
    assert type(disc).__module__ == "tmpmod" and disc.conv.out_channels == 4
    report = check_discriminator({"type": "tmpmod:Disc", "width": 4}, **FAST)
    assert report.passed and report.receptive_field_text == "whole image (one logit per image)"
    assert report.declares_receptive_field and not report.warnings  # None: not defined, as measured
    assert report.passes[0].output_shapes == [(2, 1)]
    # a class object works as well as its name
    assert check_discriminator(type(disc), args={"width": 4}, **FAST).passed


def test_unused_parameter_fails_naming_it(tmpmod):
    with pytest.raises(ContractError) as caught:
        check_discriminator({"type": "tmpmod:Disc", "spare": True}, **FAST)
    failures = caught.value.report.failures
    # one line for the four passes, naming both parameters and the cause
    assert len(failures) == 1
    assert failures[0].startswith("every pass: spare.weight, spare.bias: not used in forward")
    assert "spare.weight" in str(caught.value)


def test_discriminator_ignoring_L_fails(tmpmod):
    report = check_discriminator({"type": "tmpmod:Disc", "skip_L": True}, raise_on_failure=False, **FAST)
    assert len(report.failures) == 1 and "does not depend on L_norm" in report.failures[0]
    assert not report.passed


def test_missing_bf16_kernel_is_unsupported_not_a_failure(tmpmod):
    report = check_discriminator("tmpmod:NoBF16", **FAST)
    assert report.passed
    assert [p.status for p in report.passes] == ["ok", "unsupported", "ok", "unsupported"]
    assert "not implemented for 'BFloat16'" in report.notes[0]
    # another exception under bf16 is a bug: a failure
    report = check_discriminator("tmpmod:BrokenUnderBF16", raise_on_failure=False, **FAST)
    assert [p.status for p in report.passes] == ["ok", "failed", "ok", "failed"]
    assert "IndexError" in report.failures[0]


def test_bias_cancelled_by_a_norm_gets_a_note(tmpmod):
    report = check_discriminator("tmpmod:BiasBeforeNorm", **FAST)
    assert report.passed  # a dead parameter does not break training...
    # ...but the report names it and the norm that cancels it
    assert report.notes == [
        "every pass: net.0.bias: a bias directly followed by net.1 (InstanceNorm2d), "
        "which subtracts the mean the bias adds: cancelled by the norm, it never trains (build the "
        "layer with bias=False)"
    ]


def test_unbuildable_specs_raise_build_error(tmpmod):
    with pytest.raises(DiscriminatorBuildError, match="did you mean 'patchgan'"):
        check_discriminator("patchgn", **FAST)
    with pytest.raises(DiscriminatorBuildError, match="takes no argument 'widht'"):
        check_discriminator({"type": "patchgan", "widht": 8}, **FAST)
    with pytest.raises(DiscriminatorBuildError, match="norm must be one of"):
        check_discriminator({"type": "patchgan", "norm": "layer"}, **FAST)
    with pytest.raises(DiscriminatorBuildError, match="cannot import module"):
        check_discriminator("no_such_module_xyz:Disc", **FAST)


def test_render_is_a_table_with_the_failures():
    report = check_discriminator({"type": "patchgan", "width": 8}, **FAST)
    console = Console(record=True, width=150)
    console.print(report.render())
    text = console.export_text()
    assert "PASS" in text and "receptive field 70 x 70 px (measured)" in text and "2x1x10x10" in text
    assert "centre logit" in text and "border logits see less" in text


# ---------------------------------------------------------------- the command
def run_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return command.run(parser.parse_args(argv))


def test_command_exit_codes(tmpmod, capsys):
    assert command.NAME == "check-discriminator"
    assert run_command(["patchgan", "--arg", "width=8", "--size", "64", "96"]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "64 px" in out and "96 px" in out

    assert run_command(["tmpmod:Disc", "--arg", "skip_L=true"]) == 1
    assert "does not depend on L_norm" in capsys.readouterr().err

    assert run_command(["patchgan", "--arg", "widht=8"]) == 2
    assert "takes no argument 'widht'" in capsys.readouterr().err
    assert run_command(["patchgan", "--arg", "width"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_command_parses_yaml_typed_arguments():
    assert command.parse_args_list(["n_layers=2", "norm=instance", "widths=[8, 16]", "x="]) == {
        "n_layers": 2,
        "norm": "instance",
        "widths": [8, 16],
        "x": None,
    }
