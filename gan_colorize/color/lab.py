"""sRGB <-> CIELAB (D65, 2 degree observer) in batched, differentiable torch, and the one
normalisation used everywhere in gan-colorize.

The formulas and constants are those of ``skimage.color.rgb2lab``/``lab2rgb`` (sRGB companding,
the sRGB->XYZ matrix of IEC 61966-2-1 as skimage writes it, white point D65 = (0.95047, 1, 1.08883),
CIE's 0.008856 / 7.787 linear segment), so results agree with scikit-image to float precision;
``tests/test_color_lab.py`` checks that on random colours and on real photographs.

Normalisation (richzhang's ``BaseColor`` and pix2pix's colorization mode use the same):

    L_norm  = L / 50 - 1        L in [0, 100]   -> [-1, 1]
    ab_norm = ab / 110          ab in ~[-110, 110] -> ~[-1, 1]

Every model sees L_norm and predicts ab_norm; nothing else in the code base scales L or ab.
"""

from __future__ import annotations

import torch

L_SCALE = 50.0  # L / 50 - 1
L_SHIFT = 1.0
AB_SCALE = 110.0  # ab / 110

# skimage.color.colorconv.xyz_from_rgb (sRGB primaries, D65).
XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
WHITE_D65 = (0.95047, 1.0, 1.08883)

_EPS = 0.008856  # (6/29)^3 as rounded by CIE 1976 and skimage
_KAPPA = 7.787  # (29/6)^2 / 3, likewise rounded
_F_EPS = 0.2068966  # f(_EPS): the knee on the way back


# Built once per (device, dtype): a tensor made from Python numbers on a GPU is a blocking
# host-to-device copy, which would stall the training step at every colour conversion.
_CONSTANTS: dict[tuple, torch.Tensor] = {}


def _constant(name: str, like: torch.Tensor) -> torch.Tensor:
    key = (name, like.device, like.dtype)
    if key not in _CONSTANTS:
        # a normal tensor, which autograd may save for backward, even when inference code asks first
        with torch.inference_mode(False):
            _CONSTANTS[key] = _build_constant(name).to(device=like.device, dtype=like.dtype)
    return _CONSTANTS[key]


def _build_constant(name: str) -> torch.Tensor:
    if name == "white":
        return torch.tensor(WHITE_D65, dtype=torch.float64).view(1, 3, 1, 1)
    matrix = torch.tensor(XYZ_FROM_RGB, dtype=torch.float64)
    return torch.linalg.inv(matrix) if name == "rgb_from_xyz" else matrix


def _apply(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Multiply every pixel of an (N, 3, H, W) tensor by a 3x3 matrix."""
    return torch.einsum("ij,njhw->nihw", matrix, x)


def _check(x: torch.Tensor, name: str) -> None:
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"{name} must be (N, 3, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a float tensor, got {x.dtype} (use uint8_to_lab_norm)")


def srgb_to_linear(rgb: torch.Tensor) -> torch.Tensor:
    # clamp keeps pow's gradient finite on the branch torch.where discards
    high = ((rgb.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4
    return torch.where(rgb > 0.04045, high, rgb / 12.92)


def linear_to_srgb(lin: torch.Tensor) -> torch.Tensor:
    high = 1.055 * lin.clamp(min=0.0031308) ** (1 / 2.4) - 0.055
    return torch.where(lin > 0.0031308, high, lin * 12.92)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) sRGB in [0, 1] -> Lab with L in [0, 100], a and b in about [-110, 110]."""
    _check(rgb, "rgb")
    xyz = _apply(_constant("xyz_from_rgb", rgb), srgb_to_linear(rgb)) / _constant("white", rgb)
    f = torch.where(xyz > _EPS, xyz.clamp(min=_EPS) ** (1 / 3), _KAPPA * xyz + 16 / 116)
    fx, fy, fz = f.unbind(1)
    return torch.stack((116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)), dim=1)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """Lab -> sRGB in [0, 1]. Out-of-gamut colours are clipped (as skimage does), never NaN."""
    _check(lab, "lab")
    L, a, b = lab.unbind(1)
    fy = (L + 16) / 116
    # skimage sets negative z to 0 before the inverse; clamping f(z) at 0 gives the same result
    f = torch.stack((a / 500 + fy, fy, (fy - b / 200).clamp(min=0)), dim=1)
    xyz = torch.where(f > _F_EPS, f**3, (f - 16 / 116) / _KAPPA) * _constant("white", lab)
    lin = _apply(_constant("rgb_from_xyz", lab), xyz)
    return linear_to_srgb(lin).clamp(0.0, 1.0)


# ---------------------------------------------------------------- the normalisation
def normalize_l(L: torch.Tensor) -> torch.Tensor:
    return L / L_SCALE - L_SHIFT


def denormalize_l(L_norm: torch.Tensor) -> torch.Tensor:
    return (L_norm + L_SHIFT) * L_SCALE


def normalize_ab(ab: torch.Tensor) -> torch.Tensor:
    return ab / AB_SCALE


def denormalize_ab(ab_norm: torch.Tensor) -> torch.Tensor:
    return ab_norm * AB_SCALE


def rgb_to_lab_norm(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Float sRGB in [0, 1] -> (L_norm (N,1,H,W), ab_norm (N,2,H,W))."""
    lab = rgb_to_lab(rgb)
    return normalize_l(lab[:, :1]), normalize_ab(lab[:, 1:])


def uint8_to_lab_norm(rgb_u8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A uint8 (N, 3, H, W) batch, as the data loaders deliver it, -> (L_norm, ab_norm) in float32.

    Called on the training device, so that the colour conversion is batched on the GPU and the
    CPU workers only decode and crop.
    """
    if rgb_u8.dtype != torch.uint8:
        raise TypeError(f"expected a uint8 batch, got {rgb_u8.dtype}")
    return rgb_to_lab_norm(rgb_u8.float() / 255.0)


def lab_norm_to_rgb(L_norm: torch.Tensor, ab_norm: torch.Tensor) -> torch.Tensor:
    """(L_norm, ab_norm) -> float sRGB in [0, 1], computed in float32 whatever the input dtype."""
    lab = torch.cat((denormalize_l(L_norm.float()), denormalize_ab(ab_norm.float())), dim=1)
    return lab_to_rgb(lab)


def to_uint8(rgb: torch.Tensor) -> torch.Tensor:
    """Float sRGB in [0, 1] -> uint8, rounding to nearest."""
    return (rgb.clamp(0, 1) * 255 + 0.5).to(torch.uint8)
