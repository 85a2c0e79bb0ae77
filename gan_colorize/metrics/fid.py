"""FID (Heusel et al. 2017) with pytorch-fid's Inception-v3, the network of the original TF FID.

Features: ``pytorch_fid.inception.InceptionV3([3])``, the 2048-d pool3 output, with
``use_fid_inception=True`` (the ported TF weights ``pt_inception-2015-12-05-6726825d.pth`` and
the FID-specific blocks), ``resize_input=True`` (bilinear to 299x299) and ``normalize_input=True``
(0..1 -> -1..1): images go in as uint8 / 255, exactly as pytorch-fid's own ``fid_score`` feeds
them. Statistics, the distance and the ground-truth cache: :mod:`gan_colorize.metrics.frechet`.

The weights are looked up by gan_colorize.weights (``weights=PATH`` or the torch hub cache)
BEFORE pytorch-fid builds its network. pytorch-fid has no argument for a local file: it calls
``load_state_dict_from_url(FID_WEIGHTS_URL)``, which downloads when the hub cache lacks the file.
So while it builds, that one call is redirected to the file we found (and anything else raises):
its own architecture code and strict ``load_state_dict`` run unchanged, and nothing touches the
network.

FID on n images is biased upward when n is small (Chong & Forsyth 2020); report n (``fid_n``)
next to it and compare runs only at equal n (see ``frechet.small_sample_note``).
"""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import numpy as np
import pytorch_fid
import torch

from gan_colorize.metrics import Display
from gan_colorize.metrics.frechet import NetworkFrechetMetric
from gan_colorize.registry import METRICS
from gan_colorize.weights import INCEPTION_FID, find_weights, load_state_dict

POOL3_DIM = 2048


def build_fid_inception(weights_file: Path) -> torch.nn.Module:
    """pytorch-fid's InceptionV3([3]) with its weights read from ``weights_file`` (never a URL)."""
    from pytorch_fid import inception as fid_inception

    def load_local(url: str, *args, **kwargs) -> dict:
        if url != fid_inception.FID_WEIGHTS_URL:
            raise RuntimeError(f"pytorch-fid asked for an unexpected URL {url!r}; refusing to download")
        return load_state_dict(INCEPTION_FID, weights_file)  # tensors only, all finite

    with mock.patch.object(fid_inception, "load_state_dict_from_url", load_local):
        model = fid_inception.InceptionV3(
            [fid_inception.InceptionV3.BLOCK_INDEX_BY_DIM[POOL3_DIM]],
            resize_input=True,
            normalize_input=True,
            use_fid_inception=True,
        )
    return model.eval()


@METRICS.register("fid")
class FID(NetworkFrechetMetric):
    name = "fid"
    primary = "fid"
    feature_dim = POOL3_DIM
    description = (
        "FID: Frechet distance of Inception-v3 pool3 features (pytorch-fid, TF FID weights, inputs resized "
        "to 299) between predictions and ground truth; lower is better; biased upward for n < 2048, compare "
        "at equal n (fid_n)"
    )
    display = (
        Display(
            "fid", "FID", digits=1, better="lower", order=20, axis="perception", axis_rank=0, show_n=True,
            note="FID is biased upwards on few images (Chong & Forsyth, CVPR 2020, 'Effectively Unbiased "
            "FID'): compare FID only between rows with the same n, and read FID on fewer than a few "
            "thousand images as indicative",
        ),
    )  # fmt: skip

    # pytorch-fid's network code (blocks, resize) can change between releases: its version is part
    # of the cache key, so an upgrade recomputes the cached ground-truth features
    extractor_tag = f"fid:pytorch-fid-{pytorch_fid.__version__}-InceptionV3-pool3:resize299"

    def locate_weights(self, weights: str | Path | None) -> Path:
        return find_weights(INCEPTION_FID, weights)

    def build_network(self, weights_file: Path) -> torch.nn.Module:
        return build_fid_inception(weights_file)

    @torch.no_grad()
    def extract(self, images_u8: torch.Tensor) -> np.ndarray:
        x = images_u8.to(self.device, torch.float32) / 255.0
        pooled = self.model(x)[0]  # (N, 2048, 1, 1)
        return pooled.flatten(1).cpu().numpy()
