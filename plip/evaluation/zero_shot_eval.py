"""Zero-shot attribute recognition scored like the trained attribute models.

:func:`evaluate_zero_shot` classifies a split of an attribute benchmark
(:class:`~plip.data.attributes.AttributeDataset`: PA-100K, PETA, RAP, or any folder in
those formats) with the dataset's schema and reports label-based mA and instance-based
accuracy / precision / recall / F1 exactly as
:func:`plip.evaluation.attribute_metrics.evaluate_attributes` computes them for
``plip train par`` models, so both can sit in one table. Decisions: a binary attribute is
present when its probability exceeds the threshold; an exclusive group (age, view, lower
garment ...) predicts its most probable value.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..data.attributes import AttributeDataset
from ..errors import ConfigError
from ..inference.zero_shot import Calibration, calibrate, classify_attributes
from ..inference.zero_shot_schema import AttributeSchema, get_schema
from .attribute_metrics import evaluate_attributes

__all__ = ["schema_for_dataset", "evaluate_zero_shot"]


def schema_for_dataset(dataset: AttributeDataset, schema: str | AttributeSchema | None = None) -> AttributeSchema:
    """The schema restricted to the dataset's label columns (default: the dataset's own
    built-in schema); :class:`ConfigError` naming the columns the schema cannot predict."""
    chosen = get_schema(schema if schema is not None else dataset.name)
    missing = [name for name in dataset.attribute_names if name not in chosen.columns]
    if missing:
        raise ConfigError(
            f"schema {chosen.name!r} predicts no column(s) {missing} of {dataset.name}; "
            "pass a schema whose label columns are the dataset's attribute names"
        )
    return chosen.select(dataset.attribute_names)


def _columns_in_order(schema: AttributeSchema, names: list[str]) -> list[int]:
    index = {column: i for i, column in enumerate(schema.columns)}
    return [index[name] for name in names]


def evaluate_zero_shot(
    model: Any,
    dataset: AttributeDataset,
    split: str = "test",
    *,
    schema: str | AttributeSchema | None = None,
    calibration: Calibration | None = None,
    calibrate_images: int = 0,
    calibrate_split: str | None = None,
    threshold: float = 0.5,
    batch_size: int = 64,
    num_workers: int = 0,
    progress: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """Zero-shot metrics of ``model`` on ``dataset``'s ``split`` (fractions in [0, 1]).

    Args:
        calibration: a fitted :class:`Calibration` to apply; or
        calibrate_images: fit one on this many images (drawn with ``seed``) of
            ``calibrate_split`` (default ``train``, else ``trainval``) first; 0: none.

    Returns:
        :func:`evaluate_attributes`' dict (``mA``, ``accuracy``, ``precision``, ``recall``,
        ``f1``, ``per_attribute_mA``, ...) plus ``schema``, ``calibration`` (its JSON or
        None) and ``seconds``.
    """
    if calibration is not None and calibrate_images:
        raise ConfigError("pass a calibration or calibrate_images, not both")
    if calibrate_images < 0:
        raise ConfigError(f"calibrate_images must be >= 0, got {calibrate_images}")
    chosen = schema_for_dataset(dataset, schema)
    names = list(dataset.attribute_names)
    paths, labels = dataset.split(split)  # an unknown split fails before anything is encoded
    if not paths:
        raise ConfigError(f"{dataset.name} split {split!r} has no images")
    seconds: dict[str, float] = {}
    if calibrate_images:
        source = calibrate_split or ("train" if "train" in dataset.partitions else "trainval")
        if source == split:
            raise ConfigError(f"calibrating on the evaluated split {split!r} would leak its labels; pick another")
        cal_paths, cal_labels = dataset.split(source)
        if not cal_paths:
            raise ConfigError(f"{dataset.name} split {source!r} has no images to calibrate on")
        pick = np.random.default_rng(seed).permutation(len(cal_paths))[:calibrate_images]
        tic = time.perf_counter()
        calibration = calibrate(model, [str(cal_paths[i]) for i in pick], cal_labels[pick], chosen, columns=names,
                                batch_size=batch_size, num_workers=num_workers)  # fmt: skip
        seconds["calibrate"] = round(time.perf_counter() - tic, 4)
    tic = time.perf_counter()
    prediction = classify_attributes(model, [str(p) for p in paths], chosen, calibration=calibration,
                                     batch_size=batch_size, num_workers=num_workers, progress=progress)  # fmt: skip
    seconds["classify"] = round(time.perf_counter() - tic, 4)
    order = _columns_in_order(chosen, names)
    decisions = prediction.decisions(threshold).numpy()[:, order].astype(np.float64)
    result = evaluate_attributes(decisions, labels, threshold=0.5, attribute_names=names)
    result["threshold"] = float(threshold)
    result["schema"] = chosen.name
    result["calibration"] = calibration.to_json() if calibration is not None else None
    result["seconds"] = seconds
    return result
