"""Zero-shot attribute recognition and person description from text prompts.

PLIP embeds person images and descriptions in one space, so an attribute is recognised by
comparing an image with the prompts of its values. For every value of a schema
(:mod:`plip.inference.zero_shot_schema`) the prompt ensemble is encoded once, the
normalised text embeddings averaged and re-normalised (one embedding per value). An
image's logits over the values of one attribute are
``logit_scale * cos(image, value) + bias``; a softmax over them gives the distribution
over the values: for a binary attribute the probability of the positive value against its
negative, for a group (upper-body colour, age group ...) one-vs-rest over the group.

* Without calibration ``logit_scale`` is :data:`DEFAULT_LOGIT_SCALE` (``1 / 0.07``: the
  temperature of plip's pre-training recipe and CLIP's initial one) and every bias is 0: a binary attribute is present when the image is
  closer to its positive prompts than to its negative ones, a group takes its closest value.
* :func:`calibrate` fits one ``logit_scale`` and a bias per value on a small labelled set
  (class-balanced binary cross-entropy per label column, so that the 0.5 threshold suits
  mA), which corrects the prompts' own offsets.

Prompt embeddings are cached per (model, schema) and recomputed only when the text
tower's weights change, so classifying N images costs N image encodes.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.captions import PersonDescription, prompt_caption
from ..errors import ConfigError, DataError
from .zero_shot_facts import merge_fragments
from .zero_shot_schema import BINARY, AttributeSchema, get_schema

__all__ = [
    "DEFAULT_LOGIT_SCALE",
    "Calibration",
    "AttributePrediction",
    "prompt_embeddings",
    "classify_attributes",
    "calibrate",
    "describe",
]

#: Logit scale used when no calibration is given: ``1 / 0.07``, the contrastive temperature
#: of plip's pre-training recipe (and CLIP's initial value). It sets how peaked the
#: probabilities are, never which value wins: without biases a binary attribute is present
#: exactly when the image is closer to its positive than to its negative prompts.
DEFAULT_LOGIT_SCALE = 1 / 0.07

# model -> {schema: (text-weights fingerprint, [per-attribute (V, D) value embeddings])}
_PROMPT_CACHE: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


def _text_fingerprint(model: Any) -> tuple:
    """Changes whenever a text-tower weight is updated in place or replaced, or moves."""
    return tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in model.text.parameters())


@torch.no_grad()
def prompt_embeddings(model: Any, schema: str | AttributeSchema, *, batch_size: int = 256) -> list[torch.Tensor]:
    """One L2-normalised embedding per value, ``(V, D)`` per attribute of ``schema``.

    Every prompt of the schema is encoded in one :meth:`encode_text` call; a value's
    embedding is the re-normalised mean of its prompts' embeddings. Cached per model and
    schema until the text weights change.
    """
    schema = get_schema(schema)
    per_model = _PROMPT_CACHE.setdefault(model, {})
    fingerprint = _text_fingerprint(model)
    hit = per_model.get(schema)
    if hit is not None and hit[0] == fingerprint:
        return hit[1]
    prompts = [p for a in schema.attributes for v in a.values for p in v.prompts]
    encoded = model.encode_text(prompts, batch_size=batch_size).float()
    out, start = [], 0
    for attribute in schema.attributes:
        rows = []
        for value in attribute.values:
            mean = encoded[start : start + len(value.prompts)].mean(0)
            rows.append(mean / mean.norm().clamp_min(1e-12))
            start += len(value.prompts)
        out.append(torch.stack(rows))
    per_model[schema] = (fingerprint, out)
    return out


@dataclass(frozen=True)
class Calibration:
    """A logit scale and per-value biases fitted on labelled images (:func:`calibrate`).

    ``biases`` maps an attribute name to one bias per value (a binary attribute's negative
    value keeps bias 0). Saved and read as JSON (:meth:`save`, :meth:`load`).
    """

    schema: str
    logit_scale: float
    biases: dict[str, tuple[float, ...]]
    images: int = 0
    columns_fitted: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {"schema": self.schema, "logit_scale": self.logit_scale, "images": self.images,
                "columns_fitted": list(self.columns_fitted), "biases": {k: list(v) for k, v in self.biases.items()}}  # fmt: skip

    def save(self, path: str | os.PathLike) -> None:
        from ..utils.io import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Calibration:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(str(data["schema"]), float(data["logit_scale"]),
                       {str(k): tuple(float(b) for b in v) for k, v in data["biases"].items()},
                       int(data.get("images", 0)), tuple(data.get("columns_fitted", ())))  # fmt: skip
        except OSError as error:
            raise ConfigError(f"cannot read calibration file {path}: {error.strerror or error}") from None
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ConfigError(f"{path}: not a zero-shot calibration file ({type(error).__name__}: {error})") from None

    def check(self, schema: AttributeSchema) -> None:
        """Raise :class:`ConfigError` unless every bias fits an attribute of ``schema``."""
        for attribute in schema.attributes:
            biases = self.biases.get(attribute.name)
            if biases is not None and len(biases) != len(attribute.values):
                raise ConfigError(
                    f"calibration of schema {self.schema!r}: attribute {attribute.name!r} has {len(biases)} biases, "
                    f"schema {schema.name!r} gives it {len(attribute.values)} values"
                )


@dataclass
class AttributePrediction:
    """Zero-shot predictions for N images.

    ``distributions[name]`` is the ``(N, V)`` probability of each value of attribute
    ``name`` (rows sum to 1; a binary attribute's values are positive, negative).
    """

    schema: AttributeSchema
    distributions: dict[str, torch.Tensor]
    logit_scale: float = DEFAULT_LOGIT_SCALE
    calibrated: bool = False
    ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return next(iter(self.distributions.values())).shape[0]

    @property
    def columns(self) -> tuple[str, ...]:
        return self.schema.columns

    @property
    def probs(self) -> torch.Tensor:
        """``(N, C)`` probability of each label column (``columns``)."""
        parts = []
        for attribute in self.schema.attributes:
            dist = self.distributions[attribute.name]
            keep = [i for i, v in enumerate(attribute.values) if v.column is not None]
            parts.append(dist[:, keep])
        return torch.cat(parts, dim=1)

    def decisions(self, threshold: float = 0.5) -> torch.Tensor:
        """``(N, C)`` 0/1 predictions: a binary attribute is present when its probability
        exceeds ``threshold``; a group predicts exactly its most probable value."""
        parts = []
        for attribute in self.schema.attributes:
            dist = self.distributions[attribute.name]
            if attribute.kind == BINARY:
                chosen = torch.stack([dist[:, 0] > threshold, dist[:, 0] <= threshold], dim=1)
            else:
                chosen = torch.zeros_like(dist, dtype=torch.bool)
                chosen[torch.arange(dist.shape[0]), dist.argmax(1)] = True
            keep = [i for i, v in enumerate(attribute.values) if v.column is not None]
            parts.append(chosen[:, keep])
        return torch.cat(parts, dim=1).to(torch.uint8)

    def top_values(self, index: int, threshold: float = 0.5) -> list[tuple[str, str, float]]:
        """``(attribute, value, probability)`` of image ``index``'s most probable values,
        most confident first."""
        out = []
        for attribute in self.schema.attributes:
            dist = self.distributions[attribute.name][index]
            if attribute.kind == BINARY:
                pick = 0 if float(dist[0]) > threshold else 1
            else:
                pick = int(dist.argmax())
            out.append((attribute.name, attribute.values[pick].name, float(dist[pick])))
        return sorted(out, key=lambda item: -item[2])

    def descriptions(self, threshold: float = 0.5) -> list[PersonDescription]:
        """One description per image from the facts of its most probable values."""
        out = []
        for i in range(len(self)):
            picks = []
            for attribute in self.schema.attributes:
                dist = self.distributions[attribute.name][i]
                if attribute.kind == BINARY:
                    pick = 0 if float(dist[0]) > threshold else 1
                else:
                    pick = int(dist.argmax())
                picks.append((float(dist[pick]), attribute.values[pick].fragment))
            picks.sort(key=lambda item: -item[0])  # the more confident fact wins a conflict
            out.append(merge_fragments([fragment for _, fragment in picks]))
        return out

    def captions(self, threshold: float = 0.5) -> list[str]:
        """A SPAC-style prompt caption per image (:func:`plip.data.captions.prompt_caption`)."""
        return [prompt_caption(d) for d in self.descriptions(threshold)]


def _image_embeddings(model: Any, images: Any, image_embeddings: torch.Tensor | None, **encode: Any) -> torch.Tensor:
    if image_embeddings is not None:
        if images is not None:
            raise ConfigError("pass images or image_embeddings, not both")
        emb = torch.as_tensor(image_embeddings).float()
        if emb.ndim != 2 or emb.shape[1] != model.embed_dim:
            raise DataError(f"image_embeddings must be (N, {model.embed_dim}), got shape {tuple(emb.shape)}")
        return torch.nn.functional.normalize(emb, dim=1)
    if images is None or (isinstance(images, (list, tuple)) and not images):
        raise DataError("no images to classify")
    if not isinstance(images, (list, tuple, torch.Tensor)):
        images = [images]
    return model.encode_image(images, **encode).float()


def _logits(schema: AttributeSchema, values: list[torch.Tensor], emb: torch.Tensor, scale: torch.Tensor,
            biases: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:  # fmt: skip
    """Per attribute ``scale * cos(image, value) + bias`` from one matrix product."""
    sims = emb @ torch.cat(values).T
    out, start = {}, 0
    for attribute, v in zip(schema.attributes, values, strict=True):
        out[attribute.name] = scale * sims[:, start : start + len(v)] + biases[attribute.name]
        start += len(v)
    return out


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run tiny tensor ops on one thread: intra-op threads only add synchronisation there
    (measured 20x slower with 2 threads on busy cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def classify_attributes(
    model: Any,
    images: Any = None,
    schema: str | AttributeSchema = "pa100k",
    *,
    calibration: Calibration | None = None,
    image_embeddings: torch.Tensor | None = None,
    batch_size: int = 64,
    num_workers: int = 0,
    progress: bool = False,
) -> AttributePrediction:
    """Zero-shot attribute probabilities of ``images`` under ``schema``.

    Args:
        model: a PLIP model (``plip.load(...)``).
        images: paths, PIL images, arrays or a preprocessed tensor (as :meth:`encode_image`).
        schema: ``"pa100k"``, ``"peta"``, ``"rap"``/``"rapv1"``, ``"rapv2"``, ``"person"``,
            a YAML/JSON schema file, or an :class:`AttributeSchema`.
        calibration: from :func:`calibrate`; default: :data:`DEFAULT_LOGIT_SCALE`, no bias.
        image_embeddings: instead of ``images``, their embeddings from :meth:`encode_image`.

    Returns:
        An :class:`AttributePrediction`: ``.probs`` (N, C) per label column, ``.distributions``
        per attribute, ``.decisions()``, ``.captions()``.
    """
    schema = get_schema(schema)
    if calibration is not None:
        calibration.check(schema)
    values = prompt_embeddings(model, schema)
    emb = _image_embeddings(model, images, image_embeddings, batch_size=batch_size, num_workers=num_workers,
                            progress=progress)  # fmt: skip
    scale = calibration.logit_scale if calibration is not None else DEFAULT_LOGIT_SCALE
    biases = {}
    for attribute in schema.attributes:
        fitted = calibration.biases.get(attribute.name) if calibration is not None else None
        biases[attribute.name] = torch.tensor(fitted if fitted is not None else [0.0] * len(attribute.values))
    with _one_thread():
        logits = _logits(schema, values, emb, torch.tensor(scale), biases)
        distributions = {k: v.softmax(dim=1) for k, v in logits.items()}
    return AttributePrediction(schema, distributions, scale, calibration is not None)


def calibrate(
    model: Any,
    images: Any = None,
    labels: Any = None,
    schema: str | AttributeSchema = "pa100k",
    *,
    columns: Sequence[str] | None = None,
    image_embeddings: torch.Tensor | None = None,
    steps: int = 300,
    balanced: bool = True,
    batch_size: int = 64,
    num_workers: int = 0,
) -> Calibration:
    """Fit the logit scale and a bias per value on labelled images.

    Args:
        labels: ``(N, len(columns))`` 0/1 labels; ``columns`` default to ``schema.columns``
            (a subset may be given; attributes without a labelled column keep bias 0).
        balanced: weight each column's positives and negatives equally (as mA does).
        steps: Adam steps (full batch; the problem is tiny: one scale and a few biases).

    Columns with only positives or only negatives among the images cannot be fitted: they
    are left out of the loss (see ``columns_fitted``).
    """
    schema = get_schema(schema)
    columns = list(columns) if columns is not None else list(schema.columns)
    unknown = [c for c in columns if c not in schema.columns]
    if unknown:
        raise ConfigError(f"schema {schema.name!r} predicts no column(s) {unknown}")
    if labels is None:
        raise DataError("calibrate needs labels: an (N, C) array of 0/1 for the label columns")
    y = torch.as_tensor(np.asarray(labels, dtype=np.float32))
    if y.ndim != 2 or y.shape[1] != len(columns):
        raise DataError(f"labels must be (N, {len(columns)}) for columns {columns[:4]}..., got shape {tuple(y.shape)}")
    if not bool(((y == 0) | (y == 1)).all()):
        raise DataError("labels must be 0 or 1")
    values = prompt_embeddings(model, schema)
    emb = _image_embeddings(model, images, image_embeddings, batch_size=batch_size, num_workers=num_workers)
    if emb.shape[0] != y.shape[0]:
        raise DataError(f"{emb.shape[0]} images but {y.shape[0]} label rows")
    # (attribute index, value index) of every labelled column
    where = {v.column: (a_i, v_i) for a_i, a in enumerate(schema.attributes) for v_i, v in enumerate(a.values) if v.column}
    pos = y.sum(0)
    fit = [(j, c) for j, c in enumerate(columns) if 0 < pos[j] < y.shape[0]]
    log_scale = torch.tensor(math.log(DEFAULT_LOGIT_SCALE), requires_grad=True)
    raw = {a.name: torch.zeros(len(a.values), requires_grad=True) for a in schema.attributes}
    binary = {a.name: a.kind == BINARY for a in schema.attributes}

    def biases() -> dict[str, torch.Tensor]:  # a binary attribute's negative keeps bias 0
        return {k: (v * torch.tensor([1.0, 0.0]) if binary[k] else v) for k, v in raw.items()}

    if fit:
        sims = [emb @ v.T for v in values]  # fixed: only the scale and biases are fitted
        offsets = np.cumsum([0] + [len(a.values) for a in schema.attributes])
        index = torch.tensor([int(offsets[where[c][0]]) + where[c][1] for _, c in fit])
        target = y[:, [j for j, _ in fit]]
        rate = target.mean(0)
        w_pos, w_neg = (0.5 / rate, 0.5 / (1 - rate)) if balanced else (torch.ones_like(rate), torch.ones_like(rate))
        optimiser = torch.optim.Adam([log_scale, *raw.values()], lr=0.05)
        with _one_thread():
            for _ in range(steps):
                optimiser.zero_grad()
                bias = biases()
                logp = torch.cat([(log_scale.exp() * s + bias[a.name]).log_softmax(dim=1)
                                  for a, s in zip(schema.attributes, sims, strict=True)], dim=1)[:, index]  # fmt: skip
                logq = torch.log1p(-logp.exp().clamp(max=1 - 1e-6))
                loss = -(w_pos * target * logp + w_neg * (1 - target) * logq).mean()
                loss = loss + 1e-4 * sum((b**2).sum() for b in raw.values())
                loss.backward()
                optimiser.step()
    fitted = biases()
    return Calibration(
        schema.name, float(log_scale.detach().exp()), {k: tuple(float(b) for b in v.detach()) for k, v in fitted.items()},
        int(y.shape[0]), tuple(c for _, c in fit),
    )  # fmt: skip


def describe(
    model: Any,
    images: Any = None,
    *,
    schema: str | AttributeSchema = "person",
    calibration: Calibration | None = None,
    threshold: float = 0.5,
    image_embeddings: torch.Tensor | None = None,
    batch_size: int = 64,
    num_workers: int = 0,
) -> list[str]:
    """A SPAC-style caption per image ("A woman with long black hair is wearing a red
    t-shirt with blue trousers. ...") built by the caption grammar from the most probable
    value of every attribute of ``schema`` (default ``"person"``)."""
    prediction = classify_attributes(model, images, schema, calibration=calibration, image_embeddings=image_embeddings,
                                     batch_size=batch_size, num_workers=num_workers)  # fmt: skip
    return prediction.captions(threshold)
