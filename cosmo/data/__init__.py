"""COSMO data: the row type, the JSONL loader, the built-in dataset generator and jailbreak augmentation."""

from cosmo.lazy import lazy_exports

_EXPORTS = {
    "TASKS": "schema",
    "TRANSFORMS": "augment",
    "AugmentOptions": "augment",
    "DataError": "schema",
    "Sample": "schema",
    "augment_dataset": "augment",
    "build_dataset": "build",
    "build_from_config": "build",
    "cached_augmentation": "augment",
    "config_options": "build",
    "corpus_texts": "build",
    "load_images": "loader",
    "load_jsonl": "loader",
    "sample_to_row": "loader",
    "write_jsonl": "loader",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
