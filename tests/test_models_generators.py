"""Generators: pix2pix U-Net, the Zhang et al. 2016 networks, the Zhang-encoder U-Net, init and loading."""

import logging
import time
from importlib import resources

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gan_colorize.color.lab import normalize_l, uint8_to_lab_norm
from gan_colorize.models import init as model_init
from gan_colorize.models.init import ShapeMismatchError, init_pix2pix, load_by_name
from gan_colorize.models.unet import UNet
from gan_colorize.models.zhang import UNetZhang, ZhangECCV16, ZhangRegression
from gan_colorize.registry import GENERATORS
from gan_colorize.weights import ZHANG_ECCV16, MissingWeightsError


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------- the released eccv16 state dict
# Written out from richzhang/colorization, colorizers/eccv16.py (ECCVGenerator): conv weights are
# (out, in, k, k), ConvTranspose2d weights (in, out, k, k); BatchNorm at the end of blocks 1-7.
def conv(name, out_ch, in_ch, k):
    return [(f"{name}.weight", (out_ch, in_ch, k, k)), (f"{name}.bias", (out_ch,))]


def bn(name, ch):
    return [(f"{name}.{p}", (ch,)) for p in ("weight", "bias", "running_mean", "running_var")]


RELEASED_ECCV16 = [
    *conv("model1.0", 64, 1, 3), *conv("model1.2", 64, 64, 3), *bn("model1.4", 64),
    *conv("model2.0", 128, 64, 3), *conv("model2.2", 128, 128, 3), *bn("model2.4", 128),
    *conv("model3.0", 256, 128, 3), *conv("model3.2", 256, 256, 3), *conv("model3.4", 256, 256, 3),
    *bn("model3.6", 256),
    *conv("model4.0", 512, 256, 3), *conv("model4.2", 512, 512, 3), *conv("model4.4", 512, 512, 3),
    *bn("model4.6", 512),
    *conv("model5.0", 512, 512, 3), *conv("model5.2", 512, 512, 3), *conv("model5.4", 512, 512, 3),
    *bn("model5.6", 512),
    *conv("model6.0", 512, 512, 3), *conv("model6.2", 512, 512, 3), *conv("model6.4", 512, 512, 3),
    *bn("model6.6", 512),
    *conv("model7.0", 512, 512, 3), *conv("model7.2", 512, 512, 3), *conv("model7.4", 512, 512, 3),
    *bn("model7.6", 512),
    ("model8.0.weight", (512, 256, 4, 4)), ("model8.0.bias", (256,)),
    *conv("model8.2", 256, 256, 3), *conv("model8.4", 256, 256, 3), *conv("model8.6", 313, 256, 1),
    ("model_out.weight", (2, 313, 1, 1)),
]  # fmt: skip
RELEASED_PARAMS = 32_236_011  # model1..model8 + model_out of the released port
UNET_256_PARAMS = 54_409_858  # pix2pix unet_256, input_nc=1, output_nc=2, norm batch


def released_state_dict(seed=0):
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in RELEASED_ECCV16:
        if name.endswith("running_var"):
            state[name] = torch.rand(shape, generator=g) + 0.5
        else:
            state[name] = torch.randn(shape, generator=g) * 0.05
    return state


@pytest.fixture(scope="module")
def released_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / ZHANG_ECCV16.filename
    torch.save(released_state_dict(), path)
    return path


def pts_in_hull() -> np.ndarray:
    with resources.as_file(resources.files("gan_colorize.color") / "resources" / "pts_in_hull.npy") as path:
        return np.load(path)


def test_released_key_list_is_consistent():
    trainable = [s for n, s in RELEASED_ECCV16 if not n.endswith(("running_mean", "running_var"))]
    assert sum(int(np.prod(s)) for s in trainable) == RELEASED_PARAMS


