"""Tests for gan_colorize.models.efficientnet_lite: the bundled ImageNet weights loaded into our
network classify a photograph correctly, and the TensorFlow "SAME" padding they were trained with."""

import pytest
import torch
import torch.nn.functional as F

from gan_colorize.models.efficientnet_lite import SameConv2d, load_efficientnet_lite0, preprocess_uint8


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
