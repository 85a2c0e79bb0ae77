"""The 313-bin codec of Zhang et al. 2016 (gan_colorize/color/bins.py), against hand-written
numpy references and the released resources."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data

from gan_colorize.color import bins
from gan_colorize.color.lab import rgb_to_lab

CENTERS = np.load(resources.files("gan_colorize.color") / "resources" / "pts_in_hull.npy")


@pytest.fixture(scope="module")
def codec() -> bins.ABCodec:
    return bins.ABCodec()


@pytest.fixture(scope="module")
def astronaut_ab() -> torch.Tensor:
    """Real photo pixels: skimage's astronaut (512 px) in Lab, subsampled to 128 px."""
    rgb = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].float() / 255.0
    return bins.downsample_ab(rgb_to_lab(rgb)[:, 1:], 4)


def numpy_sq_distances(points: np.ndarray) -> np.ndarray:
    return ((points[:, None, :] - CENTERS[None, :, :].astype(np.float64)) ** 2).sum(-1)


def bin_of(centre: tuple[int, int]) -> int:
    """Index of the bin whose centre is ``centre`` in the released table."""
    return int(np.flatnonzero((np.asarray(centre) == CENTERS).all(1))[0])


def random_ab(n: int = 2, h: int = 5, w: int = 7, seed: int = 0) -> torch.Tensor:
    return (torch.rand(n, 2, h, w, generator=torch.Generator().manual_seed(seed)) - 0.5) * 200


# ---------------------------------------------------------------- the table
def test_bin_centres_are_the_released_table(codec):
    centers = bins.load_bin_centers()
    assert centers.shape == (313,) + (2,) and bins.N_BINS == 313
    np.testing.assert_array_equal(centers, CENTERS)  # released order, never recomputed
    assert np.issubdtype(centers.dtype, np.integer)
    assert (centers % 10 == 0).all()  # a grid of size 10
    assert len({tuple(c) for c in centers}) == 313
    assert [0, 0] in centers.tolist()
    np.testing.assert_array_equal(codec.centers.numpy(), CENTERS.astype(np.float32))


def test_imagenet_prior_is_a_distribution_peaked_on_grey():
    prior = bins.load_imagenet_prior()
    assert prior.shape == (313,) and (prior > 0).all()
    assert prior.sum() == pytest.approx(1.0, abs=1e-9)
    assert tuple(CENTERS[prior.argmax()]) == (0, 0)


def test_codec_state_dict_is_empty(codec):
    assert codec.state_dict() == {}  # the bins are package data, not checkpoint data


# ---------------------------------------------------------------- hard and soft encoding
def test_nearest_bin_matches_brute_force_inside_and_outside_the_gamut(codec):
    ab = random_ab(seed=1)
    ab[0, :, 0, 0] = torch.tensor([120.0, -130.0])  # far outside every cell
    idx = codec.nearest_bin(ab)
    pts = ab.permute(0, 2, 3, 1).reshape(-1, 2).double().numpy()
    expected = numpy_sq_distances(pts).argmin(1).reshape(idx.shape)
    np.testing.assert_array_equal(idx.numpy(), expected)
    assert idx.dtype == torch.int64