# ---------------------------------------------------------------- registry
def test_all_generators_are_registered_with_their_output_kind():
    assert {"unet", "zhang_eccv16", "zhang_regression", "unet_zhang"} <= set(GENERATORS.names())
    assert GENERATORS.get("unet") is UNet and GENERATORS.get("zhang_eccv16") is ZhangECCV16
    assert GENERATORS.get("zhang_regression") is ZhangRegression and GENERATORS.get("unet_zhang") is UNetZhang
    assert [c.output_kind for c in (UNet, ZhangECCV16, ZhangRegression, UNetZhang)] == [
        "ab",
        "bins",
        "ab",
        "ab",
    ]
    net = GENERATORS.build({"type": "unet", "depth": 5, "width": 8, "norm": "instance"})
    assert isinstance(net, UNet) and net.input_multiple == 32


# ---------------------------------------------------------------- unet
def test_unet_256_has_pix2pix_parameter_count_and_layout():
    net = UNet(depth=8, width=64, norm="batch", dropout=True, upsample="convtranspose")
    assert n_params(net) == UNET_256_PARAMS
    dropouts = [m for m in net.modules() if isinstance(m, nn.Dropout)]
    assert len(dropouts) == 3 and all(m.p == 0.5 for m in dropouts)
    # innermost block: LeakyReLU + conv only on the way down (no norm at 1x1)
    block = net.model
    while not isinstance(block.inner, nn.Identity):
        block = block.inner
    assert [type(m) for m in block.down] == [nn.LeakyReLU, nn.Conv2d]
    # convs followed by BatchNorm carry no bias; only the outermost up conv has one
    with_bias = [
        n
        for n, m in net.named_modules()
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d) and m.bias is not None
    ]
    assert with_bias == ["model.up.1"]
    assert net.input_multiple == 256


def test_unet_instance_norm_convs_have_bias_as_in_pix2pix():
    net = UNet(depth=5, width=8, norm="instance")
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    assert convs and all(m.bias is not None for m in convs)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())


@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
@pytest.mark.parametrize("upsample", ["convtranspose", "bilinear"])
def test_unet_output_shape_and_range(norm, upsample):
    torch.manual_seed(0)
    net = UNet(depth=6, width=8, norm=norm, upsample=upsample).eval()
    if norm == "batch":  # move running stats away from the identity so eval mode is not trivial
        net.train()
        net(torch.randn(4, 1, 64, 64))
        net.eval()
    out = net(torch.rand(2, 1, 64, 64) * 2 - 1)
    assert out.shape == (2, 2, 64, 64)
    assert out.abs().max() < 1 and out.std() > 0
    assert any(isinstance(m, nn.ConvTranspose2d) for m in net.modules()) == (upsample == "convtranspose")


def test_unet_pads_other_sizes_by_reflection_and_crops_back():
    torch.manual_seed(0)
    net = UNet(depth=5, width=8).eval()
    x = torch.rand(1, 1, 70, 90) * 2 - 1
    out = net(x)
    assert out.shape == (1, 2, 70, 90)
    padded = F.pad(x, (0, 96 - 90, 0, 96 - 70), mode="reflect")
    torch.testing.assert_close(out, net.model(padded)[..., :70, :90])
    # a multiple of 2**depth goes through unchanged
    y = torch.rand(1, 1, 64, 96) * 2 - 1
    assert torch.equal(net(y), net.model(y))


def test_unet_rejects_unknown_options():
    with pytest.raises(ValueError, match="norm 'group'"):
        UNet(norm="group")
    with pytest.raises(ValueError, match="upsample 'nearest'"):
        UNet(upsample="nearest")


# ---------------------------------------------------------------- init
def test_pix2pix_init_statistics():
    torch.manual_seed(0)
    net = init_pix2pix(
        nn.Sequential(nn.Conv2d(64, 64, 3), nn.BatchNorm2d(4096), nn.ConvTranspose2d(64, 64, 4))
    )
    for conv_layer in (net[0], net[2]):
        assert (
            abs(conv_layer.weight.std().item() - 0.02) < 0.001
            and abs(conv_layer.weight.mean().item()) < 0.001
        )
        assert torch.count_nonzero(conv_layer.bias) == 0
    assert abs(net[1].weight.mean().item() - 1) < 0.002 and abs(net[1].weight.std().item() - 0.02) < 0.002
    assert torch.count_nonzero(net[1].bias) == 0


