"""Tests for gan_colorize.models.unet_backbone: the ImageNet encoder's weights are the file's (tensor
for tensor, all or nothing, never read by the constructor), a missing file names itself, a frozen
encoder stays frozen (no gradient, BatchNorm statistics unchanged), shapes at awkward sizes, the Lite
encoders load their real bundled weights, and stage two starts from stage one (``init_from``)."""

from __future__ import annotations

import pytest
import torch
import torchvision

from gan_colorize.color.lab import rgb_to_lab_norm
from gan_colorize.config import Config
from gan_colorize.models import predict_ab_norm, save_generator
from gan_colorize.models.efficientnet_lite import lite_weights_file, load_efficientnet_lite, tf_lite_input
from gan_colorize.models.unet_backbone import ENCODERS, UNetBackbone, grey_rgb
from gan_colorize.models.zhang import UNetZhang
from gan_colorize.registry import GENERATORS
from gan_colorize.weights import MissingWeightsError


def resnet18_file(folder, name="resnet18-f37072fd.pth", seed=0) -> dict:
    """A file of torchvision's resnet18 layout (random weights, non-trivial BN statistics) at
    ``folder/name``; returns its state dict."""
    torch.manual_seed(seed)
    net = torchvision.models.resnet18(weights=None)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    state = net.state_dict()
    torch.save(state, folder / name)
    return state


def small(encoder="resnet18", **kwargs) -> UNetBackbone:
    return UNetBackbone(encoder=encoder, width=4, **kwargs)


def assert_encoder_is(model: UNetBackbone, state: dict) -> None:
    own = model.encoder.state_dict()
    assert own, "the encoder has tensors"
    for key, tensor in own.items():
        assert torch.equal(tensor, state[key]), key


def test_registered_with_the_generator_contract():
    assert GENERATORS.get("unet_backbone") is UNetBackbone
    model = GENERATORS.build({"type": "unet_backbone", "encoder": "efficientnet_lite0", "width": 4})
    assert model.output_kind == "ab" and model.input_multiple == 32
    assert small("efficientnet_lite0", output="bins").output_kind == "bins"
    assert {id(p) for p in model.encoder_parameters()} == {id(p) for p in model.encoder.parameters()}
    with pytest.raises(ValueError, match="unknown encoder"):
        UNetBackbone(encoder="resnet19")


def test_load_pretrained_copies_the_file_tensor_for_tensor(hub_checkpoints):
    state = resnet18_file(hub_checkpoints)
    model = small()
    assert not torch.equal(model.encoder.conv1.weight, state["conv1.weight"])  # the constructor read nothing
    assert model.check_pretrained() == hub_checkpoints / "resnet18-f37072fd.pth"
    loaded = model.load_pretrained()
    assert_encoder_is(model, state)
    assert "encoder.layer4.1.bn2.running_var" in loaded and not any(k.startswith("decoder") for k in loaded)


def test_weights_argument_overrides_the_hub_cache(hub_checkpoints, tmp_path):
    resnet18_file(hub_checkpoints, seed=0)
    state = resnet18_file(tmp_path, "my_resnet18.pth", seed=1)
    model = small(weights=str(tmp_path / "my_resnet18.pth"))
    model.load_pretrained()
    assert_encoder_is(model, state)


def test_missing_weights_name_the_file_and_the_constructor_does_not_need_them(hub_checkpoints):
    model = small()  # no file anywhere: building (for inference from a checkpoint) must work
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    for call in (model.check_pretrained, model.load_pretrained):
        with pytest.raises(MissingWeightsError, match="resnet18-f37072fd.pth") as info:
            call()
        assert info.value.path == hub_checkpoints / "resnet18-f37072fd.pth"
    assert_encoder_is(model, before)
    # ResNet-50's V2 file is accepted through an explicit path, and its error names V2
    v2 = UNetBackbone(encoder="resnet50", width=4, weights=str(hub_checkpoints / "resnet50-11ad3fa6.pth"))
    with pytest.raises(MissingWeightsError, match="resnet50-11ad3fa6.pth.*IMAGENET1K_V2|IMAGENET1K_V2.*"):
        v2.check_pretrained()
    with pytest.raises(MissingWeightsError, match="resnet50-0676ba61.pth"):
        UNetBackbone(encoder="resnet50", width=4).check_pretrained()


