"""Raw inputs -> batches -> embeddings -> top-k: the joint model and its inference API.

:class:`PLIPModel` composes the towers of :mod:`plip.models` and adds ``encode_image`` /
``encode_text`` / ``retrieve``; :func:`create_model` and :func:`load` build it with its
preprocessing and tokenizer; :mod:`~plip.inference.batching` is the one encoding loop,
:mod:`~plip.inference.graphs` the optimised CPU graphs, :mod:`~plip.inference.retrieval`
the chunked top-k and :mod:`~plip.inference.embedding_files` the gallery file format and
:mod:`~plip.inference.shards` the crash-safe, resumable sharded encoding.
"""

from .factory import create_model, load
from .model import PLIPModel
from .retrieval import RetrievalResult, retrieve

__all__ = ["PLIPModel", "create_model", "load", "retrieve", "RetrievalResult"]
