"""The discriminator drop-in contract, checked: does a discriminator work in the GAN loop?

``check_discriminator(spec)`` builds the discriminator (a registered name, ``module:Class``, a class,
a spec dict ``{"type": ..., **kwargs}`` or a module instance), runs forward and backward on random
(L_norm, ab_norm) batches at two sizes, in float32 and under bfloat16 autocast, and checks what the
training loop relies on (the contract is written out in ``discriminators.py``):

1. the output is logits: a tensor (N, 1, h, w) or (N, 1), or a list of such tensors, finite;
2. every parameter gets a non-zero gradient, and so does ab_norm: the generator learns only through
   that gradient. A parameter without one is diagnosed from what it is (see ``_why_no_gradient``):
   not used in forward, behind a layer that passes no gradient back (a ReLU dead zone), a bias
   cancelled by the mean-removing norm right after it, a spectral-norm parametrisation, frozen;
3. the output depends on L (the discriminator is conditional), and the inputs are left unchanged
   (the same L and ab tensors are reused for the generator's and the discriminator's steps).

It measures the receptive field of each output (``measure_receptive_field``: the input pixels that
change the centre logit) and reports it; a ``receptive_field`` attribute is optional, and one that
disagrees with the measurement is a warning, not a failure. It reports the parameter count, the
output shapes and the milliseconds per forward+backward batch and raises :class:`ContractError`
listing every failure; a spec that cannot be built (an unknown name, an argument the class does not
take, a constructor that raises) raises :class:`DiscriminatorBuildError` instead.
``gan-colorize check-discriminator`` prints the same report.

A bfloat16 pass that raises for a dtype reason (an op without a bf16 kernel on the device) is
recorded as "unsupported", not as a failure: training in float32 still works.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import _SpectralNorm  # what parametrizations.spectral_norm registers
from torch.nn.utils.spectral_norm import SpectralNorm as LegacySpectralNorm  # the weight_orig hook
from torch.overrides import TorchFunctionMode

from gan_colorize.registry import DISCRIMINATORS, RegistryError

PRECISIONS = ("float32", "bfloat16")
TIMED_REPEATS = 3  # timed forward+backward passes per size after the checked one (median reported)
# A parameter whose largest |gradient| is below this fraction of the network's largest is diagnosed
# like one without gradient: a bias before a mean-subtracting norm has an analytically zero gradient
# that float32 rounding leaves at ~1e-7 of the others (measured on a PatchGAN with InstanceNorm after
# biased convs); a spectral-norm weight 1e6 times larger than the others gets 1e-6 of their gradient.
TINY_GRADIENT = 1e-5
# words of torch's messages for an op or a mix of dtypes that bf16 autocast does not support
DTYPE_WORDS = ("bfloat16", "bf16", "dtype", "scalar type", "not implemented for", "half")
# The receptive field is measured on noise images: RF_TRIALS of them (each leaves a ReLU network a
# different set of open paths; the union is what the logit can see), from the largest checked size,
# doubled while the region reaches the input's border, up to RF_MAX_SIZE px (pix2pix's 5-layer
# PatchGAN, 286 px, fits in 384).
RF_TRIALS = 3
RF_MAX_SIZE = 512
# Norms that subtract a per-channel mean, so they cancel a constant bias right before them exactly:
# the bias is dead, whatever float32 rounding leaves of its gradient (GroupNorm only with one channel
# per group; ``_cancelled_biases`` checks).
EXACT_CANCELLING_NORMS = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.GroupNorm,
)
# Every norm that subtracts a mean: GroupNorm and LayerNorm remove (part of) a bias's mean, a cause
# worth naming when the bias's gradient is zero or tiny.
MEAN_REMOVING_NORMS = (*EXACT_CANCELLING_NORMS, nn.LayerNorm)
# Activations with a flat region: when all their inputs fall in it, no gradient passes back.
FLAT_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.Threshold, nn.Hardsigmoid, nn.Hardswish)
NAMES_SHOWN = 8  # parameter names listed in one finding before "... (N in all)"


class DiscriminatorBuildError(ValueError):
    """The spec names no discriminator, gives it arguments it does not take, or its constructor
    raised: there is nothing to check."""


class ContractError(Exception):
    """The discriminator breaks the contract; ``.report`` holds the whole :class:`CheckReport`."""

    def __init__(self, report: CheckReport):
        self.report = report
        lines = "\n".join(f"  - {failure}" for failure in report.failures)
        super().__init__(f"discriminator {report.name} breaks the contract:\n{lines}")


@dataclass
class PassResult:
    """One forward+backward pass: a size and a precision."""

    size: int
    precision: str
    status: str = "ok"  # "ok", "failed" or "unsupported" (the reason is in the notes)
    output_shapes: list[tuple[int, ...]] = field(default_factory=list)
    ms: float | None = None  # median milliseconds per forward+backward of one batch


@dataclass(frozen=True)
class ReceptiveField:
    """The input region whose pixels change one logit, measured at the centre logit of one output
    (padding makes border logits see less): its extent in rows and columns."""

    rows: int | None  # None (and cols None): one logit per image, which sees the whole image
    cols: int | None
    input_size: int = 0  # the square noise input it was measured on (0: nothing to measure)
    at_least: bool = False  # the region reached the input's border at the largest size tried

    def __str__(self) -> str:
        if self.rows is None:
            return "whole image"
        return f"{'>= ' if self.at_least else ''}{self.rows} x {self.cols} px"

    def agrees_with(self, declared: int | None) -> bool:
        """Does a declared ``receptive_field`` (square, in px; None: not defined) fit this one?"""
        if self.rows is None:
            return declared is None
        if self.at_least:  # a lower bound, perhaps of a global network: None or as large fits
            return declared is None or declared >= max(self.rows, self.cols)
        return declared == self.rows == self.cols


WHOLE_IMAGE = ReceptiveField(None, None)


def describe_receptive_fields(fields: Sequence[ReceptiveField]) -> str:
    """``70 x 70 px (measured)``, ``whole image (one logit per image)``, one entry per scale."""
    if not fields:
        return "not measured"
    if all(f.rows is None for f in fields):
        return "whole image (one logit per image)"
    per_scale = ", per scale" if len(fields) > 1 else ""
    return f"{', '.join(map(str, fields))} (measured{per_scale})"


@dataclass
class CheckReport:
    name: str
    batch: int
    device: str
    parameters: int = 0
    receptive_fields: list[ReceptiveField] = field(default_factory=list)  # measured, one per output
    declares_receptive_field: bool = False  # the class has a valid ``receptive_field`` attribute
    declared_receptive_field: int | None = None  # its value
    passes: list[PassResult] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # probably wrong, but training works
    notes: list[str] = field(default_factory=list)  # worth reading, not contract breaches

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def receptive_field_text(self) -> str:
        return describe_receptive_fields(self.receptive_fields)

    def render(self):
        """A rich Table: one row per size and precision, failures and notes in the caption."""
        from rich.table import Table

        table = Table(
            title=f"{self.name}: {self.parameters:,} parameters, receptive field {self.receptive_field_text}",
            caption=self._caption(),
            caption_justify="left",
        )
        table.add_column("input", justify="right")
        table.add_column("precision")
        table.add_column("output (logits)")
        table.add_column(f"ms / fwd+bwd (batch {self.batch}, {self.device})", justify="right")
        table.add_column("status")
        for p in self.passes:
            shapes = ", ".join("x".join(map(str, s)) for s in p.output_shapes) or "-"
            ms = f"{p.ms:.1f}" if p.ms is not None else "-"
            style = {"ok": "green", "failed": "red"}.get(p.status, "yellow")
            table.add_row(f"{p.size} px", p.precision, shapes, ms, f"[{style}]{p.status}[/{style}]")
        return table

    def _caption(self) -> str:
        from rich.markup import escape  # findings quote code and values: "[8, 16]" is not markup

        lines = [
            "[green]PASS[/green]: meets the discriminator contract" if self.passed else "[red]FAIL[/red]:"
        ]
        lines += [f"  - {escape(failure)}" for failure in self.failures]
        lines += [f"  [yellow]warning[/yellow]: {escape(warning)}" for warning in self.warnings]
        lines += [f"  note: {escape(note)}" for note in self.notes]
        sizes = {f.input_size for f in self.receptive_fields if f.input_size}
        if sizes:
            lines.append(
                f"  receptive field: the input pixels where the gradient of the centre logit is non-zero, "
                f"over {RF_TRIALS} noise inputs of {max(sizes)} px, a norm's image statistics held constant "
                "(padding makes border logits see less)"
            )
        return "\n".join(lines)


# ---------------------------------------------------------------- building
def describe(spec: Any) -> str:
    if isinstance(spec, Mapping):
        return str(spec.get("type", spec))
    if isinstance(spec, type):
        return f"{spec.__module__}:{spec.__qualname__}"
    if isinstance(spec, nn.Module):
        return type(spec).__name__
    return str(spec)


def build_discriminator(spec: Any, args: Mapping[str, Any] | None = None) -> nn.Module:
    """A module from a registered name or ``module:Class`` (through ``DISCRIMINATORS``), a spec dict,
    a class, or an instance (returned as it is); ``args`` are extra keyword arguments."""
    args = dict(args or {})
    if isinstance(spec, nn.Module):
        if args:
            raise ValueError("keyword arguments were given for an already built discriminator")
        return spec
    if isinstance(spec, type):
        return spec(**args)
    if isinstance(spec, str):
        spec = {"type": spec}
    if isinstance(spec, Mapping):
        return DISCRIMINATORS.build(spec, **args)
    raise TypeError(f"cannot build a discriminator from {type(spec).__name__} {spec!r}")


# ---------------------------------------------------------------- the checks
def _inputs(batch: int, size: int, device: torch.device, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random inputs in the package's ranges: L_norm in [-1, 1], ab_norm in [-0.5, 0.5]."""
    gen = torch.Generator().manual_seed(seed)
    L = torch.rand(batch, 1, size, size, generator=gen) * 2 - 1
    ab = torch.rand(batch, 2, size, size, generator=gen) - 0.5
    return L.to(device), ab.to(device)