def test_load_pretrained_is_all_or_nothing(hub_checkpoints):
    state = resnet18_file(hub_checkpoints)
    del state["layer4.1.bn2.running_var"]
    torch.save(state, hub_checkpoints / "resnet18-f37072fd.pth")
    model = small()
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    with pytest.raises(ValueError, match="layer4.1.bn2.running_var"):
        model.load_pretrained()
    assert_encoder_is(model, before)  # not half ImageNet, half random


def test_frozen_encoder_gets_no_gradient_and_keeps_its_batchnorm_statistics():
    torch.manual_seed(0)
    model = small()
    model.set_encoder_frozen(True)
    model.train()  # must not wake the encoder's BatchNorms
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    decoder_bn = model.decoder[0].up[1]
    decoder_mean = decoder_bn.running_mean.clone()
    model(torch.rand(2, 1, 64, 64) * 2 - 1).mean().backward()
    assert_encoder_is(model, before)
    assert all(p.grad is None for p in model.encoder.parameters())
    assert all(p.grad is not None for p in model.decoder.parameters())
    assert not torch.equal(decoder_bn.running_mean, decoder_mean)  # the decoder did train
    model.set_encoder_frozen(False)
    assert model.encoder.bn1.training and all(p.requires_grad for p in model.encoder.parameters())
    model(torch.rand(2, 1, 64, 64) * 2 - 1).mean().backward()
    assert not torch.equal(model.encoder.bn1.running_mean, before["bn1.running_mean"])


@pytest.mark.parametrize("encoder", ["resnet18", "efficientnet_lite0"])
@pytest.mark.parametrize("size", [(64, 64), (32, 96), (50, 70), (33, 65)])
def test_ab_output_has_the_input_size(encoder, size):
    model = small(encoder).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 1, *size) * 2 - 1)
    assert out.shape == (2, 2, *size)
    assert out.abs().max() <= 1  # tanh


@pytest.mark.parametrize("encoder", ["resnet18", "efficientnet_lite2"])
def test_bins_output_is_313_logits_at_a_quarter(encoder):
    model = small(encoder, output="bins").eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 1, 64, 96)).shape == (1, 313, 16, 24)
        with pytest.raises(ValueError, match="multiples of 32"):
            model(torch.zeros(1, 1, 50, 70))
        # other sizes go through predict_ab_norm's padding, as for zhang_eccv16
        assert predict_ab_norm(model, torch.zeros(1, 1, 50, 70)).shape == (1, 2, 50, 70)


def test_l_enters_as_the_grey_of_the_same_lightness():
    L_norm = torch.linspace(-1, 1, 11).view(1, 1, 1, 11)
    rgb = grey_rgb(L_norm)
    assert rgb.shape == (1, 3, 1, 11)
    assert torch.equal(rgb[:, 0], rgb[:, 1]) and torch.equal(rgb[:, 1], rgb[:, 2])
    L_back, ab = rgb_to_lab_norm(rgb)
    torch.testing.assert_close(L_back, L_norm, atol=1e-4, rtol=0)
    assert ab.abs().max() < 1e-3