@pytest.mark.parametrize("k", [1, 5, 10])
def test_soft_encoding_matches_the_gaussian_over_k_nearest(codec, k):
    ab = random_ab(seed=2)
    z = codec.soft_encode(ab, neighbours=k, sigma=5.0)
    assert z.shape == (2, 313, 5, 7) and z.dtype == torch.float32
    torch.testing.assert_close(z.sum(1), torch.ones(2, 5, 7))
    assert ((z > 0).sum(1) == k).all()  # exactly K neighbours
    # the nearest bin gets the largest weight
    torch.testing.assert_close(z.argmax(1), codec.nearest_bin(ab), rtol=0, atol=0)

    pts = ab.permute(0, 2, 3, 1).reshape(-1, 2).double().numpy()
    d2 = numpy_sq_distances(pts)
    expected = np.zeros_like(d2)
    for row, dist in enumerate(d2):
        near = np.argsort(dist)[:k]
        weights = np.exp(-dist[near] / (2 * 5.0**2))
        expected[row, near] = weights / weights.sum()
    got = z.permute(0, 2, 3, 1).reshape(-1, 313).double().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_soft_encoding_hand_case(codec):
    # ab = (2, 3): squared distances 13, 53, 73, 113, 153 to the five nearest centres (the sixth,
    # (0, -10), is at 173), weights exp(-d^2 / 2 sigma^2) with sigma = 5, normalised
    z = codec.soft_encode(torch.tensor([2.0, 3.0]).view(1, 2, 1, 1))[0, :, 0, 0]
    near = {(0, 0): 13, (0, 10): 53, (10, 0): 73, (10, 10): 113, (-10, 0): 153}
    raw = {centre: np.exp(-d2 / 50.0) for centre, d2 in near.items()}
    total = sum(raw.values())
    for centre, weight in raw.items():
        assert float(z[bin_of(centre)]) == pytest.approx(weight / total, rel=1e-5)
    assert int((z > 0).sum()) == 5
    assert float(z[bin_of((0, 0))]) == pytest.approx(0.5137, abs=1e-4)


def test_soft_encoding_rejects_bad_arguments(codec):
    with pytest.raises(ValueError, match="neighbours"):
        codec.soft_encode(random_ab(), neighbours=0)
    with pytest.raises(ValueError, match="sigma"):
        codec.soft_encode(random_ab(), sigma=0)
    with pytest.raises(ValueError, match=r"\(N, 2, H, W\)"):
        codec.soft_encode(torch.zeros(1, 3, 4, 4))


def test_downsample_takes_every_fourth_pixel_from_the_first():
    ab = torch.arange(2 * 2 * 8 * 8, dtype=torch.float32).view(2, 2, 8, 8)
    small = bins.downsample_ab(ab, 4)
    assert small.shape == (2, 2, 2, 2)
    assert small[1, 1, 1, 1] == ab[1, 1, 4, 4] and small[0, 0, 0, 1] == ab[0, 0, 0, 4]
    assert bins.ABCodec.downsample_ab(ab, 1) is ab


# ---------------------------------------------------------------- decoding
def log_targets(z: torch.Tensor) -> torch.Tensor:
    return torch.log(z.clamp_min(1e-30))  # logits whose softmax is z


def test_encode_then_mean_decode_recovers_real_photo_colours(codec, astronaut_ab):
    z = codec.soft_encode(astronaut_ab)
    decoded = codec.decode(log_targets(z), mode="mean")
    error = (decoded - astronaut_ab).abs()
    # measured 0.13 mean, 0.61 max: the weighted mean of the 5 nearest centres is close to the
    # pixel wherever the pixel lies well inside the hull
    assert error.mean() < 0.25 and error.max() < 1.0


def test_hard_encoding_error_is_at_most_half_a_cell(codec, astronaut_ab):
    decoded = codec.decode(
        F.one_hot(codec.nearest_bin(astronaut_ab), 313).permute(0, 3, 1, 2) * 50.0, mode="mode"
    )
    error = (decoded - astronaut_ab).abs()
    assert error.max() <= 5.0 + 1e-3  # grid of 10: every photo colour lies within 5 of a centre
    assert error.mean() > 1.0  # ...and quantisation is visible, unlike the soft round trip above


def test_mode_decoding_returns_the_centre_exactly(codec):
    chosen = torch.tensor([[0, 17], [312, 156]])
    logits = torch.randn(1, 313, 2, 2).mul(0.1)
    for (i, j), q in np.ndenumerate(chosen.numpy()):
        logits[0, q, i, j] = 10.0
    decoded = codec.decode(logits, mode="mode")
    expected = torch.from_numpy(CENTERS[chosen.numpy()]).float().permute(2, 0, 1)[None]
    torch.testing.assert_close(decoded, expected, rtol=0, atol=0)


def chroma(ab: torch.Tensor) -> float:
    return float(ab.norm(dim=1).mean())


