"""gan-colorize: automatic image colorization with GANs and the classic baselines."""

__version__ = "0.1.0"
