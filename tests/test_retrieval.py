"""Chunked top-k retrieval against a full stable sort (the definition of top-k with
ties broken by lower gallery index)."""

from __future__ import annotations

import pytest
import torch

import plip
from plip.errors import PlipError


def reference(query, gallery, k):
    scores = query @ gallery.T
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
    return order, torch.gather(scores, 1, order)


@pytest.mark.parametrize("q_chunk, g_chunk", [(1024, 65536), (3, 7), (1, 1)])
def test_chunked_equals_full_sort(q_chunk, g_chunk):
    g = torch.Generator().manual_seed(0)
    query, gallery = torch.randn(20, 8, generator=g), torch.randn(53, 8, generator=g)
    result = plip.retrieve(query, gallery, top_k=10, query_chunk=q_chunk, gallery_chunk=g_chunk)
    ref_i, ref_s = reference(query, gallery, 10)
    assert torch.equal(result.indices, ref_i)
    torch.testing.assert_close(result.scores, ref_s)


def test_ties_prefer_the_lower_gallery_index():
    gallery = torch.tensor([[1.0, 0.0]] * 6 + [[0.0, 1.0]] * 3)  # many exact ties
    query = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    for g_chunk in (2, 4, 100):
        result = plip.retrieve(query, gallery, top_k=4, gallery_chunk=g_chunk)
        assert result.indices.tolist() == [[0, 1, 2, 3], [6, 7, 8, 0]]


def test_single_query_and_small_gallery():
    result = plip.retrieve(torch.tensor([1.0, 0.0]), torch.tensor([[0.0, 1.0], [1.0, 0.0]]), top_k=10)
    assert result.indices.tolist() == [1, 0]


def test_dimension_mismatch_is_reported():
    with pytest.raises(PlipError, match="query dimension 3 does not match gallery dimension 4"):
        plip.retrieve(torch.zeros(2, 3), torch.zeros(5, 4))