def test_annealed_mean_lies_between_mode_and_mean(codec):
    # peaked but spread: 40 % on a saturated orange bin, the rest over the near-grey bins
    centers = torch.from_numpy(CENTERS).float()
    saturated = int(((centers - torch.tensor([60.0, 60.0])) ** 2).sum(1).argmin())
    near_grey = centers.norm(dim=1) <= 30
    p = torch.zeros(313)
    p[near_grey] = 0.6 / near_grey.sum()
    p[saturated] = 0.4
    logits = torch.log(p.clamp_min(1e-12)).view(1, 313, 1, 1)
    mode = chroma(codec.decode(logits, mode="mode"))
    mean = chroma(codec.decode(logits, mode="mean"))
    annealed = chroma(codec.decode(logits, temperature=0.38))
    assert mean < annealed < mode
    assert mode == pytest.approx(float(centers[saturated].norm()))
    # and T -> 1 is the mean, T -> 0 the mode
    assert chroma(codec.decode(logits, temperature=1.0)) == pytest.approx(mean, rel=1e-5)
    assert chroma(codec.decode(logits, temperature=0.01)) == pytest.approx(mode, rel=1e-4)


def test_decode_is_float32_under_bf16_autocast(codec):
    logits = (torch.randn(2, 313, 3, 3) * 3).bfloat16()
    reference = codec.decode(logits.float())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = codec.decode(logits)
    assert got.dtype == torch.float32
    # a bf16 product (8-bit mantissa) would be ~0.3 ab units off
    torch.testing.assert_close(got, reference, atol=1e-4, rtol=1e-5)


def test_decode_rejects_unknown_mode_and_bad_shape(codec):
    with pytest.raises(ValueError, match="annealed"):
        codec.decode(torch.zeros(1, 313, 1, 1), mode="median")
    with pytest.raises(ValueError, match="313"):
        codec.decode(torch.zeros(1, 312, 1, 1))


# ---------------------------------------------------------------- rebalancing
def test_smoothing_a_single_bin_spreads_it_by_the_gaussian():
    grey = int(np.flatnonzero((CENTERS == 0).all(1))[0])
    neighbour = int(np.flatnonzero((CENTERS == [10, 0]).all(1))[0])
    diagonal = int(np.flatnonzero((CENTERS == [10, 10]).all(1))[0])
    delta = np.zeros(313)
    delta[grey] = 1.0
    smoothed = bins.smooth_prior(delta, sigma=5.0)
    assert smoothed.sum() == pytest.approx(1.0)
    assert smoothed[neighbour] / smoothed[grey] == pytest.approx(np.exp(-100 / 50))  # d = 10
    assert smoothed[diagonal] / smoothed[grey] == pytest.approx(np.exp(-200 / 50))  # d = 10 sqrt 2
    np.testing.assert_array_equal(bins.smooth_prior(delta, sigma=0), delta)


def test_imagenet_weights_expectation_is_one_and_boost_rare_colours():
    prior = bins.load_imagenet_prior()
    w = bins.rebalance_weights(prior, lam=0.5, sigma=0)
    assert w.shape == (313,)
    assert (prior * w).sum() == pytest.approx(1.0, abs=1e-6)
    grey, rarest = prior.argmax(), prior.argmin()
    assert w[grey] < 1 < w[rarest]
    assert w[grey] == pytest.approx(0.0965, abs=1e-3) and w[rarest] == pytest.approx(6.17, abs=0.01)
    # the ratio of two weights is the inverse ratio of the mixed probabilities (eq. 4)
    mix = 0.5 * prior + 0.5 / 313
    assert w[grey] / w[rarest] == pytest.approx(mix[rarest] / mix[grey])
    # the rarer the bin, the larger its weight
    order = np.argsort(prior)
    assert (np.diff(w[order]) <= 1e-12).all()


def test_weights_expectation_under_the_smoothed_empirical_prior():
    counts = np.zeros(313)
    counts[np.random.default_rng(0).integers(0, 313, 40)] += 1
    counts[int(np.flatnonzero((CENTERS == 0).all(1))[0])] += 200
    prior = bins.empirical_prior(counts)
    w = bins.rebalance_weights(prior, lam=0.5, sigma=5.0)
    smoothed = bins.smooth_prior(prior, 5.0)
    assert (smoothed * w).sum() == pytest.approx(1.0, abs=1e-6)
    # lambda = 1 is a uniform weighting: all ones
    np.testing.assert_allclose(bins.rebalance_weights(prior, lam=1.0), np.ones(313))


