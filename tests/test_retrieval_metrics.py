"""Retrieval metrics (plip.evaluation.retrieval_metrics) against hand-computed values and
straightforward per-query references (full sort of the gallery for every query)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch

import plip.evaluation.retrieval_metrics as rm
from plip.evaluation import ranking, ranking_kernel
from plip.evaluation.retrieval_metrics import (
    retrieval_metrics,
    retrieval_metrics_from_embeddings,
    text_image_metrics,
)


# --------------------------------------------------------------------------- references


def reference_metrics(sim, query_ids, gallery_ids, ks=(1, 5, 10), legacy=False):
    """Per-query loop with a full sort: score desc, then non-hits before hits, then index.

    AP: mean precision at each hit (IRRA); legacy: mean of precision before and at each hit
    (official PLIP ``compute_mAP``; precision before a rank-1 hit = 1); INP = P / last rank.
    Returns R@K over all queries and per-query AP / INP (NaN without a hit), as fractions.
    """
    sim = np.asarray(sim, dtype=np.float32)
    n_query, n_gallery = sim.shape
    first, ap, inp = np.zeros(n_query, int), np.full(n_query, np.nan), np.full(n_query, np.nan)
    for q in range(n_query):
        is_hit = gallery_ids == query_ids[q]
        order = np.lexsort((np.arange(n_gallery), is_hit, -sim[q]))
        ranks = np.flatnonzero(is_hit[order]) + 1
        if len(ranks) == 0:
            continue
        first[q] = ranks[0]
        precisions = []
        for j, r in enumerate(ranks, start=1):
            at = j / r
            if legacy:
                before = (j - 1) / (r - 1) if r > 1 else 1.0
                at = (before + at) / 2
            precisions.append(at)
        ap[q] = np.mean(precisions)
        inp[q] = len(ranks) / ranks[-1]
    recall = {k: float(np.mean((first > 0) & (first <= k))) for k in ks}
    return recall, first, ap, inp


def official_test_map(sim, query_ids, gallery_ids):
    """Transcription of the official PLIP ``test_map`` / ``compute_mAP`` (utils.py) on a
    precomputed similarity matrix: argsort per query, reversed; legacy AP; no-match queries
    skipped in the sums but counted in the divisor. Returns fractions (R@1, R@5, R@10, mAP)."""
    cmc = np.zeros(sim.shape[1])
    ap_sum = 0.0
    for q in range(sim.shape[0]):
        index = np.argsort(sim[q])[::-1]
        good = np.argwhere(gallery_ids == query_ids[q])
        if good.size == 0:
            continue
        rows_good = np.argwhere(np.isin(index, good)).flatten()
        cmc_q = np.zeros(sim.shape[1])
        cmc_q[rows_good[0]:] = 1
        ap = 0.0
        for i in range(len(good)):
            precision = (i + 1) / (rows_good[i] + 1)
            old_precision = i / rows_good[i] if rows_good[i] != 0 else 1.0
            ap += (1.0 / len(good)) * (old_precision + precision) / 2
        cmc += cmc_q
        ap_sum += ap
    cmc /= sim.shape[0]
    return cmc[0], cmc[4], cmc[9], ap_sum / sim.shape[0]


# --------------------------------------------------------------------------- hand-computed


def hand_case():
    gallery_ids = np.array([1, 1, 2, 3, 2])
    query_ids = np.array([1, 2, 4])
    sim = np.array(
        [
            [0.9, 0.1, 0.8, 0.5, 0.3],  # id 1: hits at ranks 1 and 5
            [0.5, 0.5, 0.5, 0.2, 0.5],  # id 2: both hits tie with two non-hits -> ranks 3, 4
            [0.1, 0.2, 0.3, 0.4, 0.5],  # id 4: no image of this person
        ],
        dtype=np.float32,
    )
    return sim, query_ids, gallery_ids


def test_hand_computed_standard_metrics():
    """R@K over all 3 queries; AP(q0) = (1/1 + 2/5)/2 = 0.7, AP(q1) = (1/3 + 2/4)/2 = 5/12,
    INP = 2/5 and 2/4; the unmatched query is left out of mAP/mINP by default."""
    m = retrieval_metrics(*hand_case(), ks=(1, 3, 4, 5), per_query=True)
    assert m.recall == pytest.approx({1: 100 / 3, 3: 200 / 3, 4: 200 / 3, 5: 200 / 3})
    assert m.mAP == pytest.approx(100 * (0.7 + 5 / 12) / 2)
    assert m.mINP == pytest.approx(100 * (0.4 + 0.5) / 2)
    assert (m.num_queries, m.num_gallery, m.num_unmatched) == (3, 5, 1)
    assert m.first_hit_rank.tolist() == [1, 3, 0]
    assert np.isnan(m.average_precision[2]) and np.isnan(m.inverse_negative_penalty[2])


def test_hand_computed_legacy_ap():
    """Official PLIP AP: q0 = (1 + (1/4 + 2/5)/2)/2 = 0.6625 (rank-1 hit: before = 1);
    q1 = ((0/2 + 1/3)/2 + (1/3 + 2/4)/2)/2 = 7/24."""
    m = retrieval_metrics(*hand_case(), legacy_ap=True)
    assert m.mAP == pytest.approx(100 * (0.6625 + 7 / 24) / 2)
    assert m.legacy_ap


def test_unmatched_queries_can_count_as_zero():
    """unmatched="zero" divides by all queries, as the official test_map does."""
    m = retrieval_metrics(*hand_case(), unmatched="zero")
    assert m.mAP == pytest.approx(100 * (0.7 + 5 / 12) / 3)
    assert m.mINP == pytest.approx(100 * 0.9 / 3)
    with pytest.raises(ValueError, match="unmatched"):
        retrieval_metrics(*hand_case(), unmatched="ignore")


def test_constant_scores_give_no_credit():
    """All scores equal: every non-hit ranks before the hits (ties count against the model)."""
    sim = np.zeros((2, 4), dtype=np.float32)
    m = retrieval_metrics(sim, [1, 2], [1, 2, 3, 1], ks=(1, 3), per_query=True)
    assert m.first_hit_rank.tolist() == [3, 4]
    assert m.recall == {1: 0.0, 3: 50.0}
    assert m.mAP == pytest.approx(100 * ((1 / 3 + 2 / 4) / 2 + 1 / 4) / 2)


def test_negative_zero_ties_with_zero():
    """-0.0 == 0.0: a hit at 0.0 and a non-hit at -0.0 tie, so the non-hit goes first."""
    sim = np.array([[-0.0, 0.0, -1.0]], dtype=np.float32)
    m = retrieval_metrics(sim, [7], [3, 7, 3], per_query=True)
    assert m.first_hit_rank.tolist() == [2]


def test_infinite_scores_are_ranked_and_nan_is_rejected():
    sim = np.array([[np.inf, 1.0, -np.inf]], dtype=np.float32)
    m = retrieval_metrics(sim, [5], [1, 5, 5], per_query=True)
    assert m.first_hit_rank.tolist() == [2]
    assert m.mINP == pytest.approx(100 * 2 / 3)
    sim[0, 0] = np.nan
    for backend in ("auto", "numba", "numpy"):
        with pytest.raises(ValueError, match="row 0 contains NaN"):
            retrieval_metrics(sim, [5], [1, 5, 5], backend=backend)
    with pytest.raises(ValueError, match="row 0 contains NaN"):
        retrieval_metrics(torch.from_numpy(sim), [5], [1, 5, 5], backend="torch")
    # the row is named wherever the NaN sits: a non-hit, a hit, a query without hits, a later chunk
    queries = [5, 5, 9, 5]
    for row, col in [(1, 0), (1, 1), (2, 2), (3, 0)]:
        sim = np.zeros((4, 3), dtype=np.float32)
        sim[row, col] = np.nan
        for backend in ("numba", "numpy"):
            with pytest.raises(ValueError, match=f"row {row} contains NaN"):
                retrieval_metrics(sim, queries, [1, 5, 5], backend=backend, chunk_elements=3)
    with pytest.raises(ValueError, match="NaN or infinite"):
        retrieval_metrics_from_embeddings(torch.tensor([[np.nan, 1.0]]), torch.ones(3, 2), [5], [1, 5, 5])


def test_input_validation():
    sim, q, g = hand_case()
    with pytest.raises(ValueError, match="shape"):
        retrieval_metrics(sim[:, :4], q, g)
    with pytest.raises(ValueError, match="integer"):
        retrieval_metrics(sim, q.astype(float), g)
    with pytest.raises(ValueError, match="ks"):
        retrieval_metrics(sim, q, g, ks=(0,))
    with pytest.raises(ValueError, match="same width"):
        retrieval_metrics_from_embeddings(torch.ones(3, 4), torch.ones(5, 2), q, g)


# --------------------------------------------------------------------------- random references


def random_problem(rng, discrete: bool):
    n_query, n_gallery, n_ids = (int(x) for x in (rng.integers(1, 40), rng.integers(1, 60), rng.integers(1, 15)))
    gallery_ids = rng.integers(0, n_ids, n_gallery)
    query_ids = rng.integers(0, n_ids + 2, n_query)  # some identities absent from the gallery
    sim = rng.standard_normal((n_query, n_gallery)).astype(np.float32)
    if discrete:
        sim = np.round(sim).astype(np.float32)  # many exact ties
    return sim, query_ids, gallery_ids


ROUTES = ["auto", "numba-passes", "numba-sorting", "numpy-sorting", "numpy-counting", "torch"]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("discrete", [False, True])
def test_matches_per_query_reference(route, discrete, monkeypatch):
    """Every ranking method (the numba kernel's per-hit passes and its candidate sort, NumPy
    candidate sorting, NumPy per-hit counting, the torch backend used for GPU tensors) and
    any chunk size agree with the per-query full-sort reference to 1e-6 (R@K, AP, legacy
    AP, INP)."""
    costs = {"numpy-sorting": 0.0, "numpy-counting": 1e12}
    monkeypatch.setattr(ranking, "_CANDIDATE_COST", costs.get(route, ranking._CANDIDATE_COST))
    if route.startswith("numba"):
        passes = 10**9 if route == "numba-passes" else 0
        monkeypatch.setattr(ranking_kernel, "MAX_HITS_FOR_PASSES", passes)
        # rows counted in several float32 segments (2**24 items each in real use)
        monkeypatch.setattr(ranking_kernel, "EXACT_FLOAT_COUNT", 7)
    backend = route.split("-")[0]
    rng = np.random.default_rng(7 if discrete else 3)
    for _ in range(25):
        sim, q, g = random_problem(rng, discrete)
        chunk = int(rng.integers(1, 400))
        for legacy in (False, True):
            recall, first, ap, inp = reference_metrics(sim, q, g, ks=(1, 2, 5, 10), legacy=legacy)
            scores = torch.from_numpy(sim) if route == "torch" else sim
            m = retrieval_metrics(scores, q, g, ks=(1, 2, 5, 10), legacy_ap=legacy, chunk_elements=chunk,
                                  per_query=True, backend=backend)
            assert m.recall == pytest.approx({k: 100 * v for k, v in recall.items()}, abs=1e-6)
            np.testing.assert_array_equal(m.first_hit_rank, first)
            np.testing.assert_allclose(m.average_precision, ap, atol=1e-6, equal_nan=True)
            np.testing.assert_allclose(m.inverse_negative_penalty, inp, atol=1e-6, equal_nan=True)
            if not np.isnan(ap).all():
                assert m.mAP == pytest.approx(100 * np.nanmean(ap), abs=1e-6)
                assert m.mINP == pytest.approx(100 * np.nanmean(inp), abs=1e-6)


def test_legacy_ap_matches_official_code_without_ties():
    """On tie-free scores, legacy_ap + unmatched="zero" reproduce the official test_map."""
    rng = np.random.default_rng(11)
    for _ in range(10):
        n_ids = 12
        g = rng.integers(0, n_ids, 50)
        q = rng.integers(0, n_ids + 1, 30)
        sim = rng.standard_normal((30, 50)).astype(np.float32)
        r1, r5, r10, mean_ap = official_test_map(sim, q, g)
        m = retrieval_metrics(sim, q, g, legacy_ap=True, unmatched="zero")
        assert m.recall == pytest.approx({1: 100 * r1, 5: 100 * r5, 10: 100 * r10}, abs=1e-6)
        assert m.mAP == pytest.approx(100 * mean_ap, abs=1e-6)


def test_embeddings_path_and_directions():
    """Chunked dot products equal the dense similarity path; i2t is the transposed problem."""
    rng = np.random.default_rng(5)
    text = torch.nn.functional.normalize(torch.from_numpy(rng.standard_normal((37, 8)).astype(np.float32)), dim=1)
    image = torch.nn.functional.normalize(torch.from_numpy(rng.standard_normal((23, 8)).astype(np.float32)), dim=1)
    text_ids, image_ids = rng.integers(0, 6, 37), rng.integers(0, 6, 23)
    sim = text @ image.T
    dense = retrieval_metrics(sim, text_ids, image_ids)
    chunked = retrieval_metrics_from_embeddings(text, image, text_ids, image_ids, chunk_elements=50)
    assert dense == chunked
    both = text_image_metrics(text, image, text_ids, image_ids, directions=("t2i", "i2t"))
    assert both["t2i"] == dense
    assert both["i2t"] == retrieval_metrics(sim.T, image_ids, text_ids)
    on_device = retrieval_metrics_from_embeddings(text, image, text_ids, image_ids, chunk_elements=50, backend="torch")
    assert on_device == dense
    with pytest.raises(ValueError, match="backend"):
        retrieval_metrics(sim, text_ids, image_ids, backend="cupy")
    unnormalised = retrieval_metrics_from_embeddings(3 * text, 0.5 * image, text_ids, image_ids, normalize=True)
    assert unnormalised.recall == dense.recall and unnormalised.mAP == pytest.approx(dense.mAP)


def test_memory_does_not_grow_with_queries_times_gallery():
    """With a small chunk, peak NumPy memory stays far below one float32 query x gallery
    matrix (the bound in the module docstring: ~80 bytes per chunk element + O(Q + G))."""
    n_query, n_gallery, chunk = 128, 50_000, 2**15
    rng = np.random.default_rng(0)
    g_ids = rng.integers(0, 5000, n_gallery)
    q_ids = g_ids[rng.integers(0, n_gallery, n_query)]
    q = torch.from_numpy(rng.standard_normal((n_query, 4)).astype(np.float32))
    g = torch.from_numpy(rng.standard_normal((n_gallery, 4)).astype(np.float32))
    tracemalloc.start()
    try:
        retrieval_metrics_from_embeddings(q, g, q_ids, g_ids, chunk_elements=chunk, threads=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    full_matrix = 4 * n_query * n_gallery  # 25.6 MB
    assert peak < 80 * chunk + 64 * (n_query + n_gallery) < full_matrix / 2


def test_threads_and_chunks_do_not_change_results():
    """Chunks ranked in parallel threads give the single-threaded results (to rounding)."""
    rng = np.random.default_rng(2)
    g = rng.integers(0, 30, 300)
    q = rng.integers(0, 32, 200)
    sim = rng.standard_normal((200, 300)).astype(np.float32)
    one = retrieval_metrics(sim, q, g, threads=1, per_query=True)
    many = retrieval_metrics(sim, q, g, threads=3, chunk_elements=1000, per_query=True)
    assert one == many
    np.testing.assert_allclose(one.average_precision, many.average_precision, rtol=1e-12)
    with pytest.raises(ValueError, match="threads"):
        retrieval_metrics(sim, q, g, threads=0)


def test_empty_and_all_unmatched_inputs():
    """No queries: every metric NaN; no gallery match at all: R@K = 0, mAP/mINP NaN."""
    empty = retrieval_metrics(np.zeros((0, 5), np.float32), np.zeros(0, int), np.arange(5))
    assert np.isnan(empty.recall[1]) and np.isnan(empty.mAP) and empty.num_queries == 0
    none = retrieval_metrics(np.zeros((3, 4)), [1, 2, 3], [9, 9, 9, 9])
    assert none.recall[1] == 0.0 and np.isnan(none.mAP) and none.num_unmatched == 3
    no_gallery = retrieval_metrics(np.zeros((2, 0), np.float32), [1, 2], np.zeros(0, int))
    assert no_gallery.recall[10] == 0.0 and no_gallery.num_gallery == 0


def _full_sort_ranks(scores, hits, ties):
    """Per-query reference: sort the whole row with the tie policy as a sort key and read off
    the 1-based positions of the hits (and which hit holds each position)."""
    n = len(scores)
    index = np.arange(n)
    is_hit = np.isin(index, hits)
    tie_key = {"pessimistic": is_hit, "optimistic": ~is_hit, "stable": np.zeros(n, dtype=bool)}[ties]
    order = np.lexsort((index, tie_key, -scores.astype(np.float64)))
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(1, n + 1)
    by_rank = sorted(hits, key=lambda h: position[h])
    return [position[h] for h in by_rank], by_rank


@pytest.mark.parametrize("ties", ["pessimistic", "optimistic", "stable"])
@pytest.mark.parametrize("route", ["numba-passes", "numba-sorting", "numpy-sorting", "numpy-counting", "torch"])
def test_ranking_core_tie_policies_match_full_sort(ties, route, monkeypatch):
    """The one ranking core (plip.evaluation.ranking.hit_ranks), every backend and route, each
    tie policy: ranks and the hit at each rank equal those of a per-query full sort with the
    policy as sort key, on scores with many exact ties (and -0.0 / 0.0, +-inf)."""
    from plip.evaluation.ranking import Positives, hit_ranks

    costs = {"numpy-sorting": 0.0, "numpy-counting": 1e12}
    monkeypatch.setattr(ranking, "_CANDIDATE_COST", costs.get(route, ranking._CANDIDATE_COST))
    if route.startswith("numba"):
        monkeypatch.setattr(ranking_kernel, "MAX_HITS_FOR_PASSES", 10**9 if route == "numba-passes" else 0)
    backend = route.split("-")[0]
    rng = np.random.default_rng(11)
    for trial in range(8):
        n_q, n_g = int(rng.integers(1, 9)), int(rng.integers(1, 60))
        scores = np.round(rng.normal(size=(n_q, n_g)) * 2).astype(np.float32)
        scores[scores == 0] = np.where(rng.random((scores == 0).sum()) < 0.5, -0.0, 0.0)
        if trial % 3 == 0:
            scores[rng.random(scores.shape) < 0.05] = np.inf
            scores[rng.random(scores.shape) < 0.05] = -np.inf
        q_ids, g_ids = rng.integers(0, 4, n_q), rng.integers(0, 4, n_g)
        positives = Positives(q_ids, g_ids)
        pos_idx, valid = positives.block(slice(0, n_q))
        block = torch.from_numpy(scores) if backend == "torch" else scores
        ranks, cols = hit_ranks(block, pos_idx, valid, ties=ties, backend=backend, return_columns=True)
        for r in range(n_q):
            hits = np.flatnonzero(g_ids == q_ids[r])
            expected_ranks, expected_cols = _full_sort_ranks(scores[r], hits, ties)
            p = len(hits)
            assert list(ranks[r, :p]) == expected_ranks, (trial, r)
            assert list(cols[r, :p]) == expected_cols, (trial, r)


def test_tie_policy_changes_metrics_as_documented():
    """Constant scores: pessimistic puts every hit last, optimistic first (R@1 = 100),
    stable in gallery order; the default is pessimistic."""
    sim = np.zeros((2, 4), dtype=np.float32)
    q, g = np.array([1, 2]), np.array([0, 1, 0, 2])
    assert retrieval_metrics(sim, q, g).recall[1] == 0.0
    assert retrieval_metrics(sim, q, g, ties="pessimistic").recall == retrieval_metrics(sim, q, g).recall
    assert retrieval_metrics(sim, q, g, ties="optimistic").recall[1] == 100.0
    stable = retrieval_metrics(sim, q, g, ties="stable", per_query=True)
    assert list(stable.first_hit_rank) == [2, 4]
    with pytest.raises(ValueError, match="ties must be one of"):
        retrieval_metrics(sim, q, g, ties="random")