def _outputs(out: Any, batch: int) -> tuple[list[torch.Tensor], list[str]]:
    """The logit tensors of a forward's result, and what is wrong with them."""
    tensors = list(out) if isinstance(out, list | tuple) else [out]
    if not tensors:
        return [], ["forward returned an empty list"]
    problems = []
    for i, t in enumerate(tensors):
        where = f"output {i}" if len(tensors) > 1 else "output"
        if not isinstance(t, torch.Tensor):
            problems.append(f"{where} is a {type(t).__name__}, not a tensor (or a list of tensors)")
        elif not t.is_floating_point():
            problems.append(f"{where} has dtype {t.dtype}: logits must be floating point")
        elif not (
            (t.ndim == 4 and t.shape[:2] == (batch, 1)) or (t.ndim == 2 and tuple(t.shape) == (batch, 1))
        ):
            problems.append(
                f"{where} has shape {tuple(t.shape)}: expected (N, 1, h, w) or (N, 1) with N = {batch}"
            )
        elif not torch.isfinite(t).all():
            problems.append(f"{where} is not finite (NaN or inf)")
    return [t for t in tensors if isinstance(t, torch.Tensor)], problems


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(names[:NAMES_SHOWN])
    return shown if len(names) <= NAMES_SHOWN else f"{shown}, ... ({len(names)} in all)"


