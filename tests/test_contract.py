"""The contract check's own findings (gan_colorize/models/contract.py): the measured receptive field
and the causes it names for a parameter without gradient (issue #12). The registered networks and
the command are tested in test_models_discriminators.py."""

from __future__ import annotations

import argparse

import pytest
import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from gan_colorize.commands import check_discriminator as command
from gan_colorize.models import discriminators as D
from gan_colorize.models.contract import (
    ContractError,
    ReceptiveField,
    _ConstantStatistics,
    check_discriminator,
    measure_receptive_field,
)

FAST = {"sizes": (64, 96), "batch": 2, "repeats": 1}  # one timed pass: the check, not the timing


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)  # the networks' init: findings that depend on rounding are reproducible


class Local(nn.Module):
    """A conditional conv stack without a ``receptive_field`` attribute: 5 x 9 kernels, then 3 x 3."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 8, (5, 9), padding=(2, 4)),
            nn.LeakyReLU(0.2),
            nn.Conv2d(8, 1, 3, padding=1),
        )

    def forward(self, L_norm, ab_norm):
        return self.net(torch.cat([L_norm, ab_norm], 1))


class Declares(Local):
    def __init__(self, receptive_field):
        super().__init__()
        self.receptive_field = receptive_field


def findings(report) -> str:
    return "\n".join(report.failures + report.warnings + report.notes)


# ---------------------------------------------------------------- the receptive field, measured
def test_discriminator_without_the_attribute_passes_with_the_measured_field():
    report = check_discriminator(Local(), **FAST)
    assert report.passed and not report.warnings and not report.notes
    assert not report.declares_receptive_field
    # (5 + 3 - 1) rows x (9 + 3 - 1) columns: measured, so not square when the kernels are not
    assert report.receptive_fields == [ReceptiveField(7, 11, 96)]
    assert report.receptive_field_text == "7 x 11 px (measured)"


@pytest.mark.parametrize(("n_layers", "rf"), [(1, 16), (2, 34), (3, 70)])
@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_patchgan_field_is_measured_as_pix2pix_gives_it(n_layers, rf, norm):
    # InstanceNorm's per-image mean ties every logit to every pixel: the measurement must not count
    # that tie (it would say ">= 512 x 512 px"); BatchNorm runs on its running statistics (eval mode)
    disc = D.PatchGAN(n_layers=n_layers, width=8, norm=norm)
    [field] = measure_receptive_field(disc, size=64)
    assert (field.rows, field.cols, field.at_least) == (rf, rf, False)
    assert disc.training  # the measurement switches to eval mode and back


def test_shipped_patchgan_measures_70_px_and_agrees_with_its_declaration():
    report = check_discriminator("patchgan", sizes=(64,), batch=1, repeats=1)
    # at 64 px the centre logit's 70 px reach past the border: the measurement grows the input
    assert report.receptive_fields == [ReceptiveField(70, 70, 128)]
    assert report.declared_receptive_field == 70 and not report.warnings


def test_multiscale_field_is_measured_per_scale():
    report = check_discriminator({"type": "multiscale", "width": 8}, **FAST)
    # the second scale sees a 3x3 stride-2 pooling of the input: (70 - 1) * 2 + 3
    assert [(f.rows, f.cols) for f in report.receptive_fields] == [(70, 70), (141, 141)]
    assert report.receptive_field_text == "70 x 70 px, 141 x 141 px (measured, per scale)"
    assert not report.warnings  # it declares 141, its coarsest scale


def test_one_logit_per_image_sees_the_whole_image():
    class Global(Local):
        def forward(self, L_norm, ab_norm):
            return super().forward(L_norm, ab_norm).mean((2, 3))  # (N, 1)

    report = check_discriminator(Global(), **FAST)
    assert report.passed and report.receptive_field_text == "whole image (one logit per image)"


def test_a_field_past_the_largest_input_is_a_lower_bound():
    class Pooled(Local):  # a logit map that also sees the image's mean: nothing local about it
        def forward(self, L_norm, ab_norm):
            x = torch.cat([L_norm, ab_norm], 1)
            return self.net(x) + x.mean((1, 2, 3)).reshape(-1, 1, 1, 1)

    [field] = measure_receptive_field(Pooled(), size=64, max_size=128)
    assert field == ReceptiveField(128, 128, 128, at_least=True)
    assert str(field) == ">= 128 x 128 px"
    assert field.agrees_with(None) and field.agrees_with(200) and not field.agrees_with(70)


@pytest.mark.parametrize(
    ("declared", "warning"),
    [
        (7, "receptive_field declares 7 px, but the measurement gives 7 x 11 px (measured)"),
        (None, "receptive_field declares None (not defined), but the measurement gives 7 x 11 px"),
        ("big", "receptive_field must be a positive int or None, got 'big'; ignored"),
    ],
)
def test_a_declaration_that_disagrees_is_a_warning_not_a_failure(declared, warning):
    report = check_discriminator(Declares(declared), **FAST)
    assert report.passed
    assert len(report.warnings) == 1 and report.warnings[0].startswith(warning)


def test_the_command_prints_the_measured_field_and_the_warning(capsys):
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args(["test_contract:Declares", "--arg", "receptive_field=64", "--size", "64"])
    assert command.run(args) == 0  # a warning does not fail the check
    captured = capsys.readouterr()
    assert "receptive field 7 x 11 px (measured)" in captured.out
    assert "warning: receptive_field declares 64 px" in captured.err


@pytest.mark.parametrize(
    "norm",
    [nn.InstanceNorm2d(4), nn.InstanceNorm2d(4, affine=True), nn.GroupNorm(2, 4), nn.LayerNorm([4, 6, 6])],
)
def test_constant_statistics_leave_the_forward_values_alone(norm):
    x = torch.randn(2, 4, 6, 6)
    with _ConstantStatistics():
        held = norm(x)
    assert torch.allclose(held, norm(x), atol=1e-5)


def test_batch_norm_without_running_statistics_is_held_constant_too():
    norm = nn.BatchNorm2d(4, track_running_stats=False).eval()  # batch statistics even in eval
    x = torch.randn(2, 4, 6, 6, requires_grad=True)
    with _ConstantStatistics():
        held = norm(x)
    assert torch.allclose(held, norm(x), atol=1e-5)
    held[0, 0, 3, 3].backward()
    assert x.grad.count_nonzero() == 1  # the pixel itself, not the batch's mean


# ---------------------------------------------------------------- why a parameter has no gradient
def scaled_spectral_patchgan(legacy: bool) -> nn.Module:
    """A spectral-norm PatchGAN, no norm layer, whose second conv's weight is 1e8 times too large:
    W / sigma(W) is unchanged, its gradient ~1e-8 of the others' (the report of issue #12)."""
    if not legacy:
        disc = D.PatchGAN(width=8, norm="spectral")
        original = disc.net[2].parametrizations.weight.original
    else:
        disc = D.PatchGAN(width=8, norm="none")
        for m in disc.modules():
            if isinstance(m, nn.Conv2d):
                torch.nn.utils.spectral_norm(m)
        original = disc.net[2].weight_orig
    with torch.no_grad():
        original.mul_(1e8)
    return disc


