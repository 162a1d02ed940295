"""User data for evaluation, calibration and recovery (image folders, tensor files, text).

`open_data(path, model_facts=...)` -> `DataSource`; `make_loader(source, batch_size)` ->
batches of `Batch`; `split_source` / `subset` for deterministic calibration/evaluation
splits; `Preprocessing` is the one editable description of how images become inputs.
"""

from .batch import Batch, as_batch
from .errors import DataError
from .preprocessing import ModelFacts, Preprocessing, build_transform, preprocessing_for
from .selection import DataOptions, RunData, prepare_data, prepare_evaluation
from .source import (
    BatchLoader,
    DataSource,
    DataSplit,
    make_loader,
    open_data,
    resolve_preprocessing,
    split_source,
    subset,
)
from .text import TextTokenizer, load_tokenizer

__all__ = [
    "Batch",
    "as_batch",
    "DataError",
    "ModelFacts",
    "Preprocessing",
    "build_transform",
    "preprocessing_for",
    "BatchLoader",
    "DataSource",
    "DataSplit",
    "make_loader",
    "open_data",
    "resolve_preprocessing",
    "split_source",
    "subset",
    "DataOptions",
    "RunData",
    "prepare_data",
    "prepare_evaluation",
    "TextTokenizer",
    "load_tokenizer",
]