def _gradient_states(model: nn.Module, precision: str) -> dict[str, str]:
    """The trainable parameters without a healthy gradient: name -> "none", "infinite", "zero" or,
    in float32 only (bf16 rounding makes small gradients common), "tiny"."""
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    finite = {n: g for n, g in grads.items() if g is not None and torch.isfinite(g).all()}
    peaks = {n: float(g.abs().max()) if g.numel() else 0.0 for n, g in finite.items()}
    largest = max(peaks.values(), default=0.0)
    states = {}
    for name, grad in grads.items():
        if grad is None:
            states[name] = "none"
        elif name not in finite:
            states[name] = "infinite"
        elif peaks[name] == 0:
            states[name] = "zero"
        elif precision == "float32" and peaks[name] < TINY_GRADIENT * largest:
            states[name] = "tiny"
    return states


def _input_gradient_problems(ab: torch.Tensor) -> list[str]:
    if ab.grad is None or not ab.grad.any():
        return ["no gradient reaches ab_norm: the generator could not learn from this discriminator"]
    if not torch.isfinite(ab.grad).all():
        return ["the gradient reaching ab_norm is not finite"]
    return []


def _autocast(device: torch.device, precision: str):
    if precision == "float32":
        return torch.autocast(device_type=device.type, enabled=False)
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _forward_backward(
    model: nn.Module, L: torch.Tensor, ab: torch.Tensor, precision: str, trace: _Trace | None = None
):
    """Forward and backward of the mean logit: (the ab leaf, the logit tensors, output problems).
    With a ``trace``, the pass is watched (the checked pass is; the timed ones are not)."""
    model.zero_grad(set_to_none=True)
    ab = ab.detach().requires_grad_()
    with _autocast(L.device, precision), _watching(model, trace):
        out = model(L, ab)
    tensors, problems = _outputs(out, L.shape[0])
    if problems:
        return ab, tensors, problems
    # the mean of every logit: each one gets a gradient, whatever the number of scales
    sum(t.float().mean() for t in tensors).backward()
    return ab, tensors, []


# ---------------------------------------------------------------- why a parameter has no gradient
@dataclass(frozen=True)
class _Parameter:
    """A parameter as the network uses it: the layer that owns it and the role it plays there."""

    name: str  # as named_parameters() gives it
    layer: str  # the owning module's name ("" for the top module)
    role: str  # the attribute the layer reads: "weight", "bias", ...
    spectral: str | None = None  # the spectral-norm API that wraps it, or None


