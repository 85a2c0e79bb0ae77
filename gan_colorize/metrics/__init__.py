"""Evaluation metrics: each one a class registered by name in ``gan_colorize.registry.METRICS``.

Every metric takes batches of (prediction, ground truth) as uint8 RGB tensors (N, 3, H, W) of one
size, accumulates, and returns a flat dict of numbers::

    metric = build_metric("fid", device="cuda")
    for pred, gt in batches:
        metric.update(pred, gt)
    metric.compute()   # {"fid": 12.3, "fid_n": 5000}

A metric whose pretrained weights are not on this machine raises ``MissingWeightsError`` when it is
built (never a download, never random weights; ``UnreadableWeightsError`` when the file is there but
cannot be read); a metric that the images cannot be scored by (one image for a Frechet distance,
images smaller than LPIPS's AlexNet takes) raises :class:`MetricNotApplicableError` in ``update`` or
``compute``. :func:`compute_metrics` turns either into the report's n/a cell ("n/a (missing FILE,
see README)", "n/a (needs >= 2 images)") and computes the others.

The modules, one per family of metrics:

- ``colorfulness``  Hasler & Suesstrunk 2003 colourfulness and DDColor's delta CF
- ``fidelity``      PSNR, SSIM (scikit-image) and Zhang et al. 2016's AuC of the ab error
- ``frechet``       the Frechet distance, streamed feature statistics, the reference-feature cache
- ``fid``           FID with pytorch-fid's Inception-v3 (the standard FID network)
- ``lpips_metric``  LPIPS v0.1, AlexNet trunk
- ``efficientnet_fd``  Frechet distances on EfficientNet-Lite features (non-standard): ``efficientnet_fd``
                    (Lite0) and ``efficientnet_lite2_fd`` (Lite2, for models trained with Lite0 features)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from gan_colorize.registry import METRICS
from gan_colorize.weights import MissingWeightsError

DEFAULT_METRICS = ["colorfulness", "psnr", "ssim", "auc", "lpips", "fid"]


class MetricNotApplicableError(ValueError):
    """Inputs that a metric cannot score by its definition (too few images, images too small).

    Not a usage error: :func:`compute_metrics` records it as that metric's n/a cell and computes the
    others. ``needs`` is what the metric requires ("at least 2 images"), ``detail`` the full message.
    """

    def __init__(self, metric: str, needs: str, detail: str):
        super().__init__(f"{metric}: {detail}")
        self.metric = metric
        self.needs = needs

    @property
    def short(self) -> str:
        """The text a report cell shows: 'n/a (needs >= 2 images)'."""
        return f"n/a (needs {self.needs})"


@dataclass(frozen=True)
class Display:
    """How a report shows one number a metric computes: a metric declares these facts itself, so a
    new metric renders without the report being edited.

    ``better``: "higher", "lower", "zero" (closest to 0) or None (shown, not ranked). ``note``: the
    column's footnote, said once below the table. ``order``: where the column goes (lower first).
    ``axis``: the axis of the perception-distortion plot the number may stand on ("distortion":
    against the ground truth pixel by pixel; "perception": how real the set of images looks), with
    ``axis_rank`` the preference among those present (0 first). ``show_n``: say on how many images
    (a value biased by n, as FID).
    """

    key: str
    label: str
    digits: int = 2
    better: str | None = None
    note: str = ""
    order: int = 100
    axis: str | None = None
    axis_rank: int = 9
    show_n: bool = False


class Metric:
    """The interface every registered metric follows (subclass it, or match it).

    ``higher_is_better`` refers to the ``primary`` key of :meth:`compute`'s dict (colorfulness
    returns three numbers; its ranking key is ``delta_cf``). ``standard = False`` marks a metric
    that reports must label non-standard (not comparable with published numbers). ``display``:
    how reports show the numbers of :meth:`compute` (:class:`Display`); empty: the primary key,
    labelled with the name, ranked by ``higher_is_better``, footnoted with the ``description``.
    """

    name: ClassVar[str] = ""
    primary: ClassVar[str] = ""
    higher_is_better: ClassVar[bool] = True
    needs_weights: ClassVar[bool] = False
    standard: ClassVar[bool] = True
    description: ClassVar[str] = ""
    display: ClassVar[tuple[Display, ...]] = ()

    @classmethod
    def displays(cls) -> tuple[Display, ...]:
        if cls.display:
            return cls.display
        better = "higher" if cls.higher_is_better else "lower"
        return (Display(cls.primary or cls.name, cls.name, better=better, note=cls.description),)

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = torch.device(device)

    def update(self, pred: torch.Tensor, gt: torch.Tensor) -> None:
        raise NotImplementedError

    def compute(self) -> dict[str, float | int]:
        raise NotImplementedError

    def check_pair(self, pred: torch.Tensor, gt: torch.Tensor) -> None:
        """Both uint8 RGB (N, 3, H, W) of the same shape; the error names the metric."""
        for what, x in (("prediction", pred), ("ground truth", gt)):
            if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8:
                kind = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
                raise TypeError(f"metric {self.name!r}: the {what} batch must be a uint8 tensor, got {kind}")
            if x.ndim != 4 or x.shape[1] != 3:
                raise ValueError(
                    f"metric {self.name!r}: the {what} batch must be (N, 3, H, W), got {tuple(x.shape)}"
                )
        if pred.shape != gt.shape:
            raise ValueError(
                f"metric {self.name!r}: prediction {tuple(pred.shape)} and ground truth {tuple(gt.shape)} "
                "differ in shape"
            )


def build_metric(spec: str | Mapping[str, Any], device: str | torch.device = "cpu", **kwargs: Any) -> Metric:
    """Build a registered metric by name (or ``{"type": name, **kwargs}``) on ``device``."""
    if isinstance(spec, str):
        spec = {"type": spec}
    return METRICS.build({**spec, **kwargs}, device=device)


def metric_info(name: str) -> dict[str, Any]:
    """A metric's class attributes (for report headers) without building it or loading weights."""
    cls = METRICS.get(name)
    return {
        "name": cls.name,
        "primary": cls.primary,
        "higher_is_better": cls.higher_is_better,
        "needs_weights": cls.needs_weights,
        "standard": cls.standard,
        "description": cls.description,
    }


