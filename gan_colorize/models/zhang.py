"""The network of Zhang, Isola & Efros 2016, "Colorful Image Colorization" (ECCV), and two relatives.

* ``zhang_eccv16``: the classification network (313 ab bins), with the layer layout and parameter
  names of the released PyTorch port (richzhang/colorization, ``colorizers/eccv16.py``), so that
  ``colorization_release_v2-9b330a0b.pth`` loads by key.
* ``zhang_regression``: the same trunk with a 2-channel ab head, the paper's "L2 regression" baseline.
* ``unet_zhang``: a U-Net whose encoder is the first blocks of that trunk (same module names inside
  ``encoder``), initialised from a classification run or the released weights.

The trunk, as in the paper's figure 2 (``model1`` ... ``model8``; resolution relative to the input)::

    model1  conv 1->64,    conv 64->64 /2,     ReLU after each, BatchNorm      1/2
    model2  conv 64->128,  conv 128->128 /2                                    1/4
    model3  3 convs ->256, the last /2                                         1/8
    model4  3 convs ->512                                                      1/8
    model5  3 convs 512, dilation 2                                            1/8
    model6  3 convs 512, dilation 2                                            1/8
    model7  3 convs 512                                                        1/8
    model8  convT 4x4 /2 512->256, 2 convs 256, 1x1 conv 256->313 (logits)      1/4

All convs are 3x3 with bias; the released model has no BatchNorm in model8.

Input scaling: the released model takes ``(L - 50) / 100`` (``BaseColor.normalize_l``), while every
gan-colorize generator receives ``L_norm = L / 50 - 1``; since ``(L - 50) / 100 == L_norm / 2`` the
trunk is fed ``L_norm / 2`` (:func:`released_input`), so released weights behave as released and a
trunk copied from a classification run sees what it was trained on.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gan_colorize.models.init import (
    FrozenEncoderMixin,
    LoadReport,
    init_pix2pix,
    load_by_name,
    read_state_dict,
)
from gan_colorize.models.io import pad_to_multiple
from gan_colorize.models.unet import NORMS, UPSAMPLES, conv_bias, norm_layer, upsampling_conv
from gan_colorize.registry import GENERATORS
from gan_colorize.weights import ZHANG_ECCV16
from gan_colorize.weights import load_state_dict as load_known_weights

log = logging.getLogger(__name__)

N_BINS = 313  # in-gamut ab bins of grid size 10 (pts_in_hull.npy)
TRUNK_MULTIPLE = 8  # three stride-2 convs (model1..model3)

# (input channels, output channels, number of convs, stride of the last conv, dilation) per block,
# from colorizers/eccv16.py; each block ends with a BatchNorm.
TRUNK_BLOCKS = {
    "model1": (1, 64, 2, 2, 1),
    "model2": (64, 128, 2, 2, 1),
    "model3": (128, 256, 3, 2, 1),
    "model4": (256, 512, 3, 1, 1),
    "model5": (512, 512, 3, 1, 2),
    "model6": (512, 512, 3, 1, 2),
    "model7": (512, 512, 3, 1, 1),
}
RELEASED_WIDTH = 64  # model1's channels in the released network


def scaled_blocks(trunk_width: int = RELEASED_WIDTH) -> dict[str, tuple[int, int, int, int, int]]:
    """TRUNK_BLOCKS with every channel count scaled by ``trunk_width / 64`` (64: the released net).

    Narrow trunks exist for CPU-sized runs (the demo, the tests); only width 64 loads released weights.
    """
    if trunk_width < 1:
        raise ValueError(f"trunk_width must be >= 1, got {trunk_width}")

    def scale(c: int) -> int:
        return c if c == 1 else c * trunk_width // RELEASED_WIDTH

    return {name: (scale(i), scale(o), n, s, d) for name, (i, o, n, s, d) in TRUNK_BLOCKS.items()}


BLOCK_SCALE = {"model1": 2, "model2": 4, "model3": 8, "model4": 8, "model5": 8, "model6": 8, "model7": 8}


def released_input(L_norm: torch.Tensor) -> torch.Tensor:
    """What the released trunk expects, ``(L - 50) / 100``, from ``L_norm = L / 50 - 1``."""
    return L_norm * 0.5


def trunk_block(in_ch: int, out_ch: int, n_convs: int, last_stride: int, dilation: int) -> nn.Sequential:
    """[conv 3x3, ReLU] * n_convs then BatchNorm: indices 0, 2, 4 are convs, the last is the norm."""
    layers: list[nn.Module] = []
    for i in range(n_convs):
        stride = last_stride if i == n_convs - 1 else 1
        layers += [
            nn.Conv2d(in_ch if i == 0 else out_ch, out_ch, 3, stride, padding=dilation, dilation=dilation),
            nn.ReLU(True),
        ]
    layers.append(nn.BatchNorm2d(out_ch))
    return nn.Sequential(*layers)


def model8_upsampling(trunk_width: int = RELEASED_WIDTH) -> list[nn.Module]:
    """model8 without its 313-way classifier: convT 4x4 /2 to 256, two 3x3 convs (indices 0, 2, 4)."""
    c_in, c = 8 * trunk_width, 4 * trunk_width  # 512 and 256 in the released network
    return [
        nn.ConvTranspose2d(c_in, c, kernel_size=4, stride=2, padding=1),
        nn.ReLU(True),
        nn.Conv2d(c, c, kernel_size=3, padding=1),
        nn.ReLU(True),
        nn.Conv2d(c, c, kernel_size=3, padding=1),
        nn.ReLU(True),
    ]


def check_multiple(x: torch.Tensor, multiple: int, name: str) -> None:
    h, w = x.shape[-2:]
    if h % multiple or w % multiple:
        raise ValueError(
            f"{name} needs H and W multiples of {multiple}, got {h}x{w} "
            "(gan_colorize.models.io.predict_ab_norm pads to the generator's input_multiple)"
        )


class ZhangTrunk(nn.Module):
    """The first ``n_blocks`` blocks of the trunk, as attributes ``model1`` ... (released names)."""

    def __init__(self, n_blocks: int = 7, trunk_width: int = RELEASED_WIDTH):
        super().__init__()
        if not 1 <= n_blocks <= len(TRUNK_BLOCKS):
            raise ValueError(f"the Zhang trunk has 1 to {len(TRUNK_BLOCKS)} blocks, got {n_blocks}")
        self.names = list(TRUNK_BLOCKS)[:n_blocks]
        blocks = scaled_blocks(trunk_width)
        for name in self.names:
            self.add_module(name, trunk_block(*blocks[name]))

    def features(self, L_norm: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every block's output by block name (``released_input`` applied first)."""
        x, out = released_input(L_norm), {}
        for name in self.names:
            x = out[name] = getattr(self, name)(x)
        return out

    def forward(self, L_norm: torch.Tensor) -> torch.Tensor:
        return self.features(L_norm)[self.names[-1]]


