"""The dataset registry: name -> loader(DatasetConfig) -> VideoDataset."""

from __future__ import annotations

from collections.abc import Callable

from clipaction.config import DatasetConfig
from clipaction.data.records import VideoDataset
from clipaction.registry import Registry

DatasetLoader = Callable[[DatasetConfig], VideoDataset]

DATASETS: Registry[DatasetLoader] = Registry("dataset")


def load_dataset(config: DatasetConfig) -> VideoDataset:
    """Load the videos `config` describes, with the registered loader for `config.name`."""
    return DATASETS.get(config.name)(config)


def list_datasets(pattern: str = "*") -> list[str]:
    return DATASETS.names(pattern)