@pytest.mark.parametrize(
    ("legacy", "name"),
    [(False, "net.2.parametrizations.weight.original"), (True, "net.2.weight_orig")],
)
def test_spectral_norm_weight_is_not_blamed_on_a_norm(legacy, name):
    report = check_discriminator(scaled_spectral_patchgan(legacy), **FAST)
    assert report.passed
    [note] = report.notes
    assert note.startswith(f"64 px float32, 96 px float32: {name}: the spectral-norm parametrisation")
    assert "a cause no norm layer is part of" in note and "shrinks as 1/|W|" in note
    assert "cancelled by the norm" not in note


def test_spectral_weight_with_one_entry_gets_the_spectral_cause():
    class OneEntry(Local):
        def __init__(self):
            super().__init__()
            self.gain = spectral_norm(nn.Conv2d(1, 1, 1))  # W / sigma(W) = sign(W): gradient 0

        def forward(self, L_norm, ab_norm):
            return self.gain(super().forward(L_norm, ab_norm))

    torch.manual_seed(0)
    report = check_discriminator(OneEntry(), raise_on_failure=False, **FAST)
    # analytically zero: exactly zero (a failure) in some passes, float32 rounding (a note) in others
    found = [f for f in report.failures + report.notes if "gain.parametrizations.weight.original" in f]
    assert found and report.failures
    assert all("the spectral-norm parametrisation" in f and "one with a single entry" in f for f in found)
    assert not any("cancelled by the norm" in f for f in found)


