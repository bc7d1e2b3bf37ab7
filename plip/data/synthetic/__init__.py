"""Synthetic persons in the SYNTH-PEDES format.

``generate_dataset(out_dir, identities, images_per_id, seed)`` renders pedestrians with
PIL (no download, no GPU) and writes SYNTH-PEDES and CUHK-PEDES annotations for them, so
that tests, CI and small CPU training runs have realistic person-search data:

- :mod:`.identity`: the attributes of one person (:class:`Identity`), sampled so that
  many people look alike;
- :mod:`.variation`: what changes between two shots of a person (:class:`Variation`);
- :mod:`.render`: drawing an identity under a variation (:func:`render_image`);
- :mod:`.writer`: the dataset folder (:func:`generate_dataset`).
"""

from .identity import COLOURS, HAIR_COLOURS, Identity, sample_identities, sample_identity
from .render import render_image
from .variation import IMAGE_HEIGHT, IMAGE_WIDTH, VIEWS, Occluder, Variation, sample_variation
from .writer import (
    CUHKPEDES_JSON,
    INFO_JSON,
    SYNTHPEDES_JSON,
    SyntheticDataset,
    generate_dataset,
    split_sizes,
)

__all__ = [
    "COLOURS",
    "CUHKPEDES_JSON",
    "HAIR_COLOURS",
    "IMAGE_HEIGHT",
    "IMAGE_WIDTH",
    "INFO_JSON",
    "Identity",
    "Occluder",
    "SYNTHPEDES_JSON",
    "SyntheticDataset",
    "VIEWS",
    "Variation",
    "generate_dataset",
    "render_image",
    "sample_identities",
    "sample_identity",
    "sample_variation",
    "split_sizes",
]
