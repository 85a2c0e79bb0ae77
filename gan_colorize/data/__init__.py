"""Image data: files (``files.py``) and file lists (``lists.py``), robust decoding (``decode.py``),
the index built once per source (``index.py``), datasets and the evaluation transform
(``dataset.py``), WebDataset shards (``shards.py``: reading; ``shard_writer.py``: ``gan-colorize
data shard``), and ``gan-colorize data inspect`` (``inspect.py``)."""

from gan_colorize.data.dataset import (  # noqa: F401
    BUILTIN,
    BuiltinSkimage,
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
from gan_colorize.data.index import DatasetError, Screening, screen  # noqa: F401
from gan_colorize.data.lists import read_file_list  # noqa: F401