def test_prior_from_a_synthetic_image_equals_the_hand_count(codec):
    # 3 pixels near (0, 0), 2 exactly on (20, -30), 1 near (-40, 50): a 2x3 image
    a = [[1.0, -2.0, 0.0], [20.0, 20.0, -38.0]]
    b = [[3.0, 4.0, -1.0], [-30.0, -30.0, 52.0]]
    ab = torch.tensor([a, b])[None]
    expected = np.zeros(313)
    for centre, n in (((0, 0), 3), ((20, -30), 2), ((-40, 50), 1)):
        expected[np.flatnonzero((np.asarray(centre) == CENTERS).all(1))[0]] = n / 6
    np.testing.assert_allclose(bins.empirical_prior([ab]), expected)
    # streaming: two batches into one count vector, as the training loop does
    counts = torch.zeros(313, dtype=torch.float64)
    bins.accumulate_counts(codec, ab[..., :1], counts)
    bins.accumulate_counts(codec, ab[..., 1:], counts)
    assert counts.sum() == 6
    np.testing.assert_allclose(bins.empirical_prior(counts), expected)


def test_empirical_prior_needs_a_pixel():
    with pytest.raises(ValueError, match="no pixel"):
        bins.empirical_prior(np.zeros(313))


def test_prior_file_round_trip_and_rejection(tmp_path):
    prior = bins.load_imagenet_prior()
    path = bins.save_prior(tmp_path / "run" / "prior.npy", prior)
    np.testing.assert_array_equal(bins.load_prior(path), prior)
    assert [p.name for p in path.parent.iterdir()] == ["prior.npy"]  # no temporary left behind
    np.save(tmp_path / "bad.npy", np.ones(10) / 10)
    with pytest.raises(ValueError, match="bad.npy"):
        bins.load_prior(tmp_path / "bad.npy")


# ---------------------------------------------------------------- the loss
def numpy_rebalanced_ce(logits: np.ndarray, targets: np.ndarray, weights: np.ndarray) -> float:
    """Eq. 2-3 written out pixel by pixel."""
    n, q, h, w = logits.shape
    total = 0.0
    for i in range(n):
        for y in range(h):
            for x in range(w):
                z = logits[i, :, y, x]
                log_p = z - z.max() - np.log(np.exp(z - z.max()).sum())
                target = targets[i, :, y, x]
                total += weights[target.argmax()] * -(target * log_p).sum()
    return total / (n * h * w)


def test_loss_matches_the_numpy_reference(codec):
    torch.manual_seed(0)
    logits = torch.randn(2, 313, 2, 3) * 2
    targets = codec.soft_encode(random_ab(2, 2, 3, seed=3))
    weights = torch.rand(313) * 3 + 0.1
    got = bins.rebalanced_cross_entropy(logits, targets, weights)
    expected = numpy_rebalanced_ce(
        logits.double().numpy(), targets.double().numpy(), weights.double().numpy()
    )
    assert float(got) == pytest.approx(expected, rel=1e-5)
    # with unit weights it is torch's soft-target cross-entropy
    plain = bins.rebalanced_cross_entropy(logits, targets, torch.ones(313))
    torch.testing.assert_close(plain, F.cross_entropy(logits, targets))


def test_loss_is_float32_and_differentiable_under_autocast(codec):
    logits = (torch.randn(1, 313, 2, 2) * 2).requires_grad_()
    targets = codec.soft_encode(random_ab(1, 2, 2))
    weights = torch.from_numpy(bins.rebalance_weights(bins.load_imagenet_prior(), sigma=0)).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = bins.rebalanced_cross_entropy(logits.bfloat16(), targets, weights)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="313"):
        bins.rebalanced_cross_entropy(logits[:, :312], targets[:, :312], weights)