@pytest.mark.parametrize("variant", ["lite0", "lite2"])
def test_lite_encoder_loads_the_real_bundled_weights(variant, no_network):
    model = small(f"efficientnet_{variant}")
    loaded = model.load_pretrained()
    state = torch.load(lite_weights_file(variant), weights_only=True)
    assert_encoder_is(model, state)
    assert len(loaded) == len(model.encoder.state_dict())
    # the encoder's taps are the reference network's block outputs on the documented input
    reference = load_efficientnet_lite(variant, head=False)
    L_norm = torch.rand(1, 1, 64, 64) * 2 - 1
    model.eval()
    with torch.no_grad():
        taps = model.encoder.features(L_norm)
        expected = reference.block_features(tf_lite_input(grey_rgb(L_norm)), model.encoder.taps)
    assert [t.shape[1] for t in taps] == list(model.encoder.channels)
    assert [t.shape[-1] for t in taps] == [32, 16, 8, 4, 2]  # strides 2 ... 32
    for got, want in zip(taps, expected):
        torch.testing.assert_close(got, want)


def test_every_encoder_builds_without_weights():
    for name in ENCODERS:  # lite1's package is not installed here: building needs no file
        model = small(name)
        assert len(model.encoder.channels) == 5


def test_init_from_copies_a_stage_one_generator(tmp_path):
    torch.manual_seed(0)
    stage_one = small("efficientnet_lite0")
    config = Config()
    config.model.generator = {"type": "unet_backbone", "encoder": "efficientnet_lite0", "width": 4}
    path = save_generator(tmp_path / "generator.pt", stage_one, config, step=10, ema=False)
    torch.manual_seed(1)
    stage_two = small("efficientnet_lite0")
    loaded = stage_two.init_from(path)
    assert len(loaded) == len(stage_one.state_dict())
    for key, tensor in stage_one.state_dict().items():
        assert torch.equal(stage_two.state_dict()[key], tensor), key
    # a plain state dict of the same network too (the README's "a .pth state dict")
    torch.save(stage_one.state_dict(), tmp_path / "plain.pth")
    assert len(small("efficientnet_lite0").init_from(tmp_path / "plain.pth")) == len(loaded)
    # a file of another generator copies nothing
    other = save_generator(
        tmp_path / "zhang.pt", UNetZhang(width=4, trunk_width=8), config, step=1, ema=False
    )
    before = {k: v.clone() for k, v in stage_two.state_dict().items()}
    with pytest.raises(ValueError):
        stage_two.init_from(other)
    with pytest.raises(ValueError):
        small("efficientnet_lite2").init_from(path)  # another encoder: shapes differ
    for key, tensor in before.items():
        assert torch.equal(stage_two.state_dict()[key], tensor), key


def test_another_networks_file_under_the_name_is_refused(hub_checkpoints):
    """A ResNet-34 file saved as resnet18-f37072fd.pth holds every ResNet-18 key with its shape
    (and more blocks): loading by name took its first blocks and dropped the rest in silence."""
    torch.save(
        torchvision.models.resnet34(weights=None).state_dict(), hub_checkpoints / "resnet18-f37072fd.pth"
    )
    model = small()
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    with pytest.raises(ValueError, match=r"resnet18-f37072fd.pth: holds tensors .* layer1.2"):
        model.load_pretrained()
    assert_encoder_is(model, before)


class PickledObject:
    """Any class: a weights_only load refuses its GLOBAL (a class that ran code would be refused alike)."""


@pytest.mark.parametrize(
    "content, reason",
    [
        ([1, 2, 3], "it holds a list, not a state dict"),
        ({"conv1.weight": PickledObject()}, "holds a pickled object"),
        # a damaged file: it would load, and training would stop at step 1 as a "non-finite loss"
        ({"conv1.weight": torch.tensor([0.0, float("nan")])}, "tensor conv1.weight holds NaN or infinite"),
    ],
)
def test_a_weights_file_that_is_no_state_dict_is_one_clean_error(hub_checkpoints, content, reason):
    torch.save(content, hub_checkpoints / "resnet18-f37072fd.pth")
    with pytest.raises(MissingWeightsError) as info:
        small().load_pretrained()
    message = str(info.value)
    assert reason in message and "resnet18-f37072fd.pth" in message and "weights_only" not in message
