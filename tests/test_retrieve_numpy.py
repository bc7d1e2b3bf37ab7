"""NumPy inputs to ``plip.retrieve`` and ``model.retrieve``.

Oracle: a brute-force NumPy ranking (``scores = q @ g.T`` in float64, ties by lower index via a
stable argsort) and the torch path of the same function.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import plip
from plip.errors import PlipError


def _oracle(q: np.ndarray, g: np.ndarray, k: int):
    scores = q.astype(np.float64) @ g.astype(np.float64).T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_numpy_in_numpy_out(dtype):
    rng = np.random.default_rng(0)
    q = rng.standard_normal((5, 16)).astype(dtype)
    g = rng.standard_normal((300, 16)).astype(dtype)
    g[7] = g[3]  # an exact tie: the lower index ranks first
    q[0] = g[3]
    result = plip.retrieve(q, g, top_k=4, gallery_chunk=64)
    assert isinstance(result.indices, np.ndarray) and isinstance(result.scores, np.ndarray)
    assert result.indices.dtype == np.int64
    assert result.scores.dtype == (np.float64 if dtype == np.float64 else np.float32)
    order, scores = _oracle(q, g, 4)
    np.testing.assert_array_equal(result.indices, order)
    np.testing.assert_allclose(result.scores, scores, rtol=1e-5, atol=1e-4)
    assert result.indices[0, 0] == 3 and result.indices[0, 1] == 7
    # same answer as the torch path
    torch_result = plip.retrieve(torch.from_numpy(q), torch.from_numpy(g), top_k=4)
    np.testing.assert_array_equal(torch_result.indices.numpy(), result.indices)


def test_single_query_and_mixed_types():
    rng = np.random.default_rng(1)
    g = rng.standard_normal((20, 8)).astype(np.float32)
    g /= np.linalg.norm(g, axis=1, keepdims=True)  # cosine: each row is its own best match
    one = plip.retrieve(g[5], g, top_k=3)
    assert one.indices.shape == (3,) and one.indices[0] == 5
    # a tensor gallery gives tensors whatever the query is
    mixed = plip.retrieve(g[:2], torch.from_numpy(g), top_k=3)
    assert isinstance(mixed.indices, torch.Tensor)
    np.testing.assert_array_equal(mixed.indices.numpy(), _oracle(g[:2], g, 3)[0])


@pytest.mark.parametrize(
    "bad, needle",
    [(np.zeros((2, 8), dtype=np.int64), "int64"), ([[0.0] * 8], "list"), ("abc", "str"),
     (np.zeros((2, 8), dtype=np.complex64), "complex64")],
)
def test_rejects_other_types(bad, needle):
    g = np.zeros((4, 8), dtype=np.float32)
    with pytest.raises(PlipError, match=needle):
        plip.retrieve(bad, g)
    with pytest.raises(PlipError, match=needle):
        plip.retrieve(g, bad)


def test_model_retrieve_numpy():
    model = plip.load("plip-tiny-synth")
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 256, (64, 32, 3), dtype=np.uint8) for _ in range(6)]
    gallery = model.encode_image(images)
    g_np = gallery.numpy().astype(np.float16)
    by_text = model.retrieve("a man in a black shirt", gallery=g_np, top_k=3)
    assert isinstance(by_text.indices, np.ndarray)
    ref = model.retrieve("a man in a black shirt", gallery=gallery, top_k=3)
    np.testing.assert_array_equal(by_text.indices, ref.indices.numpy())
    by_emb = model.retrieve(gallery.numpy()[2], gallery=g_np, top_k=2)  # float32 embedding query
    assert by_emb.indices[0] == 2
    by_image = model.retrieve(images[4], gallery=gallery.numpy(), top_k=1)  # uint8 array: an image
    assert by_image.indices.tolist() == [[4]]  # one image -> one row, as for tensors