class BiasThenBatchNorm(Local):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.LeakyReLU(0.2))
        self.head = nn.Conv2d(8, 1, 1)

    def forward(self, L_norm, ab_norm):
        return self.head(super().forward(L_norm, ab_norm))


def test_conv_bias_followed_by_batch_norm_is_cancelled_by_the_norm():
    report = check_discriminator(BiasThenBatchNorm(), **FAST)
    assert report.passed  # a dead parameter, training works
    # named in every pass, though float32 rounding leaves its gradient above TINY_GRADIENT at 96 px
    assert report.notes == [
        "every pass: net.0.bias: a bias directly followed by net.1 (BatchNorm2d), which subtracts the "
        "mean the bias adds: cancelled by the norm, it never trains (build the layer with bias=False)"
    ]


def test_a_norm_after_an_activation_cancels_no_bias():
    class BiasReluNorm(BiasThenBatchNorm):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(
                nn.Conv2d(3, 8, 3, padding=1), nn.LeakyReLU(0.2), nn.BatchNorm2d(8), nn.LeakyReLU(0.2)
            )

    report = check_discriminator(BiasReluNorm(), **FAST)
    assert report.passed and not report.notes


class DeadReLU(Local):
    """A branch behind a ReLU whose inputs are all negative, beside a live one."""

    def __init__(self):
        super().__init__()
        self.dead = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.head = nn.Conv2d(4, 1, 1)
        with torch.no_grad():
            self.dead.bias.fill_(-100.0)

    def forward(self, L_norm, ab_norm):
        x = torch.cat([L_norm, ab_norm], 1)
        return self.net(x) + self.head(self.relu(self.dead(x)))


def test_relu_dead_zone_is_named():
    with pytest.raises(ContractError) as caught:
        check_discriminator(DeadReLU(), **FAST)
    dead, head = caught.value.report.failures
    assert dead.startswith("every pass: dead.weight, dead.bias: no gradient reaches the output of dead")
    assert "relu (ReLU), the next layer that gets one, passes none back: a dead zone" in dead
    # the conv after the dead ReLU sees only zeros: its weight gets no gradient either
    assert head.startswith("every pass: head.weight: the input of head (Conv2d) is all zeros")
    assert "cancelled by the norm" not in dead + head


def test_unused_and_detached_parameters_are_told_apart():
    class Unused(Local):
        def __init__(self):
            super().__init__()
            self.spare = nn.Conv2d(3, 1, 1)  # never called
            self.side = nn.Conv2d(3, 1, 1)  # called, but through .detach()

        def forward(self, L_norm, ab_norm):
            x = torch.cat([L_norm, ab_norm], 1)
            return self.net(x) + self.side(x).detach()

    report = check_discriminator(Unused(), raise_on_failure=False, **FAST)
    assert report.failures == [
        "every pass: spare.weight, spare.bias: not used in forward: no gradient at all (.grad is None); "
        "call its layer or remove it",
        "every pass: side.weight, side.bias: side (Conv2d) runs in forward but no gradient reaches it "
        "(.grad is None): used only through .detach() or under torch.no_grad()?",
    ]


def test_frozen_parameters_are_a_note():
    disc = Local()
    disc.net[0].requires_grad_(False)  # a fixed feature extractor
    report = check_discriminator(disc, **FAST)
    assert report.passed
    assert report.notes == [
        "net.0.weight, net.0.bias: frozen (requires_grad=False), so no gradient and no training: right "
        "for a fixed feature extractor, a mistake otherwise"
    ]
