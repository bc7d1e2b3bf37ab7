"""Speed of plip's retrieval metrics at CUHK-PEDES test size vs the official per-query loop.

CUHK-PEDES test: 6,156 caption queries x 3,074 gallery images, 1,000 identities.

Baseline ("the official way"): the official PLIP evaluation (``test_map`` / ``evaluate`` /
``compute_mAP`` in the released ``utils.py``) ranks one query at a time: NumPy argsort of
the query's scores, reversed, ``isin`` to find the hits, a Python loop over the hits for the
AP, and a torch CMC vector added per query. It is re-implemented here on the CPU, with
``np.isin`` for the ``np.in1d`` that NumPy 2.4 removed. Two comparisons, measured in the
same run:

1. ranking only: both sides get the same precomputed similarity matrix;
2. features to metrics: both sides get the embeddings; the official loop computes each
   query's scores with ``torch.mm`` inside the loop, plip uses chunked matrix products.

plip runs with its default backend (the compiled numba kernel on the CPU) and, for
comparison, with ``backend="numpy"`` (no compiled code). All report R@1/5/10 and the
official AP (``legacy_ap=True``, unmatched queries as 0, as the official code divides by
all queries); the script checks that the numbers agree.

Usage: PYTHONPATH=. python benchmarks/bench_metrics.py [--repeats 5] [--dim 768] [--skip-features]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from plip.evaluation.retrieval_metrics import _num_threads, retrieval_metrics, retrieval_metrics_from_embeddings

N_QUERIES, N_GALLERY, N_IDS = 6156, 3074, 1000


def cuhk_like_ids(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Identity labels shaped like CUHK-PEDES test: ~3 images per person, ~2 captions per image."""
    gallery_ids = np.concatenate([np.arange(N_IDS)] * 3 + [rng.choice(N_IDS, N_GALLERY - 3 * N_IDS, replace=False)])
    gallery_ids = np.sort(gallery_ids)
    extra = rng.choice(N_GALLERY, N_QUERIES - 2 * N_GALLERY, replace=False)  # images with a 3rd caption
    query_image = np.sort(np.concatenate([np.arange(N_GALLERY), np.arange(N_GALLERY), extra]))
    return gallery_ids[query_image], gallery_ids


