"""Datasets: where videos and their labels come from."""

from clipaction.data.records import DatasetError, MissingVideo, VideoDataset, VideoRecord
from clipaction.data.registry import DATASETS, list_datasets, load_dataset
from clipaction.data import folder, ucf101  # noqa: F401  (registers the loaders)
from clipaction.data import hmdb51  # noqa: F401  (registers the loader)
from clipaction.data import kinetics  # noqa: F401  (registers the loader)

__all__ = [
    "DATASETS",
    "DatasetError",
    "MissingVideo",
    "VideoDataset",
    "VideoRecord",
    "list_datasets",
    "load_dataset",
]
