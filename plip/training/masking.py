"""Attribute-phrase masking for PLIP's image-guided attribute prediction (IAP).

The captions' attribute phrases (colours, garments, shoes, belongings, hair, ...) are found
with a word lexicon (``plip/assets/attribute_lexicon.txt``) and replaced by ``[MASK]``; the
model must predict them from the image. The masking ratio rises during training following
:func:`mask_ratio_schedule` (0.2 → 0.8 as ``0.2 + 0.6·sqrt(e/E)`` in the paper).

Matching works on whole words of the tokenised caption: WordPiece continuation pieces
(``##ish``) belong to the word before them, and a lexicon entry may span several words
after BERT's punctuation splitting ("t-shirt" is ``t - shirt``). Each match is one masking
*unit*; all its pieces are masked together.

Typical use, in a DataLoader's collate function::

    masker = AttributeMasker(tokenizer)
    batch = tokenizer(captions, padding=True, truncation=True, max_length=64, return_tensors="pt")
    ratio = mask_ratio_schedule(epoch, epochs)
    masked_ids, target_mask = masker(batch["input_ids"], batch["attention_mask"], ratio, generator)
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from importlib import resources
from typing import Any, Iterable, Literal, Mapping, Sequence

import torch
from torch import Tensor

from ..errors import ConfigError, DataError

__all__ = [
    "AttributeLexicon",
    "AttributeMasker",
    "mask_attribute_tokens",
    "mask_ratio_schedule",
    "DEFAULT_LEXICON_RESOURCE",
]

DEFAULT_LEXICON_RESOURCE = "attribute_lexicon.txt"  # in plip/assets

ScheduleKind = Literal["sqrt", "linear", "square", "constant"]


def mask_ratio_schedule(
    epoch: float,
    epochs: float,
    start: float = 0.2,
    end: float = 0.8,
    kind: ScheduleKind = "sqrt",
) -> float:
    """Masking ratio at ``epoch`` (may be fractional) of a run of ``epochs`` epochs.

    ``start + (end - start) * f(epoch / epochs)`` with ``f`` = sqrt (the paper's choice),
    identity (``"linear"``) or square; ``"constant"`` always returns ``start`` (the paper's
    constant-ratio ablations set ``start`` to 0.2, 0.5 or 0.8). ``epoch / epochs`` is clipped
    to [0, 1]. With 0-based epochs the last epoch ``E - 1`` stays just below ``end``.
    """
    if epochs <= 0:
        raise ConfigError(f"mask schedule: epochs must be positive, got {epochs!r}")
    for name, value in (("start", start), ("end", end)):
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"mask schedule: {name} must be in [0, 1], got {value!r}")
    progress = min(max(float(epoch) / float(epochs), 0.0), 1.0)
    if kind == "sqrt":
        shape = math.sqrt(progress)
    elif kind == "linear":
        shape = progress
    elif kind == "square":
        shape = progress * progress
    elif kind == "constant":
        return float(start)
    else:
        raise ConfigError(
            f"mask schedule: kind must be 'sqrt', 'linear', 'square' or 'constant', got {kind!r}"
        )
    return float(start + (end - start) * shape)


@dataclass(frozen=True)
class AttributeLexicon:
    """Attribute phrases by category (lower-case text, one phrase per entry)."""

    categories: Mapping[str, tuple[str, ...]]

    @classmethod
    def default(cls, categories: Iterable[str] | None = None) -> "AttributeLexicon":
        """The lexicon shipped with plip, optionally restricted to some categories
        (``colour``, ``pattern``, ``upper_body``, ``lower_body``, ``shoes``, ``belongings``,
        ``accessory``, ``head_hair``, ``person``)."""
        text = resources.files("plip").joinpath("assets").joinpath(DEFAULT_LEXICON_RESOURCE).read_text("utf-8")
        lexicon = cls.parse(text, source=f"plip/assets/{DEFAULT_LEXICON_RESOURCE}")
        return lexicon if categories is None else lexicon.select(categories)

    @classmethod
    def from_file(cls, path: str) -> "AttributeLexicon":
        """Read a lexicon in the shipped format: ``[category]`` headers, one phrase a line."""
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as err:
            raise DataError(f"cannot read attribute lexicon {path}: {err.strerror}") from None
        return cls.parse(text, source=str(path))

    @classmethod
    def from_phrases(cls, phrases: Iterable[str], category: str = "custom") -> "AttributeLexicon":
        return cls({category: tuple(p.strip().lower() for p in phrases if p.strip())})

    @classmethod
    def parse(cls, text: str, source: str = "lexicon") -> "AttributeLexicon":
        categories: dict[str, list[str]] = {}
        current: str | None = None
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            if line.startswith("[") and line.endswith("]"):
                current = line[1:-1].strip()
                if not current:
                    raise DataError(f"{source}:{number}: empty category name")
                categories.setdefault(current, [])
                continue
            if current is None:
                raise DataError(f"{source}:{number}: phrase {line!r} before any [category] header")
            categories[current].append(line.lower())
        return cls({name: tuple(items) for name, items in categories.items()})

    def select(self, categories: Iterable[str]) -> "AttributeLexicon":
        chosen = list(categories)
        unknown = [name for name in chosen if name not in self.categories]
        if unknown:
            raise ConfigError(
                f"unknown attribute categories {unknown}; known: {sorted(self.categories)}"
            )
        return AttributeLexicon({name: self.categories[name] for name in chosen})

    @property
    def phrases(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for items in self.categories.values():
            for phrase in items:
                seen.setdefault(phrase, None)
        return tuple(seen)


class AttributeMasker:
    """Finds attribute phrases in tokenised captions and masks a ratio of them.

    Built once per tokenizer (a ``transformers`` WordPiece tokenizer such as
    ``BertTokenizerFast``); cheap to call per batch and picklable, so it can live in a
    DataLoader's collate function.
    """

    def __init__(self, tokenizer: Any, lexicon: AttributeLexicon | None = None) -> None:
        lexicon = lexicon if lexicon is not None else AttributeLexicon.default()
        if tokenizer.mask_token_id is None:
            raise ConfigError("the tokenizer has no [MASK] token; attribute masking needs one")
        self.mask_token_id = int(tokenizer.mask_token_id)
        self.special_ids = frozenset(int(i) for i in tokenizer.all_special_ids)
        vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        self._tokens: list[str] = [str(token) for token in vocab]
        # Longest phrases first, indexed by their first word.
        phrases: dict[str, list[tuple[str, ...]]] = {}
        for phrase in lexicon.phrases:
            words = tuple(_group_words(tokenizer.tokenize(phrase)))
            if words:
                phrases.setdefault(words[0], []).append(words)
        for candidates in phrases.values():
            candidates.sort(key=len, reverse=True)
        self._phrases = phrases

    # -- analysis -------------------------------------------------------------------------
    def words(self, ids: Sequence[int], valid: Sequence[bool] | None = None) -> list[tuple[str, list[int]]]:
        """Whole words of one caption: ``(text, positions)``, skipping special and padded tokens."""
        words: list[tuple[str, list[int]]] = []
        for position, token_id in enumerate(ids):
            token_id = int(token_id)
            if (valid is not None and not valid[position]) or token_id in self.special_ids:
                continue
            piece = self._tokens[token_id]
            if piece.startswith("##") and words and words[-1][1][-1] == position - 1:
                text, positions = words[-1]
                words[-1] = (text + piece[2:], positions + [position])
            else:
                words.append((piece, [position]))
        return words

    def attribute_units(self, ids: Sequence[int], valid: Sequence[bool] | None = None) -> list[list[int]]:
        """Token positions of every attribute phrase found in one caption, left to right."""
        words = self.words(ids, valid)
        units: list[list[int]] = []
        index = 0
        while index < len(words):
            match = 0
            for candidate in self._phrases.get(words[index][0], ()):
                end = index + len(candidate)
                if end <= len(words) and all(words[index + k][0] == w for k, w in enumerate(candidate)):
                    match = len(candidate)
                    break
            if match:
                units.append([p for _, positions in words[index : index + match] for p in positions])
                index += match
            else:
                index += 1
        return units

    # -- masking --------------------------------------------------------------------------
    def __call__(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None,
        ratio: float,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Mask ``ratio`` of each caption's attribute phrases; see :func:`mask_attribute_tokens`."""
        if not 0.0 <= ratio <= 1.0:
            raise ConfigError(f"mask ratio must be in [0, 1], got {ratio!r}")
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (B, L), got {tuple(input_ids.shape)}")
        if attention_mask is not None and attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"attention_mask {tuple(attention_mask.shape)} differs from input_ids {tuple(input_ids.shape)}"
            )
        target_mask = torch.zeros(input_ids.shape, dtype=torch.bool)
        if ratio > 0.0:
            ids_rows = input_ids.tolist()
            valid_rows = attention_mask.bool().tolist() if attention_mask is not None else [None] * len(ids_rows)
            for row, (ids, valid) in enumerate(zip(ids_rows, valid_rows)):
                units = self.attribute_units(ids, valid)
                if not units:  # no attribute phrase: fall back to random content words
                    units = [p for text, p in self.words(ids, valid) if any(c.isalnum() for c in text)]
                if not units:
                    continue
                count = max(1, math.floor(ratio * len(units) + 0.5))
                order = torch.randperm(len(units), generator=generator)[:count].tolist()
                for unit in order:
                    target_mask[row, units[unit]] = True
        target_mask = target_mask.to(input_ids.device)
        masked_ids = input_ids.masked_fill(target_mask, self.mask_token_id)
        return masked_ids, target_mask