@GENERATORS.register("zhang_eccv16")
class ZhangECCV16(nn.Module):
    """The classification network: L_norm (N,1,H,W) -> 313 bin logits (N,313,H/4,W/4).

    H and W must be multiples of 8. Module names and shapes are those of the released port, so
    its state dict loads by key (:meth:`load_released`); :meth:`released_ab_norm` is the released
    ``forward`` (softmax -> ``model_out`` -> ``upsample4``, the plain mean of the bin centres, not
    the annealed mean of the paper's results) and serves to check a loaded file.
    """

    output_kind = "bins"
    input_multiple = TRUNK_MULTIPLE

    def __init__(self, trunk_width: int = RELEASED_WIDTH):
        super().__init__()
        for name, spec in scaled_blocks(trunk_width).items():
            self.add_module(name, trunk_block(*spec))
        self.model8 = nn.Sequential(
            *model8_upsampling(trunk_width), nn.Conv2d(4 * trunk_width, N_BINS, kernel_size=1)
        )
        self.softmax = nn.Softmax(dim=1)
        # 313 probabilities -> ab / 110: in the released file its weights are the bin centres / 110
        self.model_out = nn.Conv2d(N_BINS, 2, kernel_size=1, bias=False)
        self.upsample4 = nn.Upsample(scale_factor=4, mode="bilinear", align_corners=False)
        init_pix2pix(self)

    def forward(self, L_norm: torch.Tensor) -> torch.Tensor:
        check_multiple(L_norm, self.input_multiple, "zhang_eccv16")
        x = released_input(L_norm)
        for name in (*TRUNK_BLOCKS, "model8"):
            x = getattr(self, name)(x)
        return x

    def released_ab_norm(self, L_norm: torch.Tensor) -> torch.Tensor:
        """The released model's output, divided by 110: ab_norm (N,2,H,W)."""
        return self.upsample4(self.model_out(self.softmax(self(L_norm))))

    def load_released(self, path_or_state_dict=None, strict_shapes: bool = True) -> LoadReport:
        """Load the released eccv16 weights (or any state dict with these keys) by name.

        ``None`` reads ``colorization_release_v2-9b330a0b.pth`` from the torch hub cache
        (``gan_colorize.weights.ZHANG_ECCV16``; a missing file raises ``MissingWeightsError``); a
        path may also be a gan-colorize ``generator.pt`` or run folder. Missing and unexpected keys
        are returned and logged; a shape mismatch raises ``ShapeMismatchError`` naming the key and
        both shapes; a file with no key of this network raises ``ValueError``. Missing keys are allowed
        (a ``zhang_regression`` run holds the trunk without ``model8.6`` and ``model_out``).
        """
        if path_or_state_dict is None:
            state, source = load_known_weights(ZHANG_ECCV16), ZHANG_ECCV16.filename
        elif isinstance(path_or_state_dict, str | Path):
            state, file = read_state_dict(path_or_state_dict)
            source = str(file)
        else:
            state, source = path_or_state_dict, "state dict"
        report = load_by_name(self, state, source, strict_shapes=strict_shapes)
        level = logging.WARNING if report.missing or report.unexpected or report.mismatched else logging.INFO
        log.log(level, "zhang_eccv16.load_released: %s", report.summary())
        return report


