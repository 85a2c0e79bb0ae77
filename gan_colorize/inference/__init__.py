"""Colorizing real photographs: ``Colorizer`` (any size, full-resolution L kept), the folder runner
behind ``gan-colorize colorize`` (``batch.py``) and the inference file (``export.py``)."""

from gan_colorize.inference.colorizer import Colorizer  # noqa: F401
from gan_colorize.inference.export import export_generator  # noqa: F401