def _parameter(model: nn.Module, name: str) -> _Parameter:
    parts = name.split(".")
    if "parametrizations" in parts:  # the new API: <layer>.parametrizations.<role>.original
        i = parts.index("parametrizations")
        layer, role = ".".join(parts[:i]), parts[i + 1]
        wrappers = model.get_submodule(layer).parametrizations[role]
        spectral = any(isinstance(w, _SpectralNorm) for w in wrappers)
        return _Parameter(
            name, layer, role, "torch.nn.utils.parametrizations.spectral_norm" if spectral else None
        )
    layer, role = ".".join(parts[:-1]), parts[-1]
    hooks = model.get_submodule(layer)._forward_pre_hooks.values()  # the old API's: <layer>.weight_orig
    if any(isinstance(h, LegacySpectralNorm) and role == f"{h.name}_orig" for h in hooks):
        return _Parameter(name, layer, role.removesuffix("_orig"), "torch.nn.utils.spectral_norm")
    return _Parameter(name, layer, role)


@dataclass
class _Trace:
    """One forward+backward, watched: the layers in the order forward called them, those whose output
    got a non-zero gradient, and those whose input was all zeros."""

    order: list[str] = field(default_factory=list)
    reached: set[str] = field(default_factory=set)
    zero_input: set[str] = field(default_factory=set)

    def after(self, layer: str) -> list[str]:
        """The layers called after the first call of ``layer``, in order."""
        return self.order[self.order.index(layer) + 1 :] if layer in self.order else []

    def before(self, layer: str) -> str | None:
        i = self.order.index(layer) if layer in self.order else 0
        return self.order[i - 1] if i else None


def _watched_layers(model: nn.Module) -> dict[nn.Module, str]:
    """Leaves, and modules holding parameters of their own (a spectral-norm conv holds its
    parametrisation as a child), never a parametrisation's own modules."""
    return {
        m: n
        for n, m in model.named_modules()
        if "parametrizations" not in n.split(".")
        and (
            next(m.children(), None) is None
            or parametrize.is_parametrized(m)
            or next(m.parameters(recurse=False), None) is not None
        )
    }


@contextmanager
def _watching(model: nn.Module, trace: _Trace | None):
    """Record into ``trace`` what the forward run inside the block, and its backward, do."""
    if trace is None:
        yield
        return
    layers = _watched_layers(model)

    def record(name: str, grad: torch.Tensor) -> None:
        if grad.any():
            trace.reached.add(name)

    def watch(module: nn.Module, args: tuple, output: Any) -> None:
        name = layers[module]
        trace.order.append(name)
        if args and isinstance(args[0], torch.Tensor) and not args[0].any():
            trace.zero_input.add(name)
        for t in output if isinstance(output, list | tuple) else [output]:
            if isinstance(t, torch.Tensor) and t.requires_grad:
                # registered before any in-place op on t (an inplace ReLU): it gets the gradient of
                # t's value before that op, the layer's own output
                t.register_hook(partial(record, name))

    handles = [m.register_forward_hook(watch) for m in layers]
    try:
        yield
    finally:  # the tensor hooks stay on this forward's graph, so the backward still records
        for handle in handles:
            handle.remove()


def _layer_name(model: nn.Module, layer: str | None) -> str:
    return f"{layer or 'the top module'} ({type(model.get_submodule(layer or '')).__name__})"


def _dead_zone(model: nn.Module, layer: str | None) -> str:
    module = model.get_submodule(layer) if layer is not None else None
    if not isinstance(module, FLAT_ACTIVATIONS):
        return ""
    return (
        f": a dead zone, all inputs of {_layer_name(model, layer)} fall where its slope is 0 (below 0 "
        "for a ReLU); a bias or init pushing them there? (LeakyReLU has no dead zone)"
    )


# Each cause reads what a parameter is and what the watched pass saw: (finding, breaks the contract),
# or None when it is not this one. ``state``: the gradient is missing ("none"), exactly zero
# ("zero"), tiny ("tiny") or cancelled ("cancelled", see ``_cancelled_biases``).
Cause = tuple[str, bool]


def _unused(model: nn.Module, p: _Parameter, state: str, trace: _Trace) -> Cause | None:
    if state != "none":
        return None
    if p.layer not in trace.order:
        return "not used in forward: no gradient at all (.grad is None); call its layer or remove it", True
    return (
        f"{_layer_name(model, p.layer)} runs in forward but no gradient reaches it (.grad is None): "
        "used only through .detach() or under torch.no_grad()?",
        True,
    )