def _group_words(pieces: Sequence[str]) -> list[str]:
    words: list[str] = []
    for piece in pieces:
        if piece.startswith("##") and words:
            words[-1] += piece[2:]
        else:
            words.append(piece)
    return words


_MASKERS: "weakref.WeakKeyDictionary[Any, AttributeMasker]" = weakref.WeakKeyDictionary()


def mask_attribute_tokens(
    input_ids: Tensor,
    attention_mask: Tensor | None,
    tokenizer: Any,
    ratio: float,
    generator: torch.Generator | None = None,
    lexicon: AttributeLexicon | None = None,
) -> tuple[Tensor, Tensor]:
    """Replace a ratio of each caption's attribute phrases with ``[MASK]``.

    For every caption, the attribute phrases of the lexicon are found (whole words; see the
    module docstring); ``max(1, round(ratio * n))`` of its ``n`` phrases, chosen uniformly
    at random, are masked with all their word pieces. The ratio therefore counts phrases,
    not word pieces. A caption without any attribute phrase gets the same number of random
    whole words masked instead (words with at least one letter or digit), so every caption
    contributes to the loss. ``[CLS]``, ``[SEP]``, ``[PAD]`` (any special token) and
    positions where ``attention_mask`` is 0 are never masked. ``ratio == 0`` masks nothing.

    Args:
        input_ids: (B, L) token ids.
        attention_mask: (B, L) 1 for real tokens, 0 for padding (or None).
        tokenizer: the WordPiece tokenizer that produced ``input_ids``.
        ratio: fraction of attribute phrases to mask, in [0, 1].
        generator: torch RNG for reproducible masks (default: the global RNG).
        lexicon: attribute phrases; defaults to the shipped lexicon.

    Returns:
        ``(masked_ids, target_mask)``: a copy of ``input_ids`` with ``[MASK]`` at the masked
        positions, and a bool (B, L) tensor that is True exactly there (the IAP targets are
        ``input_ids[target_mask]``).
    """
    if lexicon is None:
        masker = _MASKERS.get(tokenizer)
        if masker is None:
            masker = AttributeMasker(tokenizer)
            try:
                _MASKERS[tokenizer] = masker
            except TypeError:  # tokenizer not weak-referenceable: just don't cache
                pass
    else:
        masker = AttributeMasker(tokenizer, lexicon)
    return masker(input_ids, attention_mask, ratio, generator)