# ---------------------------------------------------------------- zhang_eccv16
def test_zhang_eccv16_parameter_count_and_output():
    net = ZhangECCV16().eval()
    counted = [m for n, m in net.named_children() if n.startswith("model")]
    assert [n for n, _ in net.named_children() if n.startswith("model")][-2:] == ["model8", "model_out"]
    assert sum(n_params(m) for m in counted) == RELEASED_PARAMS == n_params(net)
    x = torch.rand(2, 1, 64, 64) * 2 - 1
    logits = net(x)
    assert logits.shape == (2, 313, 16, 16) and net.input_multiple == 8
    assert net.released_ab_norm(x).shape == (2, 2, 64, 64)
    with pytest.raises(ValueError, match="multiples of 8, got 60x64"):
        net(torch.zeros(1, 1, 60, 64))


def test_released_state_dict_loads_by_key_with_nothing_missing_or_unexpected():
    net = ZhangECCV16()
    state = released_state_dict()
    report = net.load_released(state)
    assert report.missing == [] and report.unexpected == [] and report.mismatched == []
    assert len(report.loaded) == len(RELEASED_ECCV16)
    own = net.state_dict()
    for name, tensor in state.items():
        assert torch.equal(own[name], tensor), name


def test_released_file_is_found_in_the_hub_cache(released_file, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(MissingWeightsError, match=ZHANG_ECCV16.filename):
        ZhangECCV16().load_released()
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / ZHANG_ECCV16.filename).write_bytes(released_file.read_bytes())
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    net = ZhangECCV16()
    assert net.load_released().missing == []
    assert torch.equal(net.model_out.weight, released_state_dict()["model_out.weight"])


def test_released_forward_is_softmax_mean_of_bin_centres_on_released_input_scale():
    """With model_out = bin centres / 110 (what the released file holds), one dominant logit gives its bin."""
    net = ZhangECCV16().eval()
    pts = torch.from_numpy(pts_in_hull()).float()
    state = net.state_dict()
    state["model_out.weight"] = (pts.T / 110.0).reshape(2, 313, 1, 1)
    state["model8.6.weight"] = torch.zeros(313, 256, 1, 1)
    state["model8.6.bias"] = torch.full((313,), -20.0)
    state["model8.6.bias"][200] = 20.0
    net.load_released(state)
    ab_norm = net.released_ab_norm(torch.zeros(1, 1, 32, 32))
    torch.testing.assert_close(ab_norm, (pts[200] / 110).view(1, 2, 1, 1).expand(1, 2, 32, 32))

    seen = {}
    net.model1.register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0]))
    L = torch.tensor([0.0, 25.0, 50.0, 100.0]).view(1, 1, 2, 2).repeat(1, 1, 4, 4)
    net(normalize_l(L))
    torch.testing.assert_close(seen["x"], (L - 50) / 100)  # colorizers/base_color.py: (L - l_cent) / l_norm


def test_shape_mismatch_is_refused_naming_the_key_and_both_shapes():
    state = released_state_dict()
    state["model4.2.weight"] = torch.zeros(512, 256, 3, 3)
    net = ZhangECCV16()
    before = net.model1[0].weight.clone()
    with pytest.raises(ShapeMismatchError) as err:
        net.load_released(state)
    text = str(err.value)
    assert "model4.2.weight" in text and "(512, 256, 3, 3)" in text and "(512, 512, 3, 3)" in text
    assert torch.equal(net.model1[0].weight, before)  # nothing copied
    report = net.load_released(state, strict_shapes=False)
    assert report.mismatched == [("model4.2.weight", (512, 256, 3, 3), (512, 512, 3, 3))]
    assert "model4.2.weight" not in report.loaded and torch.equal(
        net.model1[0].weight, state["model1.0.weight"]
    )


def test_missing_and_unexpected_keys_are_reported_and_logged(caplog):
    state = released_state_dict()
    del state["model_out.weight"]
    state["extra.weight"] = torch.zeros(3)
    with caplog.at_level(logging.WARNING, logger="gan_colorize.models.zhang"):
        report = ZhangECCV16().load_released(state)
    assert report.missing == ["model_out.weight"] and report.unexpected == ["extra.weight"]
    assert "model_out.weight" in caplog.text and "extra.weight" in caplog.text
    with pytest.raises(ValueError, match="no tensor matches"):
        ZhangECCV16().load_released({"something.weight": torch.zeros(1)})