def embeddings(rng: np.random.Generator, query_ids, gallery_ids, dim: int, noise: float):
    """Identity centre + Gaussian noise, L2-normalised (noise=inf: unrelated random vectors)."""
    centres = rng.standard_normal((N_IDS, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    def draw(ids):
        if np.isinf(noise):
            x = rng.standard_normal((len(ids), dim), dtype=np.float32)
        else:
            x = centres[ids] + np.float32(noise / np.sqrt(dim)) * rng.standard_normal((len(ids), dim), dtype=np.float32)
        return torch.nn.functional.normalize(torch.from_numpy(x), dim=1)

    return draw(query_ids), draw(gallery_ids)


# --------------------------------------------------------------------------- the official way


def _official_one_query(scores: np.ndarray, query_id, gallery_ids: np.ndarray):
    """Rank one query as the official evaluation does; (AP, CMC vector) or None without a hit."""
    order = np.argsort(scores)[::-1]
    good = np.argwhere(gallery_ids == query_id)
    cmc = torch.IntTensor(len(order)).zero_()
    if good.size == 0:
        return None
    hit_rows = np.argwhere(np.isin(order, good)).flatten()
    cmc[hit_rows[0]:] = 1
    ap = 0.0
    for i, row in enumerate(hit_rows):
        precision = (i + 1) / (row + 1)
        before = i / row if row != 0 else 1.0
        ap += (before + precision) / 2 / len(good)
    return ap, cmc


def official_from_similarity(sim: torch.Tensor, query_ids: torch.Tensor, gallery_ids: torch.Tensor):
    cmc = torch.IntTensor(sim.shape[1]).zero_()
    ap_sum = 0.0
    gallery = gallery_ids.numpy()
    for q in range(sim.shape[0]):
        result = _official_one_query(sim[q].numpy(), query_ids[q].item(), gallery)
        if result is not None:
            ap_sum += result[0]
            cmc = cmc + result[1]
    cmc = cmc.float() / sim.shape[0]
    return [100 * float(cmc[k - 1]) for k in (1, 5, 10)], 100 * ap_sum / sim.shape[0]


def official_from_features(query: torch.Tensor, query_ids, gallery: torch.Tensor, gallery_ids):
    query = query / (query.norm(dim=1, keepdim=True) + 1e-12)
    gallery = gallery / (gallery.norm(dim=1, keepdim=True) + 1e-12)
    cmc = torch.IntTensor(gallery.shape[0]).zero_()
    ap_sum = 0.0
    for q in range(query.shape[0]):
        scores = torch.mm(gallery, query[q].view(-1, 1)).squeeze(1)
        result = _official_one_query(scores.numpy(), query_ids[q].item(), gallery_ids.numpy())
        if result is not None:
            ap_sum += result[0]
            cmc = cmc + result[1]
    cmc = cmc.float() / query.shape[0]
    return [100 * float(cmc[k - 1]) for k in (1, 5, 10)], 100 * ap_sum / query.shape[0]


# --------------------------------------------------------------------------- timing


def best_of(fn, repeats: int):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def check(name, official, ours) -> None:
    (r1, r5, r10), mean_ap = official
    got = [ours.recall[1], ours.recall[5], ours.recall[10], ours.mAP]
    want = [r1, r5, r10, mean_ap]
    if not np.allclose(got, want, atol=1e-4):
        raise SystemExit(f"{name}: metrics differ: plip {got} vs official {want}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="plip timings: best of N (baseline: 1 run)")
    parser.add_argument("--dim", type=int, default=768, help="embedding width (PLIP: 768)")
    parser.add_argument("--skip-features", action="store_true", help="skip the (slow) features-to-metrics baseline")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    q_ids_np, g_ids_np = cuhk_like_ids(rng)
    q_ids, g_ids = torch.from_numpy(q_ids_np), torch.from_numpy(g_ids_np)
    print(f"CUHK-PEDES size: {N_QUERIES} queries x {N_GALLERY} gallery, {N_IDS} ids, dim {args.dim}; "
          f"CPUs {os.cpu_count()}, torch threads {torch.get_num_threads()}, plip ranking threads {_num_threads(None)}")
    options = dict(legacy_ap=True, unmatched="zero")
    rows = []
    for label, noise in [("realistic (R@1 ~ 50%)", 3.0), ("random scores", float("inf"))]:
        query, gallery = embeddings(rng, q_ids_np, g_ids_np, args.dim, noise)
        sim = query @ gallery.T
        assert sim.dtype == torch.float32
        base_t, base = best_of(lambda: official_from_similarity(sim, q_ids, g_ids), 1)
        ours_t, ours = best_of(lambda: retrieval_metrics(sim, q_ids, g_ids, **options), args.repeats)
        check(label, base, ours)
        rows.append((f"{label}, ranking only", base_t, ours_t, ours))
        numpy_t, numpy_result = best_of(lambda: retrieval_metrics(sim, q_ids, g_ids, backend="numpy", **options), args.repeats)
        check(label, base, numpy_result)
        rows.append((f"{label}, ranking only (NumPy backend)", base_t, numpy_t, numpy_result))
        if not args.skip_features and not np.isinf(noise):
            base_t, base = best_of(lambda: official_from_features(query, q_ids, gallery, g_ids), 1)
            ours_t, ours = best_of(
                lambda: retrieval_metrics_from_embeddings(query, gallery, q_ids, g_ids, **options), args.repeats
            )
            check(label, base, ours)
            rows.append((f"{label}, features to metrics", base_t, ours_t, ours))

    print(f"\n{'comparison':52} {'official loop':>14} {'plip':>10} {'speed-up':>9}   R@1 / mAP (legacy)")
    for name, base_t, ours_t, ours in rows:
        print(f"{name:52} {base_t:13.3f}s {ours_t * 1e3:8.1f}ms {base_t / ours_t:8.1f}x   "
              f"{ours.recall[1]:.2f} / {ours.mAP:.2f}")


if __name__ == "__main__":
    main()
