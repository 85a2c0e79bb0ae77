"""Networks, registered by name: generators (``unet.py``, ``zhang.py``) in ``GENERATORS`` and
discriminators (``discriminators.py``) in ``DISCRIMINATORS``; ``io.py`` reads and writes the
generator file. The registries import these modules on first lookup. A network outside the
package needs no entry here: name it in a config as ``type: my_module:MyClass``.
"""

from gan_colorize.models.io import load_generator, predict_ab_norm, save_generator  # noqa: F401