def test_batchnorm_counters_are_never_reported_missing():
    report = load_by_name(nn.BatchNorm2d(3), {"weight": torch.ones(3)}, "x")
    assert report.loaded == ["weight"] and report.missing == ["bias", "running_mean", "running_var"]


# ---------------------------------------------------------------- zhang_regression
def test_zhang_regression_output_shape_and_range():
    net = ZhangRegression().eval()
    for h, w in ((64, 64), (70, 90)):
        out = net(torch.rand(2, 1, h, w) * 2 - 1)
        assert out.shape == (2, 2, h, w) and out.abs().max() <= 1 and out.std() > 0
    trunk = {k for k in ZhangECCV16().state_dict() if not k.startswith(("model8.6", "model_out"))}
    assert trunk <= set(net.state_dict())  # the released trunk's names


# ---------------------------------------------------------------- unet_zhang
ENCODER5 = [
    n for n, _ in RELEASED_ECCV16 if n.split(".")[0] in {"model1", "model2", "model3", "model4", "model5"}
]


def small_unet_zhang(**kw):
    return UNetZhang(width=8, **kw)


def test_unet_zhang_output_and_encoder_names():
    net = small_unet_zhang().eval()
    out = net(torch.rand(2, 1, 64, 64) * 2 - 1)
    assert out.shape == (2, 2, 64, 64) and out.abs().max() <= 1 and out.std() > 0
    assert net(torch.rand(1, 1, 70, 90)).shape == (1, 2, 70, 90)
    enc = {k for k in net.state_dict() if k.startswith("encoder.") and not k.endswith("num_batches_tracked")}
    assert enc == {"encoder." + n for n in ENCODER5}
    assert {id(p) for p in net.encoder_parameters()} == {id(p) for p in net.encoder.parameters()}
    bilinear = small_unet_zhang(norm="instance", upsample="bilinear", encoder_blocks=3).eval()
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in bilinear.modules())
    assert bilinear(torch.rand(1, 1, 64, 64)).shape == (1, 2, 64, 64)


def test_init_from_released_file_copies_exactly_the_encoder(released_file, caplog):
    net = small_unet_zhang(encoder_blocks=5)
    decoder_before = {k: v.clone() for k, v in net.state_dict().items() if not k.startswith("encoder.")}
    with caplog.at_level(logging.DEBUG, logger="gan_colorize.models.zhang"):
        copied = net.init_from(released_file)
    assert copied == ["encoder." + n for n in ENCODER5]
    assert f"{released_file}: copied {len(ENCODER5)} tensors" in caplog.text  # INFO: the count
    assert "encoder.model5.6.running_var" in caplog.text  # DEBUG: the names
    state, own = released_state_dict(), net.state_dict()
    for name in ENCODER5:
        assert torch.equal(own["encoder." + name], state[name]), name
    for name, before in decoder_before.items():
        assert torch.equal(own[name], before), name


def test_init_from_run_checkpoint_file_and_run_folder(tmp_path):
    source = ZhangECCV16()
    ckpt = tmp_path / "run" / "checkpoints" / "step_00000100"
    ckpt.mkdir(parents=True)
    payload = {
        "format": "gan-colorize-generator/1",
        "config": {"model": {"generator": {"type": "zhang_eccv16"}}},
        "state_dict": source.state_dict(),
        "step": 100,
        "ema": True,
    }
    torch.save(payload, ckpt / "generator.pt")
    for path in (ckpt / "generator.pt", tmp_path / "run"):
        net = small_unet_zhang(encoder_blocks=4)
        copied = net.init_from(path)
        assert copied == [
            "encoder." + k
            for k in source.state_dict()
            if k.split(".")[0] in {"model1", "model2", "model3", "model4"}
        ]
        torch.testing.assert_close(net.encoder.model4[4].weight, source.model4[4].weight, rtol=0, atol=0)