def compute_metrics(
    names: Iterable[str | Mapping[str, Any]],
    pairs: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: str | torch.device = "cpu",
) -> tuple[dict[str, float | int], dict[str, str], dict[str, str]]:
    """Run every metric over one pass of ``(pred_u8, gt_u8)`` batches.

    Returns ``(results, missing, details)``: the merged :meth:`Metric.compute` dicts; for each metric
    that could not be computed, its report cell (``MissingWeightsError.short``, "n/a (missing FILE,
    see README)", or ``MetricNotApplicableError.short``, "n/a (needs >= 2 images)"); and for those the full
    message (which file, why it cannot be read, how many images there were). Any other error (a bad
    batch, an unknown metric name) propagates.
    """
    metrics: list[tuple[str, Metric]] = []
    missing: dict[str, str] = {}
    details: dict[str, str] = {}

    def not_computed(label: str, exc: MissingWeightsError | MetricNotApplicableError) -> None:
        missing[label], details[label] = exc.short, str(exc)

    for spec in names:
        label = spec if isinstance(spec, str) else str(spec.get("type"))
        try:
            metrics.append((label, build_metric(spec, device)))
        except MissingWeightsError as exc:
            not_computed(label, exc)
    n_batches = 0
    for pred, gt in pairs:
        n_batches += 1
        for label, metric in metrics:
            if label in missing:
                continue
            try:
                metric.update(pred, gt)
            except MetricNotApplicableError as exc:  # e.g. images too small: the other metrics go on
                not_computed(label, exc)
    results: dict[str, float | int] = {}
    if metrics and n_batches == 0:
        raise ValueError("compute_metrics: no (prediction, ground truth) batches were given")
    for label, metric in metrics:
        if label in missing:
            continue
        try:
            results.update(metric.compute())
        except MetricNotApplicableError as exc:  # e.g. one image for a Frechet distance
            not_computed(label, exc)
    return results, missing, details


# The metric modules import Metric from this package, so they are imported after it is defined;
# importing them is what registers them in METRICS.
from gan_colorize.metrics import (  # noqa: E402
    colorfulness,
    efficientnet_fd,
    fid,
    fidelity,
    lpips_metric,
)

__all__ = [
    "DEFAULT_METRICS",
    "Display",
    "Metric",
    "MetricNotApplicableError",
    "MissingWeightsError",
    "build_metric",
    "colorfulness",
    "compute_metrics",
    "efficientnet_fd",
    "fid",
    "fidelity",
    "lpips_metric",
    "metric_info",
]
