"""Training: the loop (``loop.py``), its objectives, the sample stream, EMA and sample grids."""

from gan_colorize.training.loop import NonFiniteLossError, Trainer, train  # noqa: F401