def _blocked(model: nn.Module, p: _Parameter, state: str, trace: _Trace) -> Cause | None:
    """No gradient reached the output of p's layer: name the first later layer that got one."""
    if p.layer not in trace.order or p.layer in trace.reached:
        return None
    blocker = next((n for n in trace.after(p.layer) if n in trace.reached), None)
    where = _layer_name(model, p.layer)
    if blocker is None:
        return (
            f"no gradient reaches the output of {where}: something after it passes none back",
            state == "zero",
        )
    return (
        f"no gradient reaches the output of {where}: {_layer_name(model, blocker)}, the next layer "
        f"that gets one, passes none back{_dead_zone(model, blocker)}",
        state == "zero",
    )


def _cancelled_by_norm(model: nn.Module, p: _Parameter, state: str, trace: _Trace) -> Cause | None:
    following = trace.after(p.layer)[:1]
    if (
        p.role != "bias"
        or not following
        or not isinstance(model.get_submodule(following[0]), MEAN_REMOVING_NORMS)
    ):
        return None
    return (
        f"a bias directly followed by {_layer_name(model, following[0])}, which subtracts the mean "
        "the bias adds: cancelled by the norm, it never trains (build the layer with bias=False)",
        False,  # a dead parameter, but training works
    )


def _zero_input(model: nn.Module, p: _Parameter, state: str, trace: _Trace) -> Cause | None:
    if p.role == "bias" or p.layer not in trace.zero_input:
        return None
    source = trace.before(p.layer)
    came = f", which comes from {_layer_name(model, source)}" if source else ""
    return (
        f"the input of {_layer_name(model, p.layer)} is all zeros{came}{_dead_zone(model, source)}",
        state == "zero",
    )


def _spectral(model: nn.Module, p: _Parameter, state: str, trace: _Trace) -> Cause | None:
    if not p.spectral:
        return None
    size = float(model.get_parameter(p.name).detach().norm())
    return (
        f"the spectral-norm parametrisation ({p.spectral}) of the {p.role} of {_layer_name(model, p.layer)}: "
        f"its gradient is {_amount(state)} though the layer's output gets one, a cause no norm layer is "
        "part of: W / sigma(W) does not change when W is scaled, so the gradient is orthogonal to W and "
        f"shrinks as 1/|W| (|W| = {size:.3g} here): a weight far larger than the others, or one with "
        "a single entry (always 0)?",
        state == "zero",
    )


def _unexplained(model: nn.Module, p: _Parameter, state: str, trace: _Trace) -> Cause:
    where = _layer_name(model, p.layer)
    if state == "zero":
        return (
            f"the gradient is exactly zero though {where} gets one at its output: used through a "
            "constant 0 or a non-differentiable op (round, sign, argmax)?",
            True,
        )
    return (
        f"the gradient is {_amount(state)} though {where} gets one at its output: no cause identified",
        False,
    )


# in this order: the first that applies is the cause (a layer behind a dead zone may also be a bias
# before a norm; the dead zone is what to fix first)
CAUSES = (_unused, _blocked, _cancelled_by_norm, _zero_input, _spectral, _unexplained)


def _amount(state: str) -> str:
    return "exactly zero" if state == "zero" else f"below {TINY_GRADIENT:g} x the network's largest"


def _why_no_gradient(model: nn.Module, p: _Parameter, state: str, trace: _Trace) -> Cause:
    return next(c for cause in CAUSES if (c := cause(model, p, state, trace)) is not None)


def _cancelled_biases(model: nn.Module, trace: _Trace) -> list[str]:
    """Biases directly followed by a norm that cancels them exactly: dead whatever rounding leaves of
    their gradient (at 96 px it can exceed TINY_GRADIENT)."""
    cancelled = []
    for name, param in model.named_parameters():
        p = _parameter(model, name)
        following = trace.after(p.layer)[:1]
        if param.requires_grad and p.role == "bias" and following:
            norm = model.get_submodule(following[0])
            per_channel = not isinstance(norm, nn.GroupNorm) or norm.num_groups == norm.num_channels
            if isinstance(norm, EXACT_CANCELLING_NORMS) and per_channel:
                cancelled.append(name)
    return cancelled


def _gradient_findings(
    model: nn.Module, ab: torch.Tensor, precision: str, trace: _Trace
) -> tuple[list[str], list[str]]:
    """(failures, notes) on the gradients of the watched pass just run; ``ab`` is its input leaf."""
    states = _gradient_states(model, precision)
    infinite = [n for n, s in states.items() if s == "infinite"]
    failures = [f"non-finite gradient in: {_names(infinite)}"] if infinite else []
    failures += _input_gradient_problems(ab)
    notes: list[str] = []
    unhealthy = {n: s for n, s in states.items() if s != "infinite"}
    unhealthy |= {n: "cancelled" for n in _cancelled_biases(model, trace) if n not in states}
    causes: dict[tuple[str, bool], list[str]] = {}
    for name, state in unhealthy.items():
        causes.setdefault(_why_no_gradient(model, _parameter(model, name), state, trace), []).append(name)
    for (cause, fails), names in causes.items():
        (failures if fails else notes).append(f"{_names(names)}: {cause}")
    return failures, notes


