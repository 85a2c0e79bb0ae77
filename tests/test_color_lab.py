"""gan_colorize.color.lab: the Lab conversion against scikit-image, its gradients, and the one
normalisation (L / 50 - 1, ab / 110)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import color, data

from gan_colorize.color import lab

TOL = 1e-3  # max abs difference to skimage, in Lab units and in sRGB [0, 1] units


def to_nchw(hwc: np.ndarray, dtype=torch.float64) -> torch.Tensor:
    """(H, W, 3) or (N, H, W, 3) numpy -> (N, 3, H, W) torch."""
    x = torch.from_numpy(np.ascontiguousarray(hwc))
    if x.ndim == 3:
        x = x[None]
    return x.permute(0, 3, 1, 2).to(dtype)


def to_hwc(nchw: torch.Tensor) -> np.ndarray:
    return nchw.detach().permute(0, 2, 3, 1).double().numpy()


def random_rgb(n: int = 4096, seed: int = 0) -> np.ndarray:
    rgb = np.random.default_rng(seed).random((1, n, 3))
    # the corners of the cube and the primaries, where a and b take their extremes
    corners = np.array([[[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)]], dtype=np.float64)
    return np.concatenate([rgb, corners], axis=1)


# ---------------------------------------------------------------- agreement with skimage
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_rgb_to_lab_matches_skimage_on_random_colours(dtype):
    rgb = random_rgb()
    ours = to_hwc(lab.rgb_to_lab(to_nchw(rgb, dtype)))[0]
    np.testing.assert_allclose(ours, color.rgb2lab(rgb), rtol=0, atol=TOL)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_lab_to_rgb_matches_skimage_on_random_colours(dtype):
    lab_values = color.rgb2lab(random_rgb(seed=1))  # in gamut
    ours = to_hwc(lab.lab_to_rgb(to_nchw(lab_values, dtype)))[0]
    np.testing.assert_allclose(ours, color.lab2rgb(lab_values), rtol=0, atol=TOL)


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_photos_match_skimage_both_directions(name, dtype):
    photo = getattr(data, name)()[::2, ::2]  # half resolution keeps the test fast
    expected_lab = color.rgb2lab(photo)
    ours_lab = lab.rgb_to_lab(to_nchw(photo.astype(np.float64) / 255.0, dtype))
    np.testing.assert_allclose(to_hwc(ours_lab)[0], expected_lab, rtol=0, atol=TOL)
    ours_rgb = to_hwc(lab.lab_to_rgb(to_nchw(expected_lab, dtype)))[0]
    np.testing.assert_allclose(ours_rgb, color.lab2rgb(expected_lab), rtol=0, atol=TOL)


def test_white_black_and_grey_have_hand_values():
    grey = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64).view(1, 1, 3, 1).expand(1, 3, 3, 1)
    out = lab.rgb_to_lab(grey.contiguous())[0, :, :, 0]
    # sRGB 0.5 -> linear ((0.5 + 0.055) / 1.055)^2.4 = 0.21404 -> L = 116 * Y^(1/3) - 16 = 53.389
    np.testing.assert_allclose(out[0].numpy(), [0.0, 53.389, 100.0], atol=2e-3)
    # a grey has (almost) no chroma; skimage's rounded matrix leaves |a|, |b| < 0.01 at white
    assert out[1:].abs().max() < 0.01


def test_round_trip_is_identity_in_gamut():
    rgb = to_nchw(random_rgb(seed=2))
    back = lab.lab_to_rgb(lab.rgb_to_lab(rgb))
    assert (back - rgb).abs().max() < 1e-6


# ---------------------------------------------------------------- out of gamut
def test_out_of_gamut_lab_is_clipped_never_nan():
    rng = np.random.default_rng(3)
    n = 4096
    values = np.stack(
        [rng.uniform(-20, 130, n), rng.uniform(-250, 250, n), rng.uniform(-250, 250, n)], axis=-1
    )
    values[:4] = [[0, 200, -200], [100, -200, 200], [50, 0, 300], [-10, 0, 0]]
    out = lab.lab_to_rgb(to_nchw(values[None]))
    assert torch.isfinite(out).all()
    assert out.min() >= 0 and out.max() <= 1
    assert (out == 0).any() and (out == 1).any()  # the test really leaves the gamut
    # and clipped as skimage clips (in its L range; skimage warns about the negative Z it zeroes)
    in_l = (values[:, 0] >= 0) & (values[:, 0] <= 100)
    with pytest.warns(UserWarning):
        expected = color.lab2rgb(values[in_l])
    np.testing.assert_allclose(to_hwc(out)[0, 0][in_l], expected, rtol=0, atol=TOL)


# ---------------------------------------------------------------- gradients
def knee_rgb() -> torch.Tensor:
    """Black, white, the sRGB knee 0.04045, and a grey whose Y sits on the 0.008856 knee."""
    y_knee_srgb = float(lab.linear_to_srgb(torch.tensor(lab._EPS, dtype=torch.float64)))
    values = [0.0, 1.0, 0.04045, y_knee_srgb, 0.5, 1e-12, 1 - 1e-12]
    pixels = [[v, v, v] for v in values] + [[1.0, 0.0, 0.0], [0.0, 0.04045, 1.0], [0.0, 0.0, 0.0]]
    return to_nchw(np.array(pixels, dtype=np.float64)[None])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_rgb_to_lab_gradients_finite_at_black_white_and_knees(dtype):
    rgb = knee_rgb().to(dtype).requires_grad_(True)
    lab.rgb_to_lab(rgb).sum().backward()
    assert torch.isfinite(rgb.grad).all()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_lab_to_rgb_gradients_finite_at_black_white_and_knees(dtype):
    f_knee_l = 116 * lab._F_EPS - 16  # L whose f(y) is exactly the 0.2068966 knee
    values = [[0, 0, 0], [100, 0, 0], [f_knee_l, 0, 0], [f_knee_l, 30, -30], [8.0, 0, 0]]
    values += [[50, 300, -300], [0, 100, 100], [-5, 0, 0], [120, 0, 0]]  # clipped and beyond L's range
    lab_t = to_nchw(np.array(values, dtype=np.float64)[None], dtype).requires_grad_(True)
    lab.lab_to_rgb(lab_t).sum().backward()
    assert torch.isfinite(lab_t.grad).all()


@pytest.mark.parametrize("fn, knee", [(lab.srgb_to_linear, 0.04045), (lab.linear_to_srgb, 0.0031308)])
def test_companding_gradients_finite_at_their_knee_and_zero(fn, knee):
    x = torch.tensor([0.0, knee, np.nextafter(knee, 1), 1.0], dtype=torch.float64, requires_grad=True)
    fn(x).sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad > 0).all()


def test_gradients_agree_with_finite_differences():
    rgb = to_nchw(np.random.default_rng(4).uniform(0.1, 0.9, (2, 3, 3))).requires_grad_(True)
    assert torch.autograd.gradcheck(lab.rgb_to_lab, (rgb,))
    lab_t = lab.rgb_to_lab(rgb.detach()).requires_grad_(True)
    assert torch.autograd.gradcheck(lab.lab_to_rgb, (lab_t,))


# ---------------------------------------------------------------- shapes and types
def test_batched_images_are_converted_independently():
    rng = np.random.default_rng(5)
    batch = to_nchw(rng.random((3, 5, 7, 3)))
    out = lab.rgb_to_lab(batch)
    assert out.shape == (3, 3, 5, 7)
    for i in range(3):
        torch.testing.assert_close(out[i : i + 1], lab.rgb_to_lab(batch[i : i + 1]))
    back = lab.lab_to_rgb(out)
    assert back.shape == batch.shape
    L_norm, ab_norm = lab.rgb_to_lab_norm(batch)
    assert L_norm.shape == (3, 1, 5, 7) and ab_norm.shape == (3, 2, 5, 7)


@pytest.mark.parametrize("shape", [(3, 4, 4), (1, 1, 4, 4), (1, 4, 4, 3)])
def test_wrong_shape_is_rejected(shape):
    with pytest.raises(ValueError, match="N, 3, H, W"):
        lab.rgb_to_lab(torch.zeros(shape))
    with pytest.raises(ValueError, match="N, 3, H, W"):
        lab.lab_to_rgb(torch.zeros(shape))


def test_integer_input_is_rejected_with_a_pointer():
    with pytest.raises(TypeError, match="uint8_to_lab_norm"):
        lab.rgb_to_lab(torch.zeros(1, 3, 2, 2, dtype=torch.uint8))
    with pytest.raises(TypeError, match="uint8"):
        lab.uint8_to_lab_norm(torch.zeros(1, 3, 2, 2))


# ---------------------------------------------------------------- the normalisation
def test_normalisation_hand_values():
    L = torch.tensor([0.0, 25.0, 50.0, 100.0])
    torch.testing.assert_close(lab.normalize_l(L), torch.tensor([-1.0, -0.5, 0.0, 1.0]))
    ab = torch.tensor([-110.0, -55.0, 0.0, 22.0, 110.0])
    torch.testing.assert_close(lab.normalize_ab(ab), torch.tensor([-1.0, -0.5, 0.0, 0.2, 1.0]))
    torch.testing.assert_close(lab.denormalize_l(lab.normalize_l(L)), L)
    torch.testing.assert_close(lab.denormalize_ab(lab.normalize_ab(ab)), ab)


def test_rgb_to_lab_norm_is_lab_scaled():
    rgb = to_nchw(random_rgb(256, seed=6))
    L_norm, ab_norm = lab.rgb_to_lab_norm(rgb)
    full = lab.rgb_to_lab(rgb)
    torch.testing.assert_close(L_norm, full[:, :1] / 50 - 1)
    torch.testing.assert_close(ab_norm, full[:, 1:] / 110)


def test_lab_norm_to_rgb_of_zero_is_mid_grey():
    # L = 50: Y = (66 / 116)^3 = 0.18419, sRGB = 1.055 * Y^(1 / 2.4) - 0.055 = 0.46635
    rgb = lab.lab_norm_to_rgb(torch.zeros(1, 1, 1, 1), torch.zeros(1, 2, 1, 1))
    torch.testing.assert_close(rgb, torch.full((1, 3, 1, 1), 0.46635), atol=2e-4, rtol=0)
    assert lab.lab_norm_to_rgb(torch.zeros(1, 1, 1, 1).half(), torch.zeros(1, 2, 1, 1).half()).dtype == (
        torch.float32
    )


def test_uint8_to_lab_norm_range_and_values():
    steps = np.unique(np.r_[np.arange(0, 256, 5), 255]).astype(np.uint8)
    cube = np.stack(np.meshgrid(steps, steps, steps, indexing="ij"), axis=-1).reshape(1, -1, 3)
    batch = torch.from_numpy(cube).permute(0, 2, 1)[..., None]  # (1, 3, N, 1) uint8
    L_norm, ab_norm = lab.uint8_to_lab_norm(batch)
    assert L_norm.dtype == ab_norm.dtype == torch.float32
    assert L_norm.min() >= -1 and L_norm.max() <= 1
    assert L_norm.min() == -1 and L_norm.max() > 0.9999  # black and white reach the ends
    assert ab_norm.abs().max() <= 1.1
    assert ab_norm.abs().max() > 0.9  # sRGB blue: b = -107.86
    expected = color.rgb2lab(cube[0].astype(np.float64) / 255.0)
    np.testing.assert_allclose(L_norm[0, 0, :, 0].numpy(), expected[:, 0] / 50 - 1, atol=1e-5)
    np.testing.assert_allclose(ab_norm[0, :, :, 0].numpy().T, expected[:, 1:] / 110, atol=1e-5)


def test_to_uint8_rounds_to_nearest_and_clips():
    rgb = (
        torch.tensor([-0.5, 0.0, 0.499 / 255, 0.501 / 255, 0.5, 1.0, 1.5]).view(1, 1, 7, 1).expand(1, 3, 7, 1)
    )
    out = lab.to_uint8(rgb)[0, 0, :, 0].tolist()
    assert out == [0, 0, 0, 1, 128, 255, 255]


# ---------------------------------------------------------------- more photos, extremes, round trips
@pytest.mark.parametrize("name", ["rocket", "motorcycle_left", "motorcycle_right"])
def test_other_builtin_photos_match_skimage(name):
    if name.startswith("motorcycle"):
        left, right, _ = data.stereo_motorcycle()
        photo = (left if name.endswith("left") else right)[::2, ::2]
    else:
        photo = getattr(data, name)()[::2, ::2]
    ours = to_hwc(lab.rgb_to_lab(to_nchw(photo, torch.float32) / 255.0))[0]
    np.testing.assert_allclose(ours, color.rgb2lab(photo), rtol=0, atol=TOL)


def test_srgb_red_has_the_tabulated_lab_value():
    """sRGB (1, 0, 0) is Lab (53.24, 80.09, 67.20) under D65 in every colour-science table."""
    red = lab.rgb_to_lab(torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64).view(1, 3, 1, 1))
    np.testing.assert_allclose(red.flatten().numpy(), [53.24, 80.09, 67.20], atol=0.01)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_lab_to_rgb_matches_skimage_on_random_lab_boxes(dtype):
    """The whole L x a x b box, mostly out of gamut, in both precisions."""
    rng = np.random.default_rng(7)
    n = 4096
    values = np.stack([rng.uniform(0, 100, n), rng.uniform(-128, 127, n), rng.uniform(-128, 127, n)], axis=-1)
    ours = to_hwc(lab.lab_to_rgb(to_nchw(values[None], dtype)))[0, 0]
    with pytest.warns(UserWarning):  # skimage says it zeroes negative Z; lab.py does the same quietly
        expected = color.lab2rgb(values)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=TOL)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_extreme_lab_and_rgb_stay_finite(dtype):
    axis = torch.tensor([-1e4, -500.0, 0.0, 1e-6, 8.0, 100.0, 500.0, 1e4], dtype=dtype)
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij")).reshape(1, 3, -1, 1)
    rgb = lab.lab_to_rgb(grid)
    assert torch.isfinite(rgb).all() and rgb.min() >= 0 and rgb.max() <= 1
    # generators and interpolations overshoot [0, 1]: rgb -> Lab must stay finite too
    overshoot = (
        torch.tensor([-0.5, -1e-3, 0.0, 1.0, 1.001, 2.0], dtype=dtype).view(1, 1, 6, 1).repeat(1, 3, 1, 1)
    )
    assert torch.isfinite(lab.rgb_to_lab(overshoot)).all()


def test_uint8_images_survive_the_normalised_round_trip_exactly():
    """uint8 -> (L_norm, ab_norm) in float32 -> sRGB -> uint8 gives back every pixel: the data
    pipeline's conversion loses nothing a PNG could show."""
    u8 = torch.from_numpy(np.random.default_rng(8).integers(0, 256, (2, 3, 64, 96), dtype=np.uint8))
    L_norm, ab_norm = lab.uint8_to_lab_norm(u8)
    assert torch.equal(lab.to_uint8(lab.lab_norm_to_rgb(L_norm, ab_norm)), u8)


def test_gradients_through_the_normalised_round_trip_are_finite():
    """What a perceptual or colourfulness loss on the reconstructed RGB back-propagates through,
    with black and white pixels and an ab pushed out of gamut."""
    rgb = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(9))
    rgb[0, :, 0, 0], rgb[0, :, 0, 1] = 0.0, 1.0
    rgb.requires_grad_(True)
    L_norm, ab_norm = lab.rgb_to_lab_norm(rgb)
    lab.lab_norm_to_rgb(L_norm, ab_norm * 1.5).sum().backward()
    assert torch.isfinite(rgb.grad).all() and rgb.grad.abs().sum() > 0
