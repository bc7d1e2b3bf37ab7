"""ReID metrics (CMC, mAP, mINP) under the Market-1501 protocol.

References: hand-computed rankings, and a per-query reference written here from the
classic ``eval_market1501`` of torchreid / fast-reid (``metrics/rank.py``): argsort each
row, drop same-id-same-camera gallery entries, skip queries with no match left, AP as
the mean of precision at each hit, INP = hits / rank of the last hit. The reference
sorts with ``kind="stable"`` so that ties resolve like ours (by gallery index).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from plip.errors import DataError
from plip.evaluation.reid_metrics import compute_rank_metrics, evaluate_reid


def reference_eval_market1501(distmat, q_pids, g_pids, q_camids, g_camids, max_rank):
    """Per-query loop, after torchreid's eval_market1501 (plus fast-reid's mINP)."""
    indices = np.argsort(distmat, axis=1, kind="stable")
    matches = (g_pids[indices] == q_pids[:, np.newaxis]).astype(np.int32)
    all_cmc, all_ap, all_inp = [], [], []
    for q_idx in range(distmat.shape[0]):
        order = indices[q_idx]
        remove = (g_pids[order] == q_pids[q_idx]) & (g_camids[order] == q_camids[q_idx])
        raw_cmc = matches[q_idx][np.invert(remove)]
        if not np.any(raw_cmc):
            continue
        cmc = raw_cmc.cumsum()
        max_pos_idx = np.max(np.where(raw_cmc == 1))
        all_inp.append(cmc[max_pos_idx] / (max_pos_idx + 1.0))
        cmc[cmc > 1] = 1
        cmc = cmc[:max_rank]
        if len(cmc) < max_rank:  # short gallery: the curve stays at 1 after the last rank
            cmc = np.concatenate([cmc, np.ones(max_rank - len(cmc), dtype=cmc.dtype)])
        all_cmc.append(cmc)
        tmp_cmc = raw_cmc.cumsum()
        tmp_cmc = [x / (i + 1.0) for i, x in enumerate(tmp_cmc)]
        tmp_cmc = np.asarray(tmp_cmc) * raw_cmc
        all_ap.append(tmp_cmc.sum() / raw_cmc.sum())
    return np.asarray(all_cmc).mean(0), np.mean(all_ap), np.mean(all_inp), len(all_ap)


# Gallery: pid, camera. Query 0 (pid 1, cam 0) sees g0 (same id and camera) removed.
G_PIDS = np.array([1, 2, 1, 3, 1, 1])
G_CAMS = np.array([0, 1, 1, 0, 2, 1])
Q_PIDS = np.array([1, 4, 2])
Q_CAMS = np.array([0, 0, 0])
DIST = np.array([
    [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],  # kept: g1 x, g2 hit, g3 x, g4 hit, g5 hit
    [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],  # pid 4 is not in the gallery: skipped
    [0.5, 0.3, 0.1, 0.2, 0.4, 0.6],  # g2 x, g3 x, g1 hit
])  # fmt: skip


def test_hand_computed_case():
    """q0 hits at ranks 2, 4, 5: AP = (1/2 + 2/4 + 3/5) / 3, INP = 3/5. q2 hits at rank 3:
    AP = INP = 1/3. q1 is skipped. Without same-camera removal q0 would score rank-1."""
    r = compute_rank_metrics(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, max_rank=6)
    assert r["num_queries"] == 3 and r["num_valid_queries"] == 2 and r["num_skipped_queries"] == 1
    assert r["cmc"] == pytest.approx([0.0, 0.5] + [1.0] * 8)  # length max(max_rank, 10)
    assert r["rank1"] == 0.0 and r["rank5"] == 1.0 and r["rank10"] == 1.0
    assert r["mAP"] == pytest.approx(((0.5 + 0.5 + 0.6) / 3 + 1 / 3) / 2)
    assert r["mINP"] == pytest.approx((0.6 + 1 / 3) / 2)


def test_same_camera_removal_matters():
    """Changing g0 to another camera makes it a valid rank-1 match for q0."""
    cams = G_CAMS.copy()
    cams[0] = 2
    r = compute_rank_metrics(DIST[:1], Q_PIDS[:1], G_PIDS, Q_CAMS[:1], cams, max_rank=3)
    assert r["rank1"] == 1.0
    assert r["mAP"] == pytest.approx((1 + 2 / 3 + 3 / 5 + 4 / 6) / 4)
    assert r["mINP"] == pytest.approx(4 / 6)


def test_ties_break_by_gallery_index():
    """Equal distances: the entry listed first in the gallery ranks first."""
    dist = np.array([[0.3, 0.3, 0.9]])
    r = compute_rank_metrics(dist, [5], [7, 5, 7], [0], [1, 1, 1], max_rank=3)
    assert r["cmc"][:3] == [0.0, 1.0, 1.0] and r["mAP"] == pytest.approx(0.5)
    r = compute_rank_metrics(dist, [5], [5, 7, 7], [0], [1, 1, 1], max_rank=3)
    assert r["cmc"][:3] == [1.0, 1.0, 1.0] and r["mAP"] == pytest.approx(1.0)


def test_no_valid_query_is_an_error():
    with pytest.raises(DataError, match="no query identity"):
        compute_rank_metrics(DIST[1:2], Q_PIDS[1:2], G_PIDS, Q_CAMS[1:2], G_CAMS)


@pytest.mark.parametrize("seed", range(6))
def test_matches_per_query_reference_on_random_data(seed):
    """Random ids/cameras and integer distances (many ties), various chunk sizes."""
    rng = np.random.default_rng(seed)
    num_q, num_g, num_ids = rng.integers(5, 80), rng.integers(5, 300), rng.integers(2, 25)
    q_pids, g_pids = rng.integers(0, num_ids, num_q), rng.integers(0, num_ids, num_g)
    q_cams, g_cams = rng.integers(0, 4, num_q), rng.integers(0, 4, num_g)
    dist = rng.integers(0, 6, (num_q, num_g)).astype(np.float64)
    max_rank = 20
    cmc, m_ap, m_inp, num_valid = reference_eval_market1501(
        dist, q_pids, g_pids, q_cams, g_cams, max_rank
    )
    for chunk in (1, 7, None):
        r = compute_rank_metrics(
            dist, q_pids, g_pids, q_cams, g_cams, max_rank=max_rank, chunk_size=chunk
        )
        np.testing.assert_allclose(r["cmc"], cmc, rtol=0, atol=1e-9)
        assert abs(r["mAP"] - m_ap) < 1e-9 and abs(r["mINP"] - m_inp) < 1e-9
        assert r["num_valid_queries"] == num_valid
        assert r["rank5"] == pytest.approx(cmc[4])


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_evaluate_reid_from_features_matches_reference(metric):
    rng = np.random.default_rng(3)
    q, g = rng.normal(size=(40, 16)), rng.normal(size=(150, 16))
    q_pids, g_pids = rng.integers(0, 10, 40), rng.integers(0, 10, 150)
    q_cams, g_cams = rng.integers(0, 3, 40), rng.integers(0, 3, 150)
    if metric == "euclidean":
        dist = ((q[:, None, :] - g[None, :, :]) ** 2).sum(-1)
    else:
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        gn = g / np.linalg.norm(g, axis=1, keepdims=True)
        dist = 1 - qn @ gn.T
    cmc, m_ap, m_inp, _ = reference_eval_market1501(dist, q_pids, g_pids, q_cams, g_cams, 10)
    r = evaluate_reid(
        torch.from_numpy(q),
        q_pids,
        q_cams,
        torch.from_numpy(g),
        g_pids,
        g_cams,
        metric=metric,
        max_rank=10,
        chunk_size=9,
    )
    np.testing.assert_allclose(r["cmc"], cmc, atol=1e-9)
    assert abs(r["mAP"] - m_ap) < 1e-9 and abs(r["mINP"] - m_inp) < 1e-9


def test_input_validation():
    with pytest.raises(DataError, match="gallery_pids has 5 entries, expected 6"):
        compute_rank_metrics(DIST, Q_PIDS, G_PIDS[:5], Q_CAMS, G_CAMS)
    with pytest.raises(DataError, match="integer ids"):
        compute_rank_metrics(DIST, Q_PIDS.astype(float), G_PIDS, Q_CAMS, G_CAMS)
    with pytest.raises(DataError, match="dimension"):
        evaluate_reid(np.zeros((3, 4)), Q_PIDS, Q_CAMS, np.zeros((6, 5)), G_PIDS, G_CAMS)
    with pytest.raises(DataError, match="metric"):
        evaluate_reid(
            np.zeros((3, 4)), Q_PIDS, Q_CAMS, np.zeros((6, 4)), G_PIDS, G_CAMS, metric="l1"
        )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backends_and_tie_policies_on_tied_distances(dtype):
    """Distances with many exact ties: the kernel path (float32 on CPU) and the torch path
    (float64) both equal the stable-sort reference (torchreid's loop with a stable argsort)
    by default; ``ties="pessimistic"`` / ``"optimistic"`` bound it from below / above."""
    rng = np.random.default_rng(5)
    num_q, num_g = 30, 80
    dist = rng.integers(0, 4, (num_q, num_g)).astype(dtype)
    q_pids, g_pids = rng.integers(0, 6, num_q), rng.integers(0, 6, num_g)
    q_cams, g_cams = rng.integers(0, 3, num_q), rng.integers(0, 3, num_g)
    expected = reference_eval_market1501(dist, q_pids, g_pids, q_cams, g_cams, 50)
    got = compute_rank_metrics(dist, q_pids, g_pids, q_cams, g_cams, max_rank=50)
    assert got["mAP"] == pytest.approx(expected[1], abs=1e-9)
    np.testing.assert_allclose(got["cmc"], expected[0], atol=1e-9)
    low = compute_rank_metrics(dist, q_pids, g_pids, q_cams, g_cams, ties="pessimistic")
    high = compute_rank_metrics(dist, q_pids, g_pids, q_cams, g_cams, ties="optimistic")
    assert low["mAP"] < got["mAP"] < high["mAP"]
    assert low["rank1"] <= got["rank1"] <= high["rank1"]