@GENERATORS.register("zhang_regression")
class ZhangRegression(nn.Module):
    """The "L2 regression" baseline of Zhang et al. 2016: their trunk, ab regressed directly.

    model1..model7 and model8's upsampling convs (released names, so a classification trunk loads
    into it by key), then ``ab_out``: 1x1 conv 256->2, tanh, bilinear x4 to full resolution.
    L_norm (N,1,H,W) -> ab_norm (N,2,H,W); other sizes than multiples of 8 are padded as the
    U-Net pads them and the output cropped back.
    """

    output_kind = "ab"
    input_multiple = TRUNK_MULTIPLE

    def __init__(self, trunk_width: int = RELEASED_WIDTH):
        super().__init__()
        for name, spec in scaled_blocks(trunk_width).items():
            self.add_module(name, trunk_block(*spec))
        self.model8 = nn.Sequential(*model8_upsampling(trunk_width))
        self.ab_out = nn.Conv2d(4 * trunk_width, 2, kernel_size=1)
        init_pix2pix(self)

    def forward(self, L_norm: torch.Tensor) -> torch.Tensor:
        padded, (h, w) = pad_to_multiple(L_norm, self.input_multiple)
        x = released_input(padded)
        for name in (*TRUNK_BLOCKS, "model8"):
            x = getattr(self, name)(x)
        # tanh before upsampling: a bilinear mix of values in [-1, 1] stays in [-1, 1]
        ab = torch.tanh(self.ab_out(x))
        ab = F.interpolate(ab, scale_factor=4, mode="bilinear", align_corners=False)
        return ab[..., :h, :w]