def test_init_from_errors(tmp_path, released_file):
    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        small_unet_zhang().init_from(missing)
    bad = released_state_dict()
    bad["model2.0.weight"] = torch.zeros(128, 32, 3, 3)
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(
        ShapeMismatchError, match=r"encoder\.model2\.0\.weight .*\(128, 32, 3, 3\).*\(128, 64, 3, 3\)"
    ):
        small_unet_zhang().init_from(tmp_path / "bad.pth")
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="no tensor matches"):
        small_unet_zhang().init_from(tmp_path / "other.pth")
    shallow = {k: v for k, v in released_state_dict().items() if not k.startswith(("model6", "model7"))}
    torch.save(shallow, tmp_path / "shallow.pth")
    deep = small_unet_zhang(encoder_blocks=6)
    before = deep.encoder.model1[0].weight.clone()
    with pytest.raises(ValueError, match="has no tensor for encoder.model6.0.weight"):
        deep.init_from(tmp_path / "shallow.pth")
    assert torch.equal(deep.encoder.model1[0].weight, before)  # all or nothing


def test_frozen_encoder_keeps_weights_and_batchnorm_statistics():
    torch.manual_seed(0)
    net = small_unet_zhang(encoder_blocks=3)
    net.set_encoder_frozen(True)
    net.train()
    assert all(not p.requires_grad for p in net.encoder_parameters())
    assert not net.encoder.model1[4].training and net.up1.fuse[1].training
    stats = net.encoder.model2[4].running_mean.clone()
    net(torch.rand(2, 1, 32, 32)).mean().backward()
    assert torch.equal(net.encoder.model2[4].running_mean, stats)
    assert all(p.grad is None for p in net.encoder_parameters()) and net.up1.fuse[0].weight.grad is not None
    net.set_encoder_frozen(False)
    assert all(p.requires_grad for p in net.encoder_parameters()) and net.encoder.model1[4].training
    net.set_encoder_frozen(True, stop_gradients=False)  # DDP: gradients flow, the optimizer holds lr 0
    assert all(p.requires_grad for p in net.encoder_parameters()) and not net.encoder.model1[4].training


def test_read_state_dict_rejects_unknown_generator_format(tmp_path):
    torch.save({"format": "other/2", "state_dict": {}}, tmp_path / "g.pt")
    with pytest.raises(ValueError, match="unknown generator file format 'other/2'"):
        model_init.read_state_dict(tmp_path / "g.pt")


# ---------------------------------------------------------------- overfitting one crop
def astronaut_crop(top: int, left: int, size: int):
    skimage_data = pytest.importorskip("skimage.data")
    rgb = torch.from_numpy(skimage_data.astronaut()[top : top + size, left : left + size].copy())
    return uint8_to_lab_norm(rgb.permute(2, 0, 1)[None])


def nearest_bin_one_hot(ab_norm: torch.Tensor) -> torch.Tensor:
    """One-hot (N,313,h,w) of the bin nearest to each pixel's ab, at the resolution given."""
    pts = torch.from_numpy(pts_in_hull()).float()  # (313, 2) ab bin centres
    ab = ab_norm.permute(0, 2, 3, 1) * 110.0  # the one ab scale, gan_colorize.color.lab.AB_SCALE
    nearest = torch.cdist(ab.reshape(-1, 2), pts).argmin(1).view(ab.shape[:3])
    return F.one_hot(nearest, 313).permute(0, 3, 1, 2).float()


def overfit(net, loss_fn, L, steps, lr):
    torch.manual_seed(0)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    losses = []
    for _ in range(steps):
        loss = loss_fn(net(L))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses[0], min(losses[-5:])


