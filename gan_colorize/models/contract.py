"""The discriminator drop-in contract, checked: does a discriminator work in the GAN loop?

``check_discriminator(spec)`` builds the discriminator (a registered name, ``module:Class``, a class,
a spec dict ``{"type": ..., **kwargs}`` or a module instance), runs forward and backward on random
(L_norm, ab_norm) batches at two sizes, in float32 and under bfloat16 autocast, and checks what the
training loop relies on (the contract is written out in ``discriminators.py``):

1. the output is logits: a tensor (N, 1, h, w) or (N, 1), or a list of such tensors, finite;
2. every parameter gets a non-zero gradient (an unused layer is named), and so does ab_norm: the
   generator learns only through that gradient;
3. the output depends on L (the discriminator is conditional), and the inputs are left unchanged
   (the same L and ab tensors are reused for the generator's and the discriminator's steps);
4. ``receptive_field`` exists (an int, or None where it is not defined).

It reports the parameter count, the output shapes and the milliseconds per forward+backward batch
and raises :class:`ContractError` listing every failure; a spec that cannot be built (an unknown
name, an argument the class does not take, a constructor that raises) raises
:class:`DiscriminatorBuildError` instead. ``gan-colorize check-discriminator`` prints the same report.

A bfloat16 pass that raises for a dtype reason (an op without a bf16 kernel on the device) is
recorded as "unsupported", not as a failure: training in float32 still works.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from gan_colorize.registry import DISCRIMINATORS, RegistryError

PRECISIONS = ("float32", "bfloat16")
TIMED_REPEATS = 3  # timed forward+backward passes per size after the checked one (median reported)
# A parameter whose largest |gradient| is below this fraction of the network's largest gets a note:
# a bias before a mean-subtracting norm has an analytically zero gradient that float32 rounding
# leaves at ~1e-7 of the others (measured on a PatchGAN with InstanceNorm after biased convs).
TINY_GRADIENT = 1e-5
# words of torch's messages for an op or a mix of dtypes that bf16 autocast does not support
DTYPE_WORDS = ("bfloat16", "bf16", "dtype", "scalar type", "not implemented for", "half")


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


@dataclass
class CheckReport:
    name: str
    batch: int
    device: str
    parameters: int = 0
    receptive_field: int | None = None
    passes: list[PassResult] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # worth reading, not contract breaches

    @property
    def passed(self) -> bool:
        return not self.failures

    def render(self):
        """A rich Table: one row per size and precision, failures and notes in the caption."""
        from rich.table import Table

        rf = "undefined" if self.receptive_field is None else f"{self.receptive_field} px"
        table = Table(
            title=f"{self.name}: {self.parameters:,} parameters, receptive field {rf}",
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
        lines = [
            "[green]PASS[/green]: meets the discriminator contract" if self.passed else "[red]FAIL[/red]:"
        ]
        lines += [f"  - {failure}" for failure in self.failures]
        lines += [f"  note: {note}" for note in self.notes]
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


def _tiny_gradients(model: nn.Module) -> list[str]:
    """Parameters whose gradient is nonzero but negligible against the network's largest."""
    grads = {n: float(p.grad.abs().max()) for n, p in model.named_parameters() if p.grad is not None}
    largest = max(grads.values(), default=0.0)
    return [n for n, g in grads.items() if 0 < g < TINY_GRADIENT * largest]


def _gradient_problems(model: nn.Module, ab: torch.Tensor) -> list[str]:
    missing, zero, infinite = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.grad is None:
            missing.append(name)
        elif not torch.isfinite(p.grad).all():
            infinite.append(name)
        elif not p.grad.any():
            zero.append(name)
    problems = []
    if missing:
        problems.append(f"no gradient reaches {len(missing)} parameter(s) (unused?): {', '.join(missing)}")
    if zero:
        problems.append(
            f"the gradient of {len(zero)} parameter(s) is exactly zero (used through a constant 0 "
            "or a non-differentiable op?): " + ", ".join(zero)
        )
    if infinite:
        problems.append(f"non-finite gradient in: {', '.join(infinite)}")
    if ab.grad is None or not ab.grad.any():
        problems.append("no gradient reaches ab_norm: the generator could not learn from this discriminator")
    elif not torch.isfinite(ab.grad).all():
        problems.append("the gradient reaching ab_norm is not finite")
    return problems


def _autocast(device: torch.device, precision: str):
    if precision == "float32":
        return torch.autocast(device_type=device.type, enabled=False)
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _forward_backward(model: nn.Module, L: torch.Tensor, ab: torch.Tensor, precision: str):
    model.zero_grad(set_to_none=True)
    ab = ab.detach().requires_grad_()
    with _autocast(L.device, precision):
        out = model(L, ab)
    tensors, problems = _outputs(out, L.shape[0])
    if problems:
        return ab, tensors, problems
    # the mean of every logit: each one gets a gradient, whatever the number of scales
    sum(t.float().mean() for t in tensors).backward()
    return ab, tensors, []


def _run_pass(
    model: nn.Module, size: int, batch: int, precision: str, device: torch.device, repeats: int
) -> tuple[PassResult, list[str], list[str]]:
    """One checked forward+backward, then ``repeats`` timed ones: (result, failures, notes)."""
    L, ab = _inputs(batch, size, device, seed=size)
    L_before, ab_before = L.clone(), ab.clone()
    ab_leaf, tensors, problems = _forward_backward(model, L, ab, precision)
    result = PassResult(size, precision, output_shapes=[tuple(t.shape) for t in tensors])
    notes = []
    if not problems:
        problems = _gradient_problems(model, ab_leaf)
        tiny = _tiny_gradients(model) if precision == "float32" else []
        if tiny:
            notes.append(
                f"{size} px: the gradient of {', '.join(tiny)} is below {TINY_GRADIENT:g} x the largest "
                "(a bias cancelled by the norm after it? it would be a dead parameter)"
            )
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
    return result, [f"{size} px, {precision}: {p}" for p in problems], notes


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


def _receptive_field(model: nn.Module) -> tuple[int | None, str | None]:
    if not hasattr(model, "receptive_field"):
        return None, "no `receptive_field` attribute: give the input pixels one logit sees, or None"
    rf = model.receptive_field
    if rf is not None and (isinstance(rf, bool) or not isinstance(rf, int) or rf < 1):
        return None, f"receptive_field must be a positive int or None, got {rf!r}"
    return rf, None


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
    report.receptive_field, problem = _receptive_field(model)
    report.failures += [problem] if problem else []
    model.train()  # as in the GAN loop

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
                problems = [f"{size} px, {precision}: forward/backward raised {message}"]
            report.passes.append(result)
            report.failures += problems
            report.notes += notes

    if any(p.precision == "float32" and p.status == "ok" for p in report.passes):
        try:
            problem = _depends_on_L(model, sizes[0], batch, device)
        except Exception as exc:
            problem = f"forward in eval mode raised {type(exc).__name__}: {exc}"
        report.failures += [problem] if problem else []
    model.zero_grad(set_to_none=True)
    if raise_on_failure and report.failures:
        raise ContractError(report)
    return report