def _frozen_note(model: nn.Module) -> list[str]:
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    if not frozen:
        return []
    return [
        f"{_names(frozen)}: frozen (requires_grad=False), so no gradient and no training: right for "
        "a fixed feature extractor, a mistake otherwise"
    ]


# ---------------------------------------------------------------- one pass
def _run_pass(
    model: nn.Module, size: int, batch: int, precision: str, device: torch.device, repeats: int
) -> tuple[PassResult, list[str], list[str]]:
    """One checked forward+backward, then ``repeats`` timed ones: (result, failures, notes), the
    findings without the pass's size and precision (``check_discriminator`` adds them)."""
    L, ab = _inputs(batch, size, device, seed=size)
    L_before, ab_before = L.clone(), ab.clone()
    trace = _Trace()
    ab_leaf, tensors, problems = _forward_backward(model, L, ab, precision, trace)
    result = PassResult(size, precision, output_shapes=[tuple(t.shape) for t in tensors])
    notes = []
    if not problems:
        problems, notes = _gradient_findings(model, ab_leaf, precision, trace)
    if not (torch.equal(L, L_before) and torch.equal(ab, ab_before)):
        problems.append("forward changed its inputs in place (they are reused by the generator's step)")
    if not problems:
        times = []
        for _ in range(max(1, repeats)):
            _sync(device)
            start = time.perf_counter()
            _forward_backward(model, L, ab, precision)
            _sync(device)
            times.append((time.perf_counter() - start) * 1000)
        result.ms = sorted(times)[len(times) // 2]
    result.status = "failed" if problems else "ok"
    return result, problems, notes


def _is_dtype_error(exc: Exception) -> bool:
    """Did a bf16 pass raise because of the dtype (no kernel, mixed dtypes), not a bug of the net?"""
    message = str(exc).lower()
    return isinstance(exc, RuntimeError | TypeError | NotImplementedError) and any(
        word in message for word in DTYPE_WORDS
    )


def _depends_on_L(model: nn.Module, size: int, batch: int, device: torch.device) -> str | None:
    """A failure message when changing L alone leaves the output unchanged (eval mode, no dropout)."""
    L, ab = _inputs(batch, size, device, seed=1)
    other_L, _ = _inputs(batch, size, device, seed=2)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            first, _ = _outputs(model(L, ab), batch)
            again, _ = _outputs(model(L, ab), batch)
            changed, _ = _outputs(model(other_L, ab), batch)
    finally:
        model.train(was_training)
    noise = max(float((a - b).abs().max()) for a, b in zip(first, again))
    effect = max(float((a - c).abs().max()) for a, c in zip(first, changed))
    scale = max(float(a.abs().max()) for a in first)
    if effect <= max(2 * noise, 1e-7 * scale):
        return (
            "the output does not depend on L_norm: a colorization discriminator must be conditional "
            "(concatenate L and ab, as pix2pix does)"
        )
    return None


# ---------------------------------------------------------------- the receptive field, measured
def _standardise(x: torch.Tensor, dims: tuple[int, ...], eps: float) -> torch.Tensor:
    """(x - mean) / sqrt(var + eps) over ``dims``, the mean and variance taken as constants."""
    stats = x.detach()
    mean = stats.mean(dims, keepdim=True)
    var = stats.var(dims, unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)


def _per_channel(y: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None) -> torch.Tensor:
    shape = (1, -1) + (1,) * (y.ndim - 2)
    y = y if weight is None else y * weight.reshape(shape)
    return y if bias is None else y + bias.reshape(shape)


# The normalisations of torch.nn.functional with the statistics of the input held constant; the
# signatures are torch's own (the modules call them with these names).
def _instance_norm(
    input,
    running_mean=None,
    running_var=None,
    weight=None,
    bias=None,
    use_input_stats=True,
    momentum=0.1,
    eps=1e-5,
):
    if not use_input_stats:  # running statistics: pointwise already
        return F.instance_norm(input, running_mean, running_var, weight, bias, False, momentum, eps)
    return _per_channel(_standardise(input, tuple(range(2, input.ndim)), eps), weight, bias)


def _batch_norm(
    input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5
):
    if not training:  # running statistics (eval mode): pointwise already
        return F.batch_norm(input, running_mean, running_var, weight, bias, False, momentum, eps)
    return _per_channel(_standardise(input, (0, *range(2, input.ndim)), eps), weight, bias)


def _group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    grouped = input.reshape(input.shape[0], num_groups, -1)
    return _per_channel(_standardise(grouped, (2,), eps).reshape(input.shape), weight, bias)


def _layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    y = _standardise(input, tuple(range(input.ndim - len(normalized_shape), input.ndim)), eps)
    y = y if weight is None else y * weight
    return y if bias is None else y + bias


CONSTANT_STATISTICS = {
    F.instance_norm: _instance_norm,
    F.batch_norm: _batch_norm,
    F.group_norm: _group_norm,
    F.layer_norm: _layer_norm,
}


class _ConstantStatistics(TorchFunctionMode):
    """Normalisations treat their statistics as constants; the forward's values are unchanged.

    A mean over the image (InstanceNorm, GroupNorm, LayerNorm, BatchNorm without running statistics)
    ties every logit to every pixel, with a gradient ~1/(h*w) of the direct one; the receptive field
    is the region a logit sees through its convolutions, so the measurement cuts that tie."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        return CONSTANT_STATISTICS.get(func, func)(*args, **(kwargs or {}))


def _device(model: nn.Module) -> torch.device:
    tensor = next(itertools.chain(model.parameters(), model.buffers()), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def _centre_logit_support(model: nn.Module, size: int, trials: int) -> list[torch.Tensor | None]:
    """Per output, the input pixels (size x size, bool) where the gradient of its centre logit (L and ab
    together) is non-zero for at least one of ``trials`` noise images; None for one logit per image."""
    device, seen = _device(model), []
    for trial in range(trials):
        gen = torch.Generator().manual_seed(trial)
        L, ab = (torch.randn(1, c, size, size, generator=gen).to(device).requires_grad_() for c in (1, 2))
        with _ConstantStatistics():
            out = model(L, ab)
        outputs = list(out) if isinstance(out, list | tuple) else [out]
        seen = seen or [None] * len(outputs)
        for i, logits in enumerate(outputs):
            if logits.ndim != 4:
                continue
            centre = logits[0, 0, logits.shape[2] // 2, logits.shape[3] // 2]
            grads = torch.autograd.grad(centre, (L, ab), retain_graph=True, allow_unused=True)
            mask = torch.zeros(size, size, dtype=torch.bool, device=device)
            for grad in (g for g in grads if g is not None):
                mask |= grad[0].ne(0).any(0)
            seen[i] = mask if seen[i] is None else seen[i] | mask
    return seen


def _extent(mask: torch.Tensor | None, size: int) -> ReceptiveField:
    if mask is None:
        return WHOLE_IMAGE
    rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
    if not len(rows):  # the centre logit ignores its input
        return ReceptiveField(0, 0, size)
    at_border = bool(rows[0] == 0 or cols[0] == 0 or rows[-1] == size - 1 or cols[-1] == size - 1)
    return ReceptiveField(int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1), size, at_border)


def measure_receptive_field(
    model: nn.Module, size: int = 64, trials: int = RF_TRIALS, max_size: int = RF_MAX_SIZE
) -> list[ReceptiveField]:
    """The receptive field of each output of a discriminator (one per scale when it returns a list).

    Measured, not derived from the layers: the extent in rows and columns of the input pixels where
    the gradient of the centre logit is non-zero (the centre, because padding makes border logits see
    less), the union over ``trials`` noise images (a ReLU closes different paths for different
    inputs; noise, unlike zero weights, leaves none closed for all), with the module as it is, in
    eval mode, normalisation statistics held constant (see ``_ConstantStatistics``). The square input
    starts at ``size`` px and doubles while the region reaches its border, up to ``max_size``; a
    region that still does is a lower bound (``at_least``), as is one where a larger input raises.
    An output with one logit per image sees the whole image.
    """
    was_training = model.training
    model.eval()
    try:
        fields = [_extent(m, size) for m in _centre_logit_support(model, size, trials)]
        while any(f.at_least for f in fields) and size < max_size:
            size = min(2 * size, max_size)
            try:
                fields = [_extent(m, size) for m in _centre_logit_support(model, size, trials)]
            except Exception:  # a network built for smaller inputs (or out of memory): keep the bound
                break
    finally:
        model.train(was_training)
    return fields


def _declared_receptive_field(model: nn.Module) -> tuple[bool, int | None, str | None]:
    """(declared?, value, warning) of the optional ``receptive_field`` attribute."""
    try:
        value = model.receptive_field
    except AttributeError:
        return False, None, None
    except Exception as exc:  # a property is user code
        return False, None, f"reading receptive_field raised {type(exc).__name__}: {exc}; ignored"
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        return False, None, f"receptive_field must be a positive int or None, got {value!r}; ignored"
    return True, value, None


def _add_receptive_field(report: CheckReport, model: nn.Module, size: int) -> None:
    """Measure the receptive field into the report; a declared one that disagrees is a warning."""
    report.declares_receptive_field, report.declared_receptive_field, warning = _declared_receptive_field(
        model
    )
    report.warnings += [warning] if warning else []
    try:
        report.receptive_fields = measure_receptive_field(model, size)
    except Exception as exc:  # the passes ran: this is an eval-mode or batch-of-one problem
        report.notes.append(f"receptive field not measured: a forward of one noise image raised {exc!r}")
        return
    declared = report.declared_receptive_field
    if report.declares_receptive_field and not any(f.agrees_with(declared) for f in report.receptive_fields):
        shown = "None (not defined)" if declared is None else f"{declared} px"
        report.warnings.append(
            f"receptive_field declares {shown}, but the measurement gives {report.receptive_field_text}: "
            "correct the attribute or drop it (it is optional)"
        )


# ---------------------------------------------------------------- the check
def _passes(where: list[str], ran: list[str]) -> str:
    return "every pass" if len(ran) > 1 and where == ran else ", ".join(where)


def check_discriminator(
    spec: Any,
    sizes: Sequence[int] = (64, 96),
    batch: int = 2,
    device: str | torch.device = "cpu",
    args: Mapping[str, Any] | None = None,
    raise_on_failure: bool = True,
    repeats: int = TIMED_REPEATS,
) -> CheckReport:
    """Check a discriminator against the contract (see the module docstring); returns the report,
    or raises :class:`ContractError` (with the report) listing every failure. A spec that cannot be
    built raises :class:`DiscriminatorBuildError` (whatever ``raise_on_failure`` says).

    ``args``: keyword arguments for the constructor; ``repeats``: timed passes per size and
    precision (the median is reported; the first, checked pass is never timed: it warms up).
    """
    device = torch.device(device)
    if not sizes or batch < 1:
        raise ValueError(f"need at least one size and a batch >= 1, got sizes {sizes}, batch {batch}")
    report = CheckReport(name=describe(spec), batch=batch, device=str(device))
    try:
        model = build_discriminator(spec, args).to(device)
    except RegistryError as exc:  # an unknown name or argument: the message says which
        raise DiscriminatorBuildError(f"cannot build {report.name}: {exc}") from exc
    except Exception as exc:  # the constructor is user code: pass on whatever it raised
        raise DiscriminatorBuildError(f"cannot build {report.name}: {type(exc).__name__}: {exc}") from exc
    report.parameters = sum(p.numel() for p in model.parameters())
    report.notes += _frozen_note(model)
    model.train()  # as in the GAN loop

    # one line per finding, naming every pass it came up in
    failures: dict[str, list[str]] = {}
    gradient_notes: dict[str, list[str]] = {}
    for size in sizes:
        for precision in PRECISIONS:
            if precision == "bfloat16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
                report.passes.append(PassResult(size, precision, status="unsupported"))
                report.notes.append(f"bfloat16 at {size} px is unsupported: this GPU has no bf16")
                continue
            try:
                result, problems, notes = _run_pass(model, size, batch, precision, device, repeats)
            except Exception as exc:  # a forward that raises is a finding, not a crash of the check
                message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                if precision == "bfloat16" and _is_dtype_error(exc):
                    # an op without a bf16 kernel on this device: worth knowing, not a contract breach
                    report.passes.append(PassResult(size, precision, status="unsupported"))
                    report.notes.append(f"bfloat16 autocast at {size} px is unsupported: {message}")
                    continue
                result, notes = PassResult(size, precision, status="failed"), []
                problems = [f"forward/backward raised {message}"]
            report.passes.append(result)
            for finding in problems:
                failures.setdefault(finding, []).append(f"{size} px {precision}")
            for finding in notes:
                gradient_notes.setdefault(finding, []).append(f"{size} px {precision}")
    ran = [f"{p.size} px {p.precision}" for p in report.passes if p.status != "unsupported"]
    report.failures += [f"{_passes(where, ran)}: {finding}" for finding, where in failures.items()]
    report.notes += [f"{_passes(where, ran)}: {finding}" for finding, where in gradient_notes.items()]

    if any(p.precision == "float32" and p.status == "ok" for p in report.passes):
        try:
            problem = _depends_on_L(model, sizes[0], batch, device)
        except Exception as exc:
            problem = f"forward in eval mode raised {type(exc).__name__}: {exc}"
        report.failures += [problem] if problem else []
    if any(p.precision == "float32" and p.output_shapes for p in report.passes):  # a forward ran
        _add_receptive_field(report, model, max(sizes))
    model.zero_grad(set_to_none=True)
    if raise_on_failure and report.failures:
        raise ContractError(report)
    return report