# Crops: (224, 128) is the helmet against the flag (structure and colour everywhere). The Zhang nets
# predict at 1/4 resolution, whose bilinear upsampling alone misses 14% of that crop's L1; (432, 8) is a
# 32 px crop where it misses 4% while a constant colour still misses 22%, so a 90% fall means learning.
# The Zhang nets cost ~0.2 s a step on one core, hence 32 px and few steps.
@pytest.mark.slow
@pytest.mark.parametrize(
    "name, build, crop, steps, lr",
    [
        ("unet", lambda: UNet(depth=4, width=16, dropout=False), (224, 128, 64), 200, 2e-3),
        ("unet_zhang", lambda: UNetZhang(width=8, encoder_blocks=3), (224, 128, 64), 200, 2e-3),
        ("zhang_regression", ZhangRegression, (432, 8, 32), 40, 3e-4),
        ("zhang_eccv16", ZhangECCV16, (432, 8, 32), 40, 3e-4),
    ],
)
def test_generator_overfits_one_crop(name, build, crop, steps, lr):
    torch.manual_seed(0)
    L, ab = astronaut_crop(*crop)
    net = build()
    if net.output_kind == "bins":
        target = nearest_bin_one_hot(F.avg_pool2d(ab, 4))

        def loss_fn(logits):  # soft-target cross-entropy (here with one-hot targets)
            return -(target * F.log_softmax(logits, dim=1)).sum(1).mean()
    else:

        def loss_fn(pred):
            return (pred - ab).abs().mean()

    start = time.perf_counter()
    first, last = overfit(net, loss_fn, L, steps, lr)
    elapsed = time.perf_counter() - start
    assert last < 0.1 * first, f"{name}: loss {first:.4f} -> {last:.4f} in {steps} steps ({elapsed:.1f} s)"


def test_init_from_an_exported_safetensors_generator(tmp_path):
    from gan_colorize.config import load_config
    from gan_colorize.inference.export import export_generator
    from gan_colorize.models.io import save_generator

    source = ZhangECCV16()
    config = load_config(None, ["model.generator={type: zhang_eccv16}", "loss.objective=classification"])
    save_generator(tmp_path / "generator.pt", source, config, step=7, ema=False)
    exported = export_generator(tmp_path / "generator.pt", tmp_path / "cls.safetensors", fmt="safetensors")
    net = small_unet_zhang(encoder_blocks=4)
    assert net.init_from(exported)
    torch.testing.assert_close(net.encoder.model4[4].weight, source.model4[4].weight, rtol=0, atol=0)


def test_init_from_a_file_with_nan_is_refused_and_copies_nothing(tmp_path):
    source, target = small_unet_zhang(), small_unet_zhang()
    state = source.state_dict()
    state["encoder.model4.4.weight"] = state["encoder.model4.4.weight"].clone()
    state["encoder.model4.4.weight"][0, 0, 0, 0] = float("inf")
    damaged = tmp_path / "damaged.pth"
    torch.save(state, damaged)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(
        ValueError, match=r"damaged\.pth: tensor encoder\.model4\.4\.weight holds NaN or infinite"
    ):
        target.init_from(damaged)
    for key, tensor in target.state_dict().items():
        torch.testing.assert_close(tensor, before[key], rtol=0, atol=0)


def test_a_link_that_loops_or_dangles_is_named_as_such(tmp_path):
    """Hostile review of #13: a symlink loop given as init_from or --checkpoint "does not exist"."""
    from gan_colorize.models.io import read_generator_file

    loop, dangling = tmp_path / "loop.pth", tmp_path / "dangling.pth"
    loop.symlink_to(loop)
    dangling.symlink_to(tmp_path / "gone.pth")
    with pytest.raises(FileNotFoundError, match=r"loop\.pth is a symbolic link in a loop"):
        small_unet_zhang().init_from(loop)
    with pytest.raises(
        FileNotFoundError, match=r"dangling\.pth is a symbolic link to .*gone\.pth, which does"
    ):
        read_generator_file(dangling)
    with pytest.raises(FileNotFoundError, match=r"absent\.pth does not exist"):
        read_generator_file(tmp_path / "absent.pth")
    chain = tmp_path / "chain.pth"
    chain.symlink_to(dangling)
    with pytest.raises(
        FileNotFoundError, match=r"chain\.pth is a symbolic link to .*dangling\.pth, which leads"
    ):
        read_generator_file(chain)
    from gan_colorize.config import ConfigError, read_yaml

    with pytest.raises(ConfigError, match=r"config file .* is a folder, not a file"):
        read_yaml(tmp_path)


