"""gan-colorize: automatic image colorization with GANs and the classic baselines.

``from gan_colorize import Colorizer`` is the inference entry point (``gan_colorize.inference``).
It is imported on first access (PEP 562), so ``import gan_colorize`` alone (the command line's
start, ``__version__``) does not pay for importing torch.
"""

__version__ = "0.1.0"

__all__ = ["Colorizer", "__version__"]


def __getattr__(name: str):
    if name == "Colorizer":
        from gan_colorize.inference.colorizer import Colorizer

        globals()["Colorizer"] = Colorizer  # later lookups find it without coming back here
        return Colorizer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
