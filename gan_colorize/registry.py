"""Registries: components are built by name from configs, never from if/elif chains.

A config names a component with ``type:`` and gives its keyword arguments beside it::

    discriminator:
      type: patchgan        # a registered name ...
      n_layers: 3
    discriminator:
      type: my_lab.discs:SpectralPatch   # ... or any importable ``module:Class``

so that a new discriminator (or generator, loss, metric) is one new file and one config line.

Importing ``module:Class`` runs that module's code, which is fine for a config you wrote and not
for one read from a file someone sent you: ``get(name, allow_import=False)`` (and ``build``)
accept then only registered names, and ``module:Class`` paths whose class is already registered
(its module imported, its decorator run), and import nothing.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import sys
from collections.abc import Callable, Mapping
from typing import Any


class RegistryError(KeyError, ValueError):
    """An unknown component name or an argument the component does not take."""

    def __str__(self) -> str:  # KeyError would print the message inside quotes
        return str(self.args[0]) if self.args else ""


class ImportRefusedError(RegistryError):
    """A ``module:Class`` that is not registered, in a lookup that was not allowed to import it."""


def closest(name: str, options) -> str:
    """' (did you mean X?)' when a close match exists, else ''."""
    match = difflib.get_close_matches(name, list(options), n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else ""


def import_by_path(path: str) -> Any:
    """Import ``package.module:Attribute`` (``module.Attribute`` is accepted too)."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise RegistryError(f"{path!r} is not of the form 'module:Class'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = " (is its folder on the Python path? e.g. PYTHONPATH=. for a file in the current folder)"
        missing = isinstance(exc, ModuleNotFoundError) and exc.name == module_name.split(".")[0]
        raise RegistryError(
            f"cannot import module {module_name!r} for {path!r}: {exc}{hint if missing else ''}"
        ) from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise RegistryError(f"module {module_name!r} has no attribute {attr!r}") from None


class Registry:
    """A name -> class (or factory) table for one kind of component."""

    def __init__(self, kind: str, modules: tuple[str, ...] = ()):
        self.kind = kind
        self._entries: dict[str, Callable] = {}
        # the package modules whose decorators fill this registry, imported on first lookup so
        # that importing the registry never imports torch models (and never makes a cycle)
        self._modules = modules
        self._loaded = not modules

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self._modules:
                importlib.import_module(module)

    def register(self, name: str | None = None):
        """Decorator: ``@GENERATORS.register("unet")``."""

        def add(obj: Callable) -> Callable:
            key = name or obj.__name__
            if key in self._entries and self._entries[key] is not obj:
                raise RegistryError(f"{self.kind} {key!r} is already registered")
            self._entries[key] = obj
            obj.registry_name = key
            return obj

        return add

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._entries

    def registered_at(self, path: str) -> Callable | None:
        """The registered class that ``module:Class`` names, when its module is already imported
        (None otherwise): looking it up imports and runs nothing."""
        module_name, _, attr = path.partition(":")
        module = sys.modules.get(module_name)
        obj = getattr(module, attr, None) if module is not None else None
        self._load()
        return obj if obj is not None and any(obj is entry for entry in self._entries.values()) else None

    def get(self, name: str, allow_import: bool = True) -> Callable:
        """The component called ``name``; ``allow_import=False`` refuses to import a ``module:Class``
        that is not registered already (for names read from files that may not be trusted)."""
        if ":" in name:
            registered = self.registered_at(name)
            if registered is not None:
                return registered
            if not allow_import:
                raise ImportRefusedError(
                    f"{self.kind} {name!r} is not registered, and importing it would run the code of "
                    f"module {name.partition(':')[0]!r}; registered: {', '.join(self.names())}"
                )
            return import_by_path(name)
        self._load()
        try:
            return self._entries[name]
        except KeyError:
            raise RegistryError(
                f"unknown {self.kind} {name!r}{closest(name, self._entries)}; "
                f"registered: {', '.join(self.names())}; or give 'module:Class'"
            ) from None

    def build(self, spec: str | Mapping[str, Any], /, allow_import: bool = True, **extra: Any) -> Any:
        """Build from ``{"type": name, **kwargs}`` (or a bare name); ``extra`` adds arguments.
        ``allow_import``: see :meth:`get`."""
        if isinstance(spec, str):
            spec = {"type": spec}
        if "type" not in spec:
            raise RegistryError(f"{self.kind} spec {dict(spec)!r} has no 'type:'")
        kwargs = {k: v for k, v in spec.items() if k != "type"}
        kwargs.update(extra)
        factory = self.get(spec["type"], allow_import=allow_import)
        check_arguments(factory, kwargs, f"{self.kind} {spec['type']!r}")
        return factory(**kwargs)

    def check(
        self, spec: str | Mapping[str, Any], where: str, /, allow_import: bool = True, given=()
    ) -> Callable:
        """What :meth:`build` would refuse, found without building: the name (registered, or an
        importable ``module:Class``), unknown arguments and missing required ones. ``given``: the
        arguments the caller adds itself. Raises RegistryError prefixed with ``where``; returns the
        factory."""
        try:
            if isinstance(spec, str):
                spec = {"type": spec}
            if not isinstance(spec, Mapping) or "type" not in spec:
                raise RegistryError(f"a {self.kind} spec needs a 'type:' key, got {spec!r}")
            if not isinstance(spec["type"], str):
                raise RegistryError(f"'type' must be a string, got {spec['type']!r}")
            factory = self.get(spec["type"], allow_import=allow_import)
            kwargs = {k: v for k, v in spec.items() if k != "type"}
            what = f"{self.kind} {spec['type']!r}"
            check_arguments(factory, kwargs, what)
            check_required(factory, set(kwargs) | set(given), what)
        except RegistryError as exc:
            raise type(exc)(f"{where}: {exc}") from None
        return factory


def check_arguments(factory: Callable, kwargs: Mapping[str, Any], what: str) -> None:
    """Reject keyword arguments the factory does not take, suggesting the closest one."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # builtins without a signature: let the call decide
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL]
    for key in kwargs:
        if key not in accepted:
            raise RegistryError(
                f"{what} takes no argument {key!r}{closest(key, accepted)}; "
                f"it takes: {', '.join(accepted) or 'nothing'}"
            )


def check_required(factory: Callable, given: set[str], what: str) -> None:
    """Reject a spec that leaves out an argument the factory requires."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return
    missing = [
        n
        for n, p in params.items()
        if p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        and n not in given
    ]
    if missing:
        raise RegistryError(f"{what} needs the argument(s) {', '.join(missing)}")


GENERATORS = Registry(
    "generator",
    ("gan_colorize.models.unet", "gan_colorize.models.zhang", "gan_colorize.models.unet_backbone"),
)
DISCRIMINATORS = Registry("discriminator", ("gan_colorize.models.discriminators",))
LOSSES = Registry(
    "loss",
    (
        "gan_colorize.losses.adversarial",
        "gan_colorize.losses.reconstruction",
        "gan_colorize.losses.perceptual",
    ),
)
METRICS = Registry("metric", ("gan_colorize.metrics",))
FEATURE_NETS = Registry("feature network", ("gan_colorize.losses.perceptual",))
ADVERSARIAL_LOSSES = Registry("adversarial loss", ("gan_colorize.losses.adversarial",))
REGULARIZERS = Registry("regularizer", ("gan_colorize.losses.regularizers",))
OBJECTIVES = Registry("objective", ("gan_colorize.training.objectives", "gan_colorize.training.gan"))
