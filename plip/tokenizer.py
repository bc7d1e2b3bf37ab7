"""The bert-base-uncased WordPiece tokenizer, shipped with the package (no network)."""

from __future__ import annotations

import os
import shutil
import warnings
from importlib import resources
from pathlib import Path
from typing import Sequence

import torch
from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece

from .errors import PlipError

VOCAB_FILENAME = "vocab.txt"


def default_vocab_file() -> str:
    """Path of the bundled bert-base-uncased vocabulary (Apache-2.0, Google BERT)."""
    return str(resources.files("plip").joinpath("assets/bert-base-uncased-vocab.txt"))


class PLIPTokenizer:
    """Lower-case WordPiece tokenisation with truncation to ``max_length`` tokens.

    Calling it on a list of captions returns ``input_ids`` and ``attention_mask`` padded to
    the longest caption of the list (not to ``max_length``: shorter batches are faster).
    A caption longer than ``max_length`` is truncated, keeping [CLS] ... [SEP], and a warning
    is issued once per tokenizer.
    """

    def __init__(self, vocab_file: str | os.PathLike | None = None, max_length: int = 64) -> None:
        vocab_file = str(vocab_file or default_vocab_file())
        if not os.path.isfile(vocab_file):
            raise PlipError(f"tokenizer vocabulary not found: {vocab_file}")
        self.vocab_file = vocab_file
        self.backend = build_wordpiece(vocab_file)
        self._hf = None
        self.max_length = max_length
        self._warned_truncation = False

    @property
    def hf(self):
        """The ``transformers.PreTrainedTokenizerFast`` view of this tokenizer (built on first use)."""
        if self._hf is None:
            from transformers import PreTrainedTokenizerFast  # first use: keeps import plip light

            self._hf = PreTrainedTokenizerFast(
                tokenizer_object=self.backend, unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]",
                cls_token="[CLS]", mask_token="[MASK]", model_max_length=1_000_000, do_lower_case=True,
            )
        return self._hf

    # -- token ids ------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size()

    @property
    def pad_token_id(self) -> int:
        return self.backend.token_to_id("[PAD]")

    @property
    def mask_token_id(self) -> int:
        return self.backend.token_to_id("[MASK]")

    @property
    def cls_token_id(self) -> int:
        return self.backend.token_to_id("[CLS]")

    @property
    def sep_token_id(self) -> int:
        return self.backend.token_to_id("[SEP]")

    @property
    def unk_token_id(self) -> int:
        return self.backend.token_to_id("[UNK]")

    def unusable(self, texts: Sequence[str], token_ids: Sequence[Sequence[int]] | None = None) -> list[tuple[int, str]]:
        """``(index, reason)`` of every caption that carries no words the model knows.

        A caption is unusable when it is empty or whitespace only (no tokens between [CLS]
        and [SEP]) or when every token is [UNK] (text outside the vocabulary: Chinese, emoji
        ... for bert-base-uncased). Its embedding would be the same for every such caption.
        ``token_ids`` (from :meth:`encode`) avoids tokenising twice.
        """
        texts = _check_texts(texts)
        ids = token_ids if token_ids is not None else self.encode(texts)
        special = {self.cls_token_id, self.sep_token_id, self.pad_token_id}
        unk = self.unk_token_id
        out = []
        for index, (text, row) in enumerate(zip(texts, ids)):
            content = [t for t in row if t not in special]
            if not content:
                out.append((index, "is empty" if not text else "is whitespace only"))
            elif all(t == unk for t in content):
                out.append((index, f"has only unknown tokens for this vocabulary ({text[:40]!r})"))
        return out

    # -- encoding -------------------------------------------------------------------------
    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, with [CLS]/[SEP], truncated to ``max_length``."""
        texts = _check_texts(texts)
        if not texts:
            return []
        encoded = [e.ids for e in self.backend.encode_batch(list(texts), add_special_tokens=True)]
        limit = self.max_length
        truncated = [i for i, ids in enumerate(encoded) if len(ids) > limit]
        if truncated:
            for i in truncated:
                encoded[i] = encoded[i][: limit - 1] + [self.sep_token_id]
            if not self._warned_truncation:
                self._warned_truncation = True
                warnings.warn(
                    f"{len(truncated)} caption(s) longer than {limit} tokens were truncated "
                    f"(first: index {truncated[0]}); this warning is shown once",
                    stacklevel=3,
                )
        return encoded

    def pad(self, encoded: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
        """Pad token id lists to the longest one."""
        length = max((len(ids) for ids in encoded), default=0)
        input_ids = torch.full((len(encoded), length), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(encoded), length), dtype=torch.long)
        for row, ids in enumerate(encoded):
            input_ids[row, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
            attention_mask[row, : len(ids)] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def __call__(self, texts: str | Sequence[str]) -> dict[str, torch.Tensor]:
        if isinstance(texts, str):
            texts = [texts]
        return self.pad(self.encode(texts))

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self.hf.decode(list(ids), skip_special_tokens=skip_special_tokens)

    # -- persistence ----------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write ``vocab.txt`` and the transformers tokenizer files."""
        from .utils.io import atomic_path

        Path(directory).mkdir(parents=True, exist_ok=True)
        with atomic_path(Path(directory) / VOCAB_FILENAME) as tmp:
            shutil.copyfile(self.vocab_file, tmp)
        self.hf.model_max_length = self.max_length
        try:
            self.hf.save_pretrained(str(directory))
        finally:
            self.hf.model_max_length = 1_000_000

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, max_length: int = 64) -> "PLIPTokenizer":
        vocab = Path(directory) / VOCAB_FILENAME
        return cls(vocab if vocab.is_file() else None, max_length=max_length)


def read_vocab(vocab_file: str) -> dict[str, int]:
    """WordPiece vocabulary file (one token per line) -> token to id."""
    with open(vocab_file, encoding="utf-8") as handle:
        tokens = [line.rstrip("\n") for line in handle]
    return {token: index for index, token in enumerate(tokens)}


def build_wordpiece(vocab_file: str) -> Tokenizer:
    """bert-base-uncased tokenisation with the ``tokenizers`` library.

    Built here rather than with ``transformers.BertTokenizerFast(vocab_file=...)``, whose
    constructor changed in transformers 5 (it silently ignores ``vocab_file`` there).
    """
    vocab = read_vocab(vocab_file)
    for special in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"):
        if special not in vocab:
            raise PlipError(f"{vocab_file}: vocabulary lacks the special token {special}")
    tokenizer = Tokenizer(WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    return tokenizer


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        return [texts]
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise PlipError(f"text at index {i} is a {type(text).__name__}, expected a string")
    return out
