"""COSMO data: the row type, the JSONL loader, the built-in dataset generator and jailbreak augmentation."""

from cosmo.data.augment import TRANSFORMS, AugmentOptions, augment_dataset, cached_augmentation
from cosmo.data.build import build_dataset, build_from_config, corpus_texts
from cosmo.data.loader import load_images, load_jsonl, sample_to_row, write_jsonl
from cosmo.data.schema import TASKS, DataError, Sample

__all__ = [
    "TASKS",
    "TRANSFORMS",
    "AugmentOptions",
    "DataError",
    "Sample",
    "augment_dataset",
    "build_dataset",
    "build_from_config",
    "cached_augmentation",
    "corpus_texts",
    "load_images",
    "load_jsonl",
    "sample_to_row",
    "write_jsonl",
]
