"""COSMO data: the row type, the JSONL loader and the built-in dataset generator."""

from cosmo.data.build import build_dataset, corpus_texts
from cosmo.data.loader import load_images, load_jsonl, sample_to_row, write_jsonl
from cosmo.data.schema import TASKS, DataError, Sample

__all__ = [
    "TASKS",
    "DataError",
    "Sample",
    "build_dataset",
    "corpus_texts",
    "load_images",
    "load_jsonl",
    "sample_to_row",
    "write_jsonl",
]
