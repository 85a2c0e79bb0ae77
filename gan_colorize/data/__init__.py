"""Image data: files (``files.py``), robust decoding (``decode.py``), datasets and the evaluation
transform (``dataset.py``), and ``gan-colorize data inspect`` (``inspect.py``)."""

from gan_colorize.data.dataset import (  # noqa: F401
    BUILTIN,
    BuiltinSkimage,
    DatasetError,
    EvalImages,
    ImageFolderDataset,
    build_datasets,
    eval_transform,
)
from gan_colorize.data.decode import BadImageError, load_image_keep_alpha, load_rgb  # noqa: F401
from gan_colorize.data.files import list_image_files  # noqa: F401