def test_damaged_files_are_named_in_one_short_reason(tmp_path):
    """Hostile review: an empty file said ": EOFError", a pickle not written by torch.save "Invalid
    magic number; corrupt file?", a cut-short zip torch's four sentences of advice."""
    import pickle

    from gan_colorize.models.io import read_generator_file

    whole = tmp_path / "whole.pt"
    torch.save({"format": "gan-colorize-generator/1"}, whole)
    files = {
        "empty.pt": (b"", "the file is empty or cut short"),
        "pickle.pt": (
            pickle.dumps({"a": 1}, protocol=2),
            r"not a torch file of tensors \(invalid magic number\)",
        ),
        "cut.pt": (
            whole.read_bytes()[:100],
            r"a damaged or cut-short torch file \(its zip archive cannot be read\)",
        ),
    }
    for name, (content, reason) in files.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(
            ValueError, match=rf"{name}: not a readable gan-colorize generator file: {reason}$"
        ):
            read_generator_file(tmp_path / name)
    # the format key alone: a traceback (KeyError) in train's init_from and in export before
    with pytest.raises(ValueError, match=r"whole\.pt: an incomplete gan-colorize generator file \(no config"):
        read_generator_file(whole)
    with pytest.raises(ValueError, match=r"whole\.pt: not a state dict"):
        small_unet_zhang().init_from(whole)


class RunsCodeWhenUnpickled:
    """Unpickling this creates ``marker`` (``builtins.open``): a file whose loading runs code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize(
    "writer, reason",
    [
        ("torch.save", r"holds a pickled object \(io\.open\)"),
        ("pickle protocol 0", r"holds a pickled object \(io\.open\)"),  # no torch framing at all
        ("pickle protocol 4", r"not a torch file of tensors \(unreadable: Unsupported operand 149\)"),
    ],
)
def test_every_form_of_a_pickle_with_code_is_refused_saying_why(tmp_path, writer, reason):
    """The hostile review: a raw pickle of a function (``open``) was "unreadable: damaged", and one of
    protocol 4 printed torch's "Detected pickle protocol" warning before our error line."""
    import pickle
    import warnings

    marker, bad = tmp_path / "ran", tmp_path / "evil.pth"
    planted = RunsCodeWhenUnpickled(marker)
    if writer == "torch.save":
        torch.save({"model1.0.weight": planted}, bad)
    elif writer.endswith("0"):
        bad.write_bytes(pickle.dumps(planted, protocol=0))
    else:
        bad.write_bytes(pickle.dumps({"model1.0.weight": planted}, protocol=4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        with pytest.raises(ValueError, match=reason):
            small_unet_zhang().init_from(bad)
    assert not marker.exists()


def test_init_from_a_pickle_with_code_is_one_clean_error(tmp_path, capsys):
    """Issue #10 item 9: nothing ran, but the result was a traceback repeating torch's advice to
    retry with weights_only=False. Now one line naming the file, and the train command exits 2."""
    from pathlib import Path

    from gan_colorize.cli import main

    marker, bad = tmp_path / "ran", tmp_path / "init.pth"
    torch.save({"model1.0.weight": RunsCodeWhenUnpickled(marker)}, bad)
    with pytest.raises(ValueError) as caught:
        small_unet_zhang().init_from(bad)
    message = str(caught.value)
    assert str(bad) in message and "\n" not in message and "weights_only" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    config = Path(__file__).resolve().parents[1] / "configs" / "tiny" / "unet_zhang_gan.yaml"
    argv = ["train", "--config", str(config), "--run-dir", str(tmp_path / "run")]
    assert main([*argv, "--set", f"model.init_from={bad}", "train.steps=1", "train.warmup_l1_steps=0"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "weights_only" not in err
    [line] = [line for line in err.splitlines() if line.startswith("error:")]
    assert str(bad) in line and line.startswith("error: model.init_from: ")
    assert not marker.exists()
    missing = tmp_path / "no_such_run"
    steps = ["train.steps=1", "train.warmup_l1_steps=0"]
    assert main([*argv, "--set", f"model.init_from={missing}", *steps]) == 2
    [line] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert line.startswith("error: model.init_from: ") and str(missing) in line