class DecoderStage(nn.Module):
    """Upsample x2, concatenate the skip features, fuse with a 3x3 conv (pix2pix's ReLU / norm order)."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int, norm: str, upsample: str):
        super().__init__()
        bias = conv_bias(norm)
        self.up = nn.Sequential(
            upsampling_conv(in_ch, out_ch, upsample, bias), norm_layer(norm, out_ch), nn.ReLU(True)
        )
        self.fuse = nn.Sequential(
            nn.Conv2d(out_ch + skip_ch, out_ch, 3, padding=1, bias=bias),
            norm_layer(norm, out_ch),
            nn.ReLU(True),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([self.up(x), skip], dim=1))


@GENERATORS.register("unet_zhang")
class UNetZhang(FrozenEncoderMixin, nn.Module):
    """A U-Net whose encoder is the Zhang et al. trunk: L_norm (N,1,H,W) -> ab_norm (N,2,H,W), tanh.

    ``encoder`` holds model1 ... model{encoder_blocks} under their released names
    (``encoder.model1.0.weight`` ...), so :meth:`init_from` copies them from a classification run
    or the released eccv16 file. The default, 5 blocks, ends after the first dilated block: its
    receptive field is 181 px (model4 ends at 85 px, model6 at 277 px), enough to see most of a
    256 px crop, while model6 and model7 would add 14M more parameters at the same 1/8 resolution.

    The decoder mirrors pix2pix's up path with skip connections from model3 (1/8, when the encoder
    goes deeper), model2 (1/4), model1 (1/2) and the L input (1/1); its channels are
    ``8, 4, 2, 1 x width``. Sizes other than multiples of 8 are padded and cropped as in the U-Net.
    """

    output_kind = "ab"
    input_multiple = TRUNK_MULTIPLE

    def __init__(
        self,
        width: int = 64,
        norm: str = "batch",
        upsample: str = "convtranspose",
        encoder_blocks: int = 5,
        trunk_width: int = RELEASED_WIDTH,
    ):
        super().__init__()
        if not 3 <= encoder_blocks <= len(TRUNK_BLOCKS):
            raise ValueError(
                f"unet_zhang encoder_blocks must be 3 to {len(TRUNK_BLOCKS)}, got {encoder_blocks}"
            )
        if norm not in NORMS or upsample not in UPSAMPLES:
            raise ValueError(
                f"unet_zhang: norm in {NORMS}, upsample in {UPSAMPLES}; got {norm!r}, {upsample!r}"
            )
        self.encoder = ZhangTrunk(encoder_blocks, trunk_width)
        channels = {name: spec[1] for name, spec in scaled_blocks(trunk_width).items()}
        bottleneck = self.encoder.names[-1]
        if encoder_blocks > 3:  # model3's features join the bottleneck at 1/8
            self.fuse8 = nn.Sequential(
                nn.Conv2d(
                    channels[bottleneck] + channels["model3"], width * 8, 3, padding=1, bias=conv_bias(norm)
                ),
                norm_layer(norm, width * 8),
                nn.ReLU(True),
            )
            deep_ch = width * 8
        else:
            self.fuse8 = None
            deep_ch = channels["model3"]
        self.up4 = DecoderStage(deep_ch, channels["model2"], width * 4, norm, upsample)
        self.up2 = DecoderStage(width * 4, channels["model1"], width * 2, norm, upsample)
        self.up1 = DecoderStage(width * 2, 1, width, norm, upsample)
        self.ab_out = nn.Sequential(nn.Conv2d(width, 2, kernel_size=1), nn.Tanh())
        init_pix2pix(self)

    def forward(self, L_norm: torch.Tensor) -> torch.Tensor:
        padded, (h, w) = pad_to_multiple(L_norm, self.input_multiple)
        feats = self.encoder.features(padded)
        x = feats[self.encoder.names[-1]]
        if self.fuse8 is not None:
            x = self.fuse8(torch.cat([x, feats["model3"]], dim=1))
        x = self.up4(x, feats["model2"])
        x = self.up2(x, feats["model1"])
        x = self.up1(x, padded)
        return self.ab_out(x)[..., :h, :w]

    # ------------------------------------------------------------------ the pretrained encoder
    def init_from(self, path: str | Path) -> list[str]:
        """Copy the encoder's tensors by name from a classification network; returns their names.

        ``path``: the released ``colorization_release_v2-9b330a0b.pth``, a gan-colorize
        ``generator.pt`` whose state dict has the trunk's keys (``zhang_eccv16``,
        ``zhang_regression``; a ``unet_zhang`` file's ``encoder.*`` keys work too), a checkpoint
        folder, or a run folder (its latest checkpoint). Every encoder tensor must be in the file
        with the same shape (BatchNorm's ``num_batches_tracked`` counters excepted): a file that
        would leave part of the encoder random is an error, as is a shape mismatch. The copied
        names are logged (INFO) and returned; the file's other tensors are ignored.
        """
        state, file = read_state_dict(path)
        if not any(k.startswith("model1.") for k in state) and any(
            k.startswith("encoder.model1.") for k in state
        ):
            state = {k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")}
        # all or nothing: a half-copied encoder would train (or stay frozen) half random
        report = load_by_name(self.encoder, state, str(file), require_complete=True, prefix="encoder.")
        # the count at INFO, like unet_backbone; the names (40 of them) for whoever asks
        log.info("unet_zhang.init_from %s: copied %d tensors", file, len(report.loaded))
        log.debug("unet_zhang.init_from copied: %s", ", ".join(report.loaded))
        return report.loaded
