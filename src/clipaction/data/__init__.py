"""Datasets: where videos and their labels come from."""

from clipaction.data import (  # noqa: F401  (registers the loaders)
    folder,
    hmdb51,  # noqa: F401  (registers the loader)
    kinetics,  # noqa: F401  (registers the loader)
    ucf101,
)
from clipaction.data.records import DatasetError, MissingVideo, VideoDataset, VideoRecord
from clipaction.data.registry import DATASETS, list_datasets, load_dataset

__all__ = [
    "DATASETS",
    "DatasetError",
    "MissingVideo",
    "VideoDataset",
    "VideoRecord",
    "list_datasets",
    "load_dataset",
]
