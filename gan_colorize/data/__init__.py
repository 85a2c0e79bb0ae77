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
from gan_colorize.data.decode import (  # noqa: F401
    BadImageError,
    chroma_level,
    chroma_std,
    load_image_keep_alpha,
    load_rgb,
)
from gan_colorize.data.files import list_image_files, split_files  # noqa: F401
