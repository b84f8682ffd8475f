"""Data: the IDX reader and the MNIST / Fashion-MNIST datasets."""
from .datasets import (DATASETS, FILES, DataError, Dataset, Split, data_root,
                       ensure_files, load_dataset, read_verified)
from .idx import IdxError, encode_idx, parse_idx, read_idx

__all__ = ["DATASETS", "FILES", "DataError", "Dataset", "Split", "data_root",
           "ensure_files", "load_dataset", "read_verified", "IdxError", "encode_idx", "parse_idx", "read_idx"]
